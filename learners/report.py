"""Training reports: success and intervention rates against env steps, as a plot and a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from learners.rollout import episode_rates


def rolling(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over ``window`` items (shorter at the start)."""
    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_training(episodes: list[dict[str, Any]], base_success: float | None, final_success: float | None,
                  path: str | Path, title: str = "training", window: int = 20) -> Path:
    """Plot rolling success and intervention rates of the actor's episodes against env steps.

    Args:
        episodes: the actor's ``episodes.jsonl`` records (``env_steps``, ``success``,
            ``intervention_steps``, ``length``).
        base_success: success rate of the base policy alone (dashed line), or None.
        final_success: evaluated success rate at the end (dotted line), or None.
        path: PNG to write.
        window: episodes in the rolling mean.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["env_steps"] for e in episodes]
    succ = rolling([float(e["success"]) for e in episodes], window)
    interv = rolling([e["intervention_steps"] / max(1, e["length"]) for e in episodes], window)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, succ, label=f"success rate (rolling {window} episodes, training)", color="tab:blue")
    ax.plot(steps, interv, label="intervention rate (fraction of steps)", color="tab:orange")
    if base_success is not None:
        ax.axhline(base_success, ls="--", color="gray", label=f"BC base alone: {base_success:.0%}")
    if final_success is not None:
        ax.axhline(final_success, ls=":", color="tab:green", lw=2, label=f"final eval (no noise): {final_success:.0%}")
    ax.set_xlabel("env steps")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def summarize(bc: dict[str, Any], online: dict[str, Any], final: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The demo's short report (JSON-able, with a ``text`` rendering)."""
    eps = online["episodes"]
    first, last = eps[:20], eps[-20:]

    def rate(chunk: list[dict[str, Any]], key: str) -> float:
        success, interv = episode_rates(chunk)
        return success if key == "success" else interv

    act, learn = online["actor"], online["learner"]
    transport = act.get("transport", {})
    report = {
        "bc_eval_success": bc["eval"]["success_rate"], "bc_eval_ci95": bc["eval"]["ci95"],
        "final_eval_success": final["success_rate"], "final_eval_ci95": final["success_ci95"],
        "final_cycle_time_s": final["cycle_time_s"],
        "training_success_first20": rate(first, "success"), "training_success_last20": rate(last, "success"),
        "intervention_rate_first20": rate(first, "interv"), "intervention_rate_last20": rate(last, "interv"),
        "env_steps": act["env_steps"], "episodes": len(eps), "learner_updates": learn["updates"],
        "weight_versions_used": act["weight_updates"], "transitions_sent": transport.get("sent"),
        "transitions_received": learn["env_steps"], "seconds": seconds,
    }
    lo, hi = report["final_eval_ci95"]
    report["text"] = "\n".join([
        "",
        "=== hilr demo report ===",
        f"BC base alone      : {report['bc_eval_success']:.0%} success",
        f"base + residual    : {report['final_eval_success']:.0%} success (95% CI {lo:.0%}-{hi:.0%}), "
        f"cycle time {report['final_cycle_time_s'] if report['final_cycle_time_s'] is None else round(report['final_cycle_time_s'], 2)} s",
        f"training episodes  : success {report['training_success_first20']:.0%} (first 20) -> "
        f"{report['training_success_last20']:.0%} (last 20); interventions "
        f"{report['intervention_rate_first20']:.0%} -> {report['intervention_rate_last20']:.0%} of steps",
        f"learning           : {report['env_steps']} env steps, {report['learner_updates']} updates, "
        f"{report['weight_versions_used']} weight versions used by the actor",
        f"transport          : {report['transitions_sent']} sent, {report['transitions_received']} received",
        f"wall time          : {seconds / 60:.1f} min",
    ])
    return report
