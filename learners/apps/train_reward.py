"""``hilr train-reward``: train the image success classifier from recorded success/failure frames.

Examples::

    hilr train-reward dataset=data/pick_cube_demos           # frames written by `hilr record`
    hilr train-reward dataset=data/x model.threshold=0.8 train.steps=300
    hilr train-reward --help

Writes ``reward_classifier.safetensors`` and ``train_reward.json`` (accuracy, precision,
recall on held-out attempts) into the run directory; prints the JSON summary last.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from robot_env.app import hydra_app, run_dir, to_container

log = logging.getLogger(__name__)


@hydra_app("train_reward")
def main(cfg) -> int:
    """Entry point of ``hilr train-reward``."""
    from learners.reward_training import RewardTrainConfig, train_reward_classifier
    from policies.reward import RewardClassifierConfig
    from robot_env.dataset import load_frames, read_meta
    from robot_env.registry import config_from_dict

    c = to_container(cfg)
    out = Path(c.get("out_dir") or run_dir())
    frames = load_frames(c["dataset"])
    model_cfg = config_from_dict(RewardClassifierConfig, c["model"])
    train_cfg = config_from_dict(RewardTrainConfig, {**c["train"], "seed": c["seed"]})
    crops = read_meta(c["dataset"]).get("crops") or {}  # the actor refuses an env that crops otherwise
    _, metrics = train_reward_classifier(frames, model_cfg, train_cfg, out, progress=c.get("progress", True),
                                         extra_meta={"crops": crops, "dataset": str(c["dataset"])})
    summary = {"checkpoint": str(out / "reward_classifier.safetensors"), "frames": metrics["frames"],
               "success_frames": metrics["success_frames"], "train": metrics["train"], "val": metrics["val"],
               "seconds": metrics["seconds"], "threshold": model_cfg.threshold}
    (out / "train_reward.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0
