"""Training of the image success classifier (reward on real robots) from labelled frames.

Frames come from ``robot_env.dataset.load_frames`` (``obs/<camera>`` (N, H, W, 3) uint8 and
``label`` (N,) bool). Train/validation are split by *attempt* so that near-identical frames
of one attempt never sit on both sides. Class imbalance (few success frames) is handled
with a positive-class weight in the BCE loss.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from learners.budget import BudgetWatch

from policies.encoders import obs_spec_from_example
from policies.reward import RewardClassifier, RewardClassifierConfig, save_reward_classifier


@dataclasses.dataclass
class RewardTrainConfig:
    """Optimisation of the reward classifier (the ``train`` node of train_reward.yaml).

    Attributes:
        steps: gradient steps (hil-serl: ~150 with a frozen ResNet).
        batch_size: frames per step.
        lr: AdamW learning rate.
        val_fraction: fraction of attempts held out.
        val_every: steps between validation passes.
        augment: DrQ random shift.
        device: torch device.
        seed: RNG seed.
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 3e-4
    val_fraction: float = 0.2
    val_every: int = 100
    augment: bool = True
    device: str = "cpu"
    seed: int = 0


def _split(frames: Mapping[str, np.ndarray], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    groups = frames.get("attempt", np.arange(len(frames["label"])))
    uniq = np.random.default_rng(seed).permutation(np.unique(groups))
    n_val = int(round(val_fraction * len(uniq))) if len(uniq) > 1 else 0
    val_mask = np.isin(groups, uniq[:n_val])
    return np.where(~val_mask)[0], np.where(val_mask)[0]


@torch.no_grad()
def classification_metrics(model: RewardClassifier, obs: Mapping[str, np.ndarray], labels: np.ndarray,
                           idx: np.ndarray, threshold: float, device: torch.device) -> dict[str, float]:
    """Accuracy, precision, recall and mean BCE of ``model`` on frames ``idx``."""
    model.eval()
    probs = []
    for s in range(0, len(idx), 256):
        j = idx[s:s + 256]
        probs.append(torch.sigmoid(model({k: torch.as_tensor(v[j], device=device) for k, v in obs.items()})).cpu())
    p = torch.cat(probs).numpy() if probs else np.zeros(0)
    y = labels[idx].astype(bool)
    pred = p > threshold
    tp = float((pred & y).sum())
    pt = torch.as_tensor(p, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
    bce = float(F.binary_cross_entropy(pt, torch.as_tensor(y, dtype=torch.float64))) if len(p) else float("nan")
    return {"accuracy": float((pred == y).mean()) if len(y) else float("nan"),
            "precision": tp / max(float(pred.sum()), 1.0), "recall": tp / max(float(y.sum()), 1.0), "bce": bce}


def train_reward_classifier(frames: Mapping[str, np.ndarray], model_cfg: RewardClassifierConfig,
                            cfg: RewardTrainConfig, out_dir: str | Path | None = None,
                            progress: bool = True, extra_meta: dict[str, Any] | None = None,
                            ) -> tuple[RewardClassifier, dict[str, Any]]:
    """Train on labelled frames; saves ``reward_classifier.safetensors`` into ``out_dir``
    (``extra_meta``, e.g. the dataset's camera crops, goes into its header).

    Returns:
        ``(model, metrics)`` with final ``train``/``val`` classification metrics.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = torch.device(cfg.device)
    labels = np.asarray(frames["label"]).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError(f"need both success and failure frames; got {labels.sum()} success of {len(labels)}")
    obs_all = {k[4:]: v for k, v in frames.items() if k.startswith("obs/")}
    model = RewardClassifier(obs_spec_from_example({k: v[0] for k, v in obs_all.items()}), model_cfg).to(device)
    obs = {k: obs_all[k] for k in model.spec}
    train_idx, val_idx = _split(frames, cfg.val_fraction, cfg.seed)
    pos_weight = torch.tensor(float((~labels[train_idx]).sum()) / max(float(labels[train_idx].sum()), 1.0),
                              dtype=torch.float32, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=cfg.lr)
    t0 = time.monotonic()
    history = []
    watch = BudgetWatch("train-reward", cfg.steps, "shorten it with train.steps=..., a frozen pretrained backbone, "
                        "or train on a GPU")
    for step in tqdm(range(1, cfg.steps + 1), desc="train-reward", disable=not progress, mininterval=1.0):
        watch.step(step - 1)
        model.train()
        j = train_idx[rng.integers(0, len(train_idx), cfg.batch_size)]
        logits = model({k: torch.as_tensor(v[j], device=device) for k, v in obs.items()}, augment=cfg.augment)
        y = torch.as_tensor(labels[j], dtype=torch.float32, device=device)
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if len(val_idx) and (step % cfg.val_every == 0 or step == cfg.steps):
            history.append([step, classification_metrics(model, obs, labels, val_idx, model_cfg.threshold, device)])
    metrics = {"train": classification_metrics(model, obs, labels, train_idx, model_cfg.threshold, device),
               "val": history[-1][1] if history else None, "history": history,
               "frames": len(labels), "success_frames": int(labels.sum()), "seconds": time.monotonic() - t0}
    if out_dir:
        save_reward_classifier(Path(out_dir) / "reward_classifier.safetensors", model,
                               {"val": metrics["val"], "train": metrics["train"], **(extra_meta or {})})
    model.eval()
    return model, metrics
