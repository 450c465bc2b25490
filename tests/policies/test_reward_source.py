"""The reward classifier as the env's success source (``reward=classifier``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policies.reward import RewardClassifier, RewardClassifierConfig, save_reward_classifier
from policies.reward_source import RewardMismatchError
from robot_env import make_env

SIZE = 32


def classifier_file(tmp_path, bias: float, cameras=("front",), size=SIZE, crops=None, name="clf.safetensors"):
    """A small classifier whose output is pinned by its last bias (p = sigmoid(bias) for any image)."""
    spec = {c: ((size, size, 3), "uint8") for c in cameras}
    cfg = RewardClassifierConfig(encoder={"backbone": "small_conv", "channels": 8, "latent_dim": 8,
                                          "image_size": None}, hidden=(8,), threshold=0.5)
    model = RewardClassifier(spec, cfg)
    with torch.no_grad():
        last = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.zero_()
        last.bias.fill_(bias)
    path = tmp_path / name
    save_reward_classifier(path, model, {"crops": crops or {}})
    return path


def sim_env(reward, cameras=("front",), size=SIZE, **extra):
    cams = {c: {"type": "mujoco"} for c in cameras}
    return make_env({"task": {"name": "reach", "image_size": [size, size]}, "camera": cams,
                     "reward": reward, **extra})


def test_positive_classifier_ends_the_episode_after_consecutive_frames(tmp_path):
    env = sim_env({"type": "classifier", "checkpoint": str(classifier_file(tmp_path, 6.0)), "consecutive": 3,
                   "expose_task_state": False})
    try:
        env.reset(seed=0)
        got = [env.step(np.zeros(7, np.float32)) for _ in range(3)]  # the reset frame never counts
        rewards = [g[1] for g in got]
        terminated = [g[2] for g in got]
        info = got[-1][4]
        assert rewards == [0.0, 0.0, 1.0] and terminated == [False, False, True]
        assert info["reward_source"] == "classifier" and info["success_probability"] > 0.99
        assert info["classifier_success"] and info["classifier_latency_ms"] > 0
        # the sim's own success is audited beside it, never used: the arm did not move to the target
        assert info["privileged_success"] is False
        assert info["task_state"] == {}  # privileged object pose hidden too (expose_task_state=false)
    finally:
        env.close()


def test_sim_success_is_hidden_behind_a_negative_classifier(tmp_path, monkeypatch):
    env = sim_env({"type": "classifier", "checkpoint": str(classifier_file(tmp_path, -6.0))})
    try:
        env.reset(seed=0)
        source = env.unwrapped.success_source
        monkeypatch.setattr(source.privileged, "success", lambda obs: True)  # the sim says: solved
        _, reward, terminated, _, info = env.step(np.zeros(7, np.float32))
        assert reward == 0.0 and not terminated and not info["success"]
        assert info["privileged_success"] is True and info["success_probability"] < 0.01
    finally:
        env.close()


def test_threshold_override_and_reward_none(tmp_path):
    path = classifier_file(tmp_path, 0.0)  # p = 0.5
    env = sim_env({"type": "classifier", "checkpoint": str(path), "threshold": 0.4})
    try:
        env.reset(seed=0)
        assert env.step(np.zeros(7, np.float32))[1] == 1.0
    finally:
        env.close()
    env = sim_env({"type": "none"})
    try:
        env.reset(seed=0)
        _, reward, _, _, info = env.step(np.zeros(7, np.float32))
        assert reward == 0.0 and info["reward_source"] == "none"
    finally:
        env.close()


@pytest.mark.parametrize("kwargs, env_kwargs, match", [
    ({"cameras": ("wrist",)}, {}, "reads camera 'wrist', which this env does not have"),
    ({"size": 24}, {}, r"trained on 'front' images of \(24, 24, 3\).*gives \(32, 32, 3\)"),
    ({"crops": {"front": [0.1, 0.0, 0.9, 1.0]}}, {}, r"cropped to \[0.1, 0.0, 0.9, 1.0\].*crops it to \[0.0, 0.0, 1.0, 1.0\]"),
])
def test_mismatched_checkpoint_is_refused_by_name(tmp_path, kwargs, env_kwargs, match):
    path = classifier_file(tmp_path, 0.0, **kwargs)
    with pytest.raises(RewardMismatchError, match=match):
        sim_env({"type": "classifier", "checkpoint": str(path)}, **env_kwargs)


def test_bad_reward_configs_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="needs reward.checkpoint"):
        sim_env({"type": "classifier"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sim_env({"type": "classifier", "checkpoint": str(tmp_path / "missing.safetensors")})
    from policies.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "other.safetensors", {"w": torch.zeros(2)}, {"kind": "hilr-bc"})
    with pytest.raises(Exception, match="not a hilr reward classifier"):
        sim_env({"type": "classifier", "checkpoint": str(tmp_path / "other.safetensors")})
    with pytest.raises(Exception, match="unknown reward source type 'magic'"):
        sim_env({"type": "magic"})
    with pytest.raises(Exception, match="reward=auto takes no options"):
        sim_env({"type": "auto", "checkpoint": "x"})
