"""Per-episode statistics of the actor loop: return, interventions, the gate, and who set the
reward (the robot's success, the operator's label or the reward classifier, audited against a
sim's privileged success)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def audit_counts(ep: dict[str, Any], info: Mapping[str, Any]) -> None:
    """Add one step's reward-source audit to the episode's counters (``ep``).

    ``classifier_max_p`` keeps the episode's highest classifier probability; with a privileged
    success beside the classifier's decision (sims only) the step lands in ``audit_tp/fp/fn/tn``.
    """
    p = info.get("success_probability")
    if p is not None and np.isfinite(p):
        ep["classifier_max_p"] = max(ep.get("classifier_max_p", 0.0), float(p))
    truth = info.get("privileged_success")
    if truth is None:
        return
    said = bool(info.get("classifier_success", False))
    key = {(True, True): "audit_tp", (True, False): "audit_fp", (False, True): "audit_fn",
           (False, False): "audit_tn"}[(said, bool(truth))]
    ep[key] = ep.get(key, 0) + 1
    ep["privileged_success"] = ep.get("privileged_success", False) or bool(truth)


def count_step(ep: dict[str, Any], info: Mapping[str, Any], reward: float, intervened: bool, was_intervened: bool,
               gate_open: bool) -> None:
    """Add one step to the episode's statistics (``ep``): return, length, success, interventions,
    gate, the reward-source audit and who labelled the episode."""
    ep["interventions"] += int(intervened and not was_intervened)
    ep["intervention_steps"] += int(intervened)
    ep["gate_open_steps"] += int(gate_open)
    ep["return"] += float(reward)
    ep["length"] += 1
    ep["success"] = ep["success"] or bool(info.get("success", False))
    audit_counts(ep, info)
    if info.get("success") or info.get("label"):
        ep["reward_source"] = str(info.get("reward_source", "robot"))
        ep["label"] = info.get("label", ep["label"])
        ep["disagreement"] = ep["disagreement"] or bool(info.get("disagreement", False))


def reward_audit(eps: list[dict[str, Any]]) -> dict[str, Any]:
    """Who set the rewards, and (sims only) the classifier's precision/recall against the
    privileged success, per step and per episode; empty when no episode had a classifier or label."""
    out: dict[str, Any] = {}
    sources: dict[str, int] = {}
    for e in eps:
        sources[e.get("reward_source", "none")] = sources.get(e.get("reward_source", "none"), 0) + 1
    if not set(sources) <= {"none", "robot"}:
        out["reward_sources"] = sources
        out["disagreements"] = int(sum(bool(e.get("disagreement")) for e in eps))
    audited = [e for e in eps if any(k in e for k in ("audit_tp", "audit_fp", "audit_fn", "audit_tn"))]
    if audited:
        c = {k: int(sum(e.get(k, 0) for e in audited)) for k in ("audit_tp", "audit_fp", "audit_fn", "audit_tn")}
        said = [e["success"] and e.get("reward_source") == "classifier" for e in audited]
        truth = [bool(e.get("privileged_success")) for e in audited]
        tp = sum(s and t for s, t in zip(said, truth))
        fp = sum(s and not t for s, t in zip(said, truth))
        fn = sum(t and not s for s, t in zip(said, truth))
        out["classifier_audit"] = {
            "steps": c, "step_precision": c["audit_tp"] / max(1, c["audit_tp"] + c["audit_fp"]),
            "step_recall": c["audit_tp"] / max(1, c["audit_tp"] + c["audit_fn"]),
            "episodes": len(audited), "episode_tp": tp, "episode_fp": fp, "episode_fn": fn,
            "episode_precision": tp / max(1, tp + fp), "episode_recall": tp / max(1, tp + fn)}
    return out
