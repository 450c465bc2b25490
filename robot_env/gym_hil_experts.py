"""Scripted experts for gym-hil's MuJoCo Panda envs (``pip install gym-hil``), as ``module:function``.

``env=gym_hil_pick_cube`` (launch/config/env/gym_hil_pick_cube.yaml) uses :func:`pick_cube` as
its demonstrator. ``gym_hil/PandaPickCube-v0`` (gym-hil's end-effector wrappers around the
base env) takes a 4-D action ``[x, y, z, gripper]``: ``x, y, z`` in [-1, 1] move the TCP
target by up to ``ee_step_size`` (2.5 cm by default) per step along the base axes, and
``gripper`` in [0, 2] closes (2), holds (1) or opens (0) it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_GRIPPER_COMMAND = 255.0  # gym-hil's gripper actuator range
EE_STEP_M = 0.025            # gym-hil's default ee_step_size, metres per step at action 1


def pick_cube(obs: Mapping[str, np.ndarray], info: Mapping[str, Any], speed: float = 0.8) -> np.ndarray:
    """Hover over the cube, descend, close, lift: one (4,) action in gym-hil's units.

    Reads ``info["raw_obs"]`` of ``gym_hil/PandaPickCube-v0`` (state observations):
    ``agent_pos`` (18,) = joint positions (7), joint velocities (7), gripper command (0..255),
    TCP position (3, metres); ``environment_state`` (3,) = cube position, metres.

    Args:
        obs: the adapted observation (unused: the raw one has named parts).
        info: the step's info with ``raw_obs``.
        speed: largest move per step and axis, as a fraction of ``ee_step_size``.
    """
    raw = info["raw_obs"]
    agent, cube = np.asarray(raw["agent_pos"], np.float64), np.asarray(raw["environment_state"], np.float64)
    tcp, closed = agent[15:18], agent[14] / MAX_GRIPPER_COMMAND > 0.9
    move, gripper = np.zeros(3), 0.0  # gripper 0 = open
    offset = cube - tcp
    if closed:  # holding it (or about to): lift straight up
        move[2], gripper = 1.0, 2.0
    elif np.linalg.norm(offset[:2]) > 0.008:  # hover 4 cm above the cube, gripper open
        move[:2] = offset[:2] / EE_STEP_M
        move[2] = (cube[2] + 0.04 - tcp[2]) / EE_STEP_M
    elif offset[2] < -0.008:  # descend onto it
        move = offset / EE_STEP_M
    else:  # around it: close
        gripper = 2.0
    return np.concatenate([np.clip(move, -speed, speed), [gripper]]).astype(np.float32)
