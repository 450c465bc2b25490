"""The `hilr` dispatcher: verb table, help, sub-jobs and bare --flags."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from learners import cli


def test_help_lists_every_verb(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in cli.VERBS:
        assert verb in out


def test_unknown_verb_is_a_clear_error(capsys):
    assert cli.main(["fly"]) == 2
    assert "unknown verb 'fly'" in capsys.readouterr().err


def test_every_verb_module_imports():
    import importlib

    for target, _ in cli.VERBS.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func))


def test_subjob_word_and_bare_flag_become_overrides(tmp_path):
    out = subprocess.run([sys.executable, "-m", "learners.cli", "bench", "learn", "--quick",
                          f"hydra.run.dir={tmp_path}", "--cfg", "job"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "what: learn" in out.stdout and "quick: true" in out.stdout


def _hilr(*args, tmp_path, env=None):
    return subprocess.run([sys.executable, "-m", "learners.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HILR_RUNS_DIR": str(tmp_path), **(env or {})})


def test_verb_help_shows_config_groups_and_comments(tmp_path):
    out = _hilr("actor", "--help", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "learner:" in out.stdout and "transport:" in out.stdout and "base_policy" in out.stdout
    # each option with the comment of the yaml file that set it, group files included
    lines = out.stdout.splitlines()
    assert any(line.strip().startswith("base_policy: null") and "# frozen base" in line for line in lines)
    assert any(line.strip().startswith("control_hz: 10.0") and "# control rate, Hz" in line for line in lines)
    # overrides before --help pick the group files shown
    out = _hilr("record", "teleop=spacemouse", "--help", tmp_path=tmp_path)
    assert out.returncode == 0 and "teleop: spacemouse" in out.stdout


def test_failure_is_one_line_and_nonzero(tmp_path):
    """A verb that fails (here a calibration that cannot run) exits 1 with one stderr line."""
    out = _hilr("calibrate", "nonsense", tmp_path=tmp_path)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == ["hilr calibrate: unknown calibration 'nonsense'; choose one of "
                                               "['board', 'crops', 'handeye', 'intrinsics', 'moved', "
                                               "'spacemouse', 'workspace']"]
    assert "Traceback" not in out.stdout + out.stderr
    out = _hilr("calibrate", "intrinsics", "camera_name=nope", tmp_path=tmp_path)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "hilr calibrate: camera_name='nope' is not one of the configured cameras ['front', 'wrist']; pick one "
        "with camera_name=<name>, or another camera group with camera=<group>"]
    out = _hilr("calibrate", "intrinsics", "camera_name=nope", "--verbose", tmp_path=tmp_path)
    assert out.returncode == 1 and "Traceback" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("hilr calibrate: camera_name='nope'")


def test_unplugged_spacemouse_is_one_line(tmp_path):
    """The record verb with no SpaceMouse attached: exit 1, the device hint as the only stderr line."""
    out = _hilr("record", "teleop=spacemouse", f"dataset={tmp_path / 'd'}", tmp_path=tmp_path)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("hilr record: cannot open SpaceMouse") and "plugged in" in line


def test_config_goes_to_the_run_dir_not_the_terminal(tmp_path):
    out = _hilr("calibrate", "board", f"out_dir={tmp_path / 'cal'}", "hydra.run.dir=" + str(tmp_path / "run"),
                tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    terminal = out.stdout + out.stderr
    assert len(terminal.splitlines()) < 10 and "compliance_stiffness" not in terminal
    saved = (tmp_path / "run" / "config_resolved.yaml").read_text()
    assert "compliance_stiffness" in saved and "${" not in saved


def test_actor_without_spacemouse_is_one_line(tmp_path):
    out = _hilr("actor", "teleop=spacemouse", "learn=false", tmp_path=tmp_path)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("hilr actor: cannot open SpaceMouse") and "Traceback" not in out.stdout


def test_yaml_comments_parser(tmp_path):
    from robot_env.config_help import defaults_comments, yaml_comments

    path = tmp_path / "x.yaml"
    path.write_text("# header, not a key's comment\n"
                    "defaults:\n  - robot: sim   # the arm\n"
                    "a: 1            # one\n"
                    "b:\n  # above c\n  c: 'x # not a comment'\n  d: [1, 2]  # list\n"
                    "keys:\n  quit: \"q\\e\"  # quit keys\n")
    assert yaml_comments(path, "pkg") == {"pkg.a": "one", "pkg.b.c": "above c", "pkg.b.d": "list",
                                          "pkg.keys.quit": "quit keys"}
    assert defaults_comments(path) == {"robot": "the arm"}


def test_bad_overrides_are_one_line(tmp_path):
    cases = {("record", "nonsense_key=3"): "hilr record: Could not override 'nonsense_key'. To append to your config "
                                           "use +nonsense_key=3",
             ("record", "teleop=nope"): "hilr record: In 'record': Could not find 'teleop/nope' Available options in "
                                        "'teleop': ros_twist, sim_operator, spacemouse, spacemouse_replay",
             ("show",): "hilr show: missing value for dataset: give it as dataset=<value> (see --help)",
             # a word where the yaml has a number or a flag, refused before any work (nothing written)
             ("record", "camera=none", "episodes=abc"): "hilr record: episodes must be an integer (its default is "
                                                        "20), got 'abc'",
             ("record", "episodes=3.5"): "hilr record: episodes must be an integer (its default is 20), got 3.5",
             ("actor", "actor.deterministic=yes"): "hilr actor: actor.deterministic must be true or false (its "
                                                   "default is False), got 'yes'",
             ("learner", "learner.actor_lr=fast"): "hilr learner: learner.actor_lr must be a number (its default "
                                                   "is 0.0001), got 'fast'"}
    for args, line in cases.items():
        out = _hilr(*args, tmp_path=tmp_path)
        assert out.returncode == 2 and out.stderr.strip().splitlines() == [line], out.stderr
    assert not (tmp_path / "record").exists()  # refused before a run folder or dataset was made
    from learners.cli import type_problem

    assert type_problem("a", 1.0, 2) is None and type_problem("a", 3, None) is None and type_problem("a", "x", 5) is None
    from learners.cli import override_problem

    assert override_problem("record", ["seed=${oc.env:HILR_TEST_SEED,3}"]) is None  # resolved at run time
    assert override_problem("demo", ["online.actor.max_steps_per_s=12.5"]) is None  # a float setting takes fractions


def test_each_run_updates_a_latest_link(tmp_path):
    from robot_env.app import link_latest

    first, second = tmp_path / "2026-01-01_00-00-00", tmp_path / "2026-01-01_00-00-01"
    for d in (first, second):
        d.mkdir()
        link_latest(d)
        assert (tmp_path / "latest").resolve() == d.resolve()
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").mkdir()  # a real folder named latest is never replaced
    link_latest(first)
    assert not (tmp_path / "latest").is_symlink()
    (second / "config_resolved.yaml").write_text("{}\n")  # a run folder: its sub-runs (hilr demo's) get no link
    (second / "actor").mkdir()
    assert not link_latest(second / "actor") and not (second / "latest").exists()


def test_overlapping_failed_runs_never_leave_latest_on_a_failed_one(tmp_path):
    from robot_env.app import FAILED, link_latest, mark_failed

    good, a, b = (tmp_path / f"2026-01-01_00-00-0{i}" for i in range(3))
    for d in (good, a, b):
        d.mkdir()
        link_latest(d)
    mark_failed(a, 1)  # a fails while b is the latest: latest stays on b
    assert (tmp_path / "latest").resolve() == b.resolve() and (a / FAILED).exists()
    mark_failed(b, 1)  # then b fails: back to the newest run that did not fail, not to a
    assert (tmp_path / "latest").resolve() == good.resolve()
    mark_failed(good, 2)
    assert not (tmp_path / "latest").exists()


def test_a_failed_run_does_not_stay_the_latest(tmp_path):
    """A typo'd command must not send the README's next command (``.../latest/...``) to a run
    that holds only error.txt: ``latest`` goes back to the last run that did not fail."""
    ok = _hilr("calibrate", "intrinsics", f"out_dir={tmp_path / 'cal'}", tmp_path=tmp_path)
    assert ok.returncode == 0, ok.stderr
    good = (tmp_path / "calibrate" / "latest").resolve()
    assert (good / "config_resolved.yaml").exists()
    bad = _hilr("calibrate", "intrinsics", "camera_name=nope", f"out_dir={tmp_path / 'cal'}", tmp_path=tmp_path)
    assert bad.returncode == 1
    assert (tmp_path / "calibrate" / "latest").resolve() == good
    assert len([d for d in (tmp_path / "calibrate").iterdir() if d.name != "latest"]) == 2  # its own folder stays
    first = _hilr("calibrate", "nonsense", tmp_path=tmp_path / "fresh")
    assert first.returncode == 1 and not (tmp_path / "fresh" / "calibrate" / "latest").exists()


def test_a_word_where_a_number_belongs_is_refused_by_name():
    from learners.builders import agent_config
    from robot_env.registry import RegistryError

    with pytest.raises(RegistryError, match=r"AgentConfig.actor_lr must be float, got 'abc'"):
        agent_config({"actor_lr": "abc"})
    assert agent_config({"actor_lr": 1}).actor_lr == 1.0  # an int is a fine float


def test_a_yaml_exponent_without_a_dot_is_still_a_float():
    from learners.builders import agent_config

    assert agent_config({"actor_lr": "3e-06"}).actor_lr == 3e-06  # YAML 1.1 reads 3e-06 as a string


def test_every_env_verb_accepts_the_env_group():
    """`env=` goes on every verb of a session (record, train-bc, learner, actor, eval): the learner
    builds no env, but refusing the key made the documented gym-hil chain fail at its third command."""
    from hydra import compose, initialize_config_dir

    from robot_env.app import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        for name in ("record", "train_bc", "learner", "actor", "eval"):
            cfg = compose(config_name=name, overrides=["env=gym", "env.id=Pusher-v5"])
            assert cfg.env.type == "gym" and cfg.env.id == "Pusher-v5", name
