"""Scripted experts for gym-hil's MuJoCo Panda envs (``pip install gym-hil``), as ``module:function``.

``env=gym_hil_pick_cube`` (launch/config/env/gym_hil_pick_cube.yaml) uses :func:`pick_cube` as
its demonstrator and simulated operator. gym-hil's base envs take a 7-D action
``[dx, dy, dz, rx, ry, rz, grasp]``: the first three are the TCP target's move in metres
(base frame; the env clips the target to its workspace), the rotations are ignored, and
``grasp`` is added to the gripper command (0 open .. 1 closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_GRIPPER_COMMAND = 255.0  # gym-hil's gripper actuator range


def pick_cube(obs: Mapping[str, np.ndarray], info: Mapping[str, Any], step_m: float = 0.02) -> np.ndarray:
    """Hover over the cube, descend, close, lift: one (7,) action in gym-hil's units.

    Reads ``info["raw_obs"]`` of ``gym_hil/PandaPickCubeBase-v0`` (state observations):
    ``agent_pos`` (18,) = joint positions (7), joint velocities (7), gripper command (0..255),
    TCP position (3, metres); ``environment_state`` (3,) = cube position, metres.

    Args:
        obs: the adapted observation (unused: the raw one has named parts).
        info: the step's info with ``raw_obs``.
        step_m: largest TCP move per step and axis, metres.
    """
    raw = info["raw_obs"]
    agent, cube = np.asarray(raw["agent_pos"], np.float64), np.asarray(raw["environment_state"], np.float64)
    tcp, closed = agent[15:18], agent[14] / MAX_GRIPPER_COMMAND > 0.9
    action = np.zeros(7)
    offset = cube - tcp
    if closed:  # holding it (or about to): lift straight up
        action[2], action[6] = step_m, 1.0
    elif np.linalg.norm(offset[:2]) > 0.008:  # hover 4 cm above the cube, gripper open
        action[:2] = offset[:2]
        action[2] = cube[2] + 0.04 - tcp[2]
        action[6] = -1.0
    elif offset[2] < -0.008:  # descend onto it
        action[:3] = offset
        action[6] = -1.0
    else:  # around it: close
        action[6] = 1.0
    action[:3] = np.clip(action[:3], -step_m, step_m)
    return action.astype(np.float32)
