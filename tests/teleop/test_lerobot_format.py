"""LeRobotDataset v2.1 layout: export a hilr dataset, import it back, compare; read the parquet
files with pyarrow alone, as LeRobot's ``datasets`` would (``lerobot`` itself is not installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
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
    data = pq.read_table(tmp_path / "lr" / "data" / "chunk-000" / "episode_000001.parquet").to_pydict()
    assert data["index"] == list(range(12, 24)) and data["timestamp"][1] == pytest.approx(0.1)
    assert sum(data["complementary_info.is_intervention"]) == 4
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


def test_parquet_has_lerobots_schema_and_the_source_values(tmp_path):
    src = write_dataset(tmp_path / "src", episodes=2)
    export_lerobot(src, tmp_path / "lr", video=True)
    info = json.loads((tmp_path / "lr" / "meta" / "info.json").read_text())
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    assert info["video_path"] == "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    feats = info["features"]
    start = 0
    for episode_index, path in enumerate(list_episodes(src)):
        source = load_episode(path)
        steps = len(source["action"])
        table = pq.read_table(tmp_path / "lr" / info["data_path"].format(episode_chunk=0,
                                                                         episode_index=episode_index))
        # every non-video feature is a column, and nothing else is
        assert table.column_names == [n for n, f in feats.items() if f["dtype"] != "video"]
        assert feats["observation.images.front"]["dtype"] == "video"
        for name in ("observation.state", "action", "timestamp", "frame_index", "episode_index", "index",
                     "task_index", "next.reward", "next.done", "complementary_info.is_intervention",
                     "complementary_info.policy_action"):
            assert name in table.column_names, name
        schema = table.schema
        # LeRobot's datasets types: shape [N] -> fixed-size list of N, shape [1] -> a plain value
        assert schema.field("observation.state").type == pa.list_(pa.float32(), 20)
        assert schema.field("action").type == pa.list_(pa.float32(), 7)
        for name, dtype in (("timestamp", "float32"), ("next.reward", "float32"), ("next.done", "bool"),
                            ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                            ("task_index", "int64"), ("complementary_info.is_intervention", "bool")):
            assert schema.field(name).type == pa.from_numpy_dtype(np.dtype(dtype)), name
            assert feats[name] == {"dtype": dtype, "shape": [1], "names": None}, name
        hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        assert hf["action"] == {"feature": {"dtype": "float32", "_type": "Value"}, "length": 7, "_type": "Sequence"}
        assert hf["timestamp"] == {"dtype": "float32", "_type": "Value"} and sorted(hf) == sorted(table.column_names)
        cols = table.to_pydict()
        np.testing.assert_array_equal(np.array(cols["observation.state"], np.float32), source["obs/state"][:steps])
        np.testing.assert_array_equal(np.array(cols["action"], np.float32), source["action"])
        np.testing.assert_array_equal(np.array(cols["complementary_info.policy_action"], np.float32),
                                      source["policy_action"])
        np.testing.assert_array_equal(cols["next.reward"], source["reward"])
        np.testing.assert_array_equal(cols["next.done"], source["terminated"] | source["truncated"])
        np.testing.assert_array_equal(cols["complementary_info.is_intervention"], source["intervened"])
        assert cols["frame_index"] == list(range(steps)) and cols["index"] == list(range(start, start + steps))
        assert set(cols["episode_index"]) == {episode_index} and set(cols["task_index"]) == {0}
        np.testing.assert_allclose(cols["timestamp"], np.arange(steps) / info["fps"], atol=1e-6)
        start += steps
    assert info["total_frames"] == start


def test_images_in_parquet_are_png_cells_and_old_npz_exports_still_import(tmp_path, caplog):
    src = write_dataset(tmp_path / "src", episodes=1)
    export_lerobot(src, tmp_path / "lr", video=False)
    table = pq.read_table(tmp_path / "lr" / "data" / "chunk-000" / "episode_000000.parquet")
    image_type = table.schema.field("observation.images.front").type
    assert image_type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert table.column("observation.images.front")[0]["bytes"].as_py().startswith(b"\x89PNG")
    # rewrite the export as hilr wrote it before parquet: .npz data files, data_path saying so
    info_path = tmp_path / "lr" / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["data_path"] = info["data_path"].replace(".parquet", ".npz")
    info_path.write_text(json.dumps(info))
    cols = {n: np.asarray(table.column(n).to_pylist()) for n in table.column_names if "images" not in n}
    cols["observation.images.front"] = load_episode(list_episodes(src)[0])["obs/front"][:-1]
    np.savez(tmp_path / "lr" / "data" / "chunk-000" / "episode_000000.npz", **cols)
    (tmp_path / "lr" / "data" / "chunk-000" / "episode_000000.parquet").unlink()
    with caplog.at_level("INFO", logger="robot_env.lerobot_format"):
        import_lerobot(tmp_path / "lr", tmp_path / "back")
    assert "older .npz data file" in caplog.text
    _same(load_episode(list_episodes(src)[0]), load_episode(list_episodes(tmp_path / "back")[0]))


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
