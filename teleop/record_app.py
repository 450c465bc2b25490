"""``hilr record``: teleoperated demonstrations into an on-disk dataset (config: record.yaml).

Examples::

    hilr record                                     # sim pick_cube, simulated operator
    hilr record episodes=5 teleop=spacemouse console.mode=window dataset=data/demos
    hilr record env=gym dataset=data/fetch_reach_demos episodes=10   # a gymnasium env, its scripted expert
    hilr record --help                              # every option, with comments
"""

from __future__ import annotations

import json
import logging
import sys
import time

from robot_env.app import hydra_app, run_dir, to_container

log = logging.getLogger(__name__)


def build_keyboard(cfg: dict):
    """Terminal keyboard when asked for and stdin is a tty, else the plain queue (window keys)."""
    from teleop.keyboard import KeyBindings, KeyboardControl, TerminalKeyboard

    bindings = KeyBindings(**{k: v for k, v in cfg.items() if k != "terminal"})
    if cfg.get("terminal", True) and sys.stdin.isatty():
        return TerminalKeyboard(bindings)
    return KeyboardControl(bindings)


def _demonstrator(env, cfg: dict, teleop_spec: dict):
    """``(wrapped env, teleoperator or None, idle policy or None)`` for this session.

    The simulated operator is the scripted expert: the built-in task's for ``env=sim``, the
    env's ``env.expert`` for ``env=gym`` (any action size). A device (SpaceMouse, ROS2
    twist) commands 7-D end-effector actions, so it needs an env with that action space.
    """
    from robot_env.app import UserError
    from teleop.base import make_teleoperator
    from teleop.intervention import InterventionWrapper

    env_spec = cfg.get("env") or {}
    action_dim = int(env.action_space.shape[0])
    if env_spec.get("type") == "gym" and teleop_spec.get("type") == "sim_operator":
        from robot_env.gym_env import load_expert
        from teleop.expert_control import ExpertInControl, IdlePolicy

        if not env_spec.get("expert"):
            raise UserError(f"env {env_spec.get('id')!r} has no scripted expert to record with: set "
                            "env.expert=<module:function> (see robot_env/gym_experts.py), or teleop=spacemouse "
                            "for a 7-D end-effector env")
        return ExpertInControl(env, load_expert(env)), None, IdlePolicy(action_dim)
    if action_dim != 7:
        raise UserError(f"teleop={teleop_spec.get('type')} commands 7-D end-effector actions but env "
                        f"{env_spec.get('id')!r} takes {action_dim}-D actions: record it with its scripted expert "
                        "(teleop=sim_operator, the default, drives env.expert)")
    if cfg["operator_always_in_control"] and "always_active" in teleop_spec:
        teleop_spec["always_active"] = True  # the simulated operator drives every demo step
    teleop = make_teleoperator(teleop_spec)
    teleop.connect()
    wrapped = InterventionWrapper(env, teleop, sticky_s=cfg["sticky_s"],
                                  always_active=cfg["operator_always_in_control"],
                                  clock="steps" if cfg["sticky_clock"] == "steps" else time.monotonic)
    return wrapped, teleop, None


def record(cfg: dict) -> dict:
    """Run one recording session from a plain config dict; returns the summary."""
    from robot_env import make_env
    from robot_env.dataset import EpisodeWriter
    from teleop.console import ConsoleConfig, OperatorConsole
    from teleop.recorder import record_episodes

    env_cfg = {k: cfg[k] for k in ("robot", "camera", "task", "control", "safety", "privileged_state", "crops_file",
                                   "env", "reward") if k in cfg}
    env_spec = cfg.get("env") or {}
    keyboard = build_keyboard(cfg["keyboard"])
    console = OperatorConsole(ConsoleConfig(**cfg["console"]), keyboard)
    env = make_env(env_cfg)
    teleop = None
    try:
        wrapped, teleop, policy = _demonstrator(env, cfg, dict(cfg["teleop"]))
        writer = EpisodeWriter(
            cfg["dataset"], fps=float(cfg["task"]["control_hz"]),
            task=env_spec["id"] if env_spec.get("type") == "gym" else cfg["task"]["name"],
            observation_space=env.observation_space, action_space=env.action_space,
            keep_only_successful=cfg["keep_only_successful"], record_frames=cfg["record_frames"],
            failure_frame_stride=cfg["failure_frame_stride"], crops=getattr(env.unwrapped, "crops", None))
        console.print_bindings()
        with keyboard:
            stats = record_episodes(wrapped, writer, cfg["episodes"], keyboard=keyboard, policy=policy,
                                    console=console, max_attempts=cfg["max_attempts"],
                                    progress=cfg["progress"], seed=cfg["seed"],
                                    success_hold_steps=int(cfg.get("success_hold_steps") or 0))
    finally:
        console.close()
        if teleop is not None:
            teleop.disconnect()
        env.close()
    summary = stats.as_dict()
    summary["dataset"] = str(cfg["dataset"])
    summary["episodes_in_dataset"] = writer.num_episodes
    return summary


@hydra_app("record")
def main(cfg) -> int:
    """Entry point of ``hilr record``."""
    # no device / unplugged (DeviceError): one line `hilr record: <what to check>`, exit 1
    summary = record(to_container(cfg))
    line = json.dumps({k: v for k, v in summary.items() if k != "paths"}, sort_keys=True)
    (run_dir() / "record_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(line)
    return 0


