"""Every ROS2 launch file parses, and every `hilr ...` it runs names a real verb, config groups and keys.

There is no ROS2 `launch` package here (and `launch/` must never become a Python package
that would shadow it), so the XML is read with xml.etree and each command is composed with
hydra exactly as `hilr <verb>` would compose it at launch time.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from learners.cli import SUBVERBS, VERBS

LAUNCH = Path(__file__).resolve().parents[2] / "launch"
FILES = sorted(LAUNCH.glob("*.launch.xml"))
VAR = re.compile(r"\$\(var ([A-Za-z0-9_]+)\)")


def _args(root: ET.Element) -> dict[str, str]:
    return {a.get("name"): a.get("default", "") for a in root.findall("arg")}


def _resolve(text: str, args: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        assert m.group(1) in args, f"$(var {m.group(1)}) is not a declared <arg> with a default"
        return args[m.group(1)]
    return VAR.sub(sub, text)


def _config_name(verb: str) -> str:
    module = VERBS[verb][0].split(":")[0]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"verb {verb!r}: module {module} not found"
    found = re.findall(r'@hydra_app\("([^"]+)"\)', Path(spec.origin).read_text())
    assert len(found) == 1, f"verb {verb!r}: {module} must define exactly one @hydra_app"
    return found[0]


def _commands(path: Path) -> list[tuple[str, list[str]]]:
    root = ET.parse(path).getroot()
    args = _args(root)
    out = []
    for exe in root.iter("executable"):
        tokens = shlex.split(_resolve(exe.get("cmd", ""), args))
        assert tokens and tokens[0] == "hilr", f"{path.name}: executable {tokens} is not a hilr command"
        assert len(tokens) > 1 and tokens[1] in VERBS, f"{path.name}: unknown hilr verb in {tokens}"
        verb, rest = tokens[1], tokens[2:]
        if verb in SUBVERBS and rest and "=" not in rest[0]:
            rest = [f"what={rest[0]}"] + rest[1:]
        out.append((verb, rest))
    return out


def test_launch_is_not_a_python_package():
    assert FILES, "no launch files shipped"
    assert not list(LAUNCH.rglob("*.py")), "launch/ must hold no .py (a `launch` package shadows ROS2's)"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_launch_file_structure(path):
    root = ET.parse(path).getroot()
    assert root.tag == "launch"
    declared = {a.get("name") for a in root.findall("arg")}
    for el in root.iter():
        for key, value in el.attrib.items():
            for name in VAR.findall(value):
                assert name in declared, f"{path.name}: <{el.tag} {key}> uses undeclared arg {name!r}"
    for inc in root.iter("include"):
        # vendor launch files are optional on a robot PC: every include must be switchable
        if "find-pkg-share" in inc.get("file", ""):
            assert VAR.fullmatch(inc.get("if", "")), f"{path.name}: include {inc.get('file')} needs if=$(var with_...)"
    assert _commands(path), f"{path.name} runs no hilr process"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_hilr_command_composes(path):
    """Compose each command's config as hydra will: unknown groups/options/keys fail here."""
    from hydra import compose, initialize_config_dir

    for verb, overrides in _commands(path):
        name = _config_name(verb)
        assert (LAUNCH / "config" / f"{name}.yaml").is_file(), f"hilr {verb}: launch/config/{name}.yaml missing"
        for ov in overrides:
            key, _, value = ov.partition("=")
            group_dir = LAUNCH / "config" / key
            if group_dir.is_dir():
                assert (group_dir / f"{value}.yaml").is_file(), f"{path.name}: {ov}: no {key}/{value}.yaml"
        with initialize_config_dir(config_dir=str(LAUNCH / "config"), version_base="1.3"):
            compose(config_name=name, overrides=overrides)


def test_franka_stack_uses_the_real_robot_profiles():
    cmds = dict(_commands(LAUNCH / "franka_stack.launch.xml"))
    assert "robot=ros_franka" in cmds["actor"]
    sim = dict(_commands(LAUNCH / "sim_stack.launch.xml"))
    assert {"sim-robot", "learner", "actor"} <= set(sim)
    assert "robot=ros_sim" in sim["actor"] and "camera=ros_sim" in sim["actor"]


def test_sim_stack_learner_starts_without_demos_and_matches_the_actor():
    """With its defaults (demos=null) the learner gets the actor's observation layout from the
    launch file: it neither dies for want of a dataset nor disagrees with the actor's env."""
    import robot_env
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from learners.builders import obs_spec_from_config
    from policies.encoders import obs_spec_from_space

    cmds = dict(_commands(LAUNCH / "sim_stack.launch.xml"))
    with initialize_config_dir(config_dir=str(LAUNCH / "config"), version_base="1.3"):
        learner = OmegaConf.to_container(compose(config_name="learner", overrides=cmds["learner"]), resolve=True)
        actor = OmegaConf.to_container(compose(config_name="actor", overrides=cmds["actor"]), resolve=True)
    assert learner["demos"] is None and learner["obs_spec"]
    env = robot_env.make_env(actor)  # ROS2 devices do no I/O before connect(): the spaces are known
    try:
        assert obs_spec_from_config(learner["obs_spec"]) == obs_spec_from_space(env.observation_space)
        assert env.unwrapped.control.mode == "realtime"
    finally:
        env.close()
