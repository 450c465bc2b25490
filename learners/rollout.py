"""Small in-process rollout helpers: expert episodes in the dataset format, policy evaluation.

Used by ``hilr train-bc`` (evaluation of the trained policy in sim), the learning test and
the benchmarks. The actor *process* (learners/apps/actor.py) has its own loop.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np


def _to_episode(obs: list[dict[str, np.ndarray]], steps: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    ep = {f"obs/{k}": np.stack([o[k] for o in obs]) for k in obs[0]}
    for k in ("action", "base_action", "residual_action"):
        if k in steps[0]:
            ep[k] = np.stack([s[k] for s in steps]).astype(np.float32)
    ep["reward"] = np.asarray([s["reward"] for s in steps], np.float32)
    for k in ("terminated", "truncated", "intervened", "success"):
        ep[k] = np.asarray([bool(s.get(k, False)) for s in steps], bool)
    ep["episode_success"] = np.asarray(bool(ep["success"].any()))
    return ep


def collect_episodes(env: Any, act: Callable[[Mapping[str, np.ndarray], dict[str, Any]], np.ndarray],
                     num_episodes: int, seed: int = 0, reset: Callable[[], None] | None = None,
                     only_successful: bool = False, max_attempts: int | None = None) -> list[dict[str, np.ndarray]]:
    """Roll out ``act(obs, info) -> (7,)`` and return episodes in the recorded-dataset layout.

    Args:
        env: a gymnasium env (the contract's obs dict and 7-D action).
        act: the policy (e.g. a scripted expert's ``act``).
        num_episodes: episodes to return.
        seed: reset seed of the first episode (then +1 per attempt).
        reset: called before each episode (e.g. ``expert.reset``).
        only_successful: keep only successful episodes (demonstrations).
        max_attempts: give up after this many episodes (default ``10 * num_episodes``).

    Returns:
        Episodes with keys ``obs/<k>`` (T+1, ...), ``action``, ``reward``, ``terminated``,
        ``truncated``, ``intervened``, ``success`` (T,), ``episode_success``.
    """
    out: list[dict[str, np.ndarray]] = []
    attempts = 0
    max_attempts = max_attempts or 10 * num_episodes
    while len(out) < num_episodes and attempts < max_attempts:
        obs, info = env.reset(seed=seed + attempts)
        attempts += 1
        if reset:
            reset()
        obs_list, steps = [obs], []
        done = False
        while not done:
            a = np.asarray(act(obs, info), np.float32)
            obs, r, term, trunc, info = env.step(a)
            steps.append({"action": a, "reward": r, "terminated": term, "truncated": trunc,
                          "success": info.get("success", False)})
            obs_list.append(obs)
            done = term or trunc
        ep = _to_episode(obs_list, steps)
        if ep["episode_success"] or not only_successful:
            out.append(ep)
    if len(out) < num_episodes:
        raise RuntimeError(f"only {len(out)}/{num_episodes} usable episodes in {attempts} attempts")
    return out


def evaluate(env: Any, act: Callable[[Mapping[str, np.ndarray]], np.ndarray], num_episodes: int,
             seed: int = 10_000, reset: Callable[[], None] | None = None,
             success_key: str = "success") -> dict[str, Any]:
    """Success rate of ``act(obs) -> (7,)`` over ``num_episodes`` (fixed reset seeds).

    Returns:
        ``success_rate``, ``successes`` (list of bools), ``mean_steps``, ``episodes``, and a
        95 % Wilson interval ``ci95``.
    """
    successes, lengths = [], []
    for i in range(num_episodes):
        obs, info = env.reset(seed=seed + i)
        if reset:
            reset()
        done, steps, success = False, 0, False
        while not done:
            obs, _, term, trunc, info = env.step(np.asarray(act(obs), np.float32))
            steps += 1
            success = success or bool(info.get(success_key, False))
            done = term or trunc
        successes.append(success)
        lengths.append(steps)
    n, k = num_episodes, sum(successes)
    return {"success_rate": k / n, "successes": successes, "mean_steps": float(np.mean(lengths)),
            "episodes": n, "ci95": list(wilson_interval(k, n))}


def episode_rates(episodes: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """(success rate, intervention rate) of episode records (``success``, ``intervention_steps``,
    ``length``): the fraction of episodes that succeeded and of steps the operator drove."""
    if not episodes:
        return 0.0, 0.0
    steps = max(1, sum(int(e["length"]) for e in episodes))
    return (sum(bool(e["success"]) for e in episodes) / len(episodes),
            sum(int(e["intervention_steps"]) for e in episodes) / steps)


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate k/n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))
