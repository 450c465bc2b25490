"""Behaviour-cloning training of the base policy from recorded episodes.

Each training sample is one frame ``obs_t`` and the chunk of the next H executed actions
``a_t .. a_{t+H-1}`` (past the episode end the last action is repeated and masked out of
the loss). Episodes are split into train/validation by episode, never by frame, so the
validation loss measures generalisation to unseen episodes. The best (lowest validation
loss) and the last model are saved as safetensors checkpoints.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from learners.budget import BudgetWatch

from policies.bc import BCConfig, BCPolicy, save_bc_policy
from policies.encoders import ObsSpec, obs_spec_from_example

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BCTrainConfig:
    """BC optimisation settings (the ``train`` node of train_bc.yaml).

    Attributes:
        steps: gradient steps.
        batch_size: samples per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        val_fraction: fraction of episodes held out for validation (at least 1 when > 0).
        val_every: steps between validation passes (and checkpoint writes).
        augment: DrQ random shift on images during training.
        loss: ``l1`` (ACT) or ``mse``.
        device: torch device.
        seed: RNG seed (split, init, batches).
    """

    steps: int = 5000
    batch_size: int = 256
    lr: float = 3e-4
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    val_every: int = 500
    augment: bool = True
    loss: str = "l1"
    device: str = "cpu"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"loss must be l1 or mse, got {self.loss!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError("val_fraction must be in [0, 1)")


class ChunkDataset:
    """Frames and action chunks of a list of episodes, held in memory (images uint8).

    Args:
        episodes: dataset-format episodes (``obs/<k>`` (T+1, ...), ``action`` (T, A)).
        chunk_size: H.
        obs_keys: observation keys to keep (default: all ``obs/*``).
    """

    def __init__(self, episodes: Sequence[Mapping[str, np.ndarray]], chunk_size: int,
                 obs_keys: Sequence[str] | None = None) -> None:
        if not episodes:
            raise ValueError("no episodes to train on")
        keys = list(obs_keys or [k[4:] for k in episodes[0] if k.startswith("obs/")])
        self.obs = {k: np.concatenate([ep[f"obs/{k}"][:-1] for ep in episodes]) for k in keys}
        chunks, masks = [], []
        for ep in episodes:
            a = np.asarray(ep["action"], np.float32)
            T = len(a)
            idx = np.arange(T)[:, None] + np.arange(chunk_size)[None, :]
            masks.append((idx < T).astype(np.float32))
            chunks.append(a[np.minimum(idx, T - 1)])
        self.chunks = np.concatenate(chunks)
        self.masks = np.concatenate(masks)
        self.spec: ObsSpec = obs_spec_from_example({k: v[0] for k, v in self.obs.items()})

    def __len__(self) -> int:
        """Number of frames."""
        return len(self.chunks)

    def batch(self, idx: np.ndarray, device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """``(obs dict, chunks (B, H, A), masks (B, H))`` tensors for frame indices ``idx``."""
        obs = {k: torch.as_tensor(v[idx], device=device) for k, v in self.obs.items()}
        return obs, torch.as_tensor(self.chunks[idx], device=device), torch.as_tensor(self.masks[idx], device=device)


def split_episodes(episodes: Sequence[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Random episode-level train/validation split (>= 1 validation episode when val_fraction > 0)."""
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_val = 0 if val_fraction == 0 or len(episodes) < 2 else max(1, int(round(val_fraction * len(episodes))))
    return [episodes[i] for i in order[n_val:]], [episodes[i] for i in order[:n_val]]


def chunk_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Masked mean L1/MSE over a chunk: ``(B, H, A)`` predictions and targets, ``(B, H)`` mask."""
    err = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    return (err.mean(-1) * mask).sum() / mask.sum().clamp_min(1.0)


def train_bc(episodes: Sequence[Mapping[str, np.ndarray]], policy_cfg: BCConfig, train_cfg: BCTrainConfig,
             out_dir: str | Path | None = None, progress: bool = True) -> tuple[BCPolicy, dict[str, Any]]:
    """Train a :class:`BCPolicy` on ``episodes``.

    Args:
        episodes: dataset-format episodes.
        policy_cfg: architecture and execution of the policy.
        train_cfg: optimisation settings.
        out_dir: where ``bc_best.safetensors`` / ``bc_last.safetensors`` go (None: no files).
        progress: show a tqdm progress bar.

    Returns:
        ``(model with the best validation loss, metrics)``; metrics hold ``train_loss``,
        ``val_loss`` (history lists), ``best_val_loss``, ``frames``, ``seconds``.
    """
    torch.manual_seed(train_cfg.seed)
    rng = np.random.default_rng(train_cfg.seed)
    device = torch.device(train_cfg.device)
    train_eps, val_eps = split_episodes(episodes, train_cfg.val_fraction, train_cfg.seed)
    train = ChunkDataset(train_eps, policy_cfg.chunk_size)
    val = ChunkDataset(val_eps, policy_cfg.chunk_size, list(train.obs)) if val_eps else None
    model = BCPolicy(train.spec, policy_cfg, action_dim=train.chunks.shape[-1]).to(device)  # A from the data (gym envs)
    if "state" in train.obs:
        model.set_state_stats(train.obs["state"].mean(0), train.obs["state"].std(0))
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, max(1, train_cfg.steps))
    history: dict[str, list] = {"train_loss": [], "val_loss": []}
    best, best_state = float("inf"), None
    out = Path(out_dir) if out_dir else None
    t0 = time.monotonic()
    bar = tqdm(range(1, train_cfg.steps + 1), desc="train-bc", disable=not progress, mininterval=1.0)
    watch = BudgetWatch("train-bc", train_cfg.steps,
                        "shorten it with train.steps=..., a smaller policy.encoder.image_size, threads=1 on a busy "
                        "box, or train on a GPU (train.device=cuda)" if device.type == "cpu" else "train.steps=...")
    for step in bar:
        watch.step(step - 1)
        model.train()
        obs, target, mask = train.batch(rng.integers(0, len(train), train_cfg.batch_size), device)
        loss = chunk_loss(model(obs, augment=train_cfg.augment), target, mask, train_cfg.loss)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optim.step()
        sched.step()
        if step % train_cfg.val_every == 0 or step == train_cfg.steps:
            v = validation_loss(model, val, train_cfg) if val is not None else loss.item()
            history["train_loss"].append([step, loss.item()])
            history["val_loss"].append([step, v])
            bar.set_postfix(loss=f"{loss.item():.4f}", val=f"{v:.4f}")
            if v < best:
                best = v
                best_state = {k: t.detach().clone() for k, t in model.state_dict().items()}
                if out:
                    save_bc_policy(out / "bc_best.safetensors", model, {"step": step, "val_loss": v})
    if out:
        save_bc_policy(out / "bc_last.safetensors", model, {"step": train_cfg.steps})
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    metrics = {**history, "best_val_loss": best, "frames": len(train), "val_frames": len(val) if val else 0,
               "train_episodes": len(train_eps), "val_episodes": len(val_eps), "seconds": time.monotonic() - t0}
    return model, metrics


@torch.no_grad()
def validation_loss(model: BCPolicy, val: "ChunkDataset", cfg: BCTrainConfig) -> float:
    """Mean chunk loss over the whole validation set (no augmentation, eval mode)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(val), cfg.batch_size):
        idx = np.arange(start, min(start + cfg.batch_size, len(val)))
        obs, target, mask = val.batch(idx, device)
        total += float(chunk_loss(model(obs), target, mask, cfg.loss)) * len(idx)
        count += len(idx)
    return total / max(count, 1)


def load_dataset_episodes(root: str | Path, max_episodes: int | None = None,
                          only_successful: bool = False) -> list[dict[str, np.ndarray]]:
    """Read a recorded dataset directory (docs/CONTRACTS.md) with robot_env.dataset."""
    from robot_env.dataset import list_episodes, load_episode

    paths = list_episodes(root)
    if not paths:
        raise FileNotFoundError(f"no episodes in dataset {root} (expected {root}/episodes/episode_*.npz)")
    episodes = [load_episode(p) for p in paths]
    if only_successful:
        episodes = [e for e in episodes if bool(np.asarray(e.get("episode_success", e["success"].any())))]
    return episodes[:max_episodes] if max_episodes else episodes
