"""``make_env(cfg)``: the env, its devices and its safety wrappers, from plain config.

``cfg`` is a mapping (a hydra node or a dict) with keys:

* ``robot``: ``{"type": <ARMS name>, ...its config}``; ``mujoco`` builds the sim world.
  Default ``{"type": "mujoco"}``.
* ``camera``: ``{<obs key>: {"type": <CAMERAS name>, ...}}``, empty/None for no cameras.
  A camera's ``height``/``width`` default to ``task.image_size``.
* ``task``: ``TaskConfig`` fields; ``name`` picks the task and, for a sim task, its
  defaults, which the other keys override. Default ``{"name": "pick_cube"}``.
* ``control`` (optional): ``ControlConfig`` fields (``mode``, ``max_state_age_s``,
  ``max_frame_age_s``, ``stale``). ``mode: auto`` (the default) is free-running in the
  in-process sim and realtime otherwise; ``free_running`` asked of a robot that is not the
  in-process sim (``robot=ros_sim``, hardware) runs in realtime, the only timing such a
  robot has, with one log line. Realtime on hardware counts data older than 2.5 control
  periods as stale by default; the in-process sim has no default age limit, since it
  renders and reads on demand and is never stale. ``stale`` (``robot_env.stale.StaleConfig``,
  default ``{policy: hold, max_consecutive_s: 2.0}``) says what a stale sample does.
* ``safety`` (optional): overrides of the task's limits (``workspace_low``,
  ``workspace_high``, ``max_angle_from_home``, ``max_step_translation``,
  ``max_step_rotation``).
* ``time_limit`` (optional, bool, default True): wrap in ``TimeLimit(task.episode_steps)``.
* ``privileged_state`` (optional, bool, sim only): append the sim's ``task_state`` (object
  pose) to ``obs["state"]`` (``PrivilegedState``), for state-based sim studies.
* ``safety.workspace_file`` (optional): a ``hilr calibrate workspace`` file whose
  ``workspace_low``/``workspace_high`` replace the task's (explicit safety keys still win).
* ``crops_file`` (optional): a ``hilr calibrate crops`` file; per-camera ``crop: [x0, y0,
  x1, y1]`` (fractions of the frame) in a camera's spec overrides it. Crops apply before
  the resize to ``task.image_size``.
* ``reward`` (optional): where success comes from. ``{"type": "auto"}`` (default): the sim's
  task state for a sim robot, the robot's task report when it has one (the ROS2 sim robot),
  else never (``NoSuccess``); ``{"type": "none"}``: never (operator labels only);
  ``{"type": "classifier", "checkpoint": ...}``: the trained image classifier
  (``policies.reward_source``), with the robot's own success only audited. A classifier
  trained on other cameras, image sizes or crops is refused here.
* ``obs_keys`` (optional): the observation keys the policy gets (default: all). A camera left
  out still feeds the reward classifier, which runs inside the env.
* ``env`` (optional): ``{"type": "gym", "id": ..., ...}`` builds any registered gymnasium env
  through ``robot_env.gym_env.GymAdapter`` instead (the keys above are then unused);
  absent or ``{"type": "sim"}``: the robot/camera/task env above.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from robot_env.app import UserError
from robot_env.env import ControlConfig, RobotEnv
from robot_env.hardware import ARMS, CAMERAS
from robot_env.registry import config_from_dict
from robot_env.task import SUCCESS_SOURCE_MODULES, SUCCESS_SOURCES, NoSuccess, SuccessSource, TaskConfig
from robot_env.wrappers import PrivilegedState, RejectNonFiniteAction, SafetyClip, SelectObservation

log = logging.getLogger(__name__)
_SAFETY_KEYS = ("workspace_low", "workspace_high", "max_angle_from_home",
                "max_step_translation", "max_step_rotation")


def _plain(cfg: Any) -> Any:
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(cfg, Mapping):
        return {k: _plain(v) for k, v in cfg.items()}
    return cfg


def task_config(task: Mapping[str, Any] | None, safety: Mapping[str, Any] | None = None) -> TaskConfig:
    """``TaskConfig`` from a ``task`` mapping: the named sim task's defaults, overridden."""
    values = dict(task or {})
    name = values.get("name", "pick_cube")
    from robot_env.sim.tasks import SIM_TASKS

    base = SIM_TASKS.entry(name)[1].DEFAULTS if name in SIM_TASKS.names() else TaskConfig(name=name)
    safety = dict(safety or {})
    if safety.get("workspace_file"):
        from robot_env.calibration_files import workspace_limits

        safety = {**workspace_limits(safety["workspace_file"]), **{k: v for k, v in safety.items() if k in _SAFETY_KEYS}}
    safety.pop("workspace_file", None)
    unknown = sorted(set(safety or {}) - set(_SAFETY_KEYS))
    if unknown:
        raise ValueError(f"unknown safety key(s) {unknown}; valid: {list(_SAFETY_KEYS)}")
    merged = {**dataclasses.asdict(base), **values, **dict(safety or {})}
    return config_from_dict(TaskConfig, merged)


def _check_camera_fits_robot(name: str, camera_type: str | None, robot_type: str | None) -> None:
    """Sim cameras render the in-process sim arm's world; any other camera needs a real (or ROS2) robot.

    Raises:
        UserError: the pair cannot work, with the config groups to pick instead.
    """
    if robot_type == "mujoco" and camera_type != "mujoco":
        raise UserError(
            f"camera {name!r} is a {camera_type!r} device camera, but robot=sim is the in-process MuJoCo arm, "
            f"whose cameras are rendered from its own scene: use camera=sim (or camera=none) with robot=sim, "
            f"or pair camera={camera_type} with a real robot (robot=ros_franka or robot=ros_moveit_servo)")
    if robot_type != "mujoco" and camera_type == "mujoco":
        raise UserError(
            f"camera {name!r} is an in-process sim camera (type mujoco), but the robot is {robot_type!r}, not "
            "robot=sim: with robot=ros_sim use camera=ros_sim; with a real robot use camera=realsense, "
            "camera=ros_realsense or camera=opencv")


def _control_mode(mode: str, robot_type: str | None, in_process: bool) -> str:
    """The env's timing: ``auto`` and ``free_running`` resolve to what the robot can do.

    Only the in-process sim can step physics on demand (free-running); any other robot (the
    ROS2 sim robot, hardware) keeps its own time, so the env must run in realtime there.
    """
    if mode == "auto":
        return "free_running" if in_process else "realtime"
    if mode == "free_running" and not in_process:
        log.info("control.mode=free_running needs the in-process sim (robot=sim); robot type %r runs in "
                 "realtime", robot_type)
        return "realtime"
    return mode


def _reward_source(spec: dict[str, Any], robot_source: SuccessSource) -> SuccessSource:
    """The success source the ``reward`` config names; ``robot_source`` is the robot's own (the
    sim's task state, the sim robot's task report, or ``NoSuccess`` on a real arm)."""
    kind = str(spec.get("type", "auto"))
    if kind == "auto":
        if len(spec) > 1:
            raise UserError(f"reward=auto takes no options; got {sorted(k for k in spec if k != 'type')}")
        return robot_source
    if kind == "none":
        return _Unlabelled(robot_source)
    if kind in SUCCESS_SOURCE_MODULES:
        import importlib

        importlib.import_module(SUCCESS_SOURCE_MODULES[kind])  # registers it
    privileged = None if isinstance(robot_source, NoSuccess) else robot_source
    return SUCCESS_SOURCES.make(spec, privileged=privileged)


class _Unlabelled(SuccessSource):
    """``reward=none``: never succeeds by itself (only operator labels end an episode as success);
    the robot's own source still resets the scene (the ROS2 sim robot)."""

    def __init__(self, robot_source: SuccessSource) -> None:
        self.robot_source = robot_source

    def reset(self) -> None:
        self.robot_source.reset()

    def success(self, obs: dict) -> bool:
        return False

    def info(self) -> dict[str, Any]:
        return {"reward_source": "none"}


def make_env(cfg: Mapping[str, Any] | None = None, *, success: SuccessSource | None = None,
             render_mode: str | None = None) -> gym.Env:
    """Build the wrapped env described by ``cfg`` (see the module docstring).

    Args:
        cfg: the config mapping.
        success: override the success source (e.g. a reward classifier, or a ROS2 task
            state feed); default: sim state for a sim robot, ``NoSuccess`` otherwise.
        render_mode: ``"rgb_array"`` or None.

    Returns:
        ``TimeLimit(RejectNonFiniteAction(SafetyClip(RobotEnv)))``, not yet reset.
    """
    cfg = _plain(cfg or {})
    env_spec = cfg.get("env") or {}
    reward = dict(cfg.get("reward") or {"type": "auto"})
    if env_spec.get("type") == "gym":  # any gymnasium env: robot_env.gym_env (robot/camera/task unused)
        from robot_env.gym_env import make_gym_env

        if reward.get("type", "auto") != "auto":
            raise UserError(f"reward={reward.get('type')} needs the robot env; a gymnasium env (env=gym) "
                            "reports its own success")
        return make_gym_env(env_spec, render_mode=render_mode)
    task = task_config(cfg.get("task"), cfg.get("safety"))
    robot = dict(cfg.get("robot") or {"type": "mujoco"})
    world = None
    if robot.get("type") == "mujoco":
        from robot_env.sim.devices import SimSuccess  # also registers ARMS["mujoco"]
        from robot_env.sim.world import SimWorld

        arm_cfg = ARMS.config(robot)
        world = SimWorld(task, arm_cfg.world_config())
        arm = ARMS.make(arm_cfg, world=world)
        success = success or SimSuccess(world)
    else:
        import robot_env.cameras  # noqa: F401  (registers CAMERAS "realsense", "opencv")
        import robot_env.ros  # noqa: F401  (registers ARMS/CAMERAS "ros"; rclpy loads on connect)

        arm = ARMS.make(robot)
        # a robot that reports its own task state (the ROS2 sim robot) supplies the success source
        feed = arm.task_feed() if hasattr(arm, "task_feed") else None
        success = success or feed or NoSuccess()
    success = _reward_source(reward, success)
    cameras, crops = {}, {}
    if cfg.get("crops_file"):
        from robot_env.calibration_files import crop_fractions

        crops.update(crop_fractions(cfg["crops_file"]))
    for name, spec in (cfg.get("camera") or {}).items():
        spec = dict(spec)
        if spec.get("crop") is not None:
            from robot_env.calibration_files import validate_crop_fractions

            crops[name] = validate_crop_fractions(spec["crop"])
        spec.pop("crop", None)
        _check_camera_fits_robot(name, spec.get("type"), robot.get("type"))
        if spec.get("type") == "mujoco":
            spec.setdefault("camera", name)
            spec.setdefault("height", task.image_size[0])
            spec.setdefault("width", task.image_size[1])
            cameras[name] = CAMERAS.make(spec, world=world)
        else:
            cameras[name] = CAMERAS.make(spec)
    control_values = {"mode": "auto", **(cfg.get("control") or {})}
    control_values["mode"] = _control_mode(str(control_values["mode"]), robot.get("type"), in_process=world is not None)
    if control_values["mode"] == "realtime" and world is None:
        # Asynchronous devices (a driver thread, a ROS2 topic) can stall: refuse data older
        # than 2.5 periods. The in-process sim cannot: its state and camera images are
        # computed on demand from the physics, which only advances inside env.step(), so an
        # age there measures our own render/sleep time, not staleness (explicit limits
        # still apply, e.g. to test the check).
        control_values.setdefault("max_state_age_s", 2.5 * task.dt)
        control_values.setdefault("max_frame_age_s", 2.5 * task.dt)
    control = config_from_dict(ControlConfig, control_values)
    crops = {k: v for k, v in crops.items() if k in cameras}  # a crops file may list more cameras
    check_fits = getattr(success, "check_fits", None)
    env: gym.Env = RobotEnv(arm, cameras, task, success, control, world=world, render_mode=render_mode,
                            crops=crops)
    if check_fits is not None:  # a classifier trained on other cameras / sizes / crops: refused by name
        check_fits(env.observation_space, crops)
    env = SafetyClip(env)
    env = RejectNonFiniteAction(env)
    if cfg.get("time_limit", True):
        env = gym.wrappers.TimeLimit(env, max_episode_steps=task.episode_steps)
    if cfg.get("privileged_state"):  # raises clearly when the robot reports no task_state (real robots)
        env = PrivilegedState(env)
    if cfg.get("obs_keys"):  # e.g. [state]: cameras only for the reward classifier, not the policy
        env = SelectObservation(env, list(cfg["obs_keys"]))
    return env
