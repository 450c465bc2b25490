"""The layout of one streamed transition, as the learner expects it on the wire.

The actor sends :func:`learners.actor_loop.make_transition` (plus ``next_base_action`` on
a truncated step); the learner builds its receiver with :func:`transition_spec` from its
observation spec and action size, so a transition with another layout (an actor with a
different observation config, a wrong dtype, NaN) is refused at the socket, counted and
answered, and never reaches the replay buffer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from learners.transport import wire
from learners.transport.wire import Spec, array_spec


DIGEST = "backbone_digest"  # (32,) uint8: SHA-256 of the backbone that made the features a transition carries


def transition_spec(obs_spec: Mapping[str, tuple[tuple[int, ...], str]],
                    action_dim: int, features: bool = False) -> tuple[Spec, Spec]:
    """Required and optional flat array specs of a transition.

    Args:
        obs_spec: observation key -> ``(shape, dtype)``, e.g. ``{"state": ((18,), "float32"),
            "front": ((128, 128, 3), "uint8")}`` (the learner's ``ObsSpec``).
        action_dim: size A of the action vectors.
        features: the cameras of ``obs_spec`` are backbone features made by the actor
            (``learner.features_from=actor``): ``backbone_digest`` ``(32,) uint8`` is required
            too, the SHA-256 of the backbone that made them.

    Returns:
        ``(required, optional)``, each ``{flat name: (dtype str, shape)}``: ``obs/<k>``,
        ``next_obs/<k>``, ``action``/``base_action``/``residual_action`` ``(A,) float32``,
        ``reward`` ``() float32``, ``terminated``/``truncated`` ``() bool``; optional
        ``intervened``/``success``/``episode_start`` ``() bool``, ``next_base_action`` and
        ``requested_action`` (what the policy or operator asked for, before the safety
        clip) ``(A,) float32``, ``success_probability`` ``() float32`` (the reward classifier's,
        for auditing its rewards). A new field the actor sends must be added here too.
    """
    obs = {k: (np.dtype(dt), tuple(int(s) for s in shape)) for k, (shape, dt) in obs_spec.items()}
    act = (np.float32, (int(action_dim),))
    flag = (np.bool_, ())
    required = {"obs": obs, "next_obs": obs, "action": act, "base_action": act, "residual_action": act,
                "reward": (np.float32, ()), "terminated": flag, "truncated": flag}
    optional = {"intervened": flag, "success": flag, "episode_start": flag, "next_base_action": act,
                "requested_action": act, "success_probability": (np.float32, ())}
    if features:
        required[DIGEST] = (np.uint8, (32,))
    return array_spec(required), array_spec(optional)


def stated_spec(required: Spec | None, optional: Spec | None) -> list[list]:
    """The spec as the learner states it in its pongs: ``[[name, dtype, shape, required], ...]``."""
    if required is None:
        return []
    return ([[name, dt, list(shape), True] for name, (dt, shape) in required.items()]
            + [[name, dt, list(shape), False] for name, (dt, shape) in (optional or {}).items()])


def parse_stated_spec(entries: object) -> tuple[Spec, Spec]:
    """Inverse of :func:`stated_spec` for what arrives from the network.

    Raises:
        ValueError: malformed entries.
    """
    required: Spec = {}
    optional: Spec = {}
    if not isinstance(entries, list) or len(entries) > wire.MAX_ARRAYS:
        raise ValueError("the stated spec is not a list of entries")
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 4):
            raise ValueError(f"bad spec entry {entry!r:.80}")
        name, dtype, shape, needed = entry
        if not (wire._is_str(name) and dtype in wire.ALLOWED_DTYPES and isinstance(shape, list)
                and len(shape) <= wire.MAX_NDIM and all(wire._is_uint(x) for x in shape)):
            raise ValueError(f"bad spec entry {entry!r:.80}")
        (required if needed else optional)[name] = (dtype, tuple(shape))
    return required, optional


def conform_floats(arrays: dict, required: Spec | None, optional: Spec | None = None) -> dict:
    """Convert float arrays of another float width to the spec's dtype (e.g. a gym env's
    float64 state for a float32 spec: the replay buffer would store it as float32 anyway).
    Every other difference is left for :func:`wire.check_arrays` to refuse."""
    if required is None:
        return arrays
    allowed = {**(optional or {}), **required}
    out = dict(arrays)
    for name, arr in arrays.items():
        want = allowed.get(name)
        if want is not None and arr.dtype.kind == "f" and arr.dtype.str != want[0] and want[0][1] == "f":
            with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf: refused as non-finite
                out[name] = arr.astype(want[0])
    return out
