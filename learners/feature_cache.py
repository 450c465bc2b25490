"""Frozen-backbone features cached in replay: the backbone runs once per frame, not per batch.

hil-serl freezes a pretrained ResNet-10 and trains only a small head; then the backbone's
output for a stored frame never changes, so computing it on every sampled batch (twice: obs
and next_obs) is wasted work. :class:`FeatureCache` turns each incoming transition's camera
images into the backbone's ``(C, h, w)`` float16 feature maps before it enters a
:class:`learners.replay.ReplayBuffer` built with :meth:`FeatureCache.replay_spec`; the
encoder takes those in place of images (:meth:`policies.encoders.ImageEncoder.forward`),
so updates run only pooling, head and MLPs. The actor keeps sending and acting on images.

Status (issue 13 item 2): the cache, the encoder path and ``hilr bench learner``'s
``cached_features`` variant are built and tested; the learner process (``hilr learner``,
``learners.inprocess``) does not use it yet.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from learners.replay import split_obs
from policies.encoders import ObservationEncoder, ObsSpec


class FeatureCache:
    """Replace camera images by frozen-backbone features, once per frame.

    Args:
        encoder: the learner's observation encoder (``freeze_backbone=true``).

    Raises:
        ValueError: the encoder has no cameras or trains its backbone.
    """

    def __init__(self, encoder: ObservationEncoder) -> None:
        if not encoder.image_keys:
            raise ValueError("no cameras in the observation spec: nothing to cache")
        if not encoder.cfg.freeze_backbone:
            raise ValueError("cached features need encoder.freeze_backbone=true (a trained backbone's features go stale)")
        self.encoder = encoder
        self.keys = list(encoder.image_keys)
        self.backbone_frames = 0  # frames the backbone has run on
        self._last: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None  # (images, features) of the last next_obs

    def replay_spec(self) -> ObsSpec:
        """The replay buffer layout: cameras as ``(C, h, w)`` float16 features."""
        return self.encoder.cached_spec()

    def _features(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        self.backbone_frames += 1
        feats = self.encoder.featurize({k: np.asarray(obs[k])[None] for k in self.keys})
        return {k: feats[k][0] for k in self.keys}

    def transition(self, tr: Mapping[str, Any]) -> dict[str, Any]:
        """A transition (nested ``obs``/``next_obs`` dicts or flat ``obs/<key>`` entries) with
        nested ``obs``/``next_obs`` whose cameras are features. ``obs`` reuses the previous
        transition's ``next_obs`` features when its images are the same frame (the usual case
        within an episode), so the backbone runs once per frame."""
        obs, next_obs = split_obs(tr, "obs"), split_obs(tr, "next_obs")
        prev = self._last
        if prev is not None and all(np.array_equal(prev[0][k], obs[k]) for k in self.keys):
            obs_feats = prev[1]
        else:
            obs_feats = self._features(obs)
        next_feats = self._features(next_obs)
        self._last = ({k: np.asarray(next_obs[k]) for k in self.keys}, next_feats)
        out = {k: v for k, v in tr.items() if not k.startswith(("obs/", "next_obs/"))}
        out["obs"] = {**obs, **obs_feats}
        out["next_obs"] = {**next_obs, **next_feats}
        return out

    def episode(self, episode: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A recorded episode (``obs/<key>`` ``(T + 1, ...)``) with its camera frames featurized
        in batches, for :meth:`learners.replay.ReplayBuffer.add_episode`."""
        out = dict(episode)
        feats = self.encoder.featurize({k: episode[f"obs/{k}"] for k in self.keys})
        self.backbone_frames += len(episode[f"obs/{self.keys[0]}"])
        out.update({f"obs/{k}": feats[k] for k in self.keys})
        return out
