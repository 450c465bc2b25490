"""MuJoCo sim backend: ``SimWorld``, the ``mujoco`` arm and camera, tasks and experts.

Importing ``robot_env.sim.devices`` (``make_env`` does) registers ``ARMS["mujoco"]`` and
``CAMERAS["mujoco"]``. The names below import lazily, so a submodule such as
``robot_env.sim.bench`` can set ``MUJOCO_GL`` before MuJoCo is first imported (MuJoCo
picks its GL backend at import time; headless machines need ``MUJOCO_GL=egl``).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "SimWorld": "robot_env.sim.world",
    "SimWorldConfig": "robot_env.sim.world",
    "SIM_TASKS": "robot_env.sim.tasks",
    "default_task_config": "robot_env.sim.tasks",
    "MujocoArm": "robot_env.sim.devices",
    "MujocoCamera": "robot_env.sim.devices",
    "SimSuccess": "robot_env.sim.devices",
    "make_expert": "robot_env.sim.experts",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robot_env.sim' has no attribute {name!r}")
