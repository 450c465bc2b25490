"""The three-process stage's bookkeeping: the recipe as hydra overrides, demos written through
the recorder, finished-run detection and the figures read back from the processes' logs."""

from __future__ import annotations

import json

import numpy as np
from omegaconf import OmegaConf

from learners import bench_learn as bl
from learners.bench_reward_hil import (REPO, _log_span_s, _resumed_env_steps, checkpoints_by_env_steps,
                                       finished_run, learner_overrides, write_demos)


def test_learner_overrides_reproduce_the_study_recipe():
    study = bl.variant_study(bl.study_config({}), "pick_cube/state")
    values = bl.learner_values("residual_hil", study, seed=3)
    overrides = learner_overrides(values)
    shipped = OmegaConf.load(REPO / "launch" / "config" / "learner" / "residual_td3_cpu.yaml")
    cfg = OmegaConf.merge(OmegaConf.create({"learner": shipped}), OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
    got = OmegaConf.to_container(cfg)["learner"]
    for k, v in values.items():
        if k != "seed":
            assert got[k] == v, (k, got[k], v)
    assert all(o.startswith("++learner.") for o in overrides)
    assert "++learner.critic_hidden=[128, 128]" in overrides


def test_demos_round_trip_through_the_recorder(tmp_path):
    from learners.bc import load_dataset_episodes

    env = bl.make_variant_env("pick_cube/state")
    try:
        demos = bl.collect_demos(env, "pick_cube", 2, 0.1, seed=0)
    finally:
        env.close()
    assert write_demos(tmp_path / "d", demos, "pick_cube") == 2
    back = load_dataset_episodes(tmp_path / "d", only_successful=True)
    assert len(back) == 2
    for a, b in zip(demos, back):
        np.testing.assert_array_equal(a["obs/state"], b["obs/state"])
        np.testing.assert_array_equal(a["action"], b["action"])


def test_finished_run_and_log_figures(tmp_path):
    work = tmp_path / "processes_seed0"
    assert not finished_run(work, 100)
    (work / "learner" / "checkpoints" / "step_000000180_000000100").mkdir(parents=True)
    (work / "learner" / "checkpoints" / "step_000000180_000000100" / "agent.safetensors").write_bytes(b"x")
    (work / "learner" / "checkpoints" / "step_000000010_000000040").mkdir()  # no agent file: ignored
    assert checkpoints_by_env_steps(work / "learner" / "checkpoints")[-1][:2] == (100, 180)
    for name in ("step_000000180_000000100_r001", "step_000000180_000000100_r002"):  # an idle learner's repeats
        (work / "learner" / "checkpoints" / name).mkdir()
        (work / "learner" / "checkpoints" / name / "agent.safetensors").write_bytes(b"x")
    assert [p.name for *_, p in checkpoints_by_env_steps(work / "learner" / "checkpoints")] == [
        "step_000000180_000000100", "step_000000180_000000100_r001", "step_000000180_000000100_r002"]
    assert not finished_run(work, 100)  # no actor summary yet
    (work / "actor").mkdir()
    (work / "actor" / "actor_summary.json").write_text(json.dumps({"env_steps": 100}))
    assert finished_run(work, 100) and not finished_run(work, 101)
    (work / "sim.log").write_text("[2026-11-30 01:41:43,500][x][INFO] - start\n")
    (work / "actor.log").write_text("noise\n[2026-11-30 01:42:00,000][x][INFO] - a\n[2026-11-30 01:43:03,750][x][INFO] - b\n")
    assert _log_span_s(work) == 80.2
    (work / "learner.log").write_text("[..] - resumed from /x/step_000000000_000000081: 81 env steps, 0 updates\n")
    assert _resumed_env_steps(work / "learner.log") == 81
    assert _resumed_env_steps(work / "nothing.log") == 0


def test_overruns_are_summed_from_the_actor_episode_log(tmp_path):
    from learners.bench_reward_hil import _overruns

    (tmp_path / "e.jsonl").write_text('{"overruns": 0}\n{"overruns": 3}\n\n{"overruns": 2}\n')
    assert _overruns(tmp_path / "e.jsonl") == {"total": 5, "episodes_with_overruns": 2, "episodes": 3}
    assert _overruns(tmp_path / "none.jsonl") == {"total": 0, "episodes_with_overruns": 0, "episodes": 0}
