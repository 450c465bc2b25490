"""Image success classifier used as the reward on real robots.

``RewardClassifier``: camera images (one encoder per camera) -> logit of P(success). The
reward is ``1`` when the probability exceeds ``threshold`` (hil-serl uses 0.7-0.85).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from policies.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from policies.encoders import EncoderConfig, ObservationEncoder, ObsSpec, image_keys, mlp, obs_to_tensors


@dataclasses.dataclass
class RewardClassifierConfig:
    """Architecture of the reward classifier.

    Attributes:
        encoder: image encoder config (a frozen pretrained ResNet-10 is the hil-serl choice).
        hidden: MLP widths after the encoders.
        threshold: probability above which a frame counts as success.
        use_state: also feed the proprio state (off by default: images only).
    """

    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    hidden: tuple[int, ...] = (256,)
    threshold: float = 0.75
    use_state: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.encoder, Mapping):
            self.encoder = EncoderConfig(**self.encoder)
        self.hidden = tuple(int(h) for h in self.hidden)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


class RewardClassifier(nn.Module):
    """Images -> success logit ``(B,)``.

    Args:
        spec: observation layout; needs at least one camera unless ``cfg.use_state``.
        cfg: architecture and threshold.
    """

    def __init__(self, spec: ObsSpec, cfg: RewardClassifierConfig) -> None:
        super().__init__()
        keys = image_keys(spec) + (["state"] if cfg.use_state and "state" in spec else [])
        if not keys:
            raise ValueError("the reward classifier needs camera images (or use_state=true)")
        self.spec = {k: spec[k] for k in keys}
        self.cfg = cfg
        self.encoder = ObservationEncoder(self.spec, cfg.encoder, use_state=cfg.use_state)
        self.head = mlp(self.encoder.out_dim, list(cfg.hidden), 1, layer_norm=True)

    def forward(self, obs: Mapping[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        """Success logits ``(B,)`` for a batched obs dict."""
        return self.head(self.encoder(obs, augment=augment)).squeeze(-1)

    @torch.no_grad()
    def success_probability(self, obs: Mapping[str, np.ndarray]) -> float:
        """P(success) for one unbatched observation."""
        dev = next(self.parameters()).device
        batch = obs_to_tensors({k: obs[k] for k in self.spec}, dev)
        return float(torch.sigmoid(self(batch))[0])

    def reward(self, obs: Mapping[str, np.ndarray]) -> tuple[float, float]:
        """``(reward in {0, 1}, probability)`` for one observation, thresholded at ``cfg.threshold``."""
        p = self.success_probability(obs)
        return float(p > self.cfg.threshold), p


def save_reward_classifier(path: str | Path, model: RewardClassifier, extra: dict[str, Any] | None = None) -> Path:
    """Atomic safetensors checkpoint with spec and config in the JSON header."""
    meta = {"kind": "hilr-reward-classifier", "version": 1,
            "spec": {k: [list(s), d] for k, (s, d) in model.spec.items()},
            "config": dataclasses.asdict(model.cfg), **(extra or {})}
    return save_checkpoint(path, model.state_dict(), meta)


def load_reward_classifier(path: str | Path, device: str = "cpu", threshold: float | None = None) -> RewardClassifier:
    """Rebuild a trained classifier (eval mode); ``threshold`` overrides the stored one."""
    state, meta = load_checkpoint(path, device)
    if meta.get("kind") != "hilr-reward-classifier":
        raise CheckpointError(f"{path} is not a hilr reward classifier (kind={meta.get('kind')!r})")
    cfg = RewardClassifierConfig(**meta["config"])
    cfg.encoder.pretrained = None
    if threshold is not None:
        cfg.threshold = threshold
    model = RewardClassifier({k: (tuple(s), d) for k, (s, d) in meta["spec"].items()}, cfg)
    model.load_state_dict(state)
    return model.to(device).eval()
