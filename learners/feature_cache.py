"""Frozen-backbone features cached in replay: the backbone runs once per frame, not per batch.

hil-serl freezes a pretrained ResNet-10 and trains only a small head; then the backbone's
output for a stored frame never changes, so computing it on every sampled batch (twice: obs
and next_obs) is wasted work. :meth:`FeatureCache.frame` is a
:class:`learners.replay.ReplayBuffer` ``frame_transform``: it turns a frame's camera images
into the backbone's ``(C, h, w)`` float16 feature maps as the frame is stored, in a buffer
built with :meth:`FeatureCache.replay_spec`; the encoder takes those in place of images
(:meth:`policies.encoders.ImageEncoder.forward`), so updates run only pooling, head and
MLPs. ``learner.cache_features=true`` (with ``learner.encoder.freeze_backbone=true``) turns it
on in ``hilr learner``.

Where the features are made (``learner.features_from``):

- ``learner`` (default): the actor sends camera images; the learner's backbone runs once per
  received frame.
- ``actor``: the actor runs the backbone once per frame (it runs it to act anyway), acts on
  those features and sends them in place of the images, with its backbone's
  :meth:`~policies.encoders.ObservationEncoder.backbone_digest`. The learner stores them as
  they come (no backbone work, fewer bytes on the wire for ResNet features) and refuses
  features from a backbone other than its own (:meth:`FeatureCache.check_digest`).
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
        self.shapes = {k: tuple(encoder.encoder_for(k).feature_shape) for k in self.keys}
        self.digest = np.frombuffer(encoder.backbone_digest(), np.uint8).copy()  # (32,)
        self.backbone_frames = 0  # frames the backbone has run on
        self.passed_frames = 0  # frames that arrived as features (made by an actor)

    def replay_spec(self) -> ObsSpec:
        """The replay buffer layout: cameras as ``(C, h, w)`` float16 features."""
        return self.encoder.cached_spec()

    def refresh_digest(self) -> bool:
        """Re-hash the encoder's backbone (after a checkpoint replaced its weights); True if the
        digest changed."""
        new = np.frombuffer(self.encoder.backbone_digest(), np.uint8).copy()
        changed = not np.array_equal(new, self.digest)
        self.digest = new
        return changed

    def is_features(self, obs: Mapping[str, Any]) -> bool:
        """True when every camera entry of ``obs`` already holds this backbone's ``(C, h, w)``
        float16 features (False when every one is an image).

        Raises:
            ValueError: some cameras hold features and others images.
        """
        done = [np.asarray(obs[k]).dtype == np.float16 and np.shape(obs[k]) == self.shapes[k] for k in self.keys]
        if any(done) and not all(done):
            raise ValueError(f"cameras {self.keys}: some hold backbone features and others images")
        return all(done)

    def frame(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """One frame's observation dict with each camera's ``(H, W, 3)`` uint8 image replaced by
        its ``(C, h, w)`` float16 backbone features (other keys unchanged). A frame whose cameras
        already hold such features (made by the actor, ``learner.features_from=actor``) is kept
        as it is."""
        if self.is_features(obs):
            self.passed_frames += 1
            return dict(obs)
        self.backbone_frames += 1
        feats = self.encoder.featurize({k: np.asarray(obs[k])[None] for k in self.keys})
        return {**obs, **{k: feats[k][0] for k in self.keys}}

    def check_transition(self, arrays: Mapping[str, Any]) -> None:
        """A received transition's flat arrays: refuse it unless its ``backbone_digest`` is this
        backbone's (a :class:`learners.transport.TransitionReceiver` ``check``).

        Raises:
            ValueError: another backbone made its features.
        """
        from learners.transport.spec import DIGEST

        self.check_digest(arrays[DIGEST])

    def check_digest(self, digest: Any) -> None:
        """Refuse features made by another backbone than this one.

        Raises:
            ValueError: ``digest`` is not this backbone's :meth:`~policies.encoders.ObservationEncoder.backbone_digest`.
        """
        got = np.asarray(digest)
        if got.shape != self.digest.shape or not np.array_equal(got.astype(np.uint8, copy=False), self.digest):
            raise ValueError(
                f"backbone features made with backbone {bytes(got.astype(np.uint8).ravel()).hex()[:12]}..., this learner's "
                f"is {bytes(self.digest).hex()[:12]}...: start the actor and the learner with the same base_policy "
                "(learner.encoder.backbone_from=base) or the same learner.encoder.pretrained file")
