"""Replay buffers: frames stored once, episode-aware n-step sampling, bit-exact persistence.

Layout of :class:`ReplayBuffer` (a ring of ``capacity`` slots). Slot ``i`` holds one
*frame* (every observation key, images as uint8, plus the base action proposed at that
frame) and, when ``valid[i]``, the *transition* leaving it (action, residual, reward,
terminated, truncated, intervened). The next observation of slot ``i`` is ALWAYS the frame
in slot ``i + 1``: a segment of T steps occupies T + 1 consecutive slots and its final
frame (the true ``next_obs`` of the last step) is stored with ``valid = False``. So:

- images are stored once (no duplicated ``obs``/``next_obs``);
- a time-limit-truncated step bootstraps from its own next frame, never from the next
  episode's first frame (the bug of lerobot's ``states[idx + 1]``);
- n-step returns stop at ``terminated``/``truncated``, at a segment cut (an intervention
  that ended, a dropped message) and at the newest frame, and bootstrap from the frame
  where they stopped with ``discount = gamma^m * (1 - terminated)``.

:class:`MixedReplay` pairs an online and a demo buffer, samples them 50/50 (RLPD's
symmetric sampling) and puts intervention transitions into both, labelled with the human
action as executed action and the implied residual ``clip((human - base) / scale)``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from policies.encoders import ObsSpec
from robot_env.atomic import atomic_write

TRANSITION_KEYS = ("action", "requested_action", "residual_action", "reward", "terminated", "truncated", "intervened")


def split_obs(tr: Mapping[str, Any], prefix: str) -> dict[str, np.ndarray]:
    """``tr[prefix]`` as a dict, or the flat ``"<prefix>/<key>"`` entries of a transport message."""
    if prefix in tr and isinstance(tr[prefix], Mapping):
        return dict(tr[prefix])
    p = prefix + "/"
    out = {k[len(p):]: v for k, v in tr.items() if k.startswith(p)}
    if not out:
        raise KeyError(f"transition has no {prefix!r} observation (keys: {sorted(tr)})")
    return out


def label_intervention(tr: dict[str, Any], scale: np.ndarray) -> dict[str, Any]:
    """For an intervened step, set ``residual_action = clip((action - base_action) / scale, -1, 1)``.

    ``action`` must already be the executed (human) action. Non-intervened steps are returned
    unchanged.
    """
    if bool(tr.get("intervened", False)):
        tr = dict(tr)
        base = np.asarray(tr["base_action"], np.float32)
        tr["residual_action"] = np.clip((np.asarray(tr["action"], np.float32) - base) / scale, -1.0, 1.0).astype(np.float32)
    return tr


class ReplayBuffer:
    """Ring buffer of frames + transitions (see the module docstring).

    Args:
        spec: observation layout (images uint8 ``(H, W, 3)``, ``state`` float32).
        capacity: number of slots (~transitions; each segment uses one extra slot).
        action_dim: A.
        n_step: n of the n-step return.
        gamma: discount per step.
        seed: sampling RNG seed.
        frame_transform: applied to each frame's observation dict once, when the frame is
            stored (e.g. :meth:`learners.feature_cache.FeatureCache.frame`: camera images ->
            frozen-backbone features); ``spec`` is then the transformed layout. Not saved with
            the buffer: whoever loads one sets it again.
    """

    def __init__(self, spec: ObsSpec, capacity: int, action_dim: int = 7, n_step: int = 1,
                 gamma: float = 0.99, seed: int = 0, frame_transform: Any = None) -> None:
        if capacity < 2:
            raise ValueError("capacity must be >= 2")
        self.spec, self.capacity, self.action_dim = dict(spec), int(capacity), action_dim
        self.n_step, self.gamma = int(n_step), float(gamma)
        self.rng = np.random.default_rng(seed)
        self.frame_transform = frame_transform
        self._lock = threading.Lock()
        c = self.capacity
        self.frames = {k: np.zeros((c, *shape), dtype=np.dtype(dt)) for k, (shape, dt) in self.spec.items()}
        self.data = {
            "base_action": np.zeros((c, action_dim), np.float32),  # frame-aligned
            "action": np.zeros((c, action_dim), np.float32),  # executed (after the safety clip)
            "requested_action": np.zeros((c, action_dim), np.float32),  # what the policy/operator asked for
            "residual_action": np.zeros((c, action_dim), np.float32),
            "reward": np.zeros(c, np.float32),
            # the reward classifier's probability for this step (NaN: the reward did not come from one),
            # kept so that its false positives can be audited in a saved buffer
            "success_probability": np.full(c, np.nan, np.float32),
            "terminated": np.zeros(c, bool),
            "truncated": np.zeros(c, bool),
            "intervened": np.zeros(c, bool),
            "valid": np.zeros(c, bool),
            "segment": np.full(c, -1, np.int64),
        }
        self.head = -1  # slot of the newest frame
        self.size = 0  # slots ever written, capped at capacity
        self.open = False  # the newest frame starts the next transition of an ongoing segment
        self.num_segments = 0
        self.num_transitions = 0  # total added (not capped)

    def __len__(self) -> int:
        """Number of sampleable transitions."""
        return int(self.data["valid"][: self.size].sum())

    def _write_frame(self, slot: int, obs: Mapping[str, Any], base_action: Any) -> None:
        if self.frame_transform is not None:  # once per stored frame (a continuing step reuses its slot)
            obs = self.frame_transform(obs)
        for k, arr in self.frames.items():
            if k not in obs:
                raise KeyError(f"observation lacks key {k!r} (has {sorted(obs)})")
            v = np.asarray(obs[k])
            if v.shape != arr.shape[1:]:
                raise ValueError(f"obs[{k!r}] has shape {v.shape}, buffer expects {arr.shape[1:]}")
            arr[slot] = v
        self.data["base_action"][slot] = base_action
        self.data["valid"][slot] = False
        self.data["segment"][slot] = self.num_segments

    def add(self, tr: Mapping[str, Any], new_segment: bool | None = None) -> None:
        """Append one transition.

        Args:
            tr: ``obs``, ``next_obs`` (dicts, or flat ``obs/<key>`` entries), ``action``
                (executed), ``base_action``, ``residual_action``, ``reward``, ``terminated``,
                ``truncated``, optional ``intervened``, ``next_base_action`` (base action
                at ``next_obs``; needed exactly only for the last step of a segment, else the
                next step's ``base_action`` is used) and ``episode_start``.
            new_segment: force (True) or forbid (False) starting a new segment. By default a
                new segment starts after a terminal step, when ``episode_start`` is set, or
                when ``obs["state"]`` differs from the stored ``next_obs`` of the previous step.
        """
        obs, next_obs = split_obs(tr, "obs"), split_obs(tr, "next_obs")
        action = np.asarray(tr["action"], np.float32)
        if action.shape != (self.action_dim,) or not np.all(np.isfinite(action)):
            raise ValueError(f"bad action {action!r}: need finite ({self.action_dim},)")
        base = np.asarray(tr.get("base_action", np.zeros(self.action_dim)), np.float32)
        with self._lock:
            cont = self.open and not bool(tr.get("episode_start", False))
            if cont and new_segment is None and "state" in self.frames:
                cont = np.array_equal(np.asarray(obs["state"], self.frames["state"].dtype), self.frames["state"][self.head])
            if new_segment is not None:
                cont = self.open and not new_segment
            if cont:
                cur = self.head
                self.data["base_action"][cur] = base
            else:
                self.num_segments += 1
                cur = (self.head + 1) % self.capacity
                self._write_frame(cur, obs, base)
                self.size = min(self.size + 1, self.capacity)
            d = self.data
            d["action"][cur] = action
            d["requested_action"][cur] = np.asarray(tr.get("requested_action", action), np.float32)
            d["residual_action"][cur] = np.asarray(tr.get("residual_action", np.zeros(self.action_dim)), np.float32)
            d["success_probability"][cur] = np.float32(tr.get("success_probability", np.nan))
            d["reward"][cur] = float(tr["reward"])
            d["terminated"][cur] = bool(tr["terminated"])
            d["truncated"][cur] = bool(tr["truncated"])
            d["intervened"][cur] = bool(tr.get("intervened", False))
            nxt = (cur + 1) % self.capacity
            self._write_frame(nxt, next_obs, np.asarray(tr.get("next_base_action", base), np.float32))
            d["valid"][cur] = True
            self.size = min(self.size + 1, self.capacity)
            self.head = nxt
            self.open = not (d["terminated"][cur] or d["truncated"][cur])
            self.num_transitions += 1

    def add_episode(self, episode: Mapping[str, np.ndarray], scale: np.ndarray | None = None) -> int:
        """Add a recorded episode (docs/CONTRACTS.md dataset keys ``obs/<k>`` (T+1, ...), ``action`` (T, A), ...).

        Missing ``base_action`` means zeros (RLPD); with ``scale`` the residual label is
        ``clip((action - base_action) / scale)``. Returns the number of steps added.
        """
        obs_keys = [k[4:] for k in episode if k.startswith("obs/")]
        T = len(episode["action"])
        base = episode.get("base_action", np.zeros((T, self.action_dim), np.float32))
        for t in range(T):
            tr = {
                "obs": {k: episode[f"obs/{k}"][t] for k in obs_keys},
                "next_obs": {k: episode[f"obs/{k}"][t + 1] for k in obs_keys},
                "action": episode["action"][t], "base_action": base[t],
                "next_base_action": base[min(t + 1, T - 1)],
                "reward": episode["reward"][t], "terminated": episode["terminated"][t],
                "truncated": episode["truncated"][t] or (t == T - 1 and not episode["terminated"][t]),
                "intervened": bool(episode.get("intervened", np.zeros(T, bool))[t]),
            }
            if scale is not None:
                tr["residual_action"] = np.clip((tr["action"] - tr["base_action"]) / scale, -1, 1)
            self.add(tr, new_segment=(t == 0))
        return T

    def sample_indices(self, batch_size: int) -> np.ndarray:
        """Uniform random valid slots ``(batch_size,)``."""
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        valid = self.data["valid"]
        out = np.empty(0, np.int64)
        while out.size < batch_size:  # rejection: valid slots are >= T/(T+1) of all
            cand = self.rng.integers(0, self.size, 2 * batch_size)
            out = np.concatenate([out, cand[valid[cand]]])
        return out[:batch_size]

    def sample(self, batch_size: int, indices: np.ndarray | None = None) -> dict[str, Any]:
        """A batch of n-step transitions (numpy).

        Returns:
            ``obs``/``next_obs`` (dicts of ``(B, ...)``), ``action``, ``base_action``,
            ``next_base_action``, ``residual_action`` ``(B, A)``, ``reward`` (n-step discounted
            sum, ``(B,)``), ``discount`` (``gamma^m * (1 - terminated)``, ``(B,)``),
            ``terminated``/``truncated`` of the step where the return stopped, ``intervened``,
            ``n`` (steps m actually summed) and ``indices``.
        """
        with self._lock:
            idx = self.sample_indices(batch_size) if indices is None else np.asarray(indices, np.int64)
            d, cap = self.data, self.capacity
            seg0 = d["segment"][idx]
            ret = np.zeros(len(idx), np.float64)
            boot = (idx + 1) % cap
            m = np.ones(len(idx), np.int64)
            term = d["terminated"][idx].copy()
            trunc = d["truncated"][idx].copy()
            ended = term | trunc
            ret += d["reward"][idx]
            for k in range(1, self.n_step):
                j = (idx + k) % cap
                active = ~ended & d["valid"][j] & (d["segment"][j] == seg0)
                ret += np.where(active, self.gamma**k * d["reward"][j], 0.0)
                boot = np.where(active, (j + 1) % cap, boot)
                m = np.where(active, k + 1, m)
                term = np.where(active, d["terminated"][j], term)
                trunc = np.where(active, d["truncated"][j], trunc)
                ended |= active & (d["terminated"][j] | d["truncated"][j])
                ended |= ~active
            batch = {
                "obs": {k: a[idx] for k, a in self.frames.items()},
                "next_obs": {k: a[boot] for k, a in self.frames.items()},
                "action": d["action"][idx], "requested_action": d["requested_action"][idx],
                "base_action": d["base_action"][idx],
                "next_base_action": d["base_action"][boot], "residual_action": d["residual_action"][idx],
                "reward": ret.astype(np.float32),
                "discount": (self.gamma**m * (1.0 - term)).astype(np.float32),
                "terminated": term, "truncated": trunc, "intervened": d["intervened"][idx],
                "n": m, "indices": idx,
            }
        return batch

    # ---------------------------------------------------------------- persistence
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to restore the buffer bit-exactly, as named numpy arrays."""
        meta = {"capacity": self.capacity, "action_dim": self.action_dim, "n_step": self.n_step,
                "gamma": self.gamma, "head": self.head, "size": self.size, "open": self.open,
                "num_segments": self.num_segments, "num_transitions": self.num_transitions,
                "spec": {k: [list(s), dt] for k, (s, dt) in self.spec.items()},
                "rng": self.rng.bit_generator.state}
        out = {f"frames/{k}": v[: self.size] for k, v in self.frames.items()}
        out.update({f"data/{k}": v[: self.size] for k, v in self.data.items()})
        out["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the buffer to one ``.npz`` (no pickle), atomically; returns the path."""
        return atomic_write(path, lambda f: np.savez(f, **self.state_arrays()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ReplayBuffer":
        """Rebuild a buffer written by :meth:`save` (``allow_pickle=False``)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(arrays["meta"].tobytes().decode())
        except Exception as exc:
            raise ValueError(f"replay buffer file {path} is corrupt or not a hilr buffer: {exc}") from exc
        spec = {k: (tuple(s), dt) for k, (s, dt) in meta["spec"].items()}
        buf = cls(spec, meta["capacity"], meta["action_dim"], meta["n_step"], meta["gamma"])
        n = meta["size"]
        for k in buf.frames:
            buf.frames[k][:n] = arrays[f"frames/{k}"]
        for k in buf.data:
            if f"data/{k}" in arrays:  # buffers saved before a field existed keep its zeros
                buf.data[k][:n] = arrays[f"data/{k}"]
            elif k == "requested_action":
                buf.data[k][:n] = arrays["data/action"]
        for k in ("head", "size", "open", "num_segments", "num_transitions"):
            setattr(buf, k, meta[k])
        buf.rng.bit_generator.state = meta["rng"]
        return buf


class MixedReplay:
    """Online + demo buffers, sampled ``demo_ratio`` / ``1 - demo_ratio`` (RLPD: 50/50).

    Args:
        online: buffer for every transition the actor streams.
        demo: buffer for demonstrations and intervention segments.
        scale: residual scale ``(A,)`` used to label interventions.
        demo_ratio: fraction of each batch drawn from the demo buffer (when it is non-empty).
        interventions_to_demo: also add intervention transitions to the demo buffer (hil-serl).
    """

    def __init__(self, online: ReplayBuffer, demo: ReplayBuffer, scale: np.ndarray,
                 demo_ratio: float = 0.5, interventions_to_demo: bool = True) -> None:
        self.online, self.demo = online, demo
        self.scale = np.asarray(scale, np.float32)
        self.demo_ratio = float(demo_ratio)
        self.interventions_to_demo = interventions_to_demo
        self._prev_intervened = False

    def add(self, tr: Mapping[str, Any]) -> dict[str, Any]:
        """Add a streamed transition; interventions go to both buffers. Returns the labelled transition."""
        tr = label_intervention(dict(tr), self.scale)
        self.online.add(tr)
        intervened = bool(tr.get("intervened", False))
        if intervened and self.interventions_to_demo:
            # A new demo segment whenever an intervention (re)starts.
            self.demo.add(tr, new_segment=True if not self._prev_intervened else None)
        done = bool(tr["terminated"]) or bool(tr["truncated"])
        self._prev_intervened = intervened and not done
        return tr

    def __len__(self) -> int:
        """Transitions in both buffers."""
        return len(self.online) + len(self.demo)

    def sample(self, batch_size: int) -> dict[str, Any]:
        """A batch with ``round(batch_size * demo_ratio)`` demo rows first (all online if no demos).

        ``labelled`` ``(B,)`` marks rows whose ``residual_action`` is a human label (every demo row
        and every intervention): the actor's filtered BC term learns from those.
        """
        n_demo = int(round(batch_size * self.demo_ratio)) if len(self.demo) else 0
        if len(self.online) == 0:
            n_demo = batch_size
        parts = []
        if n_demo:
            part = self.demo.sample(n_demo)
            part["labelled"] = np.ones(n_demo, bool)
            parts.append(part)
        if batch_size - n_demo:
            part = self.online.sample(batch_size - n_demo)
            part["labelled"] = part["intervened"].copy()
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return concat_batches(parts)


def concat_batches(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate sampled batches along the batch dim (nested obs dicts included)."""
    out: dict[str, Any] = {}
    for k, v in parts[0].items():
        if isinstance(v, dict):
            out[k] = {kk: np.concatenate([p[k][kk] for p in parts]) for kk in v}
        else:
            out[k] = np.concatenate([p[k] for p in parts])
    return out


def relabel_base_actions(episode: Mapping[str, np.ndarray], base_policy: Any) -> dict[str, np.ndarray]:
    """Return a copy of a recorded episode with ``base_action`` (T, A) filled by running the
    frozen base policy over its observations (from ``reset()``, in order, as it would act).

    Demos recorded before a base policy existed carry no base actions; residual learning
    needs them for the actor input and the implied residual label.
    """
    keys = [k[4:] for k in episode if k.startswith("obs/")]
    T = len(episode["action"])
    base_policy.reset()
    out = dict(episode)
    out["base_action"] = np.stack(
        [np.asarray(base_policy.act({k: episode[f"obs/{k}"][t] for k in keys}), np.float32) for t in range(T)])
    return out
