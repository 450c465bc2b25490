"""The `hilr` dispatcher: verb table, help, sub-jobs and bare --flags."""

from __future__ import annotations

import subprocess
import sys

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


def test_verb_help_shows_config_groups_and_comments():
    out = subprocess.run([sys.executable, "-m", "learners.cli", "actor", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "learner:" in out.stdout and "transport:" in out.stdout and "base_policy" in out.stdout
