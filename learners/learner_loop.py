"""The learner loop: receive transitions -> replay -> updates at the UTD ratio -> publish weights.

Nothing is lost when the learner dies: the receiver runs with ``ack_policy="commit"``, so a
transition is acknowledged to its actor only once a checkpoint that contains it (in the
replay buffer) is on disk. Transitions received after the last checkpoint stay in the
actor's outbox and are re-sent to the restarted learner, which de-duplicates them with
the receiver state saved in the checkpoint.

Checkpoint layout (``<checkpoint_dir>/step_<updates>_<env steps>/``, the newest named in
``LATEST``): ``agent.safetensors`` (networks, targets, optimisers, ``log_alpha``, counters),
``online.npz`` / ``demo.npz`` (replay buffers, bit-exact), ``learner.json`` (counters,
weight version, receiver de-duplication state, RNG-free bookkeeping), ``MANIFEST.json``
(sha256 of each file). Written beside the previous one, verified, then switched to
atomically; a corrupt newest checkpoint falls back to the previous one
(:mod:`learners.learner_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from learners import learner_checkpoint as ckpt
from learners.agent_model import model_doc
from learners.replay import MixedReplay, ReplayBuffer
from learners.rollout import episode_rates
from robot_env.atomic import atomic_write, fsync_dir

log = logging.getLogger(__name__)

# the residual's health at a glance in the learner's log line (all metrics go to TensorBoard)
LOGGED_DIAGNOSTICS = ("train/critic_loss", "train/q_base", "train/q_pi", "train/q_std_pi",
                      "train/residual_abs_mean", "train/residual_saturation", "train/bc_keep_rate")


@dataclasses.dataclass
class LearnerLoopConfig:
    """Learner loop settings (the ``loop`` block of ``launch/config/learner.yaml``).

    Attributes:
        learning_starts: online transitions before the first update.
        publish_every: publish weights every this many critic updates.
        checkpoint_every_s: seconds between checkpoints (acks to the actors wait for them).
        keep_checkpoints: how many checkpoint folders to keep.
        max_updates: stop after this many updates (0 = no limit).
        max_env_steps: stop once this many transitions arrived and were trained on (0 = no limit).
        max_seconds: stop after this long (0 = no limit).
        idle_exit_s: stop when no transition arrived for this long after the first (0 = never).
        log_every_s: TensorBoard/console metrics period.
    """

    learning_starts: int = 500
    publish_every: int = 50
    checkpoint_every_s: float = 30.0
    keep_checkpoints: int = 2
    max_updates: int = 0
    max_env_steps: int = 0
    max_seconds: float = 0.0
    idle_exit_s: float = 0.0
    log_every_s: float = 5.0

    def __post_init__(self) -> None:
        if self.learning_starts < 1 or self.publish_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("learning_starts, publish_every and keep_checkpoints must be >= 1")
        if self.checkpoint_every_s <= 0:
            raise ValueError("checkpoint_every_s must be > 0")


class EpisodeTracker:
    """Per-actor episode statistics rebuilt from the streamed transitions."""

    def __init__(self) -> None:
        self._open: dict[str, dict[str, float]] = defaultdict(lambda: {"return": 0.0, "length": 0,
                                                                      "intervention_steps": 0, "success": 0})
        self.finished: list[dict[str, Any]] = []

    def add(self, actor_id: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Account one transition; returns the episode's stats when it just ended."""
        ep = self._open[actor_id]
        ep["return"] += float(data["reward"])
        ep["length"] += 1
        ep["intervention_steps"] += int(bool(data.get("intervened", False)))
        ep["success"] = max(ep["success"], int(bool(data.get("success", False))))
        if bool(data["terminated"]) or bool(data["truncated"]):
            done = dict(ep, actor=actor_id)
            del self._open[actor_id]
            self.finished.append(done)
            return done
        return None

    def recent(self, n: int = 20) -> dict[str, float]:
        """Success rate, intervention rate and mean return over the last ``n`` episodes."""
        eps = self.finished[-n:]
        if not eps:
            return {}
        success, interv = episode_rates(eps)
        return {"success_rate": success, "intervention_rate": interv,
                "episode_return": float(np.mean([e["return"] for e in eps])),
                "episode_length": float(np.mean([e["length"] for e in eps]))}


class LearnerLoop:
    """Trains the agent from what the actors stream, publishes weights, checkpoints.

    Args:
        agent: a :class:`learners.agent.Agent` (no base policy needed: base actions travel
            in the transitions).
        replay: online + demo buffers (the demo buffer already holds the demonstrations).
        receiver: a started ``TransitionReceiver`` (``ack_policy="commit"`` for no loss).
        publisher: a started ``WeightPublisher``.
        cfg: loop settings.
        checkpoint_dir: where checkpoints go (resumed from when it holds one).
        writer: optional ``torch.utils.tensorboard.SummaryWriter``.
        updater: a ``learners.distributed.ShardedUpdater`` on rank 0 of a data-parallel
            learner (each update then samples ``world_size`` batches' worth); None = one process.
    """

    def __init__(self, agent: Any, replay: MixedReplay, receiver: Any, publisher: Any,
                 cfg: LearnerLoopConfig, checkpoint_dir: str | Path, writer: Any = None,
                 updater: Any = None) -> None:
        self.agent, self.replay, self.cfg = agent, replay, cfg
        self.updater = updater
        self.receiver, self.publisher, self.writer = receiver, publisher, writer
        self.checkpoint_dir = Path(checkpoint_dir)
        self.env_steps = 0
        self.version = 0
        self.episodes = EpisodeTracker()
        self.metrics: dict[str, float] = {}
        self.policy_lag: list[int] = []
        self._t_log = self._t_ckpt = time.monotonic()
        self._counts_at_log = (0, 0)
        self._idle_since: float | None = None  # when the learner last saw no transition and ran no update
        self._idle_logged = 0.0  # when it last said so (once a minute)

    # ------------------------------------------------------------------ checkpoints
    def latest_checkpoint(self) -> Path | None:
        """Folder ``LATEST`` names (complete by construction), or None."""
        found = ckpt.candidates(self.checkpoint_dir) if self.checkpoint_dir.exists() else []
        return found[0] if found else None

    def save_checkpoint(self) -> Path:
        """Write a checkpoint beside the previous one, verify it, switch ``LATEST`` to it,
        then acknowledge everything it contains and prune the oldest."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        name = ckpt.unique_name(self.checkpoint_dir, f"step_{self.agent.num_updates:09d}_{self.env_steps:09d}")
        tmp = self.checkpoint_dir / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.agent.save(tmp / "agent.safetensors")
        self.replay.online.save(tmp / "online.npz")
        self.replay.demo.save(tmp / "demo.npz")
        state = {"checkpoint_format": 2, "env_steps": self.env_steps, "version": self.version,
                 "receiver": self.receiver.state_dict(), "episodes": self.episodes.finished[-1000:],
                 "prev_intervened": self.replay._prev_intervened}
        atomic_write(tmp / "learner.json", json.dumps(state))
        ckpt.write_manifest(tmp)  # hashes what is on disk: the verification of the new folder
        final = self.checkpoint_dir / name
        os.replace(tmp, final)  # a new name: the previous checkpoint is untouched
        fsync_dir(self.checkpoint_dir)
        ckpt.verify(final, hashes=False)
        ckpt.switch_latest(self.checkpoint_dir, name)
        self.receiver.commit()  # only now may the actors forget these transitions
        old = [p for p in ckpt.checkpoint_folders(self.checkpoint_dir) if p != final]
        for p in old[: max(0, len(old) - (self.cfg.keep_checkpoints - 1))]:
            shutil.rmtree(p, ignore_errors=True)
        self._t_ckpt = time.monotonic()
        return final

    def resume(self, path: Path | None = None) -> bool:
        """Restore from ``path``, or from the newest checkpoint that verifies (falling back
        to older ones with one logged line each); False if there is none.

        Raises:
            RuntimeError: checkpoints exist but none of them loads (each reason listed).
        """
        if self.checkpoint_dir.exists():
            ckpt.clean_stale(self.checkpoint_dir)
        found = [path] if path is not None else (ckpt.candidates(self.checkpoint_dir)
                                                 if self.checkpoint_dir.exists() else [])
        if not found:
            return False
        errors = []
        for i, folder in enumerate(found):
            try:
                self._load(folder)
            except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint: try the previous one
                why = f"{type(exc).__name__}: {exc}"
                errors.append(f"{folder.name}: {why}")
                nxt = found[i + 1].name if i + 1 < len(found) else None
                log.error("checkpoint %s is unusable (%s); %s", folder, why,
                          f"falling back to {nxt}" if nxt else "no older checkpoint left")
                continue
            log.info("resumed from %s: %d env steps, %d updates, weights v%d", folder, self.env_steps,
                     self.agent.num_updates, self.version)
            return True
        raise RuntimeError(f"no usable checkpoint in {self.checkpoint_dir}: " + "; ".join(errors))

    def _load(self, path: Path) -> None:
        """Verify then load one checkpoint folder; nothing is assigned before all parts read."""
        has_manifest = (path / ckpt.MANIFEST).exists()
        if has_manifest:
            ckpt.verify(path)
        state = json.loads((path / "learner.json").read_bytes())
        if not has_manifest:
            if state.get("checkpoint_format", 1) >= 2:
                raise ckpt.CorruptCheckpoint(f"{path.name}: {ckpt.MANIFEST} is missing")
            log.warning("checkpoint %s has no content hashes (written before they existed); loading unchecked", path)
        env_steps, version = int(state["env_steps"]), int(state["version"])
        receiver_state, episodes = state["receiver"], list(state["episodes"])
        online = ReplayBuffer.load(path / "online.npz")
        demo = ReplayBuffer.load(path / "demo.npz")
        # a frame transform (cached backbone features) is code, not data: keep the running one
        online.frame_transform, demo.frame_transform = self.replay.online.frame_transform, self.replay.demo.frame_transform
        self.agent.load(path / "agent.safetensors")
        self.replay.online, self.replay.demo = online, demo
        self.env_steps, self.version = env_steps, version
        self.receiver.load_state_dict(receiver_state)
        self.episodes.finished = episodes
        self.replay._prev_intervened = bool(state["prev_intervened"])

    # ------------------------------------------------------------------ loop
    def publish(self) -> None:
        """Send the trainable weights to the actors as the next version, with the model settings
        that shape them (an actor started with another ``learner=`` config builds the same networks)."""
        self.version += 1
        self.publisher.publish(self.version, self.agent.trainable_state(),
                               model=model_doc(self.agent.cfg, self.agent.spec))

    def ingest(self, timeout_s: float) -> int:
        """Move received transitions into the replay buffers; returns how many."""
        items = self.receiver.poll(max_items=512, timeout_s=timeout_s)
        stored = 0
        for tr in items:
            try:
                self.replay.add(tr.data)
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                # the receiver validates the layout; this is the last guard: one transition
                # never stops the learner (counted with the receiver's rejections)
                self.receiver.rejections.reject("replay_add", f"{tr.actor_id}/{tr.stream}/{tr.seq}: {exc}")
                continue
            stored += 1
            self.env_steps += 1
            self.policy_lag.append(self.version - tr.policy_version)
            ep = self.episodes.add(tr.actor_id, tr.data)
            if ep is not None and self.writer is not None:
                for k in ("return", "length", "intervention_steps", "success"):
                    self.writer.add_scalar(f"episode/{k}", ep[k], self.env_steps)
        return stored

    def update(self) -> dict[str, float]:
        """One update on a fresh batch (sharded across ranks when data-parallel)."""
        bs = self.agent.cfg.batch_size
        if self.updater is None:
            return self.agent.update(self.replay.sample(bs))
        from learners.distributed import world_size

        return self.updater.update(self.replay.sample(bs * world_size()))

    def _wants_update(self) -> bool:
        if not self.agent.learns or len(self.replay.online) < self.cfg.learning_starts:
            return False
        budget = self.agent.cfg.utd * (self.env_steps - self.cfg.learning_starts + 1)
        return self.agent.num_updates < budget

    def _should_stop(self, t0: float, last_rx: float | None) -> str | None:
        c, now = self.cfg, time.monotonic()
        if c.max_updates and self.agent.num_updates >= c.max_updates:
            return "max_updates"
        if c.max_env_steps and self.env_steps >= c.max_env_steps and not self._wants_update():
            return "max_env_steps"
        if c.max_seconds and now - t0 >= c.max_seconds:
            return "max_seconds"
        if c.idle_exit_s and last_rx is not None and now - last_rx >= c.idle_exit_s and not self._wants_update():
            return "idle"
        return None

    def run(self, stop: Any = None) -> dict[str, Any]:
        """Train until a limit in the config (or ``stop()`` returns True). Returns :meth:`summary`."""
        t0 = time.monotonic()
        last_rx: float | None = None
        if self.checkpoint_dir.exists():
            ckpt.clean_stale(self.checkpoint_dir)
        self.publish()  # actors start from the learner's weights, not their own random init
        reason = None
        while reason is None:
            wants = self._wants_update()
            if self.ingest(timeout_s=0.0 if wants else 0.02):
                last_rx = time.monotonic()
            if self._wants_update():
                self.metrics = self.update()
                if self.agent.num_updates % self.cfg.publish_every == 0:
                    self.publish()
            now = time.monotonic()
            if now - self._t_ckpt >= self.cfg.checkpoint_every_s:
                self.save_checkpoint()
            if now - self._t_log >= self.cfg.log_every_s:
                self.log_metrics()
            reason = self._should_stop(t0, last_rx)
            if reason is None and stop is not None and stop():
                reason = "stopped"
        self.save_checkpoint()
        self.publish()
        if self.updater is not None:
            self.updater.stop()
        log.info("learner stopping (%s)", reason)
        return self.summary(reason)

    def log_metrics(self) -> dict[str, float]:
        """Write losses, Q values, rates and throughput to TensorBoard and the log."""
        now = time.monotonic()
        dt = max(now - self._t_log, 1e-9)
        upd, env = self._counts_at_log
        out = {**{f"train/{k}": v for k, v in self.metrics.items()},
               **{f"actor/{k}": v for k, v in self.episodes.recent().items()},
               "perf/updates_per_s": (self.agent.num_updates - upd) / dt,
               "perf/transitions_per_s": (self.env_steps - env) / dt,
               "perf/policy_lag": float(np.mean(self.policy_lag)) if self.policy_lag else 0.0,
               "replay/online": len(self.replay.online), "replay/demo": len(self.replay.demo)}
        rejections = getattr(self.receiver, "rejections", None)  # refused messages, by reason (issue 15)
        if rejections is not None:
            out.update({f"transport/rejected_{reason}": float(n) for reason, n in rejections.counts().items()})
        if self.writer is not None:
            for k, v in out.items():
                self.writer.add_scalar(k, v, self.env_steps)
            self.writer.flush()
        idle = (self.agent.num_updates, self.env_steps) == (upd, env)
        if not idle:
            self._idle_since = None
            log.info("env %d upd %d v%d | %s", self.env_steps, self.agent.num_updates, self.version,
                     " ".join(f"{k.split('/')[-1]}={v:.3g}" for k, v in out.items()
                              if k.startswith(("actor", "perf")) or k in LOGGED_DIAGNOSTICS))
        elif self._idle_since is None or now - self._idle_logged >= 60.0:  # one line a minute while idle
            self._idle_since = self._idle_since or self._t_log
            self._idle_logged = now
            log.info("env %d upd %d v%d | idle for %.0f s: waiting for transitions%s", self.env_steps,
                     self.agent.num_updates, self.version, now - self._idle_since,
                     f" (stops after {self.cfg.idle_exit_s:.0f} s idle)" if self.cfg.idle_exit_s else "")
        self._t_log, self._counts_at_log = now, (self.agent.num_updates, self.env_steps)
        self.policy_lag.clear()
        return out

    def summary(self, reason: str | None = None) -> dict[str, Any]:
        """Counters at the end of the run."""
        return {"env_steps": self.env_steps, "updates": self.agent.num_updates,
                "actor_updates": self.agent.num_actor_updates, "version": self.version,
                "episodes": len(self.episodes.finished), "stop_reason": reason,
                "receiver": self.receiver.stats(), **self.episodes.recent()}
