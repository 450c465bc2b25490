"""Pickle-free checkpoints: tensors in safetensors, everything else as JSON.

A checkpoint is ONE ``.safetensors`` file. Its tensors are the flattened leaves of a
(possibly nested) state; the non-tensor rest of the state (hyper-parameters, optimiser
``param_groups``, step counters, the model's config) travels as JSON inside the
safetensors header under the key ``"hilr"``. The file is written atomically (temp file in
the same directory, fsync, rename), so a crash mid-write never leaves a torn checkpoint.

Nested states (``{"actor": model.state_dict(), "actor_optim": optim.state_dict(), ...}``)
are flattened with :func:`flatten_state` and rebuilt with :func:`unflatten_state`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from robot_env.atomic import atomic_write

_TENSOR_TAG = "__tensor__"
_META_KEY = "hilr"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt or does not fit the model it is loaded into."""


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into flat tensors and a JSON-able skeleton.

    Args:
        state: nested dicts/lists/tuples whose leaves are tensors, numbers, strings,
            bools or None (e.g. ``optimizer.state_dict()``, whose keys may be ints).
        prefix: key prefix of the tensors (used in recursion).

    Returns:
        ``(tensors, skeleton)``: ``tensors`` maps dotted keys to contiguous CPU tensors;
        ``skeleton`` mirrors ``state`` with each tensor replaced by ``{"__tensor__": key}``.
        Dict keys are recorded with their type so int keys survive the JSON round trip.
    """
    tensors: dict[str, torch.Tensor] = {}
    if isinstance(state, torch.Tensor):
        key = prefix or "tensor"
        tensors[key] = state.detach().to("cpu").contiguous()
        return tensors, {_TENSOR_TAG: key}
    if isinstance(state, dict):
        items = []
        for k, v in state.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"state keys must be str or int, got {type(k).__name__} at {prefix!r}")
            sub_t, sub_s = flatten_state(v, f"{prefix}.{k}" if prefix else str(k))
            tensors.update(sub_t)
            items.append([k, sub_s])
        return tensors, {"__dict__": items}
    if isinstance(state, (list, tuple)):
        out = []
        for i, v in enumerate(state):
            sub_t, sub_s = flatten_state(v, f"{prefix}.{i}" if prefix else str(i))
            tensors.update(sub_t)
            out.append(sub_s)
        return tensors, {"__list__": out}
    if state is None or isinstance(state, (bool, int, float, str)):
        return tensors, state
    raise TypeError(f"cannot checkpoint a {type(state).__name__} at {prefix!r} without pickle")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(skeleton, dict):
        if _TENSOR_TAG in skeleton:
            key = skeleton[_TENSOR_TAG]
            if key not in tensors:
                raise CheckpointError(f"checkpoint lacks tensor {key!r}")
            return tensors[key]
        if "__dict__" in skeleton:
            return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
        if "__list__" in skeleton:
            return [unflatten_state(v, tensors) for v in skeleton["__list__"]]
        raise CheckpointError(f"malformed checkpoint skeleton node {sorted(skeleton)}")
    return skeleton


def save_checkpoint(path: str | os.PathLike, state: Any, metadata: dict[str, Any] | None = None) -> Path:
    """Save a nested ``state`` (+ JSON ``metadata``) to one safetensors file, atomically.

    Args:
        path: destination, conventionally ending in ``.safetensors``.
        state: nested dict of tensors / optimiser states / scalars (see :func:`flatten_state`).
        metadata: JSON-serialisable description (model kind, config, step, ...).

    Returns:
        The path written.
    """
    tensors, skeleton = flatten_state(state)
    # safetensors refuses tensors that share storage; clone makes each leaf independent.
    tensors = {k: v.clone() for k, v in tensors.items()}
    header = json.dumps({"metadata": metadata or {}, "state": skeleton})
    return atomic_write(path, st_save(tensors, metadata={_META_KEY: header}))


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(state, metadata)``.

    Raises:
        CheckpointError: missing or corrupt file, or not a hilr checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = (f.metadata() or {}).get(_META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types on corrupt files
        raise CheckpointError(f"checkpoint {path} is corrupt or not safetensors: {exc}") from exc
    if header is None:
        raise CheckpointError(f"{path} is a safetensors file but not a hilr checkpoint (no 'hilr' header)")
    try:
        info = json.loads(header)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path} has a corrupt JSON header: {exc}") from exc
    return unflatten_state(info["state"], tensors), info.get("metadata", {})


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Only the JSON metadata of a checkpoint (cheap: reads the header)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get(_META_KEY)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or missing: {exc}") from exc
    if header is None:
        raise CheckpointError(f"{path} is not a hilr checkpoint")
    return json.loads(header).get("metadata", {})
