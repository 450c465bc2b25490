"""Diagnostics of ``hilr bench learn``: is a failure the residual's bound or the learning?

In sim a scripted expert knows the right action, so two numbers separate the two causes:

- the **oracle ceiling**: the success rate of ``base + scale * clip((expert - base) / scale)``,
  i.e. the best a residual bounded by ``scale`` could do if it were the noise-free expert's
  correction. A residual method cannot be expected to beat it; if it is near the base, the
  bound (``residual_scale``) is what holds learning back;
- **critic prefers oracle**: at fixed states visited by the base, how often the critic
  ensemble's mean Q ranks the oracle's action above the base's. Near 0.5 the critic cannot
  rank corrections, and an actor that climbs it climbs noise.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def oracle_action(base_action: np.ndarray, expert_action: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``clip(base + scale * clip((expert - base) / scale, -1, 1), -1, 1)``, ``(A,)`` float32."""
    residual = np.clip((np.asarray(expert_action) - base_action) / scale, -1.0, 1.0)
    return np.clip(base_action + scale * residual, -1.0, 1.0).astype(np.float32)


def _rollout(env: Any, base: Any, expert: Any, scale: np.ndarray, seed: int, follow_oracle: bool,
             visit: Callable[[dict, np.ndarray, np.ndarray], None] | None = None) -> bool:
    obs, info = env.reset(seed=seed)
    base.reset()
    expert.reset()
    done, success = False, False
    while not done:
        b = np.asarray(base.act(obs), np.float32)
        o = oracle_action(b, expert.act(obs, info), scale)
        if visit is not None:
            visit(obs, b, o)
        obs, _, term, trunc, info = env.step(o if follow_oracle else b)
        success = success or bool(info.get("success", False))
        done = term or trunc
    return success


def oracle_ceiling(env: Any, base: Any, task: Any, scale: np.ndarray, episodes: int, seed: int) -> dict[str, Any]:
    """Success of the bounded oracle residual on ``episodes`` fixed reset seeds from ``seed``."""
    from robot_env.sim.experts import make_expert

    expert = make_expert(task, noise=0.0, seed=0)
    successes = [_rollout(env, base, expert, scale, seed + i, follow_oracle=True) for i in range(episodes)]
    base.reset()
    return {"success_rate": float(np.mean(successes)), "successes": [bool(s) for s in successes]}


def probe_states(env: Any, base: Any, task: Any, scale: np.ndarray, episodes: int, seed: int) -> dict[str, Any]:
    """States the base visits, with its action and the oracle's there (only where they differ)."""
    from robot_env.sim.experts import make_expert

    expert = make_expert(task, noise=0.0, seed=0)
    obs_list: list[dict] = []
    bases, oracles = [], []

    def visit(obs: dict, b: np.ndarray, o: np.ndarray) -> None:
        if np.abs(o - b).max() > 1e-3:
            obs_list.append({k: np.asarray(v).copy() for k, v in obs.items()})
            bases.append(b)
            oracles.append(o)

    for i in range(episodes):
        _rollout(env, base, expert, scale, seed + i, follow_oracle=False, visit=visit)
    base.reset()
    return {"obs": obs_list, "base": np.asarray(bases, np.float32), "oracle": np.asarray(oracles, np.float32)}


def critic_prefers_oracle(agent: Any, probes: dict[str, Any]) -> float | None:
    """Fraction of probe states where the ensemble-mean Q ranks the oracle above the base action."""
    import torch

    from policies.encoders import obs_to_tensors

    if not probes["obs"] or not agent.learns:
        return None
    keys = list(agent.spec)
    batch = {k: np.stack([o[k] for o in probes["obs"]]) for k in keys}
    with torch.no_grad():
        agent.encoder.eval()
        feat = agent.encoder(obs_to_tensors(batch, agent.device, batched=True))
        q_base = agent.critic(feat, torch.as_tensor(probes["base"], device=agent.device)).mean(0)
        q_oracle = agent.critic(feat, torch.as_tensor(probes["oracle"], device=agent.device)).mean(0)
    return float((q_oracle > q_base).float().mean())
