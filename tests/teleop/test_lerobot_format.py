"""LeRobotDataset v2.1 layout: export a hilr dataset, import it back, compare."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_env.dataset import DatasetError, list_episodes, load_episode, read_meta
from robot_env.lerobot_format import export_lerobot, import_lerobot
from tests.teleop.synthetic_dataset import write_dataset

REPO = Path(__file__).resolve().parents[2]


def _same(a: dict, b: dict, image_tol: float = 0.0) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        if key == "obs/front" and image_tol:
            assert np.abs(a[key].astype(float) - b[key].astype(float)).mean() < image_tol, key
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_lossless_round_trip_and_layout(tmp_path):
    src = write_dataset(tmp_path / "src")
    out = export_lerobot(src, tmp_path / "lr", video=False)
    assert out == {"dst": str(tmp_path / "lr"), "episodes": 2, "frames": 24, "videos": 0}
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v2.1" and info["total_frames"] == 24 and info["fps"] == 10
    feats = info["features"]
    assert feats["observation.state"]["shape"] == [20] and feats["action"]["names"][-1] == "gripper"
    assert feats["observation.images.front"]["dtype"] == "image"
    assert feats["complementary_info.is_intervention"] == {"dtype": "bool", "shape": [1], "names": None}
    episodes = [json.loads(line) for line in (tmp_path / "lr" / "meta" / "episodes.jsonl").read_text().splitlines()]
    assert episodes[1] == {"episode_index": 1, "tasks": ["pick_cube"], "length": 12, "hilr_success": True}
    with np.load(tmp_path / "lr" / "data" / "chunk-000" / "episode_000001.npz") as data:
        assert data["index"].tolist() == list(range(12, 24)) and data["timestamp"][1] == pytest.approx(0.1)
        assert data["complementary_info.is_intervention"].sum() == 4
    import_lerobot(tmp_path / "lr", tmp_path / "back")
    assert read_meta(tmp_path / "back")["task"] == "pick_cube"
    for a, b in zip(list_episodes(src), list_episodes(tmp_path / "back"), strict=True):
        _same(load_episode(a), load_episode(b))


def test_video_round_trip_is_close_and_without_final_obs_repeats_the_last(tmp_path):
    src = write_dataset(tmp_path / "src", episodes=1)
    out = export_lerobot(src, tmp_path / "lr", video=True)
    assert out["videos"] == 1
    assert (tmp_path / "lr" / "videos" / "chunk-000" / "observation.images.front" / "episode_000000.mp4").is_file()
    import_lerobot(tmp_path / "lr", tmp_path / "back")
    original = load_episode(list_episodes(src)[0])
    _same(original, load_episode(list_episodes(tmp_path / "back")[0]), image_tol=12.0)
    # a dataset written by LeRobot has no final observation: the last one is repeated
    (tmp_path / "lr" / "meta" / "hilr_final_observation" / "episode_000000.npz").unlink()
    import_lerobot(tmp_path / "lr", tmp_path / "back2")
    again = load_episode(list_episodes(tmp_path / "back2")[0])
    np.testing.assert_array_equal(again["obs/state"][-1], again["obs/state"][-2])


def test_refuses_to_overwrite(tmp_path):
    src = write_dataset(tmp_path / "src", episodes=1)
    export_lerobot(src, tmp_path / "lr", video=False)
    with pytest.raises(DatasetError, match="not empty"):
        export_lerobot(src, tmp_path / "lr")
    with pytest.raises(DatasetError, match="already holds episodes"):
        import_lerobot(tmp_path / "lr", src)


def test_hilr_dataset_export_import_commands(tmp_path):
    src = write_dataset(tmp_path / "src", episodes=1)
    env = {**os.environ, "HILR_RUNS_DIR": str(tmp_path / "runs")}

    def hilr(*args):
        out = subprocess.run([sys.executable, "-m", "learners.cli", "dataset", *args], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert hilr("export", str(src), str(tmp_path / "lr"))["videos"] == 1
    assert hilr("import", str(tmp_path / "lr"), str(tmp_path / "back"))["steps"] == 12
    assert hilr("summary", str(tmp_path / "back"))["episodes"] == 1
