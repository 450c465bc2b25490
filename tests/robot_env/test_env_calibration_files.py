"""make_env reads calibration files by path: workspace bounds for the safety layer, image crops."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from robot_env import make_env
from robot_env.calibration_files import CalibrationFileError


def _write(path, kind, data):
    path.write_text(yaml.safe_dump({"format": "hilr-calibration", "version": 1, "kind": kind,
                                    "created_at": "2026-11-25T10:00:00+00:00", "data": data}))
    return path


def test_workspace_file_replaces_the_task_box(tmp_path):
    f = _write(tmp_path / "workspace.yaml", "workspace",
               {"workspace_low": [0.4, -0.05, 0.1], "workspace_high": [0.5, 0.05, 0.3]})
    env = make_env({"task": {"name": "reach"}, "safety": {"workspace_file": str(f)}})
    try:
        task = env.unwrapped.task
        assert list(task.workspace_low) == [0.4, -0.05, 0.1] and list(task.workspace_high) == [0.5, 0.05, 0.3]
        env.reset(seed=0)
        for _ in range(15):  # push +y hard: the commanded target never leaves the taught box
            _, _, _, _, info = env.step(np.array([0, 1, 0, 0, 0, 0, -1], np.float32))
        assert info["safety_clipped"] and info["ee_target"][1] <= 0.05 + 1e-9
    finally:
        env.close()


def test_wrong_kind_and_corrupt_files_are_clear_errors(tmp_path):
    f = _write(tmp_path / "crops.yaml", "crops", {})
    with pytest.raises(CalibrationFileError, match="expected 'workspace'"):
        make_env({"task": {"name": "reach"}, "safety": {"workspace_file": str(f)}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("{not yaml: [")
    with pytest.raises(CalibrationFileError, match="cannot read"):
        make_env({"task": {"name": "reach"}, "safety": {"workspace_file": str(bad)}})


def test_crop_from_file_and_from_camera_spec(tmp_path):
    f = _write(tmp_path / "crops.yaml", "crops", {"front": {"crop_fractions": [0.25, 0.25, 0.75, 0.75]}})
    cam = {"front": {"type": "mujoco"}, "wrist": {"type": "mujoco", "crop": [0.0, 0.0, 0.5, 0.5]}}
    env = make_env({"task": {"name": "reach", "image_size": [64, 64]}, "camera": cam, "crops_file": str(f)})
    plain = make_env({"task": {"name": "reach", "image_size": [64, 64]}, "camera": {"front": {"type": "mujoco"}}})
    try:
        assert env.unwrapped.crops == {"front": (0.25, 0.25, 0.75, 0.75), "wrist": (0.0, 0.0, 0.5, 0.5)}
        obs, _ = env.reset(seed=0)
        ref, _ = plain.reset(seed=0)
        assert obs["front"].shape == (64, 64, 3) and obs["wrist"].shape == (64, 64, 3)
        assert not np.array_equal(obs["front"], ref["front"])  # the crop zoomed in
    finally:
        env.close()
        plain.close()
    with pytest.raises(CalibrationFileError):
        make_env({"task": {"name": "reach"}, "camera": {"front": {"type": "mujoco", "crop": [0.5, 0, 0.4, 1]}}})


def test_privileged_state_key_appends_task_state():
    env = make_env({"task": {"name": "pick_cube"}, "privileged_state": True})
    try:
        obs, info = env.reset(seed=0)
        extra = sum(np.asarray(v).size for v in info["task_state"].values())
        assert obs["state"].shape == (20 + extra,) == env.observation_space["state"].shape
    finally:
        env.close()
