"""The learner's model document: the agent settings that shape the weights it publishes.

The learner states them beside every weights message (``model``, a JSON object: see
docs/sections/transport.md), so an actor started with another ``learner=`` config builds
the same trainable modules instead of refusing the weights. What the actor adopts:

- network shapes: ``algo``, ``actor_hidden``, ``critic_hidden``, ``num_critics``,
  ``layer_norm``, ``init_std``, ``normalize_state``, ``encoder`` (its local
  ``pretrained`` path stays the actor's own);
- what gives the weights their meaning when acting: ``residual_scale``, ``gate``,
  ``gate_explore``, ``gate_kappa``, ``gate_heads``.

What it refuses, with a clear message (never adopted silently): another ``mode``
(residual vs rlpd vs bc), another ``action_dim``, another observation spec, and a frozen
backbone other than its own (frozen weights never travel). Exploration and warm-up,
device and seed stay the actor's own.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from policies.encoders import EncoderConfig, ObsSpec, is_image

MODEL_FORMAT = "hilr-model"
MODEL_VERSION = 1
ADOPTED = ("algo", "actor_hidden", "critic_hidden", "num_critics", "layer_norm", "init_std", "normalize_state",
           "residual_scale", "gate", "gate_explore", "gate_kappa", "gate_heads")
FIXED = ("mode", "action_dim")
# adopted settings added after version 1, with the value a learner that predates them meant
LATER_DEFAULTS = {"gate_explore": True}
# A forged document must not make the actor allocate without bound (widths, heads, encoder).
MAX_NETWORK_PARAMS = 50_000_000  # residual actor + every critic head (paper-sized residual_td3: 22M)
MAX_ENCODER = {"channels": 256, "latent_dim": 4096, "num_spatial_features": 256, "image_size": 512}


class ModelRefused(ValueError):
    """The learner's model differs in a setting the actor never adopts (or is not a valid model)."""


def network_inputs(spec: ObsSpec) -> dict[str, list[Any]]:
    """The observations the networks read (``state`` and camera images, as the encoder picks
    them), ``{key: [shape, dtype name]}``; other keys (e.g. a reward classifier's) do not count."""
    return {k: [[int(n) for n in shape], np.dtype(dtype).name] for k, (shape, dtype) in sorted(spec.items())
            if k == "state" or is_image(shape, dtype)}


def model_doc(cfg: Any, spec: ObsSpec) -> dict[str, Any]:
    """The model document of an :class:`learners.agent.AgentConfig` and observation spec.

    Returns:
        A JSON-ready dict (lists, not tuples: equal to its own JSON round trip), e.g.
        ``{"format": "hilr-model", "version": 1, "mode": "residual", "action_dim": 7,
        "obs": {"state": [[21], "float32"]}, "actor_hidden": [256, 256], ...}``.
    """
    doc: dict[str, Any] = {"format": MODEL_FORMAT, "version": MODEL_VERSION}
    doc.update({k: getattr(cfg, k) for k in (*FIXED, *ADOPTED)})
    for key, value in LATER_DEFAULTS.items():  # at its default a later setting is left out: the document
        if doc[key] == value:                   # then equals an older learner's, and compares equal to it
            del doc[key]
    encoder = dataclasses.asdict(cfg.encoder)
    encoder["pretrained"] = encoder["pretrained"] is not None  # a path on the learner's disk: only whether
    doc["encoder"] = encoder
    doc["obs"] = network_inputs(spec)
    return json.loads(json.dumps(doc))


def _network_params(doc: Mapping[str, Any], out_dim: int) -> int:
    """Parameters of the residual actor and every critic head the document asks for (MLPs only)."""
    a = int(doc["action_dim"])

    def mlp(widths: list[int], d_in: int, d_out: int) -> int:
        dims = [d_in, *widths, d_out]
        return sum(i * o + 3 * o for i, o in zip(dims[:-1], dims[1:]))  # weight, bias, LayerNorm

    critics = int(doc["num_critics"]) * mlp(doc["critic_hidden"], out_dim + a, 1)
    return mlp(doc["actor_hidden"], out_dim + a, a) + critics


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


TYPES = {"algo": lambda v: isinstance(v, str), "layer_norm": lambda v: isinstance(v, bool),
         "normalize_state": lambda v: isinstance(v, bool), "gate": lambda v: isinstance(v, bool),
         "gate_explore": lambda v: isinstance(v, bool), "init_std": _number, "gate_kappa": _number,
         "gate_heads": lambda v: isinstance(v, int) and not isinstance(v, bool),
         "residual_scale": lambda v: _number(v) or (isinstance(v, list) and 0 < len(v) <= 64 and all(map(_number, v)))}


def _check_bounds(doc: Mapping[str, Any], spec: ObsSpec) -> None:
    """Refuse a document of the wrong types or one asking for networks beyond the caps."""
    for key, ok in TYPES.items():
        if not ok(doc[key]):
            raise ModelRefused(f"model {key}={doc[key]!r:.80} has the wrong type")
    for key in ("actor_hidden", "critic_hidden"):
        widths = doc.get(key)
        if not (isinstance(widths, list) and 1 <= len(widths) <= 16
                and all(isinstance(w, int) and 1 <= w <= 65536 for w in widths)):
            raise ModelRefused(f"model {key}={widths!r} is not a list of 1..16 widths")
    if not isinstance(doc.get("num_critics"), int) or not 1 <= doc["num_critics"] <= 1024:
        raise ModelRefused(f"model num_critics={doc.get('num_critics')!r} is not in 1..1024")
    enc = doc.get("encoder")
    if not isinstance(enc, dict):
        raise ModelRefused("model encoder is not an object")
    for key, cap in MAX_ENCODER.items():
        v = enc.get(key)
        if v is not None and not (isinstance(v, int) and 0 < v <= cap):
            raise ModelRefused(f"model encoder.{key}={v!r} is not in 1..{cap}")
    cameras = sum(1 for shape, dtype in spec.values() if is_image(shape, dtype))
    state = math.prod(spec["state"][0]) if "state" in spec else 0
    n = _network_params(doc, state + cameras * int(enc.get("latent_dim") or 0))
    if n > MAX_NETWORK_PARAMS:
        raise ModelRefused(f"model networks of {n:,} parameters > {MAX_NETWORK_PARAMS:,}")


def adopt_model(cfg: Any, spec: ObsSpec, doc: Mapping[str, Any]) -> Any:
    """This actor's agent config with the learner's model settings adopted.

    Args:
        cfg: the actor's own :class:`learners.agent.AgentConfig`.
        spec: the actor's observation spec.
        doc: the learner's model document (as :func:`model_doc` writes it, parsed from the wire).

    Returns:
        A new ``AgentConfig``: ``cfg`` with every :data:`ADOPTED` field and the encoder taken
        from ``doc`` (``pretrained`` stays ``cfg``'s).

    Raises:
        ModelRefused: another mode, action size or observation spec, another frozen backbone,
            or a document that is not a valid model.
    """
    if doc.get("format") != MODEL_FORMAT or doc.get("version") != MODEL_VERSION:
        raise ModelRefused(f"the learner's model document is not a {MODEL_FORMAT} version {MODEL_VERSION} object")
    mine = model_doc(cfg, spec)
    doc = {**LATER_DEFAULTS, **doc}
    missing = [k for k in (*FIXED, *ADOPTED, "encoder", "obs") if k not in doc]
    if missing:
        raise ModelRefused(f"model document lacks {missing}")
    for key in FIXED:
        if doc[key] != mine[key]:
            raise ModelRefused(f"the learner runs {key}={doc[key]!r}, this actor {key}={mine[key]!r}: "
                               f"start the actor with the learner's {key}")
    if doc["obs"] != mine["obs"]:
        raise ModelRefused(f"the learner's observations {doc['obs']} differ from this actor's {mine['obs']}: "
                           "run both with the same camera / privileged_state / obs settings")
    _check_bounds(doc, spec)
    if doc["encoder"] != mine["encoder"] and (doc["encoder"].get("freeze_backbone") or cfg.encoder.freeze_backbone):
        raise ModelRefused(f"the learner's encoder {doc['encoder']} differs from this actor's {mine['encoder']} "
                           "and a frozen backbone never travels: give the actor the learner's learner.encoder")
    changes = {k: (tuple(doc[k]) if k.endswith("_hidden") else doc[k]) for k in ADOPTED}
    enc_fields = {f.name for f in dataclasses.fields(EncoderConfig)}
    unknown = set(doc["encoder"]) - enc_fields
    if unknown:
        raise ModelRefused(f"model encoder has unknown settings {sorted(unknown)}")
    changes["target_subset"] = min(cfg.target_subset, int(doc["num_critics"]))  # learner-only, but validated
    try:
        changes["encoder"] = EncoderConfig(**{**doc["encoder"], "pretrained": cfg.encoder.pretrained})
        return dataclasses.replace(cfg, **changes)
    except (TypeError, ValueError) as exc:
        raise ModelRefused(f"the learner's model is not a valid agent config: {exc}") from None


def model_changes(old: Any, new: Any) -> dict[str, list[Any]]:
    """``{setting: [this actor's, adopted]}`` for every adopted setting that changed
    (encoder settings as ``encoder.<name>``)."""
    out: dict[str, list[Any]] = {}
    for key in ADOPTED:
        if getattr(old, key) != getattr(new, key):
            out[key] = json.loads(json.dumps([getattr(old, key), getattr(new, key)]))
    a, b = dataclasses.asdict(old.encoder), dataclasses.asdict(new.encoder)
    for key in a:
        if a[key] != b[key]:
            out[f"encoder.{key}"] = [a[key], b[key]]
    return out
