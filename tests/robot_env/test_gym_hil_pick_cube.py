"""gym-hil's Panda pick-cube through `env=gym_hil_pick_cube`: success from info["succeed"], its
scripted expert, and `hilr record` + `hilr train-bc` as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gym_hil")

from robot_env import make_env  # noqa: E402
from robot_env.app import config_dir, to_container  # noqa: E402
from robot_env.gym_env import load_expert  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _env_group():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return to_container(compose(config_name="record", overrides=["env=gym_hil_pick_cube"]))["env"]


def test_expert_picks_the_cube_and_success_is_read_from_succeed():
    spec = _env_group()
    assert spec["type"] == "gym" and spec["success_key"] == "succeed"
    env = make_env({"env": spec})
    expert = load_expert(env)
    successes = 0
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        expert.reset()
        for _ in range(60):
            obs, _, terminated, truncated, info = env.step(expert.act(obs, info))
            if terminated or truncated:
                break
        successes += info["success"] and info["succeed"]
    env.close()
    assert successes >= 3


def test_record_and_train_bc_commands(tmp_path):
    env = {**os.environ, "HILR_RUNS_DIR": str(tmp_path / "runs")}
    quiet = ["progress=false", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]

    def hilr(*args):
        out = subprocess.run([sys.executable, "-m", "learners.cli", *args, *quiet], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=240)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    data = tmp_path / "pick"
    rec = hilr("record", "env=gym_hil_pick_cube", f"dataset={data}", "episodes=3", "console.mode=off",
               "keyboard.terminal=false")
    assert rec["kept"] == 3 and rec["success_rate"] >= 0.75
    bc = hilr("train-bc", "env=gym_hil_pick_cube", f"dataset={data}", "policy=bc_state", "train.steps=20",
              "train.val_every=10", "eval.episodes=1", "threads=1")
    assert bc["episodes"] == 3 and bc["eval"]["episodes"] == 1
