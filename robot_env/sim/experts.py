"""Scripted experts for the sim tasks: imperfect, tunable simulated operators.

An expert reads only ``obs["state"]`` (``robot_env.env.STATE_LAYOUT``) and
``info["task_state"]``, so it works in process and across ROS2 alike. Tuning:

* ``noise``: std of Gaussian noise added to every action (action units), plus a
  per-episode aim error of ``noise * aim_error_m`` metres on where it grasps/inserts;
  0 gives a near-perfect demonstrator, 0.3+ a weak one.
* ``speed``: largest action magnitude it uses, in (0, 1]; slower is more precise.

Usage::

    expert = make_expert("pick_cube", noise=0.1, speed=1.0, seed=0)
    obs, info = env.reset(seed=0); expert.reset()
    action = expert.act(obs, info)        # (7,) float32 in [-1, 1]
"""

from __future__ import annotations

import numpy as np

from robot_env.env import STATE_LAYOUT
from robot_env.geometry import quat_error_rotvec, quat_mul, quat_normalize, rotvec_to_quat
from robot_env.sim.tasks import default_task_config
from robot_env.task import TaskConfig

OPEN, CLOSE = -1.0, 1.0


def _yaw_of(quat: np.ndarray, home: np.ndarray) -> float:
    """Yaw (about base z) of ``quat`` relative to ``home``, radians."""
    rv = quat_error_rotvec(quat, home)
    return float(rv[2])


def _wrap(angle: float, period: float) -> float:
    """``angle`` folded into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


class ScriptedExpert:
    """Base: proportional moves toward waypoints, with noise and a speed cap.

    Args:
        task: the ``TaskConfig`` whose action scales it must respect.
        noise: action noise std, action units (see module docstring).
        speed: largest action magnitude, (0, 1].
        seed: seeds the noise.
        aim_error_m: per-episode aim error scale, metres per unit of ``noise``.
    """

    def __init__(self, task: TaskConfig, noise: float = 0.1, speed: float = 1.0,
                 seed: int | None = None, aim_error_m: float = 0.02) -> None:
        if not 0 < speed <= 1:
            raise ValueError(f"speed must be in (0, 1], got {speed}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.task, self.noise, self.speed = task, float(noise), float(speed)
        self.aim_error_m = aim_error_m
        self.rng = np.random.default_rng(seed)
        self.home = quat_normalize(np.asarray(task.home_quat))
        self.reset()

    #: noise multiplier while ``careful`` (fine alignment near contact)
    careful_noise_scale = 0.3

    def reset(self) -> None:
        """Start of an episode: new aim error, first phase."""
        self.careful = False
        self.phase = 0
        self.phase_steps = 0
        self.aim = self.rng.normal(0.0, 1.0, 3) * self.noise * self.aim_error_m * np.array([1, 1, 0.3])

    def act(self, obs: dict, info: dict) -> np.ndarray:
        """(7,) float32 action in [-1, 1] for this observation."""
        state = np.asarray(obs["state"], dtype=np.float64)
        self.careful = False
        action = self._act(state, info["task_state"])
        self.phase_steps += 1
        # like a human operator, it is steadier during fine work (``careful`` phases)
        scale = self.careful_noise_scale if self.careful else 1.0
        action[:6] += self.rng.normal(0.0, self.noise * scale, 6)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _act(self, state: np.ndarray, ts: dict) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _goto(self, state: np.ndarray, pos: np.ndarray, yaw: float, gripper: float,
              gain: float = 1.0) -> np.ndarray:
        """Action moving the TCP toward ``pos`` with gripper-down orientation at ``yaw``."""
        ee_pos, ee_quat = state[STATE_LAYOUT["ee_pos"]], state[STATE_LAYOUT["ee_quat"]]
        q_des = quat_normalize(quat_mul(rotvec_to_quat(np.array([0.0, 0.0, yaw])), self.home))
        a = np.zeros(7)
        a[:3] = np.clip(gain * (pos - ee_pos) / self.task.max_translation, -self.speed, self.speed)
        a[3:6] = np.clip(quat_error_rotvec(q_des, ee_quat) / self.task.max_rotation, -self.speed, self.speed)
        a[6] = gripper
        return a

    def _next(self, phase: int) -> None:
        self.phase, self.phase_steps = phase, 0


class ReachExpert(ScriptedExpert):
    """Straight to the target, gripper open."""

    def _act(self, state, ts):
        return self._goto(state, ts["target_pos"] + self.aim, 0.0, OPEN)


class PickCubeExpert(ScriptedExpert):
    """Above the cube (yaw aligned) -> down -> close -> lift; retries after a miss."""

    def _act(self, state, ts):
        cube, half = ts["cube_pos"], float(ts["cube_half_size"][0])
        ee_pos = state[STATE_LAYOUT["ee_pos"]]
        yaw = _wrap(_yaw_of(ts["cube_quat"], np.array([0.0, 0.0, 0.0, 1.0])), np.pi / 2)
        grasp = cube + self.aim + np.array([0.0, 0.0, 0.005])
        above = grasp + np.array([0.0, 0.0, 0.08])
        if self.phase == 0:  # hover above, open
            a = self._goto(state, above, yaw, OPEN)
            yaw_err = abs(_wrap(_yaw_of(state[STATE_LAYOUT["ee_quat"]], self.home) - yaw, np.pi / 2))
            if np.linalg.norm(ee_pos[:2] - above[:2]) < 0.01 and abs(ee_pos[2] - above[2]) < 0.03 and yaw_err < 0.1:
                self._next(1)
            return a
        if self.phase == 1:  # descend
            if np.linalg.norm(ee_pos[:2] - grasp[:2]) > 0.03:
                self._next(0)
            elif ee_pos[2] - grasp[2] < 0.008 or self.phase_steps > 15:
                self._next(2)
            return self._goto(state, grasp, yaw, OPEN)
        if self.phase == 2:  # close
            if self.phase_steps >= 4:
                self._next(3)
            return self._goto(state, grasp, yaw, CLOSE, gain=0.3)
        # lift; if the cube stays behind, open and start over
        if ee_pos[2] - cube[2] > 0.05 and self.phase_steps > 3:
            self._next(0)
            return self._goto(state, ee_pos, yaw, OPEN)
        return self._goto(state, np.array([grasp[0], grasp[1], half + 0.16]), yaw, CLOSE)


class PegInsertExpert(ScriptedExpert):
    """Peg tip above the hole, yaw aligned -> descend while centring -> push in."""

    def _act(self, state, ts):
        hole, tip = ts["hole_pos"], ts["peg_tip_pos"]
        ee_pos = state[STATE_LAYOUT["ee_pos"]]
        yaw = _wrap(_yaw_of(ts["hole_quat"], np.array([0.0, 0.0, 0.0, 1.0])), np.pi / 2)
        tip_to_tcp = ee_pos - tip
        aim = hole + self.aim * np.array([0.25, 0.25, 0.0])
        yaw_err = abs(_wrap(_yaw_of(state[STATE_LAYOUT["ee_quat"]], self.home) - yaw, np.pi / 2))
        xy_err = float(np.linalg.norm(tip[:2] - aim[:2]))
        self.careful = xy_err < 0.01 and tip[2] < hole[2] + 0.04
        if self.phase == 0:  # hover 2 cm above the rim
            goal = aim + np.array([0.0, 0.0, 0.02])
            if xy_err < 0.002 and abs(tip[2] - goal[2]) < 0.01 and yaw_err < 0.03:
                self._next(1)
            return self._goto(state, goal + tip_to_tcp, yaw, CLOSE)
        # descend a centimetre at a time (a gentle push); if the peg sits on the rim
        # off-centre (friction holds it there), lift and re-align
        on_rim = tip[2] > hole[2] - 0.004 and self.phase_steps > 3
        if xy_err > 0.006 or (on_rim and xy_err > 0.0025):
            self._next(0)
        goal = np.array([aim[0], aim[1], max(hole[2] - 0.04, tip[2] - 0.01)])
        return self._goto(state, goal + tip_to_tcp, yaw, CLOSE)


_EXPERTS = {"reach": ReachExpert, "pick_cube": PickCubeExpert, "peg_insert": PegInsertExpert}


def make_expert(task: str | TaskConfig, noise: float = 0.1, speed: float = 1.0,
                seed: int | None = None) -> ScriptedExpert:
    """The scripted expert of ``task`` (a name, or the env's ``TaskConfig``).

    Args:
        task: ``reach``, ``pick_cube`` or ``peg_insert`` (or their ``TaskConfig``,
            whose action scales the expert then uses).
        noise: action noise std and aim error scale (0 = best it can).
        speed: largest action magnitude in (0, 1].
        seed: seeds its randomness.
    """
    cfg = default_task_config(task) if isinstance(task, str) else task
    if cfg.name not in _EXPERTS:
        raise ValueError(f"no scripted expert for task {cfg.name!r}; have {sorted(_EXPERTS)}")
    return _EXPERTS[cfg.name](cfg, noise=noise, speed=speed, seed=seed)
