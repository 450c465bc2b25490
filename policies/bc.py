"""Behaviour-cloning base policy: images + proprio -> an action chunk of H steps.

:class:`BCPolicy` is the ``nn.Module`` (observation encoder -> MLP -> ``(H, 7)`` in [-1, 1]).
:class:`ChunkExecutor` turns successive chunks into one action per step:

- ``"chunk"``: execute the whole chunk open-loop, then predict again (ACT/ResFiT default);
- ``"receding"``: execute the first ``execute_steps`` actions of each chunk, then replan;
- ``"ensemble"``: predict every step and average all chunks' predictions for this step
  with ACT's temporal-ensembling weights ``exp(-k * i)`` (i = 0 is the oldest prediction).

:class:`BCBasePolicy` joins both behind the :class:`policies.base.BasePolicy` interface.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from policies.base import BasePolicy, check_action
from policies.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from policies.encoders import EncoderConfig, ObservationEncoder, ObsSpec, mlp, obs_to_tensors

EXECUTIONS = ("chunk", "receding", "ensemble")


@dataclasses.dataclass
class BCConfig:
    """BC policy architecture and execution (the ``policy`` config group).

    Attributes:
        encoder: image encoder config (ignored for state-only observations).
        hidden: MLP hidden widths.
        chunk_size: H, actions predicted per inference.
        execution: ``chunk`` | ``receding`` | ``ensemble``.
        execute_steps: actions executed per chunk in ``receding`` mode.
        ensemble_k: temporal-ensembling decay (ACT uses 0.01).
        dropout: dropout in the MLP head during training.
    """

    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    hidden: tuple[int, ...] = (256, 256)
    chunk_size: int = 8
    execution: str = "receding"
    execute_steps: int = 4
    ensemble_k: float = 0.01
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.encoder, Mapping):
            self.encoder = EncoderConfig(**self.encoder)
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {EXECUTIONS}, got {self.execution!r}")
        if self.chunk_size < 1 or not 1 <= self.execute_steps <= self.chunk_size:
            raise ValueError("need chunk_size >= 1 and 1 <= execute_steps <= chunk_size")


class BCPolicy(nn.Module):
    """Obs dict -> action chunk ``(B, H, A)`` in [-1, 1].

    The proprio state is standardised with statistics stored as buffers (set from the
    training data by :meth:`set_state_stats`), so a checkpoint carries its normalisation.

    Args:
        spec: observation layout.
        cfg: architecture.
        action_dim: A.
    """

    def __init__(self, spec: ObsSpec, cfg: BCConfig, action_dim: int = 7) -> None:
        super().__init__()
        self.spec, self.cfg, self.action_dim = dict(spec), cfg, action_dim
        self.encoder = ObservationEncoder(spec, cfg.encoder)
        d = self.encoder.state_dim
        self.register_buffer("state_mean", torch.zeros(d))
        self.register_buffer("state_std", torch.ones(d))
        head = mlp(self.encoder.out_dim, list(cfg.hidden), cfg.chunk_size * action_dim, layer_norm=True)
        if cfg.dropout > 0:
            layers = []
            for m in head:
                layers.append(m)
                if isinstance(m, nn.ReLU):
                    layers.append(nn.Dropout(cfg.dropout))
            head = nn.Sequential(*layers)
        self.head = head

    def set_state_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store the proprio normalisation (std is floored at 1e-3)."""
        self.state_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.state_std.copy_(torch.as_tensor(np.maximum(std, 1e-3), dtype=torch.float32))

    def forward(self, obs: Mapping[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        """Chunk ``(B, H, A)`` for a batched obs dict."""
        if self.encoder.use_state:
            obs = dict(obs)
            obs["state"] = (obs["state"].float() - self.state_mean) / self.state_std
        out = self.head(self.encoder(obs, augment=augment))
        return torch.tanh(out).view(-1, self.cfg.chunk_size, self.action_dim)


class ChunkExecutor:
    """Turn chunks into per-step actions (``chunk`` / ``receding`` / ``ensemble``).

    Args:
        execution: mode, see module docstring.
        chunk_size: H.
        execute_steps: actions used per chunk in ``receding`` mode.
        ensemble_k: decay of the temporal-ensembling weights.
    """

    def __init__(self, execution: str, chunk_size: int, execute_steps: int = 1, ensemble_k: float = 0.01) -> None:
        if execution not in EXECUTIONS:
            raise ValueError(f"execution must be one of {EXECUTIONS}")
        self.execution, self.chunk_size = execution, chunk_size
        self.execute_steps = chunk_size if execution == "chunk" else execute_steps
        self.ensemble_k = ensemble_k
        self.reset()

    def reset(self) -> None:
        """Drop queued actions / past chunks."""
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._chunks: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self._t = 0

    def needs_chunk(self) -> bool:
        """Whether the next :meth:`step` needs a fresh chunk."""
        return self.execution == "ensemble" or not self._queue

    def step(self, chunk: np.ndarray | None) -> np.ndarray:
        """The action for this step, given a fresh ``(H, A)`` chunk when :meth:`needs_chunk`."""
        if self.execution == "ensemble":
            assert chunk is not None
            self._chunks.append((self._t, chunk))
            while self._chunks and self._t - self._chunks[0][0] >= self.chunk_size:
                self._chunks.popleft()
            preds = np.stack([c[self._t - t0] for t0, c in self._chunks])  # oldest first
            w = np.exp(-self.ensemble_k * np.arange(len(preds)))
            self._t += 1
            return (w[:, None] * preds).sum(0) / w.sum()
        if not self._queue:
            if chunk is None:
                raise ValueError("ChunkExecutor needs a chunk")
            self._queue.extend(chunk[: self.execute_steps])
        self._t += 1
        return self._queue.popleft()


class BCBasePolicy(BasePolicy):
    """A :class:`BCPolicy` plus a :class:`ChunkExecutor` behind the base-policy interface.

    Args:
        model: the trained module (put in eval mode here).
        device: torch device for inference.
        execution, execute_steps, ensemble_k: override the model config's execution.
    """

    def __init__(self, model: BCPolicy, device: str = "cpu", execution: str | None = None,
                 execute_steps: int | None = None, ensemble_k: float | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        cfg = model.cfg
        self.action_dim = model.action_dim
        self.executor = ChunkExecutor(execution or cfg.execution, cfg.chunk_size,
                                      execute_steps or cfg.execute_steps,
                                      cfg.ensemble_k if ensemble_k is None else ensemble_k)

    def reset(self) -> None:
        """Start a new episode (clears queued chunk actions)."""
        self.executor.reset()

    @torch.no_grad()
    def predict_chunk(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Raw chunk ``(H, A)`` for one observation."""
        batch = obs_to_tensors({k: obs[k] for k in self.model.spec}, self.device)
        return self.model(batch)[0].cpu().numpy()

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One action ``(A,)`` in [-1, 1]."""
        chunk = self.predict_chunk(obs) if self.executor.needs_chunk() else None
        return check_action(self.executor.step(chunk), self.action_dim, "BC policy")


def save_bc_policy(path: str | Path, model: BCPolicy, extra: dict[str, Any] | None = None) -> Path:
    """Write a BC checkpoint (safetensors + JSON header with spec and config), atomically."""
    meta = {
        "kind": "hilr-bc-policy",
        "version": 1,
        "spec": {k: [list(s), d] for k, (s, d) in model.spec.items()},
        "config": dataclasses.asdict(model.cfg),
        "action_dim": model.action_dim,
        **(extra or {}),
    }
    return save_checkpoint(path, model.state_dict(), meta)


def load_bc_model(path: str | Path, device: str = "cpu") -> tuple[BCPolicy, dict[str, Any]]:
    """Rebuild a :class:`BCPolicy` from its checkpoint; returns ``(model, metadata)``."""
    state, meta = load_checkpoint(path, device)
    if meta.get("kind") != "hilr-bc-policy":
        raise CheckpointError(f"{path} is not a hilr BC policy checkpoint (kind={meta.get('kind')!r})")
    spec = {k: (tuple(s), d) for k, (s, d) in meta["spec"].items()}
    cfg = BCConfig(**meta["config"])
    cfg.encoder.pretrained = None  # the checkpoint holds the backbone weights already
    model = BCPolicy(spec, cfg, meta.get("action_dim", 7))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"BC checkpoint {path} does not fit its own config: {exc}") from exc
    return model.to(device), meta


def load_bc_policy(path: str | Path, device: str = "cpu", **execution: Any) -> BCBasePolicy:
    """Load a BC checkpoint as a ready-to-act :class:`BCBasePolicy`."""
    model, _ = load_bc_model(path, device)
    return BCBasePolicy(model, device, **execution)
