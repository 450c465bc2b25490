"""Frozen-backbone features cached in replay: the backbone runs once per frame, not per batch.

hil-serl freezes a pretrained ResNet-10 and trains only a small head; then the backbone's
output for a stored frame never changes, so computing it on every sampled batch (twice: obs
and next_obs) is wasted work. :meth:`FeatureCache.frame` is a
:class:`learners.replay.ReplayBuffer` ``frame_transform``: it turns a frame's camera images
into the backbone's ``(C, h, w)`` float16 feature maps as the frame is stored, in a buffer
built with :meth:`FeatureCache.replay_spec`; the encoder takes those in place of images
(:meth:`policies.encoders.ImageEncoder.forward`), so updates run only pooling, head and
MLPs. The actor keeps sending and acting on images. ``learner.cache_features=true`` (with
``learner.encoder.freeze_backbone=true``) turns it on in ``hilr learner``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

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

    def replay_spec(self) -> ObsSpec:
        """The replay buffer layout: cameras as ``(C, h, w)`` float16 features."""
        return self.encoder.cached_spec()

    def frame(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """One frame's observation dict with each camera's ``(H, W, 3)`` uint8 image replaced by
        its ``(C, h, w)`` float16 backbone features (other keys unchanged)."""
        self.backbone_frames += 1
        feats = self.encoder.featurize({k: np.asarray(obs[k])[None] for k in self.keys})
        return {**obs, **{k: feats[k][0] for k in self.keys}}
