"""BC training, reward-classifier training and the config groups, on small synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from learners.agent import AgentConfig
from learners.bc import BCTrainConfig, ChunkDataset, train_bc
from learners.reward_training import RewardTrainConfig, train_reward_classifier
from policies.bc import BCConfig, load_bc_policy
from policies.reward import RewardClassifierConfig, load_reward_classifier

torch.set_num_threads(1)
CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"


def _episode(rng, T=12, with_image=False):
    goal = rng.uniform(-1, 1, 2).astype(np.float32)
    state = np.zeros((T + 1, 4), np.float32)
    state[:, 2:] = goal
    actions = np.zeros((T, 7), np.float32)
    for t in range(T):
        actions[t, :2] = np.clip(goal - state[t, :2], -1, 1)  # a function of the observation
        state[t + 1, :2] = state[t, :2] + 0.3 * actions[t, :2]
    ep = {"obs/state": state, "action": actions, "reward": np.zeros(T, np.float32),
          "terminated": np.zeros(T, bool), "truncated": np.eye(1, T, T - 1, dtype=bool)[0],
          "intervened": np.zeros(T, bool), "success": np.zeros(T, bool)}
    if with_image:
        ep["obs/front"] = rng.integers(0, 255, (T + 1, 16, 16, 3), dtype=np.uint8)
    return ep


def test_chunk_dataset_pads_and_masks_past_episode_end():
    ep = _episode(np.random.default_rng(0), T=5)
    ds = ChunkDataset([ep], chunk_size=3)
    assert len(ds) == 5
    assert np.array_equal(ds.chunks[4, 1], ep["action"][4]) and ds.masks[4].tolist() == [1, 0, 0]
    assert np.array_equal(ds.chunks[1], ep["action"][1:4])


def test_bc_learns_a_state_policy_and_checkpoints(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [_episode(rng) for _ in range(20)]
    cfg = BCConfig(hidden=(64, 64), chunk_size=2, execute_steps=1)
    model, m = train_bc(episodes, cfg, BCTrainConfig(steps=400, batch_size=64, val_every=100, lr=1e-3), tmp_path, progress=False)
    assert m["val_loss"][-1][1] < 0.5 * m["val_loss"][0][1] or m["best_val_loss"] < 0.05
    assert m["val_episodes"] == 2 and (tmp_path / "bc_best.safetensors").exists()
    policy = load_bc_policy(tmp_path / "bc_best.safetensors")
    ep = _episode(np.random.default_rng(99))
    a = policy.act({"state": ep["obs/state"][0]})
    assert np.abs(a[:2] - ep["action"][0, :2]).max() < 0.25


def test_reward_classifier_separates_bright_from_dark_frames(tmp_path):
    rng = np.random.default_rng(0)
    n = 160
    label = np.arange(n) % 4 == 0
    imgs = rng.integers(0, 100, (n, 16, 16, 3)).astype(np.uint8)
    imgs[label, 4:12, 4:12] = 250  # a bright square = success
    frames = {"obs/front": imgs, "obs/state": np.zeros((n, 3), np.float32), "label": label,
              "attempt": np.arange(n) // 8}
    cfg = RewardClassifierConfig(hidden=(32,), threshold=0.5, encoder={"latent_dim": 16, "channels": 8})
    _, m = train_reward_classifier(frames, cfg, RewardTrainConfig(steps=150, batch_size=32, val_every=50, lr=1e-3),
                                   tmp_path, progress=False)
    assert m["val"]["accuracy"] > 0.9 and m["val"]["recall"] > 0.8
    clf = load_reward_classifier(tmp_path / "reward_classifier.safetensors")
    r, _ = clf.reward({"front": imgs[0], "state": np.zeros(3, np.float32)})
    assert r == 1.0
    with pytest.raises(ValueError, match="both"):
        train_reward_classifier({**frames, "label": np.ones(n, bool)}, cfg, RewardTrainConfig(steps=1), None, False)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIG / "learner").glob("*.yaml")))
def test_learner_config_group_builds_agent_config(name):
    values = yaml.safe_load((CONFIG / "learner" / f"{name}.yaml").read_text())
    cfg = AgentConfig.from_dict(values)
    assert cfg.scale_array().shape == (7,)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIG / "policy").glob("*.yaml")))
def test_policy_config_group_builds_bc_config(name):
    values = yaml.safe_load((CONFIG / "policy" / f"{name}.yaml").read_text())
    assert BCConfig(**values).chunk_size >= 1


def test_every_config_key_is_commented():
    files = list((CONFIG / "learner").glob("*.yaml")) + list((CONFIG / "policy").glob("*.yaml"))
    files += [CONFIG / "train_bc.yaml", CONFIG / "train_reward.yaml"]
    for f in files:
        for line in f.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith(("#", "-")) and ":" in line:
                assert "#" in line, f"{f.name}: uncommented key line {line!r}"


def test_train_bc_app_on_scripted_demos_in_sim(tmp_path):
    from learners.apps.train_bc import run_train_bc

    cfg = {"robot": {"type": "mujoco"}, "camera": {}, "task": {"name": "reach"}, "dataset": None,
           "privileged_state": True, "seed": 0, "progress": False,
           "expert_demos": {"episodes": 3, "noise": 0.0, "speed": 1.0},
           "policy": {"hidden": [32], "chunk_size": 2, "execute_steps": 1},
           "train": {"steps": 20, "batch_size": 16, "val_every": 10, "val_fraction": 0.34},
           "eval": {"episodes": 2, "seed": 100}}
    summary = run_train_bc(cfg, tmp_path)
    assert (tmp_path / "bc_best.safetensors").exists() and (tmp_path / "bc_last.safetensors").exists()
    assert summary["eval"]["episodes"] == 2 and 0.0 <= summary["eval"]["success_rate"] <= 1.0
    assert len(summary["val_loss"]) == 2
