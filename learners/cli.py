"""``hilr``: one command, one verb per job. Each verb is a thin hydra app.

``hilr --help`` lists the verbs; ``hilr <verb> --help`` shows that verb's config groups
and every option with its comment; ``hilr <verb> key=value ...`` overrides any config
value. A failed verb prints one line and exits non-zero; ``--verbose`` (or ``-v``) adds the
traceback.
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
    "bench": ("learners.apps.bench:main", "benchmarks: sim | ros | transport | learner | memory | actor | learn (quick=true) | reward"),
    "dataset": ("teleop.dataset_app:main", "datasets: summary | export (LeRobotDataset v2.1 layout) | import: `hilr dataset export <src> <dst>`"),
    "show": ("teleop.show_app:main", "look at a recorded episode: `hilr show <dataset> [episode]` writes a contact-sheet PNG (format=mp4: video)"),
}

# Leading positional words of a verb name these keys: `hilr bench sim` == `hilr bench what=sim`,
# `hilr show data/demos 3` == `hilr show dataset=data/demos episode=3`.
POSITIONAL = {"bench": ("what",), "calibrate": ("what",), "show": ("dataset", "episode"),
              "dataset": ("what", "src", "dst")}
SUBVERBS = {verb for verb, keys in POSITIONAL.items() if keys[0] == "what"}  # verbs whose first word is a sub-job

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
        "option with its comment; override any with key=value (e.g. `hilr demo task=peg_insert",
        "seed=3`). A failed verb prints one line and exits non-zero; --verbose adds the traceback.",
    ]
    return "\n".join(lines)


def positional_to_overrides(verb: str, rest: list[str]) -> list[str]:
    """Turn a verb's leading bare words into ``key=value`` overrides (``POSITIONAL``)."""
    keys, out = list(POSITIONAL.get(verb, ())), []
    for i, word in enumerate(rest):
        if not keys or "=" in word or word.startswith("-") or word == "help":
            return out + rest[i:]
        out.append(f"{keys.pop(0)}={word}")
    return out


def one_line(message: str) -> str:
    """A hydra/omegaconf error message as one line: listed options inline, the config search
    path and omegaconf's ``full_key``/``object_type`` detail lines dropped."""
    parts: list[str] = []
    for raw in message.split("Config search path:")[0].splitlines():
        line = raw.strip()
        if not line or line.startswith(("full_key:", "object_type=", "reference_type=")):
            continue
        if raw.startswith("\t") and parts and parts[-1].endswith((":", ",")):  # one of a listed set
            parts[-1] += f" {line},"
        else:
            parts.append(line)
    return " ".join(parts).rstrip(",")


def override_problem(config_name: str, overrides: list[str]) -> str | None:
    """Why ``overrides`` do not compose with the verb's config (one line), or None when they do."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from robot_env.app import config_dir

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides)
            groups = [o for o in overrides if OmegaConf.is_config(OmegaConf.select(cfg, o.split("=", 1)[0].lstrip("+~")))]
            defaults = compose(config_name, overrides=groups)  # the group choices, every value at its default
    except (HydraException, OmegaConfBaseException) as exc:
        return one_line(str(exc))
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        return f"missing value for {', '.join(missing)}: give it as {missing[0]}=<value> (see --help)"
    for override in overrides:  # a word where the yaml has a number or a flag: refused by name, before any work
        key, _, raw = override.partition("=")
        key = key.lstrip("+~")
        if "${" in raw:  # an interpolation resolves at run time (e.g. an environment variable): not checked here
            continue
        problem = type_problem(key, OmegaConf.select(defaults, key), OmegaConf.select(cfg, key))
        if problem:
            return problem
    return None


def type_problem(key: str, default: object, value: object) -> str | None:
    """Why ``value`` cannot stand where the yaml's ``default`` is a number or a flag, or None."""
    if default is None or value is None or isinstance(default, (str, list, dict)) or not isinstance(
            default, (bool, int, float)):
        return None
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    else:
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    return None if ok else f"{key} must be {kind} (its default is {default!r}), got {value!r}"


def print_verb_help(verb: str, config_name: str, overrides: list[str]) -> int:
    """Print ``hilr <verb> --help`` (every option with its YAML comment); 0, or 2 on a bad override."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from robot_env.app import config_dir
    from robot_env.config_help import verb_help

    try:
        print(verb_help(verb, config_name, overrides, config_dir(), VERBS[verb][1], POSITIONAL.get(verb, ())))
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"hilr {verb}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


def default_threads() -> int:
    """CPU threads for torch (and OpenMP) when nobody chose: half the cores, at most 4.

    torch's own default (one per core) thrashes on a small box shared with the sim, a learner
    or a study: on the 2-core test box ``hilr train-bc`` ran 9.8 steps/s with it against 418
    with one thread, and ``hilr eval`` 6x slower (``OMP_NUM_THREADS`` or a verb's own
    ``threads`` / ``torch_threads`` setting still win).
    """
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except (AttributeError, OSError):
        cores = os.cpu_count() or 2
    return min(4, max(1, cores // 2))


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
    rest = positional_to_overrides(verb, rest)
    # Offscreen MuJoCo rendering works headless (robot PCs over SSH, CI) with EGL.
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    os.environ.setdefault("OMP_NUM_THREADS", str(default_threads()))  # read by torch at import, inherited by children
    if "--verbose" in rest or "-v" in rest:  # tracebacks on failure (robot_env.app.run_reporting_errors)
        os.environ["HILR_VERBOSE"] = "1"
        rest = [a for a in rest if a not in ("--verbose", "-v")]
    rest = [f"{a[2:]}=true" if a.startswith("--") and "=" not in a and a[2:] not in HYDRA_FLAGS else a
            for a in rest]
    target, _ = VERBS[verb]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    if ("--help" in rest or "-h" in rest) and getattr(func, "config_name", None):
        return print_verb_help(verb, func.config_name, [a for a in rest if a not in ("--help", "-h")])
    if getattr(func, "config_name", None) and all("=" in a and not a.startswith("-") for a in rest):
        problem = override_problem(func.config_name, rest)
        if problem:  # hydra would print it over six lines plus a hint; one line says the same
            print(f"hilr {verb}: {problem}", file=sys.stderr)
            return 2
    sys.argv = [f"hilr {verb}"] + rest
    result = func()
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
