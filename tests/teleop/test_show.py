"""`hilr show <dataset> [episode]`: contact sheet and video of a recorded episode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from robot_env.dataset import DatasetError
from robot_env.episode_view import _spans, show_episode
from tests.teleop.synthetic_dataset import write_dataset

REPO = Path(__file__).resolve().parents[2]


def test_operator_spans():
    assert _spans(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]


def test_contact_sheet_and_video(tmp_path):
    root = write_dataset(tmp_path / "d")
    summary = show_episode(root, 1, "png", tmp_path / "sheet.png", frames=5)
    assert summary["steps"] == 12 and summary["success"] and summary["cameras"] == ["front"]
    assert summary["intervention_rate"] == pytest.approx(4 / 12)
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and sheet.shape[0] > 300 and sheet.shape[1] > 600
    summary = show_episode(root, 0, "mp4", tmp_path / "ep.mp4")
    video = cv2.VideoCapture(summary["file"])
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 13 and video.get(cv2.CAP_PROP_FPS) == 10
    with pytest.raises(DatasetError, match="no episode 7; it has \\[0, 1\\]"):
        show_episode(root, 7)


def test_hilr_show_positional_words(tmp_path):
    root = write_dataset(tmp_path / "d")
    env = {**os.environ, "HILR_RUNS_DIR": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-m", "learners.cli", "show", str(root), "1"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["episode"] == 1 and Path(summary["file"]).is_file() and summary["file"].endswith(".png")
    out = subprocess.run([sys.executable, "-m", "learners.cli", "show", str(root), "9"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"hilr show: {root} has no episode 9; it has [0, 1]"]
