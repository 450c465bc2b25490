"""``env=gym`` with the default operator: the env's scripted expert intervenes, any action size.

``hilr actor env=gym`` failed without ``~teleop`` (the simulated operator needs the built-in
task's ``task_state``, and device operators command 7-D end-effector actions); the actor's
shutdown also warned about the arm that a gymnasium env does not have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from learners.builders import wrap_teleop
from robot_env import make_env
from robot_env.app import UserError
from teleop.expert_intervention import ExpertIntervention

CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"
pytest.importorskip("gymnasium_robotics")


def _group(name: str) -> dict:
    return yaml.safe_load((CONFIG / f"{name}.yaml").read_text())


def _operator(**kw) -> dict:
    return {**_group("teleop/sim_operator"), "task": "pick_cube", **kw}


def test_the_gym_envs_expert_takes_over_and_hands_back():
    env = make_env({"env": _group("env/gym")})  # FetchReach: 4-D actions
    env, teleop = wrap_teleop(env, {"teleop": _operator(), "sticky_s": 0.5})
    try:
        assert isinstance(env, ExpertIntervention) and teleop is env
        obs, info = env.reset(seed=0)
        env.set_policy_parts(base_action=np.zeros(4), residual_action=np.zeros(4))
        flags, success = [], False
        for _ in range(50):
            obs, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))  # an idle policy
            flags.append(info["intervened"])
            success |= bool(info["success"])
            assert info["action"].shape == (4,) and info["policy_action"].shape == (4,)
            if terminated or truncated:
                break
        assert any(flags) and not all(flags)  # the policy drives until the expert sees the drift
        assert info["interventions"] >= 1 and 0 < info["intervention_rate"] < 1
        assert success  # the expert reaches the goal from where the idle policy left the arm
    finally:
        teleop.disconnect()
        env.close()


def test_a_gym_env_without_an_expert_says_what_to_set():
    env = make_env({"env": {**_group("env/gym"), "expert": None}})
    try:
        with pytest.raises(UserError, match=r"env.expert=<module:function>.*~teleop"):
            wrap_teleop(env, {"teleop": _operator()})
    finally:
        env.close()


def test_hilr_actor_env_gym_runs_with_its_default_operator(tmp_path):
    cmd = [sys.executable, "-m", "learners.cli", "actor", "env=gym", "learn=false", "progress=false",
           "actor.total_steps=40", "actor.log_every_episodes=0", f"hydra.run.dir={tmp_path / 'run'}"]
    out = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=240,
                         cwd=CONFIG.parents[1])
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["env_steps"] == 40 and summary["interventions"] >= 1
    assert "arm stop" not in out.stdout + out.stderr  # a gymnasium env has no arm to stop
