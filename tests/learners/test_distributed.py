"""Data-parallel learner: torchrun with 2 CPU ranks (gloo) keeps identical weights and learns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)


def test_two_ranks_stay_identical_and_critic_loss_falls(tmp_path):
    out = tmp_path / "result.json"
    worker = Path(__file__).with_name("_ddp_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(worker), str(out)], env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["world"] == 2 and r["updates"] == 120
    assert r["ranks_identical"], "ranks diverged: gradients were not averaged"
    assert r["loss_last"] < r["loss_first"], r
