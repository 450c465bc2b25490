"""``hilr bench learn`` / ``hilr bench actor`` on tiny budgets: the code paths, the files, the
regression table. The real studies are benchmarks (docs/sections/benchmarks.md)."""

from __future__ import annotations

import json

import pytest
import torch

from learners import bench_learn as bl
from learners import bench_learn_report as report

torch.set_num_threads(1)

TINY = {"variants": ["pick_cube/state"], "methods": ["bc", "residual_hil"], "seeds": 1, "demos": 2,
        "bc_steps": 20, "env_steps": 40, "eval_every": 20, "eval_episodes": 2, "learning_starts": 20,
        "diagnostics": False,
        "agent": {"actor_hidden": [16], "critic_hidden": [16], "num_critics": 2, "batch_size": 16,
                  "warmup_steps": 5, "critic_warmup_updates": 5, "device": "cpu"}}


def test_study_config_presets_and_validation():
    quick = bl.study_config({"quick": True})
    assert quick.variants == ("pick_cube/state",) and quick.seeds >= 2
    full = bl.study_config({"quick": False, "learn": {"seeds": None}})
    assert full.seeds >= 3 and full.variants == ("pick_cube/state", "peg_insert/state", "pick_cube/image")
    assert full.env_steps >= 50_000 and full.eval_episodes >= 100
    assert bl.variant_study(full, "peg_insert/state").demos == 20
    with pytest.raises(ValueError, match="unknown method"):
        bl.study_config({"learn": {"methods": ["dagger"]}})
    with pytest.raises(ValueError, match="variant"):
        bl.study_config({"learn": {"variants": ["pick_cube/depth"]}})


def test_tiny_study_writes_json_plot_and_flags_regressions(tmp_path, capsys):
    ref = {"results": {"pick_cube/state": {"bc": {"final_mean": 2.0}, "residual_hil": {"final_mean": -1.0}}}}
    ref_path = tmp_path / "ref.json"
    ref_path.write_text(json.dumps(ref))
    out = bl.run({"quick": True, "progress": False, "reference": str(ref_path),
                  "learn": {**TINY, "out_dir": str(tmp_path)}})
    result = json.loads((tmp_path / "learn_quick.json").read_text())
    block = result["results"]["pick_cube/state"]
    assert block["bc"]["steps"] == [0, 20, 40] and len(block["residual_hil"]["mean"]) == 3
    assert block["residual_hil"]["intervention_steps_mean"] > 0  # the simulated operator drove
    assert (tmp_path / "learn_quick.png").stat().st_size > 1000
    rows = {r["method"]: r for r in out["rows"]}
    assert rows["bc"]["regression"] and not rows["residual_hil"]["regression"]  # ref 2.0 > any success
    assert out["regressions"] == 1
    printed = capsys.readouterr().out
    assert "REGRESSION" in printed and "| reference |" in printed
    # paired with the base on the same reset seeds: one difference per evaluation point
    assert len(block["residual_hil"]["vs_base"]) == 3 and block["residual_hil"]["vs_base"][0]["n"] == 2


def test_study_resumes_from_finished_runs_and_reports_diagnostics(tmp_path):
    learn = {**TINY, "methods": ["bc", "residual"], "diagnostics": True, "out_dir": str(tmp_path), "name": "s"}
    bl.run({"quick": True, "progress": False, "learn": learn})
    run_file = tmp_path / "runs" / "s" / "pick_cube_state" / "seed0" / "residual.json"
    first = json.loads(run_file.read_text())
    assert first["diagnostics"] and "critic_prefers_oracle" in first["diagnostics"][0]
    base = json.loads((run_file.parent / "base.json").read_text())
    assert 0.0 <= base["oracle"]["success_rate"] <= 1.0 and base["probe_states"] > 0
    run_file.write_text(json.dumps({**first, "seconds": -1.0}))  # a finished run is reused, not re-run
    bl.run({"quick": True, "progress": False, "learn": learn})
    result = json.loads((tmp_path / "s.json").read_text())
    assert result["results"]["pick_cube/state"]["residual"]["seconds_mean"] == -1.0
    assert "_oracle_ceiling_per_seed" in result["results"]["pick_cube/state"]


def test_a_resumed_seed_skips_the_base_and_oracle_evaluations(tmp_path, monkeypatch):
    import learners.bench_learn_diag as diag

    learn = {**TINY, "methods": ["bc", "residual"], "diagnostics": True, "out_dir": str(tmp_path), "name": "s"}
    bl.run({"quick": True, "progress": False, "learn": learn})
    seed_dir = tmp_path / "runs" / "s" / "pick_cube_state" / "seed0"
    base_before = (seed_dir / "base.json").read_text()
    (seed_dir / "residual.json").unlink()  # the run to redo; base.json already holds the base and oracle

    def no_oracle(*args, **kwargs):
        raise AssertionError("the oracle was evaluated again")

    monkeypatch.setattr(diag, "oracle_ceiling", no_oracle)
    bl.run({"quick": True, "progress": False, "learn": learn})
    assert (seed_dir / "base.json").read_text() == base_before
    rerun = json.loads((seed_dir / "residual.json").read_text())
    assert rerun["diagnostics"] and "critic_prefers_oracle" in rerun["diagnostics"][0]  # probes still built


def test_a_report_of_the_whole_study_includes_every_ablation_on_disk(tmp_path):
    """A worker that ran an ablation (``extra_methods``) and a later ``report_only`` run that
    names none report it all the same: the report covers every method with a run file."""
    learn = {**TINY, "methods": ["bc", "residual"], "extra_methods": ["residual_nogate"],
             "out_dir": str(tmp_path), "name": "s"}
    bl.run({"quick": True, "progress": False, "learn": learn})
    runs = tmp_path / "runs" / "s"
    assert bl.methods_on_disk(runs, ("bc", "residual")) == ("residual_nogate",)
    assert bl.methods_on_disk(runs, ("bc", "residual", "residual_nogate")) == ()
    assert bl.methods_on_disk(tmp_path / "missing", ("bc",)) == ()
    (tmp_path / "s.json").unlink()
    bl.run({"quick": True, "progress": False,
            "learn": {**TINY, "methods": ["bc", "residual"], "report_only": True, "out_dir": str(tmp_path), "name": "s"}})
    reported = json.loads((tmp_path / "s.json").read_text())["results"]["pick_cube/state"]
    assert {"bc", "residual", "residual_nogate"} <= set(reported)
    assert reported["residual_nogate"]["seeds"] == [0]


def test_a_resumed_seed_practises_on_the_saved_base_and_a_foreign_base_is_flagged(tmp_path, monkeypatch):
    """The seed's BC base is saved next to base.json and loaded on resume (not retrained, so other
    code cannot swap it); a base that does not reproduce base.json is never saved, and a run whose
    step-0 outcomes differ from base.json's is flagged."""
    from policies import bc as bc_mod

    learn = {**TINY, "methods": ["bc", "residual"], "out_dir": str(tmp_path), "name": "s"}
    trained, loaded = [], []
    real_train, real_load = bl.train_base, bc_mod.load_bc_policy
    monkeypatch.setattr(bl, "train_base", lambda *a, **k: trained.append(real_train(*a, **k)) or trained[-1])
    monkeypatch.setattr(bc_mod, "load_bc_policy", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1])
    bl.run({"quick": True, "progress": False, "learn": learn})
    seed_dir = tmp_path / "runs" / "s" / "pick_cube_state" / "seed0"
    assert (seed_dir / bl.BASE_FILE).exists() and len(trained) == 1
    first = json.loads((seed_dir / "residual.json").read_text())
    assert first["base_mismatch_episodes"] == 0

    # resumed: the saved base is loaded, weight for weight the trained one, and never retrained
    (seed_dir / "residual.json").unlink()
    loaded.clear()
    bl.run({"quick": True, "progress": False, "learn": learn})
    assert len(trained) == 1 and loaded
    for k, v in trained[0].model.state_dict().items():
        assert torch.equal(v, loaded[-1].model.state_dict()[k]), k
    assert json.loads((seed_dir / "residual.json").read_text())["base_mismatch_episodes"] == 0

    # other BC settings than the saved base's: a clear error, nothing run
    (seed_dir / "residual.json").unlink()
    with pytest.raises(ValueError, match="BC base of other settings"):
        bl.run({"quick": True, "progress": False, "learn": {**learn, "bc_steps": 21}})

    # base.json written by another base: the retrained base is not saved, and the run is flagged
    base = json.loads((seed_dir / "base.json").read_text())
    base["base"]["successes"] = [not x for x in base["base"]["successes"]]
    (seed_dir / "base.json").write_text(json.dumps(base))
    (seed_dir / bl.BASE_FILE).unlink()
    bl.run({"quick": True, "progress": False, "learn": learn})
    assert len(trained) == 2 and not (seed_dir / bl.BASE_FILE).exists()
    flagged = json.loads((seed_dir / "residual.json").read_text())
    assert flagged["base_mismatch_episodes"] == len(base["base"]["successes"])
    assert "differs from base.json on" in report.run_rows(tmp_path / "runs" / "s")
    assert bl.base_mismatch([True, False], [True]) == 2 and bl.base_mismatch([True, False], [True, True]) == 1


def test_a_worker_share_of_the_committed_study_reports_the_whole_study(tmp_path, monkeypatch):
    """A worker that runs a share of the committed study (here: one ablation) rewrites the
    committed report from every run file there, its ablation and the others' methods included."""
    written = []
    monkeypatch.setattr(bl, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "update_markdown", lambda paths, table, runs: written.append(table) or [])
    share = {**TINY, "methods": ["bc"], "extra_methods": ["residual_nogate"]}
    bl.run({"quick": False, "progress": False, "learn": share})
    result = json.loads((tmp_path / "learn_full.json").read_text())
    assert result["config"]["report_only"] is True  # the whole study's report, not the share's
    assert {"bc", "residual_nogate"} <= set(result["results"]["pick_cube/state"])
    assert written and "residual_nogate" in written[-1]


def test_paired_difference_interval():
    base = [[True, False, False, True]]
    runs = [{"successes": [[True, False, False, True], [True, True, True, True]]}]
    d = bl.paired_difference(runs, base)
    assert d[0] == {"mean": 0.0, "lo": 0.0, "hi": 0.0, "n": 4}
    assert d[1]["mean"] == 0.5 and d[1]["lo"] < 0.5 < d[1]["hi"]


def test_summary_statistics():
    runs = [{"curve": [[0, 0.2], [10, 0.9]], "intervention_steps": 4, "seconds": 1.0},
            {"curve": [[0, 0.4], [10, 0.5]], "intervention_steps": 0, "seconds": 3.0}]
    s = bl.summarise(runs)
    assert s["mean"] == [0.3, 0.7] and s["steps_to_90_per_seed"] == [10, None]
    assert s["steps_to_90_mean_curve"] is None and s["intervention_steps_mean"] == 2.0
    rows = report.table_rows({"results": {"v": {"m": s, "_base_success_per_seed": [0.1]}}})
    assert [r["method"] for r in rows] == ["m"] and "reference" not in rows[0]


def test_bench_actor_measures_both_modes():
    from learners.bench_actor import run

    out = run({"actor": {"steps": 5, "warmup": 1, "image_size": 64}})
    for k in ("base", "base_residual"):
        assert out[k]["n"] == 5 and out[k]["p50_ms"] > 0
    # a ratio measured in the same run (5 samples on a loaded CI box: its size is not asserted)
    assert out["ratio_p50"] == pytest.approx(out["base_residual"]["p50_ms"] / out["base"]["p50_ms"], rel=0.01)
    res = out["features"]["resnet10"]
    assert res["feature_shape"] == [512, 2, 2]  # 64 px / 32
    # the byte counts bracket the payloads: two 64x64x3 images per camera and transition against two
    # 512x2x2 float16 maps plus the 32-byte digest
    assert res["learner"]["transition_bytes"] > 2 * 2 * 64 * 64 * 3 > res["actor"]["transition_bytes"]
    assert res["actor"]["transition_bytes"] > 2 * 2 * 512 * 2 * 2 * 2 + 32
    assert res["bytes_ratio"] == pytest.approx(res["learner"]["transition_bytes"] / res["actor"]["transition_bytes"],
                                               rel=1e-3)
    for where in ("learner", "actor"):
        assert res[where]["actor_step"]["n"] == 5
    assert out["features"]["base_conv"]["backbone"] == "small_conv"


def test_study_runs_on_a_gymnasium_env_we_did_not_write(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    from omegaconf import OmegaConf

    env = OmegaConf.to_container(OmegaConf.load(bl.REPO / "launch" / "config" / "env" / "gym.yaml"))
    learn = {**{k: v for k, v in TINY.items() if k != "variants"}, "methods": ["bc", "residual", "residual_hil"],
             "out_dir": str(tmp_path), "name": "g"}
    out = bl.run({"quick": True, "progress": False, "env": env, "learn": learn})
    result = json.loads((tmp_path / "g.json").read_text())
    block = result["results"]["gym/state"]
    assert set(out["rows"][0]) >= {"variant", "method"} and block["residual"]["steps"] == [0, 20, 40]
    assert block["residual_hil"]["intervention_steps_mean"] >= 0
    run = json.loads((tmp_path / "runs" / "g" / "gym_state" / "seed0" / "residual.json").read_text())
    assert run["learner"]["action_dim"] == 4  # FetchReach: [dx, dy, dz, gripper]


def test_parallel_workers_never_claim_the_same_run(tmp_path):
    import os
    import subprocess
    import sys

    run = tmp_path / "seed0" / "residual.json"
    assert bl.claim(run) and run.with_suffix(".running").read_text() == str(os.getpid())
    assert not bl.claim(run)  # held by a live process (this one)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run.with_suffix(".running").write_text(dead.stdout.strip())
    assert bl.claim(run)  # a dead worker's marker is taken over


def test_study_docs_tables_are_regenerated_between_markers(tmp_path):
    runs = tmp_path / "runs" / "pick_cube_state" / "seed0"
    runs.mkdir(parents=True)
    (runs / "base.json").write_text(json.dumps({"base": {"successes": [False, True]}, "oracle": {"success_rate": 1.0}}))
    (runs / "residual.json").write_text(json.dumps({
        "curve": [[0, 0.5], [10, 1.0]], "successes": [[False, True], [True, True]], "intervention_steps": 3,
        "diagnostics": [{"critic_prefers_oracle": 0.5, "gate_open_rate": 0.25}]}))
    table = report.run_rows(tmp_path / "runs")
    assert "pick_cube_state seed0, residual | 0: 0.50, 10: 1.00 | +0.50" in table and "3 of 10 steps" in table
    doc = tmp_path / "doc.md"
    doc.write_text("a\n<!-- STUDY TABLE START -->\nold\n<!-- STUDY TABLE END -->\n"
                   "<!-- STUDY RUNS START -->\nold\n<!-- STUDY RUNS END -->\nb\n")
    assert report.update_markdown([doc], "| new table |", table) == [str(doc)]
    text = doc.read_text()
    assert "old" not in text and "| new table |" in text and text.startswith("a\n") and text.endswith("b\n")


def test_paired_between_methods_uses_only_seeds_both_finished():
    from learners.bench_learn import paired_between_methods

    def run(points):
        return {"curve": [[s, sum(p) / len(p)] for s, p in points], "successes": [p for _, p in points]}

    a = [run([(0, [0, 0, 1, 1]), (10, [1, 1, 1, 1])]), run([(0, [0, 1, 0, 1]), (10, [1, 1, 0, 1])])]
    b = [run([(0, [0, 0, 1, 1]), (10, [0, 1, 1, 0])]), None]  # seed 1 of b still running
    out = paired_between_methods({"residual_hil": a, "residual": b})
    pair = out["residual_hil-residual"]
    assert pair["seeds"] == 1 and [p["step"] for p in pair["per_point"]] == [0, 10]
    assert pair["per_point"][0]["mean"] == 0.0 and pair["per_point"][1]["mean"] == 0.5
    assert pair["per_point"][1]["n"] == 4 and "residual_hil-rlpd" not in out
