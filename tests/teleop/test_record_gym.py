"""`hilr record env=gym` and `hilr train-bc env=gym`: a gymnasium env (gymnasium-robotics'
FetchReach, 4-D actions) recorded through its scripted expert, then BC-trained from the dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from robot_env.dataset import list_episodes, load_episode, read_meta

REPO = Path(__file__).resolve().parents[2]
QUIET = ["progress=false", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def hilr(*args, runs):
    env = {**os.environ, "HILR_RUNS_DIR": str(runs)}
    return subprocess.run([sys.executable, "-m", "learners.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=240)


def test_record_then_train_bc_on_a_gym_env(tmp_path):
    data = tmp_path / "fetch"
    out = hilr("record", "env=gym", f"dataset={data}", "episodes=4", "console.mode=off",
               "keyboard.terminal=false", *QUIET, runs=tmp_path / "runs")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["kept"] == 4 and summary["success_rate"] == 1.0
    assert read_meta(data)["task"] == "FetchReach-v4"
    ep = load_episode(list_episodes(data)[0])
    assert ep["action"].shape[1] == 4 and ep["intervened"].all() and ep["episode_success"]
    assert np.abs(ep["action"]).max() <= 1.0
    out = hilr("train-bc", "env=gym", f"dataset={data}", "policy=bc_state", "train.steps=20",
               "train.val_every=10", "eval.episodes=2", "threads=1", *QUIET, runs=tmp_path / "runs")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 4 and summary["eval"]["episodes"] == 2


def test_a_device_teleop_on_a_non_7d_gym_env_is_one_clear_line(tmp_path):
    out = hilr("record", "env=gym", "teleop=spacemouse", f"dataset={tmp_path / 'd'}", *QUIET,
               runs=tmp_path / "runs")
    assert out.returncode == 1
    # (the last line: gymnasium-robotics prints an Adroit version notice on import)
    assert out.stderr.strip().splitlines()[-1:] == [
        "hilr record: teleop=spacemouse commands 7-D end-effector actions but env 'FetchReach-v4' takes 4-D "
        "actions: record it with its scripted expert (teleop=sim_operator, the default, drives env.expert)"]



class _ToyEnv(gym.Env):
    """Not a hilr robot env (no task state), with an A-D action."""

    def __init__(self, action_dim: int) -> None:
        self.observation_space = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,), np.float32)})
        self.action_space = gym.spaces.Box(-1, 1, (action_dim,), np.float32)


def test_operators_on_gym_envs_fail_with_what_to_do():
    from robot_env.app import UserError
    from teleop.base import make_teleoperator
    from teleop.intervention import InterventionWrapper

    op = make_teleoperator({"type": "sim_operator"})
    with pytest.raises(UserError, match=r"commands 7-D .* shape \(4,\): run it without one \(~teleop\)"):
        InterventionWrapper(_ToyEnv(4), op)
    with pytest.raises(UserError, match=r"needs the hilr robot env's task state; _ToyEnv has none"):
        InterventionWrapper(_ToyEnv(7), op)
