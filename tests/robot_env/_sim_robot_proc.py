"""Start ``hilr sim-robot`` as its own process for the hardware-in-the-loop tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"


def profile(group: str, name: str) -> dict:
    """A shipped config group file (e.g. ``robot/ros_sim``) as a dict: exactly what apps load."""
    return yaml.safe_load((CONFIG / group / f"{name}.yaml").read_text())


def start_sim_robot(run_dir: Path, *overrides: str) -> subprocess.Popen:
    """``hilr sim-robot`` in a subprocess (same ROS_DOMAIN_ID: os.environ is passed on)."""
    cmd = [sys.executable, "-m", "learners.cli", "sim-robot", f"hydra.run.dir={run_dir}", *overrides]
    log = open(run_dir.parent / f"{run_dir.name}.log", "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                            cwd=CONFIG.parents[1])
    proc.log_path = Path(log.name)  # type: ignore[attr-defined]
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    """Stop the node (Ctrl-C by default) and reap it."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
