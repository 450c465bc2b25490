"""robot_env.dataset: atomic episode files, bit-exact load, resume, frames, bad files."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from robot_env.dataset import (DatasetError, EpisodeWriter, list_episodes, list_frames,
                               load_episode, load_frames, read_meta)

OBS = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (8,), np.float32),
                       "front": gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)})
ACT = gym.spaces.Box(-1, 1, (7,), np.float32)


def fake_episode(rng, steps, success):
    obs = [OBS.sample() for _ in range(steps + 1)]
    rows = []
    for t in range(steps):
        info = {"success": success and t == steps - 1, "intervened": bool(t % 2),
                "policy_action": rng.uniform(-1, 1, 7).astype(np.float32)}
        rows.append((rng.uniform(-1, 1, 7).astype(np.float32), obs[t + 1], float(rng.normal()),
                     info["success"], t == steps - 1 and not success, info))
    return obs, rows


def record(writer, obs, rows, label=None):
    writer.begin(obs[0])
    for action, o, r, term, trunc, info in rows:
        writer.add(action, o, r, term, trunc, info)
    return writer.end(label)


def writer(root, **kw):
    return EpisodeWriter(root, fps=10, task="pick_cube", observation_space=OBS, action_space=ACT, **kw)


def test_roundtrip_bit_exact_with_plain_numpy(tmp_path):
    rng = np.random.default_rng(0)
    obs, rows = fake_episode(rng, 5, success=True)
    path = record(writer(tmp_path), obs, rows)
    ep = load_episode(path)
    raw = np.load(path, allow_pickle=False)  # standard tools read it
    assert set(raw.files) == set(ep)
    np.testing.assert_array_equal(ep["obs/front"], np.stack([o["front"] for o in obs]))
    assert ep["obs/front"].dtype == np.uint8 and ep["obs/state"].dtype == np.float32
    np.testing.assert_array_equal(ep["action"], np.stack([r[0] for r in rows]))
    np.testing.assert_array_equal(ep["reward"], np.array([r[2] for r in rows], np.float32))
    np.testing.assert_array_equal(ep["policy_action"], np.stack([r[5]["policy_action"] for r in rows]))
    assert ep["intervened"].tolist() == [False, True, False, True, False]
    assert ep["episode_success"] and ep["success"][-1]
    meta = read_meta(tmp_path)
    assert meta["format"] == "hilr-episodes" and meta["observation_space"]["spaces"]["front"]["dtype"] == "uint8"


def test_keep_only_successful_frames_and_resume(tmp_path):
    rng = np.random.default_rng(1)
    w = writer(tmp_path, keep_only_successful=True, failure_frame_stride=2)
    assert record(w, *fake_episode(rng, 4, success=False)) is None
    assert record(w, *fake_episode(rng, 4, success=False), label=True).name == "episode_000000.npz"
    assert len(list_frames(tmp_path)) == 2  # frames of the dropped attempt are kept
    frames = load_frames(tmp_path)
    assert frames["label"].sum() == 1 and frames["obs/front"].shape[1:] == (16, 16, 3)
    # a crash left a temp file; a new session removes it and continues numbering
    (tmp_path / "episodes" / ".episode_000001.npz.tmp").write_bytes(b"half")
    w2 = writer(tmp_path)
    assert not list((tmp_path / "episodes").glob(".*.tmp"))
    assert record(w2, *fake_episode(rng, 3, success=True)).name == "episode_000001.npz"
    assert [p.name for p in list_episodes(tmp_path)] == ["episode_000000.npz", "episode_000001.npz"]
    assert list_frames(tmp_path)[-1].name == "frames_000002.npz"


def test_resume_refuses_other_spaces_and_bad_files(tmp_path):
    writer(tmp_path)
    with pytest.raises(DatasetError, match="cannot resume"):
        EpisodeWriter(tmp_path, fps=20, task="pick_cube", observation_space=OBS, action_space=ACT)
    bad = tmp_path / "episodes" / "episode_000000.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="corrupt"):
        load_episode(bad)
    (tmp_path / "meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DatasetError, match="not a hilr-episodes"):
        read_meta(tmp_path)


def test_writer_guards(tmp_path):
    w = writer(tmp_path)
    with pytest.raises(DatasetError):
        w.add(np.zeros(7), OBS.sample(), 0.0, False, False, {})
    w.begin(OBS.sample())
    with pytest.raises(DatasetError, match="non-finite"):
        w.add(np.full(7, np.nan), OBS.sample(), 0.0, False, False, {})
    assert w.end() is None  # empty episode writes nothing
    assert list_episodes(tmp_path) == []


def test_summarize_cli(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(3)
    w = writer(tmp_path)
    record(w, *fake_episode(rng, 4, success=True))
    record(w, *fake_episode(rng, 6, success=False))
    out = subprocess.run([sys.executable, "-m", "robot_env.dataset", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["episodes"] == 2 and summary["steps"] == 10
    assert summary["successful_episodes"] == 1 and summary["intervention_rate"] == pytest.approx(0.5)
    assert summary["success_frames"] == 1 and summary["non_success_frames"] == 11


def test_an_episode_with_corrupted_compressed_data_is_a_dataset_error(tmp_path):
    import zipfile

    from robot_env.dataset import DatasetError, load_episode

    path = tmp_path / "episode_000000.npz"
    np.savez_compressed(path, action=np.zeros((50, 7), np.float32), reward=np.zeros(50, np.float32))
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("action.npy")
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 8
    raw[start:start + 32] = bytes(32)  # flip bytes inside the deflate stream, the CRC is not rechecked first
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="corrupt"):
        load_episode(path)
