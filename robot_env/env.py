"""``RobotEnv``: a gymnasium env composing an ``Arm``, named ``Camera``s and a task.

Observation (``gymnasium.spaces.Dict``):
    ``state``: (20,) float32 proprio, base frame, laid out as ``STATE_LAYOUT``:
        ``ee_pos`` [0:3] TCP position, m; ``ee_quat`` [3:7] TCP orientation, xyzw, sign
        chosen so that its dot product with the task's ``home_quat`` is >= 0 (continuous
        within the safety cone); ``gripper`` [7] opening, 0 = closed .. 1 = open;
        ``ee_twist`` [8:14] m/s and rad/s; ``wrench`` [14:20] N and N·m (zeros when the
        arm has no force sensing).
    ``<camera name>``: (H, W, 3) uint8 RGB per camera, H x W = ``task.image_size``.
Action: ``Box(-1, 1, (7,), float32)`` = ``[dx, dy, dz, drx, dry, drz, gripper]``: the TCP
    target is the *observed* TCP pose moved by ``a[:3] * max_translation`` metres and
    rotated by the rotation vector ``a[3:6] * max_rotation`` radians about base axes
    (composed as a rotation, ``exp(rv) ⊗ q``); gripper absolute, -1 open .. +1 closed.

Timing: in ``realtime`` mode each step ends at the absolute deadline
``t_start + (i + 1) * dt`` (``time.monotonic()``); late steps count as overruns in
``info["control_overruns"]``. ``free_running`` (sim only) steps physics by ``dt`` and
returns at once. Before acting, the env reads a fresh state: it never acts on old data.

Stale data (older than ``max_state_age_s`` / ``max_frame_age_s``, or a device's own
``StaleDataError``) follows ``control.stale`` (``robot_env.stale``): under ``policy: hold``
the env holds the arm, warns and re-reads until the data is fresh. A step whose state went
stale *before* acting drops its action (the policy chose it from data that is now out of
date; nothing is sent) and returns the fresh observation with ``info["stale_hold"]`` and
``info["action_dropped"]``; a
loss longer than ``max_consecutive_s`` ends the episode with ``truncated=True`` and
``info["stale_abort"]=True``, and a loss that outlasts it in ``reset()`` raises
``DataLossError``. ``info["stale_steps"]`` counts the held steps of the episode. Under
``policy: raise`` the first stale sample raises ``StaleDataError``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import gymnasium as gym
import numpy as np

from robot_env.geometry import apply_rotvec, clip_rotation, quat_normalize
from robot_env.hardware import Arm, ArmState, Camera, StaleDataError
from robot_env.registry import config_from_dict
from robot_env.stale import DataLossError, StaleConfig, StaleGuard
from robot_env.task import SuccessSource, TaskConfig

STATE_LAYOUT = {
    "ee_pos": slice(0, 3),
    "ee_quat": slice(3, 7),
    "gripper": slice(7, 8),
    "ee_twist": slice(8, 14),
    "wrench": slice(14, 20),
}
STATE_DIM = 20
log = logging.getLogger(__name__)


class InvalidActionError(ValueError):
    """An action with the wrong shape or a NaN/inf entry: refused, never sent to the arm."""


def check_action(action: Any) -> np.ndarray:
    """``action`` as a (7,) float32 array, or ``InvalidActionError`` saying what is wrong."""
    try:
        arr = np.asarray(action, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(f"action is not numeric: {action!r}") from exc
    if arr.shape != (7,):
        raise InvalidActionError(f"action must have shape (7,), got {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InvalidActionError(
            f"action has non-finite entries at indices {bad.tolist()} ({arr.tolist()}); "
            "refused, nothing was sent to the arm")
    return arr


@dataclasses.dataclass
class ControlConfig:
    """How the env keeps time.

    Attributes:
        mode: ``realtime`` (absolute deadlines at ``task.control_hz``) or
            ``free_running`` (sim only: step physics by dt as fast as possible).
        max_state_age_s: a state older than this is stale, seconds; None disables the
            check (free-running sim, where wall time means nothing).
        max_frame_age_s: same for camera frames, seconds; None disables.
        stale: what a stale sample does (:class:`~robot_env.stale.StaleConfig`, or its
            fields as a mapping): hold the arm and wait (default), or raise.
        reset_noise: on hardware (and the ROS2 sim robot), reset to the task's home pose plus
            uniform ``task.reset_pos_noise`` / ``reset_yaw_noise``, clipped to the workspace and
            orientation cone, instead of the arm's fixed home (the in-process sim always
            randomises its reset).
    """

    mode: str = "free_running"
    max_state_age_s: float | None = None
    max_frame_age_s: float | None = None
    stale: StaleConfig = dataclasses.field(default_factory=StaleConfig)
    reset_noise: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("realtime", "free_running"):
            raise ValueError(f"control.mode must be 'realtime' or 'free_running', got {self.mode!r}")
        if not isinstance(self.stale, StaleConfig):
            self.stale = config_from_dict(StaleConfig, dict(self.stale or {}))


def quat_sign_aligned(q: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``q`` or ``-q`` (same rotation), whichever has a non-negative dot with ``reference``."""
    q = quat_normalize(q)
    return -q if float(np.dot(q, reference)) < 0 else q


class RobotEnv(gym.Env):
    """Fixed-rate Cartesian control of one arm with cameras, for one task.

    Args:
        arm: a connected-or-not ``Arm`` (connected here).
        cameras: name -> ``Camera``; names become observation keys.
        task: limits and timing.
        success: where success and privileged task state come from.
        control: timing mode and staleness limits.
        world: the ``SimWorld`` to step in process (sim only), else None.
        crops: camera name -> ``(x0, y0, x1, y1)`` crop as fractions of the frame, applied
            before the resize to ``task.image_size`` (hil-serl crops each camera the same way).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, arm: Arm, cameras: dict[str, Camera], task: TaskConfig,
                 success: SuccessSource, control: ControlConfig | None = None,
                 world: Any | None = None, render_mode: str | None = None,
                 crops: dict[str, tuple[float, float, float, float]] | None = None) -> None:
        self.arm, self.cameras, self.task = arm, dict(cameras), task
        self.crops = dict(crops or {})
        unknown = sorted(set(self.crops) - set(self.cameras))
        if unknown:
            raise ValueError(f"crops given for unknown camera(s) {unknown}; cameras: {sorted(self.cameras)}")
        self.success_source, self.control = success, control or ControlConfig()
        self.world, self.render_mode = world, render_mode
        if self.control.mode == "free_running" and world is None:
            raise ValueError("control.mode=free_running needs a sim world; use realtime on hardware")
        self.dt = task.dt
        self.metadata = {**self.metadata, "render_fps": task.control_hz}
        self._home_quat = quat_normalize(np.asarray(task.home_quat))
        h, w = task.image_size
        spaces = {"state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)}
        for name in self.cameras:
            spaces[name] = gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        self._last_state: ArmState | None = None
        self._last_obs_pose = np.zeros(7, np.float32)
        self._last_reading: tuple[dict[str, np.ndarray], bool, bool, dict] | None = None
        self._success_info: dict[str, Any] = {}
        self._step_index = 0
        self._overruns = 0
        self._stale_steps = 0
        self._stale = StaleGuard(self.control.stale, self._hold_arm)
        self._t_start = time.monotonic()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset the scene (sim) or move home (hardware); start the control clock."""
        super().reset(seed=seed)
        self._connect()
        if self.world is not None:
            self.world.reset(seed=int(self.np_random.integers(2**31)) if seed is None else seed)
        elif self.control.reset_noise:
            pos, quat = self.reset_pose()
            self._stale.wait_fresh(lambda: self.arm.move_home(pos, quat), "moving to the reset pose")
        else:
            self._stale.wait_fresh(self.arm.move_home, "moving home")  # DataLossError: robot gone
        self.success_source.reset()
        self._step_index, self._overruns, self._stale_steps = 0, 0, 0
        if self.world is None:  # a frame taken before the scene was reset must not open the episode
            self._wait_for_frames_after(time.monotonic())
        (obs, _, _, task_state), held_s = self._stale.wait_fresh(self._read, "observing after reset")
        self._t_start = time.monotonic()
        info = self._info(task_state, success=False, lateness=0.0, held_s=held_s)
        return obs, info

    def _wait_for_frames_after(self, t: float) -> None:
        """Wait until every camera has a frame that arrived after ``t`` (the end of the reset), so
        that neither the policy nor a reward classifier sees the scene as it was before. A camera
        whose stream is still catching up (its own staleness error) is simply waited for.

        Raises:
            DataLossError: a camera sent nothing new within ``max(2 s, stale.max_consecutive_s)``.
        """
        limit = max(2.0, float(self.control.stale.max_consecutive_s))
        for name, cam in self.cameras.items():
            while True:
                try:
                    if cam.read().stamp > t:
                        break
                except StaleDataError:
                    pass  # no fresh frame yet: the limit below bounds the wait
                if time.monotonic() > t + limit:
                    raise DataLossError(f"camera {name!r} sent no frame in {limit:.1f} s after the reset")
                time.sleep(0.005)

    def reset_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """A randomised reset pose: ``task.home_pos`` + uniform ``reset_pos_noise`` and a yaw of
        uniform ``reset_yaw_noise`` about the base z axis, clipped like any command: into the
        workspace and the orientation cone around ``home_quat`` (seeded by ``reset(seed=)``)."""
        t = self.task
        noise = np.asarray(t.reset_pos_noise, float)
        pos = np.asarray(t.home_pos, float) + self.np_random.uniform(-noise, noise)
        pos = np.clip(pos, np.asarray(t.workspace_low, float), np.asarray(t.workspace_high, float))
        yaw = float(self.np_random.uniform(-t.reset_yaw_noise, t.reset_yaw_noise))
        quat = apply_rotvec(self._home_quat, np.array([0.0, 0.0, yaw]))
        quat, _ = clip_rotation(quat, self._home_quat, float(t.max_angle_from_home))
        return pos, quat

    def observe_now(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A fresh observation after the loop stood still (a pause, an operator resetting the
        scene), with the control clock restarted so the wait counts as no overrun."""
        (obs, success, _, task_state), held_s = self._stale.wait_fresh(self._read, "observing after a pause")
        self._t_start = time.monotonic() - self._step_index * self.dt
        return obs, self._info(task_state, success=success, lateness=0.0, held_s=held_s)

    def step(self, action):
        """Act for one control period; see the module docstring for the action and stale data."""
        action = np.clip(check_action(action), -1.0, 1.0)
        if self._last_state is None:
            raise RuntimeError("call reset() before step()")
        target = None
        try:
            _, held_s = self._stale.wait_fresh(self._fresh_state, "reading the arm state before acting")
            # fresh at once: act. Held: the data went stale after the policy's observation, so its
            # action is out of date and is dropped (nothing is sent for it)
            if held_s == 0.0:
                target = self._act(action)
                held_s = 0.0 if target is not None else 1e-9
            if self.world is not None:
                self.world.step(self.dt)
            lateness = self._wait_for_deadline()
            self._step_index += 1
            (obs, success, failed, task_state), observe_held_s = self._stale.wait_fresh(self._read, "observing")
        except DataLossError as exc:
            return self._end_for_data_loss(exc, action_sent=target is not None)
        held_s += observe_held_s
        if held_s:  # a held step counts once, and the next period starts now, not late
            self._stale_steps += 1
            self._t_start = time.monotonic() - self._step_index * self.dt
        info = self._info(task_state, success=success, lateness=lateness, held_s=held_s)
        if target is not None:
            info["ee_target"] = np.concatenate(target).astype(np.float32)
        info["action_dropped"] = target is None  # held before acting: nothing was sent for this action
        info["failure"] = failed
        return obs, float(success), success or failed, False, info

    def render(self):
        """Front camera (or the first camera) as (H, W, 3) uint8, sim renders 256x256."""
        if self.world is not None:
            return self.world.render("front", 256, 256)
        if self.cameras:
            return next(iter(self.cameras.values())).read().color
        return None

    def close(self) -> None:
        """Disconnect devices and free the sim renderers."""
        for cam in self.cameras.values():
            cam.disconnect()
        self.arm.disconnect()
        if self.world is not None:
            self.world.close()

    # ----------------------------------------------------------------- helpers
    def _act(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Send ``action``'s TCP target and gripper width; None if the arm refused it as stale."""
        # from the pose the caller observed (float32, as in obs), so wrappers that clip
        # in action space see exactly the target the arm will get
        target_pos, target_quat = self.action_to_target(action, self._last_obs_pose)
        try:
            self.arm.command_pose(target_pos, target_quat)  # an arm re-checks its state: stale = nothing sent
        except StaleDataError as exc:
            self._stale.hold(exc)  # re-raises under policy: raise
            return None
        self.arm.command_gripper(float((1.0 - action[6]) / 2.0 * self.arm.gripper_max_width))
        return target_pos, target_quat

    def _hold_arm(self) -> None:
        """Hold still: the arm's own ``stop()`` (never a target computed from stale data)."""
        if self.arm.is_connected:
            self.arm.stop()

    def _end_for_data_loss(self, exc: DataLossError, action_sent: bool):
        """Truncate the episode after a sustained loss, returning the last fresh observation."""
        log.error("ending the episode: %s", exc)
        obs, _, _, task_state = self._last_reading
        self._stale_steps += 1
        info = self._info(task_state, success=False, lateness=0.0, held_s=self.control.stale.max_consecutive_s)
        info.update(stale_abort=True, stale_error=str(exc), failure=False, action_dropped=not action_sent)
        return obs, 0.0, False, True, info

    def action_to_target(self, action: np.ndarray, state_vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP target (pos m, quat xyzw; base frame) for ``action`` from an observed ``state``."""
        pos = state_vector[STATE_LAYOUT["ee_pos"]].astype(np.float64)
        quat = state_vector[STATE_LAYOUT["ee_quat"]].astype(np.float64)
        pos = pos + action[:3].astype(np.float64) * self.task.max_translation
        quat = apply_rotvec(quat, action[3:6].astype(np.float64) * self.task.max_rotation)
        return pos, quat

    def state_vector(self, state: ArmState) -> np.ndarray:
        """The (20,) float32 ``state`` observation of an ``ArmState`` (``STATE_LAYOUT``)."""
        wrench = np.zeros(6) if state.wrench is None else state.wrench
        return np.concatenate([
            state.ee_pos, quat_sign_aligned(state.ee_quat, self._home_quat),
            [np.clip(state.gripper_width / self.arm.gripper_max_width, 0.0, 1.0)],
            state.ee_twist, wrench]).astype(np.float32)

    def _connect(self) -> None:
        if not self.arm.is_connected:
            self.arm.connect()
        for cam in self.cameras.values():
            if not cam.is_connected:
                cam.connect()

    def _fresh_state(self) -> ArmState:
        state = self.arm.read_state()
        max_age = self.control.max_state_age_s
        age = time.monotonic() - state.stamp
        if max_age is not None and age > max_age:
            raise StaleDataError(f"arm state is {age * 1e3:.0f} ms old (max {max_age * 1e3:.0f} ms); "
                                 "refusing to act on it")
        return state

    def _read(self) -> tuple[dict[str, np.ndarray], bool, bool, dict[str, np.ndarray]]:
        """Everything a step reports, read together: ``(obs, success, failure, task_state)``.

        Raises ``StaleDataError`` when any of it is stale; nothing is kept from a stale read.
        """
        state = self._fresh_state()
        obs = self._observe(state)
        reading = (obs, bool(self.success_source.success(obs)), bool(self.success_source.failure(obs)),
                   self.success_source.task_state())
        self._success_info = self.success_source.info()
        self._last_state, self._last_obs_pose, self._last_reading = state, obs["state"][:7].copy(), reading
        return reading

    def _observe(self, state: ArmState) -> dict[str, np.ndarray]:
        obs = {"state": self.state_vector(state)}
        h, w = self.task.image_size
        for name, cam in self.cameras.items():
            frame = cam.read()
            age = time.monotonic() - frame.stamp
            if self.control.max_frame_age_s is not None and age > self.control.max_frame_age_s:
                raise StaleDataError(f"camera {name!r} frame is {age * 1e3:.0f} ms old")
            img = frame.color
            if name in self.crops:  # crop (fractions of the frame) before resizing
                x0, y0, x1, y1 = self.crops[name]
                H, W = img.shape[:2]
                img = img[int(round(y0 * H)):int(round(y1 * H)), int(round(x0 * W)):int(round(x1 * W))]
            if img.shape[:2] != (h, w):
                import cv2

                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            obs[name] = np.ascontiguousarray(img, dtype=np.uint8)
        return obs

    def _wait_for_deadline(self) -> float:
        """Sleep to ``t_start + (i + 1) * dt`` (realtime); return lateness, seconds."""
        if self.control.mode != "realtime":
            return 0.0
        deadline = self._t_start + (self._step_index + 1) * self.dt
        now = time.monotonic()
        if now <= deadline:
            time.sleep(deadline - now)
            return 0.0
        self._overruns += 1
        lateness = now - deadline
        if lateness > self.dt:  # far behind: re-anchor instead of bursting to catch up
            self._t_start = now - (self._step_index + 1) * self.dt
        return lateness

    def _info(self, task_state: dict[str, np.ndarray], success: bool, lateness: float,
              held_s: float) -> dict[str, Any]:
        return {
            "success": success,
            "is_success": success,
            "task_state": task_state,
            "safety_clipped": False,
            "control_overruns": self._overruns,
            "control_lateness_s": lateness,
            "step": self._step_index,
            "stale_hold": bool(held_s),
            "stale_held_s": float(held_s),
            "stale_steps": self._stale_steps,
            "stale_abort": False,
            **self._success_info,
        }
