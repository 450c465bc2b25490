"""`hilr bench sim` smoke test, hydra task/robot/camera yaml == code defaults, peg contact."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import robot_env
from robot_env.factory import task_config
from robot_env.sim.devices import MujocoArmConfig
from robot_env.sim.tasks import SIM_TASKS, default_task_config

CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"


@pytest.mark.parametrize("name", ["reach", "pick_cube", "peg_insert"])
def test_task_yaml_matches_code_defaults(name):
    values = yaml.safe_load((CONFIG / "task" / f"{name}.yaml").read_text())
    from_yaml = task_config(values)
    assert dataclasses.replace(from_yaml, sim={}) == default_task_config(name)
    cfg_cls, _ = SIM_TASKS.entry(name)
    assert {f.name: f.default for f in dataclasses.fields(cfg_cls)} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in values["sim"].items()}


def test_robot_and_camera_yaml_build():
    robot = yaml.safe_load((CONFIG / "robot" / "sim.yaml").read_text())
    arm_cfg = MujocoArmConfig(**{k: v for k, v in robot.items() if k != "type"})
    assert arm_cfg.world_config().timestep == 0.002
    cams = yaml.safe_load((CONFIG / "camera" / "sim.yaml").read_text())
    assert set(cams) == {"front", "wrist"}
    assert yaml.safe_load((CONFIG / "camera" / "none.yaml").read_text()) == {}
    env = robot_env.make_env({"robot": robot, "camera": cams, "task": {"name": "reach", "image_size": [32, 32]}})
    obs, _ = env.reset(seed=0)
    assert obs["front"].shape == (32, 32, 3) and obs["wrist"].shape == (32, 32, 3)
    env.close()


def test_unknown_keys_are_rejected():
    with pytest.raises(Exception, match="no field"):
        robot_env.make_env({"task": {"name": "reach", "max_translaton": 0.1}})
    with pytest.raises(ValueError, match="safety"):
        robot_env.make_env({"safety": {"workspace": 1}})


def test_peg_is_blocked_off_centre_and_enters_when_aligned():
    """Contact-rich: 1 cm off the hole the peg rests on the rim; centred it goes in."""
    env = robot_env.make_env({"task": {"name": "peg_insert", "sim": {"yaw_range": 0.0}, "reset_yaw_noise": 0.0}})
    world = env.unwrapped.world
    for offset, expect_inside in ((0.01, False), (0.0, True)):
        obs, info = env.reset(seed=4)
        ts = info["task_state"]
        tcp_minus_tip = obs["state"][:3] - ts["peg_tip_pos"]
        goal = ts["hole_pos"] + np.array([offset, 0.0, 0.01]) + tcp_minus_tip
        world.set_ee_target(goal, world.ee_target()[1])
        world.step(1.5)
        goal[2] -= 0.05  # 5 cm down: far more than one step's push (2 cm) into the hole
        world.set_ee_target(goal, world.ee_target()[1])
        world.step(1.5)
        tip = world.task_state()["peg_tip_pos"]
        if expect_inside:
            assert tip[2] < ts["hole_pos"][2] - 0.03 and world.success()
        else:
            assert tip[2] > ts["hole_pos"][2] - 0.003 and not world.success()
            force = np.linalg.norm(world.external_wrench()[:3])
            # pressing on the rim, with a compliant arm: about stiffness x 5 cm push, not kN
            assert 50.0 < force < 1.5 * 0.05 * world.config.compliance_stiffness
    env.close()


def test_bench_sim_prints_a_table_and_json_last():
    env = {**os.environ, "HILR_RUNS_DIR": "/tmp/hilr_test_runs"}
    out = subprocess.run(
        [sys.executable, "-m", "learners.cli", "bench", "sim", "+state_steps=60", "+image_steps=10"],
        capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    lines = out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["state_steps_per_s"] > 0 and result["image_steps_per_s"] > 0
    assert any(line.startswith("state only") for line in lines)


@pytest.mark.parametrize("camera", ["sim", "none"])
def test_hydra_groups_compose_into_make_env(camera):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=[
            "+robot=sim", f"+camera={camera}", "+task=peg_insert", "task.image_size=[40,40]"])
    env = robot_env.make_env(cfg)
    obs, _ = env.reset(seed=0)
    expected = {"state", "front", "wrist"} if camera == "sim" else {"state"}
    assert set(obs) == expected
    if camera == "sim":
        assert obs["front"].shape == (40, 40, 3)
    env.close()
