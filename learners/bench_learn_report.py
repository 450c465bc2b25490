"""Tables and plots of ``hilr bench learn`` results (see :mod:`learners.bench_learn`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

LABELS = {
    "bc": "BC base only",
    "rlpd": "RLPD from scratch + demos",
    "residual": "residual RL (TD3), no interventions",
    "residual_hil": "residual RL (TD3) + sim interventions",
    "residual_sac": "residual RL (SAC), no interventions",
    "residual_sac_hil": "residual RL (SAC) + sim interventions",
    "residual_nstep1": "residual TD3, n_step=1",
    "residual_hil_scale02": "residual + interventions, scale 0.2",
    "residual_nogate": "residual, no critic gate",
    "residual_hil_nogate": "residual + interventions, no critic gate",
    "residual_hil_nobc": "residual + interventions, no BC term",
    "residual_gate_eval": "residual, gate on evaluation actions only",
    "residual_hil_gate_eval": "residual + interventions, gate on evaluation actions only",
    "residual_hil_kappa0": "residual + interventions, gate on the mean advantage",
    "residual_v1": "residual, previous recipe (no gate/BC/held noise)",
    "residual_scale01": "residual TD3, scale 0.1",
    "residual_scale02": "residual TD3, scale 0.2",
    "residual_utd2": "residual TD3, UTD 2",
    "residual_actor_lr3e-4": "residual TD3, actor lr 3e-4",
}


def _methods(block: Mapping[str, Any]) -> list[str]:
    return [m for m in block if not m.startswith("_")]


def table_rows(result: Mapping[str, Any], reference: Mapping[str, Any] | None = None,
               tolerance: float = 0.2) -> list[dict[str, Any]]:
    """One row per (variant, method): final success mean/std, steps to 90 %, interventions,
    and, with a reference result, its final success, the delta and a ``regression`` flag
    (delta < -tolerance)."""
    rows = []
    for variant, block in result["results"].items():
        for m in _methods(block):
            s = block[m]
            row = {"variant": variant, "method": m, "success": round(s["final_mean"], 3),
                   "spread": round(s["final_std"], 3), "steps_to_90": s["steps_to_90_mean_curve"],
                   "intervention_steps": round(s["intervention_steps_mean"], 1),
                   "seconds": round(s["seconds_mean"], 1)}
            if "seeds" in s:
                row["seeds"] = len(s["seeds"])
            if s.get("vs_base"):
                row["vs_base"] = s["vs_base"][-1]
                row["worst_vs_base"] = min(p["mean"] for p in s["vs_base"])
            ref = (reference or {}).get("results", {}).get(variant, {}).get(m)
            if ref is not None:
                row["reference"] = round(ref["final_mean"], 3)
                row["delta"] = round(row["success"] - row["reference"], 3)
                row["regression"] = row["delta"] < -tolerance
            rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]], with_reference: bool) -> str:
    """Plain-text table (also valid markdown)."""
    success = "success now" if with_reference else "final success"
    head = ["variant", "method", f"{success} (mean ± std over seeds)", "final − base [95 % CI]",
            "steps to 90 %", "intervention steps"]
    if with_reference:
        head += ["reference", "delta", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        d = r.get("vs_base")
        diff = f"{d['mean']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]" if d else "-"
        seeds = f" ({r['seeds']} seed{'s' if r['seeds'] != 1 else ''})" if "seeds" in r else ""
        cells = [r["variant"], r["method"] + seeds, f"{r['success']:.2f} ± {r['spread']:.2f}", diff,
                 "never" if r["steps_to_90"] is None else str(r["steps_to_90"]), f"{r['intervention_steps']:.0f}"]
        if with_reference:
            if "reference" in r:
                cells += [f"{r['reference']:.2f}", f"{r['delta']:+.2f}", "REGRESSION" if r["regression"] else "ok"]
            else:
                cells += ["-", "-", "new"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(result: Mapping[str, Any], path: Path) -> list[str]:
    """Success rate vs env steps, mean line and shaded min..max spread over seeds (and the oracle
    ceiling of the bounded residual when measured), one panel per
    variant. Returns the written file paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(result["results"])
    if not variants:
        return []
    # one colour per method in every panel, legends under the panels (never over the curves)
    every = list(dict.fromkeys(m for v in variants for m in _methods(result["results"][v])))
    colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(every)}
    rows = max(len(_methods(result["results"][v])) + 1 for v in variants)
    fig, axes = plt.subplots(1, len(variants), figsize=(5.2 * len(variants), 3.6 + 0.17 * rows), squeeze=False)
    for ax, variant in zip(axes[0], variants):
        block = result["results"][variant]
        for m in _methods(block):
            s = block[m]
            n = f" ({len(s['seeds'])} seed{'s' if len(s['seeds']) != 1 else ''})" if "seeds" in s else ""
            ax.plot(s["steps"], s["mean"], label=LABELS.get(m, m) + n, lw=1.8, color=colours[m],
                    ls="--" if m == "bc" else "-")
            ax.fill_between(s["steps"], s["min"], s["max"], color=colours[m], alpha=0.15)
        ax.axhline(0.9, color="grey", lw=0.8, ls=":")
        oracle = block.get("_oracle_ceiling_per_seed")
        if oracle:
            ax.axhline(sum(oracle) / len(oracle), color="black", lw=1.0, ls="-.", label="oracle ceiling (bounded residual)")
        ax.set_title(f"{variant} (mean, min..max over seeds)")
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate (eval)")
    for ax in axes[0]:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return [str(path)]


def run_rows(runs_dir: Path) -> str:
    """Markdown table: one row per finished residual/RLPD run file under ``runs_dir`` (its curve,
    paired final difference to the base, operator steps, oracle ceiling and critic diagnostics)."""
    import json

    import numpy as np

    from learners.bench_learn import base_mismatch

    head = ("| run | success at each evaluation point (env steps) | final − base [95 % CI] | operator drove | "
            "oracle ceiling | critic prefers oracle (first → last) | gate open (first → last) |\n"
            "|---|---|---|---|---|---|---|\n")
    rows = []
    for path in sorted(Path(runs_dir).glob("*/seed*/*.json")):
        if path.stem in ("base", "bc"):
            continue
        run, base = json.loads(path.read_text()), json.loads((path.parent / "base.json").read_text())
        points = ", ".join(f"{f'{int(s) // 1000}k' if s and int(s) % 1000 == 0 else int(s)}: {r:.2f}" for s, r in run["curve"])
        if path.stem.startswith("residual"):  # an untrained residual is zero: its step 0 is the base, episode for episode
            off = base_mismatch(run["successes"][0], base["base"]["successes"])
            if off:
                points += f" (step 0 differs from base.json on {off} episodes: another base)"
        d = np.asarray(run["successes"][-1], float) - np.asarray(base["base"]["successes"], float)
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        diag = run.get("diagnostics") or [{}]
        cpo = [x.get("critic_prefers_oracle") for x in diag if x.get("critic_prefers_oracle") is not None]
        gate = [x.get("gate_open_rate") for x in diag if x.get("gate_open_rate") is not None]
        steps = run["curve"][-1][0] or 1
        rows.append(f"| {path.parent.parent.name} {path.parent.name}, {path.stem} | {points} | "
                    f"{d.mean():+.2f} [{d.mean() - half:+.2f}, {d.mean() + half:+.2f}] | "
                    f"{run['intervention_steps']:,} of {steps:,} steps | "
                    f"{base.get('oracle', {}).get('success_rate', '–')} | "
                    f"{f'{cpo[0]:.2f} → {cpo[-1]:.2f}' if cpo else '–'} | "
                    f"{f'{gate[0]:.0%} → {gate[-1]:.0%}' if gate else '–'} |")
    return head + "\n".join(rows) + "\n"


def update_markdown(paths: list[Path], table: str, runs: str) -> list[str]:
    """Replace the text between ``<!-- STUDY TABLE START/END -->`` and ``<!-- STUDY RUNS START/END -->``
    markers in ``paths`` (README, benchmarks page) with the study's tables; returns the files changed."""
    import re

    changed = []
    for path in paths:
        text = Path(path).read_text()
        new = re.sub(r"<!-- STUDY TABLE START -->\n.*?<!-- STUDY TABLE END -->\n",
                     lambda m: f"<!-- STUDY TABLE START -->\n{table.rstrip()}\n<!-- STUDY TABLE END -->\n", text, flags=re.S)
        new = re.sub(r"<!-- STUDY RUNS START -->\n.*?<!-- STUDY RUNS END -->\n",
                     lambda m: f"<!-- STUDY RUNS START -->\n{runs.rstrip()}\n<!-- STUDY RUNS END -->\n", new, flags=re.S)
        if new != text:
            Path(path).write_text(new)
            changed.append(str(path))
    return changed
