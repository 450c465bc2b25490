"""Single-process online training loop: act -> env.step -> replay -> UTD updates.

The same Agent/replay code the actor and learner processes use, without ZMQ: for the
learning test, quick sim studies and debugging. Optional simulated interventions: an
``operator(obs, info, policy_action) -> action | None`` callable that returns the human
action when it takes over.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np
from tqdm import tqdm

from learners.agent import Agent
from learners.replay import MixedReplay
from learners.rollout import evaluate

def executed_action(info: Mapping[str, Any], requested: np.ndarray) -> np.ndarray:
    """The action the arm executed: after the safety clip (``info["safe_action"]``), else after an
    intervention wrapper (``info["action"]``), else what was requested."""
    for key in ("safe_action", "action"):
        if key in info and info[key] is not None:
            return np.asarray(info[key], np.float32)
    return np.asarray(requested, np.float32)


Operator = Callable[[Mapping[str, np.ndarray], dict[str, Any], np.ndarray], "np.ndarray | None"]


def run_online(env: Any, agent: Agent, replay: MixedReplay, total_steps: int, *,
               learning_starts: int = 256, eval_env: Any = None, eval_every: int = 0,
               eval_episodes: int = 20, operator: Operator | None = None, seed: int = 0,
               progress: bool | str = False, eval_seed: int = 10_000,
               on_eval: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Collect ``total_steps`` env steps with ``agent`` and train it online.

    Per env step: ``agent.act`` (warm-up noise for the first ``agent.cfg.warmup_steps``),
    optional operator takeover, ``replay.add`` (the executed action is the one after the
    env's safety clip, ``info["safe_action"]``; the requested one is kept beside it), then
    ``agent.cfg.utd`` updates on ``replay.sample(batch_size)`` once ``learning_starts``
    transitions are stored. Every ``eval_every`` steps: ``eval_episodes`` deterministic
    episodes on the fixed reset seeds ``eval_seed, eval_seed + 1, ...`` (the same for every
    method, so comparisons are paired); ``on_eval(step, result)`` sees each result.
    ``progress``: show a progress bar over env steps (a string is its label).

    Returns:
        ``updates``, ``actor_updates``, ``episodes``, ``train_success_rate``,
        ``intervention_steps``, ``curve`` (list of ``[env_step, eval success rate]``), ``last_metrics``,
        ``seconds``.
    """
    t0 = time.monotonic()
    obs, info = env.reset(seed=seed)
    agent.reset()
    episodes, successes, interventions = 0, 0, 0
    curve: list[list[float]] = []
    metrics: dict[str, float] = {}
    ep_success = False
    bar = tqdm(range(1, total_steps + 1), disable=not progress, mininterval=1.0, leave=False,
               desc=progress if isinstance(progress, str) else "online", unit="step")
    for step in bar:
        action, base, residual = agent.act(obs, warmup=step <= agent.cfg.warmup_steps)
        intervened = False
        if operator is not None:
            human = operator(obs, info, action)
            if human is not None:
                action, intervened = np.asarray(human, np.float32), True
                interventions += 1
        next_obs, reward, terminated, truncated, info = env.step(action)
        ep_success = ep_success or bool(info.get("success", False))
        tr = {"obs": obs, "next_obs": next_obs, "action": executed_action(info, action), "requested_action": action,
              "base_action": base, "residual_action": residual, "reward": float(reward), "terminated": terminated,
              "truncated": truncated, "intervened": intervened}
        if truncated and not terminated:  # the time-limit target bootstraps from base(next_obs) + residual
            tr["next_base_action"] = np.asarray(agent.base.act(next_obs), np.float32)
        replay.add(tr)
        obs = next_obs
        if terminated or truncated:
            episodes += 1
            successes += int(ep_success)
            ep_success = False
            obs, info = env.reset(seed=seed + episodes)
            agent.reset()
        if len(replay.online) >= learning_starts and agent.learns:
            for _ in range(agent.cfg.utd):
                metrics = agent.update(replay.sample(agent.cfg.batch_size))
        if eval_env is not None and eval_every and step % eval_every == 0:
            res = evaluate(eval_env, lambda o: agent.act(o, deterministic=True)[0], eval_episodes,
                           seed=eval_seed, reset=agent.reset)
            curve.append([step, res["success_rate"]])
            bar.set_postfix_str(f"eval success {res['success_rate']:.2f} at {step}")
            if on_eval is not None:
                on_eval(step, res)
            obs, info = env.reset(seed=seed + 100_000 + step)
            agent.reset()  # the chunked base must not carry the last evaluation episode's chunk
    return {"updates": agent.num_updates, "actor_updates": agent.num_actor_updates, "episodes": episodes,
            "train_success_rate": successes / max(episodes, 1), "intervention_steps": interventions,
            "curve": curve, "last_metrics": metrics, "seconds": time.monotonic() - t0}
