"""The actor loop: base policy -> residual -> intervention -> safety -> arm, streaming transitions.

One step of :meth:`ActorLoop.step`:

1. take the newest weights, if the learner published any (non-blocking, between steps);
2. ``agent.act(obs)`` -> ``(action, base_action, residual_action)`` (with
   ``learner.features_from=actor`` the frozen backbone runs once per frame and the residual
   acts on its features);
3. ``env.step(action)``: the env's wrappers let the operator override the action
   (``info["intervened"]``, ``info["action"]`` = what was executed), then clip it to the
   safety box before it reaches the arm;
4. queue the transition for the learner (never waits on the network: the sender's outbox
   keeps it until the learner acknowledges it, and spills to disk if the learner is gone);
   camera images travel as they are, or as those features with the backbone's digest.

Per-episode statistics (success, return, interventions, cycle time, policy version) are
appended to ``episodes.jsonl`` in the run directory: the demo plots them and ``hilr eval``
summarises them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from learners.agent_model import ModelRefused, adopt_model, model_changes, model_doc
from learners.episode_stats import count_step, reward_audit
from learners.inprocess import executed_action
from learners.rollout import episode_rates, wilson_interval
from learners.transport.spec import DIGEST

if TYPE_CHECKING:
    from learners.feature_cache import FeatureCache

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ActorConfig:
    """Actor loop settings (the ``actor`` block of ``launch/config/actor.yaml``).

    Attributes:
        actor_id: name of this actor on the wire (one per robot / sim worker).
        total_steps: env steps to run (0 = until ``episodes`` is reached).
        episodes: episodes to run (0 = until ``total_steps`` is reached).
        deterministic: act with the residual's mean (evaluation), no exploration noise.
        warmup_steps: first steps act with base + uniform noise (ResFiT warm-up); None =
            the agent config's ``warmup_steps``.
        seed: reset seed of the first episode (then +1 per episode).
        log_every_episodes: print a progress line every this many episodes.
        max_steps_per_s: pace a free-running sim at most this many env steps per second of
            wall time, at absolute deadlines (0 = as fast as possible). Lets a sim actor run
            faster than real time yet no faster than the learner can digest, as a real robot would.
    """

    actor_id: str = "actor0"
    total_steps: int = 5000
    episodes: int = 0
    deterministic: bool = False
    warmup_steps: int | None = None
    seed: int = 0
    log_every_episodes: int = 10
    max_steps_per_s: float = 0.0

    def __post_init__(self) -> None:
        if self.max_steps_per_s < 0:
            raise ValueError("max_steps_per_s must be >= 0")
        if self.total_steps < 0 or self.episodes < 0:
            raise ValueError("total_steps and episodes must be >= 0")
        if self.total_steps == 0 and self.episodes == 0:
            raise ValueError("set total_steps or episodes (both 0 would run forever)")


def make_transition(obs: Mapping[str, np.ndarray], next_obs: Mapping[str, np.ndarray], executed: np.ndarray,
                    base: np.ndarray, residual: np.ndarray, reward: float, terminated: bool,
                    truncated: bool, info: Mapping[str, Any]) -> dict[str, Any]:
    """The wire/replay form of one step (docs/CONTRACTS.md): numpy arrays only."""
    return {
        "obs": {k: np.asarray(v) for k, v in obs.items()},
        "next_obs": {k: np.asarray(v) for k, v in next_obs.items()},
        "action": np.asarray(executed, np.float32),
        "base_action": np.asarray(base, np.float32),
        "residual_action": np.asarray(residual, np.float32),
        "reward": np.float32(reward),
        "terminated": np.bool_(terminated),
        "truncated": np.bool_(truncated),
        "intervened": np.bool_(info.get("intervened", False)),
        "success": np.bool_(info.get("success", False)),
    }


class ActorLoop:
    """Runs the policy on the robot (or sim) and streams what happens.

    Args:
        env: the wrapped env (optionally with ``teleop.InterventionWrapper`` outermost-ish:
            anything exposing ``set_policy_parts`` gets the base/residual split).
        agent: a :class:`learners.agent.Agent` (its base policy is the frozen BC policy).
        cfg: loop settings.
        sender: a started ``TransitionSender`` or None (evaluation / no learning).
        weights: a started ``WeightSubscriber`` or None.
        run_dir: where ``episodes.jsonl`` goes (None: nowhere).
        tensorboard: also write each episode's statistics (and the running success and
            intervention rates) as TensorBoard scalars to ``run_dir/tensorboard``.
    """

    def __init__(self, env: Any, agent: Any, cfg: ActorConfig, sender: Any = None, weights: Any = None,
                 run_dir: str | Path | None = None, tensorboard: bool = False) -> None:
        self.env, self.agent, self.cfg = env, agent, cfg
        self.sender, self.weights = sender, weights
        self.policy_version = 0
        self.weight_updates = 0
        self.adopted: dict[str, Any] = {}  # learner model settings this actor took over (setting -> value)
        self.refused: str | None = None  # why the last refused weights were refused
        self._pending: tuple[int, Any, Any] | None = None  # weights of another model, adopted between episodes
        self.env_steps = 0
        self.episodes: list[dict[str, Any]] = []
        self.warmup_steps = agent.cfg.warmup_steps if cfg.warmup_steps is None else cfg.warmup_steps
        self._episode_log = None
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            self._episode_log = open(Path(run_dir) / "episodes.jsonl", "a", buffering=1)
        self._writer = None
        if run_dir is not None and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        self._set_parts = self._find_set_parts(env)
        self._pace_t0: float | None = None
        self._features: Any = None  # FeatureCache of the current agent's encoder (features_from=actor)

    @property
    def features(self) -> FeatureCache | None:
        """The :class:`learners.feature_cache.FeatureCache` that turns this actor's camera images
        into its frozen backbone's features (``learner.features_from=actor``), else None (also in
        ``bc`` mode: nothing reads them). Rebuilt when the agent is (an adopted model keeps the
        base's backbone, so the digest stays)."""
        cfg = self.agent.cfg
        if not (getattr(cfg, "cache_features", False) and getattr(cfg, "features_from", "learner") == "actor"
                and self.agent.learns):
            return None
        if self._features is None or self._features.encoder is not self.agent.encoder:
            from learners.feature_cache import FeatureCache

            self._features = FeatureCache(self.agent.encoder)
            log.info("camera features made on this actor: backbone %s", bytes(self._features.digest).hex()[:12])
        return self._features

    @staticmethod
    def _find_set_parts(env: Any) -> Any:
        e = env
        while e is not None:
            if hasattr(e, "set_policy_parts"):
                return e.set_policy_parts
            e = getattr(e, "env", None)
        return None

    # ------------------------------------------------------------------ weights
    def poll_weights(self, between_episodes: bool = False) -> bool:
        """Swap in the newest published weights, if any; True if the version changed.

        Weights whose learner states another model (:mod:`learners.agent_model`: network sizes,
        residual scale, gate) rebuild the agent with those settings, keeping the base policy
        and observation spec; another mode, action size or observation spec is refused
        (counted as ``model_refused``) and the old weights are kept. The rebuild (0.4-2 s for
        paper-sized nets on a CPU) waits for ``between_episodes``, never mid-motion.
        """
        if self.weights is None:
            return False
        if getattr(self.weights, "expected", True) is None and hasattr(self.weights, "expect"):
            self._expect()  # refuse other names/dtypes/shapes at the socket, before any swap
        latest = self.weights.poll_latest()  # validated: finite, magnitude, version order, and spec
        if latest is not None:  # (unless the model differs)
            model = getattr(self.weights, "model", None)
            if model is not None and model != model_doc(self.agent.cfg, self.agent.spec):
                self._pending, latest = (latest[0], latest[1], model), None
        if latest is None and between_episodes and self._pending is not None:
            (version, state, model), self._pending = self._pending, None
            return self._load(version, state, model)
        return False if latest is None else self._load(latest[0], latest[1], None)

    def _load(self, version: int, state: Mapping[str, np.ndarray], model: Mapping[str, Any] | None) -> bool:
        """Load ``state`` into the agent, first rebuilt from ``model`` when given."""
        agent = self.agent
        try:
            if model is not None:
                agent = type(agent)(agent.spec, adopt_model(agent.cfg, agent.spec, model), agent.base)
            agent.load_trainable(state)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:  # wrong model or bad weights: keep the old ones
            reason = "model_refused" if isinstance(exc, ModelRefused) else "load_failed"
            self.refused = f"version {version}: {exc}"
            rejections = getattr(self.weights, "rejections", None)
            if rejections is not None:
                rejections.reject(reason, self.refused)
            else:
                log.error("rejected weights version %d: %s", version, exc)
            return False
        if agent is not self.agent:
            changes = model_changes(self.agent.cfg, agent.cfg)
            self.adopted = {**self.adopted, **{k: v[1] for k, v in changes.items()}}
            log.info("adopted the learner's model (weights version %d): %s", version,
                     "; ".join(f"{k} {v[0]} -> {v[1]}" for k, v in changes.items()) or "no setting changed")
            self.agent = agent
            self._expect()
        self._pending = None  # anything older than what now runs
        self.policy_version = int(version)
        self.weight_updates += 1
        return True

    def _expect(self) -> None:
        """Tell the subscriber the layout and model of the current agent."""
        self.weights.expect(self.agent.trainable_state(), model_doc(self.agent.cfg, self.agent.spec))

    # ------------------------------------------------------------------ loop
    def _done(self) -> bool:
        c = self.cfg
        if getattr(self.env, "quit_requested", False):  # the operator's quit key (teleop.episode_control)
            return True
        return (c.total_steps and self.env_steps >= c.total_steps) or (c.episodes and len(self.episodes) >= c.episodes)

    def run(self, progress: bool = False) -> dict[str, Any]:
        """Run until ``total_steps`` / ``episodes``; returns :meth:`summary`."""
        from tqdm import tqdm

        bar = tqdm(total=self.cfg.total_steps or self.cfg.episodes, disable=not progress,
                   desc="actor", unit="step" if self.cfg.total_steps else "ep", mininterval=1.0)
        try:
            while not self._done():
                before = self.env_steps if self.cfg.total_steps else len(self.episodes)
                self.run_episode(stop_at_budget=True)
                bar.update((self.env_steps if self.cfg.total_steps else len(self.episodes)) - before)
                bar.set_postfix(self.postfix())
        finally:
            bar.close()
            if self._episode_log is not None:
                self._episode_log.close()
                self._episode_log = None
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        return self.summary()

    def run_episode(self, stop_at_budget: bool = False) -> dict[str, Any]:
        """One episode (cut short at the step budget when ``stop_at_budget``)."""
        seed = self.cfg.seed + len(self.episodes)
        self.poll_weights(between_episodes=True)  # the arm is at rest: a model rebuild may take seconds
        obs, info = self.env.reset(seed=seed)
        self.agent.reset()
        feats = self._featurize(obs)
        t0 = time.monotonic()
        ep = {"return": 0.0, "length": 0, "interventions": 0, "intervention_steps": 0, "success": False,
              "gate_open_steps": 0, "reward_source": "none", "label": None, "disagreement": False}
        was_intervened = False
        done = False
        while not done:
            self.poll_weights()
            warm = (not self.cfg.deterministic) and self.env_steps < self.warmup_steps and self.agent.learns
            on_features = {} if feats is None else {"features": feats}  # the backbone already ran on this frame
            action, base, residual = self.agent.act(obs, deterministic=self.cfg.deterministic, warmup=warm,
                                                    **on_features)
            if self._set_parts is not None:
                self._set_parts(base, residual)
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            next_feats = self._featurize(next_obs)
            if self.sender is not None and not info.get("action_dropped", False):  # a dropped action never ran
                self._send((obs, next_obs), (feats, next_feats), action, base, residual, reward, terminated,
                           truncated, info)
            intervened = bool(info.get("intervened", False))
            count_step(ep, info, reward, intervened, was_intervened, bool(getattr(self.agent, "gate_open", None)))
            was_intervened = intervened
            self.env_steps += 1
            self._pace()
            obs, feats = next_obs, next_feats
            done = terminated or truncated
            if stop_at_budget and self.cfg.total_steps and self.env_steps >= self.cfg.total_steps:
                break
            if getattr(self.env, "quit_requested", False):
                break
        ep.update(episode=len(self.episodes), env_steps=self.env_steps, seed=seed,
                  cycle_time_s=time.monotonic() - t0, policy_version=self.policy_version,
                  sim_time_s=ep["length"] * float(getattr(self.env.unwrapped, "dt", 0.0) or 0.0),
                  overruns=int(info.get("control_overruns", 0)), complete=bool(done))
        self._finish_episode(ep)
        return ep

    def _send(self, frames: tuple[Mapping[str, Any], Mapping[str, Any]], feats: tuple[Any, Any], action: np.ndarray,
              base: np.ndarray, residual: np.ndarray, reward: float, terminated: bool, truncated: bool,
              info: Mapping[str, Any]) -> None:
        """Queue one step for the learner: images, or the backbone's features with its digest."""
        obs, next_obs = frames
        # the critic learns from what the arm executed (after the safety clip); what the policy or
        # the operator asked for travels beside it
        executed = executed_action(info, action)
        if feats[0] is None:
            tr = make_transition(obs, next_obs, executed, base, residual, reward, terminated, truncated, info)
        else:  # the backbone's features travel in place of the images, with its digest
            tr = make_transition(feats[0], feats[1], executed, base, residual, reward, terminated, truncated, info)
            tr[DIGEST] = self.features.digest
        tr["requested_action"] = np.asarray(info.get("action", action), np.float32)
        if "success_probability" in info:  # audit trail of the classifier's reward
            tr["success_probability"] = np.float32(info["success_probability"])
        if truncated and not terminated:  # the TD target bootstraps from base(next_obs) + residual
            tr["next_base_action"] = np.asarray(self.agent.base.act(next_obs), np.float32)
        self.sender.send(tr, self.policy_version)

    def _finish_episode(self, ep: dict[str, Any]) -> None:
        """Record a finished episode: the list, episodes.jsonl, TensorBoard and the log."""
        self.episodes.append(ep)
        if self._episode_log is not None:
            self._episode_log.write(json.dumps(ep) + "\n")
        if self._writer is not None:
            self._log_episode(ep)
        if ep["label"] is not None or ep["reward_source"] == "classifier":  # who set the reward, as it happens
            p = ep.get("classifier_max_p")
            log.info("episode %d: %s, reward from %s%s%s", len(self.episodes),
                     "success" if ep["success"] else "no success", ep["reward_source"],
                     f" (classifier max p={p:.2f})" if p is not None else "",
                     ", DISAGREES with the classifier" if ep["disagreement"] else "")
        elif self.cfg.log_every_episodes and len(self.episodes) % self.cfg.log_every_episodes == 0:
            log.info("episode %d: %s", len(self.episodes), self.postfix())

    def _featurize(self, obs: Mapping[str, Any]) -> dict[str, Any] | None:
        """``obs`` with each camera replaced by the frozen backbone's features (one backbone run
        per frame, used to act and to send), or None when the actor sends images."""
        cache = self.features
        return None if cache is None else cache.frame(obs)

    def _log_episode(self, ep: dict[str, Any]) -> None:
        """TensorBoard scalars of one finished episode, against env steps."""
        step = self.env_steps
        for key in ("success", "return", "length", "intervention_steps", "cycle_time_s", "policy_version"):
            self._writer.add_scalar(f"episode/{key}", float(ep[key]), step)
        self._writer.add_scalar("episode/gate_open_fraction", ep["gate_open_steps"] / max(1, ep["length"]), step)
        success, interv = episode_rates(self.episodes[-20:])
        self._writer.add_scalar("actor/success_rate_last20", success, step)
        self._writer.add_scalar("actor/intervention_rate_last20", interv, step)
        self._writer.flush()

    def _pace(self) -> None:
        rate = self.cfg.max_steps_per_s
        if not rate:
            return
        if self._pace_t0 is None:
            self._pace_t0 = time.monotonic() - self.env_steps / rate
        delay = self._pace_t0 + self.env_steps / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    # ------------------------------------------------------------------ reporting
    def postfix(self, last: int = 20) -> dict[str, Any]:
        """Short running stats for a progress bar: success and intervention rates of the last ``last``
        episodes (labelled so, e.g. ``success_last20``: the run's summary counts every episode)."""
        recent = self.episodes[-last:]
        if not recent:
            return {"v": self.policy_version}
        success, interv = episode_rates(recent)
        out = {f"success_last{last}": f"{success:.2f}", f"interv_last{last}": f"{interv:.2f}", "v": self.policy_version}
        if any(e["reward_source"] not in ("none", "robot") for e in recent):
            out["reward"] = recent[-1]["reward_source"]  # who set the last episode's reward
        return out

    def summary(self) -> dict[str, Any]:
        """Success rate (with a 95 % Wilson interval), intervention rate, cycle time, counts."""
        eps = [e for e in self.episodes if e["complete"]] or self.episodes
        n = len(eps)
        succ = int(sum(e["success"] for e in eps))
        lo, hi = wilson_interval(succ, n)
        succ_eps = [e for e in eps if e["success"]]
        out = {
            "episodes": n, "successes": succ, "success_rate": succ / n if n else 0.0,
            "success_ci95": [lo, hi], "env_steps": self.env_steps,
            "intervention_rate": episode_rates(eps)[1],
            "interventions": int(sum(e["interventions"] for e in eps)),
            "mean_return": float(np.mean([e["return"] for e in eps])) if n else 0.0,
            # cycle time = time to finish the task, in robot time (steps x dt), successful episodes only
            "cycle_time_s": float(np.mean([e["sim_time_s"] for e in succ_eps])) if succ_eps else None,
            "policy_version": self.policy_version, "weight_updates": self.weight_updates,
        }
        if self.adopted:
            out["adopted_model"] = dict(self.adopted)
        out.update(reward_audit(eps))
        stats = getattr(self.env, "stats", None)
        if isinstance(stats, dict) and "success_labels" in stats:
            out["operator"] = dict(stats)
        if self.sender is not None:
            out["transport"] = self.sender.stats()
        return out
