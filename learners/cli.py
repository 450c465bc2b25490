"""``hilr``: one command, one verb per job. Each verb is a thin hydra app.

``hilr --help`` lists the verbs; ``hilr <verb> --help`` shows that verb's config groups
and full config; ``hilr <verb> key=value ...`` overrides any config value.
"""

from __future__ import annotations

import importlib
import os
import sys

# verb -> ("module:function", one-line help). Modules import lazily so `hilr --help`
# stays fast and a missing optional dependency only breaks the verb that needs it.
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("learners.apps.demo:main", "the whole loop on the built-in sim: demos -> BC -> residual RL with interventions -> eval report"),
    "sim-robot": ("robot_env.ros.sim_robot_app:main", "run the MuJoCo sim robot as a ROS2 node behind the `sim` topic profile"),
    "record": ("teleop.record_app:main", "record teleoperated demonstrations (SpaceMouse, keyboard, ROS2 twist or the simulated operator)"),
    "train-bc": ("learners.apps.train_bc:main", "train the behaviour-cloning base policy from a recorded dataset"),
    "train-reward": ("learners.apps.train_reward:main", "train the image success classifier used as reward on real robots"),
    "learner": ("learners.apps.learner:main", "learner process: receive transitions over ZMQ, train SAC/RLPD/TD3 residual, publish weights"),
    "actor": ("learners.apps.actor:main", "actor process: run base + residual policy on the robot with interventions, stream transitions"),
    "eval": ("learners.apps.evaluate:main", "evaluate a policy for N episodes: success rate with confidence interval, cycle time"),
    "calibrate": ("calibration.app:main", "calibrate: board | intrinsics | handeye | crops | workspace | spacemouse | moved"),
    "bench": ("learners.apps.bench:main", "benchmarks: sim | ros | transport | learner | actor | learn (--quick)"),
}

# Verbs whose first positional word selects a sub-job: `hilr bench sim` == `hilr bench what=sim`.
SUBVERBS = {"bench", "calibrate"}

# Hydra's own command-line flags; any other bare `--name` means `name=true` (`--quick`).
HYDRA_FLAGS = {"help", "hydra-help", "version", "cfg", "resolve", "package", "run", "multirun",
               "shell-completion", "config-path", "config-name", "config-dir", "experimental-rerun", "info"}


def usage() -> str:
    """The text of ``hilr --help``."""
    width = max(len(v) for v in VERBS)
    lines = [
        "usage: hilr <verb> [key=value ...] [--help]",
        "",
        "Human-in-the-loop residual RL for robot arms. Verbs:",
        "",
    ]
    lines += [f"  {verb:<{width}}  {help_}" for verb, (_, help_) in VERBS.items()]
    lines += [
        "",
        "Each verb is a hydra app: `hilr <verb> --help` shows its config groups and every",
        "option; override any with key=value (e.g. `hilr demo task=peg_insert seed=3`).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hilr`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"hilr: unknown verb {verb!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if verb in SUBVERBS and rest and "=" not in rest[0] and not rest[0].startswith("-") and rest[0] != "help":
        rest = [f"what={rest[0]}"] + rest[1:]
    # Offscreen MuJoCo rendering works headless (robot PCs over SSH, CI) with EGL.
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    rest = [f"{a[2:]}=true" if a.startswith("--") and "=" not in a and a[2:] not in HYDRA_FLAGS else a
            for a in rest]
    target, _ = VERBS[verb]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    sys.argv = [f"hilr {verb}"] + rest
    result = func()
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
