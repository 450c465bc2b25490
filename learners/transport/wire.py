"""The hilr wire format: one ZMQ frame = fixed prefix + msgpack header + raw numpy buffers.

No pickle anywhere: every value is either a msgpack scalar/str/list/map in the header or a
raw little-endian array buffer described by ``(dtype, shape, offset, nbytes)``. Every
:func:`decode` validates the whole message before any array is built and raises a
specific :class:`WireError` subclass whose ``reason`` is a short counter key.

Frame layout (all integers little-endian)::

    offset 0   4 bytes  magic  b"HILR"
    offset 4   u16      wire version (WIRE_VERSION)
    offset 6   u16      flags, must be 0
    offset 8   u32      header length H (bytes)
    offset 12  H bytes  msgpack map (the header)
    then       zero padding up to the next multiple of 8 (payload start P)
    P + ...    array buffers, each at header["arrays"][i]["offset"] (relative to P),
               each offset the previous end rounded up to a multiple of 8;
               the frame ends exactly at P + header["payload_bytes"].

See docs/sections/transport.md for the header fields of each message kind.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

MAGIC = b"HILR"
WIRE_VERSION = 1
SCHEMA = "hilr.transport"
PREFIX = struct.Struct("<4sHHI")  # magic, version, flags, header length
ALIGN = 8
MAX_HEADER_BYTES = 256 * 1024
MAX_ARRAYS = 512
MAX_NDIM = 8
MAX_NAME_LEN = 200
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_MODEL_BYTES = 16 * 1024  # a weights message's optional ``model`` JSON text (a real one is ~700 bytes)
MAX_BATCH = 64  # transition frames in one ZMQ message, at most (the learner states it in pongs)

# The only dtypes that travel: fixed-size little-endian numbers and bool.
ALLOWED_DTYPES = frozenset(
    ["|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8"]
)

_DTYPES = {name: np.dtype(name) for name in ALLOWED_DTYPES}  # parsed once, not per array
_WIRE_DTYPE = {dtype: name for name, dtype in _DTYPES.items()}  # numpy dtype -> wire string
_ZEROS = bytes(ALIGN)  # padding
_U64_MAX = 2**64 - 1


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U64_MAX


def _is_str(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= MAX_NAME_LEN


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_ranges(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) <= 100_000
        and all(
            isinstance(r, list) and len(r) == 2 and _is_uint(r[0]) and _is_uint(r[1]) and r[0] <= r[1]
            for r in v
        )
    )


def _is_floors(v: Any) -> bool:
    return (
        isinstance(v, list)
        and len(v) <= 1024
        and all(isinstance(p, list) and len(p) == 2 and _is_uint(p[0]) and _is_uint(p[1]) for p in v)
    )


# kind -> {required field: validator}. Unknown extra fields are ignored (forward compatible
# within one wire version); a missing or mistyped required field is a SchemaError.
KINDS: dict[str, dict[str, Any]] = {
    "transition": {"actor": _is_str, "stream": _is_uint, "seq": _is_uint, "policy_version": _is_uint},
    "ack": {"actor": _is_str, "stream": _is_uint, "ranges": _is_ranges, "learner": _is_uint,
            "final": lambda v: isinstance(v, bool)},
    "ping": {"actor": _is_str, "floors": _is_floors},
    "pong": {"learner": _is_uint},
    "weights": {"version": _is_uint, "learner": _is_uint},
}


class WireError(ValueError):
    """A message that is not a valid hilr message. ``reason`` is a short counter key."""

    reason = "invalid"


class BadMagic(WireError):
    """The frame does not start with ``b"HILR"`` (garbage, pickle, another protocol)."""

    reason = "bad_magic"


class Truncated(WireError):
    """The frame is shorter than its prefix, header or declared payload."""

    reason = "truncated"


class TooLarge(WireError):
    """The frame (or its header) exceeds the configured maximum size."""

    reason = "too_large"


class VersionMismatch(WireError):
    """The wire version (prefix) or schema name (header) is not the one we speak."""

    reason = "wrong_version"


class SchemaError(WireError):
    """The header is not valid msgpack, or a field, dtype, shape or offset is invalid."""

    reason = "schema"


class UnknownKind(WireError):
    """The header's ``kind`` is not one of :data:`KINDS` (or not the kind expected here)."""

    reason = "unknown_kind"


class SpecMismatch(WireError):
    """A valid message whose arrays are not the names/dtypes/shapes this endpoint expects."""

    reason = "spec_mismatch"


class NonFinite(WireError):
    """A float array holds NaN or inf."""

    reason = "non_finite"


class TooLargeValue(WireError):
    """A float array holds a value beyond the configured magnitude bound (e.g. 3e38 weights)."""

    reason = "out_of_bounds"


@dataclass
class Message:
    """A decoded, validated message.

    Attributes:
        kind: one of :data:`KINDS`.
        fields: the header's kind-specific fields (plain Python values).
        arrays: name -> array; views of the received buffer (read-only), names may
            contain ``/`` for nested dicts (see :func:`unflatten`).
        nbytes: size of the frame in bytes.
    """

    kind: str
    fields: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    nbytes: int = 0


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten nested dicts of arrays to ``{"a/b": array}``; keys may not contain ``/``."""
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if type(key) is not str or not key or "/" in key:
            raise ValueError(f"array names must be non-empty strings without '/': {key!r}")
        # an ndarray is a leaf: the type test spares the (slow) Mapping ABC check per array
        if type(value) is not np.ndarray and isinstance(value, Mapping):
            out.update(flatten(value, prefix + key + "/"))
        else:
            out[prefix + key] = value
    return out


def unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of :func:`flatten`: ``{"obs/state": x}`` -> ``{"obs": {"state": x}}``."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        node = out
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SchemaError(f"array name {name!r} collides with a leaf")
        if leaf in node:
            raise SchemaError(f"array name {name!r} collides with a group")
        node[leaf] = value
    return out


def _as_wire_array(name: str, value: Any) -> tuple[np.ndarray, str]:
    """``value`` as a C-contiguous little-endian array, and its wire dtype string."""
    arr = value if type(value) is np.ndarray else np.asarray(value)
    dtype = _WIRE_DTYPE.get(arr.dtype)
    if dtype is None:
        if arr.dtype.kind in "iuf" and arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
            dtype = arr.dtype.str
        else:
            raise TypeError(f"array {name!r}: dtype {arr.dtype} cannot travel (numbers and bool only)")
    if arr.ndim > MAX_NDIM:
        raise ValueError(f"array {name!r}: {arr.ndim} dims > {MAX_NDIM}")
    return (arr if arr.flags.c_contiguous else arr.copy(order="C")), dtype  # ascontiguousarray makes 0-d 1-d


def encode(kind: str, fields: Mapping[str, Any], arrays: Mapping[str, Any] | None = None) -> bytes:
    """Encode one message as a single frame.

    Args:
        kind: one of :data:`KINDS`.
        fields: the kind's required fields (plain ints/strs/lists), checked here too.
        arrays: name -> array (nested dicts are flattened with ``/``); copied into the frame.

    Returns:
        The frame bytes.

    Raises:
        UnknownKind, SchemaError: bad kind or fields. TypeError: an unsupported dtype.
    """
    _check_fields(kind, fields)
    flat = flatten(arrays or {})
    if len(flat) > MAX_ARRAYS:
        raise ValueError(f"{len(flat)} arrays > {MAX_ARRAYS}")
    specs, chunks, offset = [], [], 0
    for name, value in flat.items():
        arr, dtype = _as_wire_array(name, value)
        start = (offset + ALIGN - 1) // ALIGN * ALIGN
        if start > offset:
            chunks.append(_ZEROS[:start - offset])
        specs.append({"name": name, "dtype": dtype, "shape": list(arr.shape),
                      "offset": start, "nbytes": arr.nbytes})
        chunks.append(arr.reshape(-1).view(np.uint8).data)
        offset = start + arr.nbytes
    header = {"schema": SCHEMA, "kind": kind, **fields, "arrays": specs, "payload_bytes": offset}
    head = msgpack.packb(header, use_bin_type=True)
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError(f"header of {len(head)} bytes > {MAX_HEADER_BYTES}")
    pad = _align(PREFIX.size + len(head)) - PREFIX.size - len(head)
    prefix = PREFIX.pack(MAGIC, WIRE_VERSION, 0, len(head))
    return b"".join([prefix, head, bytes(pad), *chunks])


def _check_fields(kind: Any, fields: Mapping[str, Any]) -> None:
    if kind not in KINDS:
        raise UnknownKind(f"unknown message kind {kind!r}; expected one of {sorted(KINDS)}")
    for name, ok in KINDS[kind].items():
        if name not in fields:
            raise SchemaError(f"{kind} message lacks required field {name!r}")
        if not ok(fields[name]):
            raise SchemaError(f"{kind} message field {name!r} has an invalid value {fields[name]!r:.80}")


def _parse_header(view: memoryview, max_bytes: int) -> tuple[dict[str, Any], int]:
    if len(view) > max_bytes:
        raise TooLarge(f"message of {len(view)} bytes > max {max_bytes}")
    if len(view) < PREFIX.size:
        raise Truncated(f"message of {len(view)} bytes is shorter than the {PREFIX.size}-byte prefix")
    magic, version, flags, head_len = PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise BadMagic(f"bad magic {bytes(magic)!r} (not a hilr message; pickle and raw bytes are refused)")
    if version != WIRE_VERSION:
        raise VersionMismatch(f"wire version {version}, this side speaks {WIRE_VERSION}")
    if flags != 0:
        raise SchemaError(f"unknown flags 0x{flags:04x}")
    if head_len > MAX_HEADER_BYTES:
        raise TooLarge(f"header of {head_len} bytes > {MAX_HEADER_BYTES}")
    if len(view) < PREFIX.size + head_len:
        raise Truncated(f"header declares {head_len} bytes, only {len(view) - PREFIX.size} present")
    try:
        header = msgpack.unpackb(
            view[PREFIX.size:PREFIX.size + head_len], raw=False, strict_map_key=True,
            max_str_len=MAX_HEADER_BYTES, max_bin_len=0, max_ext_len=0,
            max_array_len=200_000, max_map_len=4096,
        )
    except Exception as exc:  # msgpack raises several types (ValueError, ExtraData, ...)
        raise SchemaError(f"header is not valid msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise SchemaError(f"header is a {type(header).__name__}, not a map")
    return header, _align(PREFIX.size + head_len)


def _parse_arrays(view: memoryview, specs: Any, start: int, payload: int) -> dict[str, np.ndarray]:
    # Runs once per received message, so it is written for speed: ``type(x) is int``
    # (msgpack gives plain ints; it also refuses bool) instead of helper calls per value.
    if type(specs) is not list or len(specs) > MAX_ARRAYS:
        raise SchemaError("'arrays' must be a list of at most %d specs" % MAX_ARRAYS)
    arrays: dict[str, np.ndarray] = {}
    end = 0
    for spec in specs:
        if type(spec) is not dict:
            raise SchemaError("array spec is not a map")
        name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
        offset, nbytes = spec.get("offset"), spec.get("nbytes")
        if type(name) is not str or not 0 < len(name) <= MAX_NAME_LEN or name in arrays:
            raise SchemaError(f"array name {name!r:.80} missing, too long or duplicated")
        np_dtype = _DTYPES.get(dtype) if type(dtype) is str else None
        if np_dtype is None:
            raise SchemaError(f"array {name!r}: dtype {dtype!r:.40} not allowed")
        if type(shape) is not list or len(shape) > MAX_NDIM:
            raise SchemaError(f"array {name!r}: bad shape {shape!r:.80}")
        count = 1
        for dim in shape:
            if type(dim) is not int or not 0 <= dim <= _U64_MAX:
                raise SchemaError(f"array {name!r}: bad shape {shape!r:.80}")
            count *= dim
        if type(offset) is not int or type(nbytes) is not int or offset != (end + ALIGN - 1) // ALIGN * ALIGN:
            raise SchemaError(f"array {name!r}: offset {offset!r} is not the aligned end of the previous array")
        if nbytes != count * np_dtype.itemsize:
            raise SchemaError(f"array {name!r}: nbytes {nbytes} != {shape} x {np_dtype.itemsize}")
        end = offset + nbytes
        if end > payload:
            raise SchemaError(f"array {name!r} ends at {end}, beyond payload_bytes {payload}")
        try:  # numpy refuses some declared shapes itself (e.g. [0, 2**63]: too many elements)
            # the ndarray constructor: a view of the frame, 4x cheaper than frombuffer + reshape
            arrays[name] = np.ndarray(shape, np_dtype, view, start + offset)
        except (ValueError, TypeError, OverflowError, MemoryError) as exc:
            raise SchemaError(f"array {name!r}: shape {shape!r:.80} refused by numpy ({exc})") from None
    if end != payload:
        raise SchemaError(f"arrays end at {end}, payload_bytes says {payload}")
    return arrays


def decode(data: Any, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, expect: AbstractSet[str] | None = None) -> Message:
    """Validate and decode one frame.

    Args:
        data: bytes-like (bytes, memoryview, ``zmq.Frame.buffer``).
        max_bytes: maximum accepted frame size.
        expect: kinds accepted at this socket (others raise :class:`UnknownKind`).

    Returns:
        The :class:`Message`; its arrays are read-only views of ``data``.

    Raises:
        WireError: one of its subclasses, with the reason in the message.
    """
    view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
    header, start = _parse_header(view, max_bytes)
    if header.get("schema") != SCHEMA:
        raise VersionMismatch(f"schema {header.get('schema')!r:.60}, expected {SCHEMA!r}")
    kind = header.get("kind")
    if kind not in KINDS or (expect is not None and kind not in expect):
        allowed = sorted(expect) if expect is not None else sorted(KINDS)
        raise UnknownKind(f"message kind {kind!r:.40} not accepted here (expected {allowed})")
    fields = {k: v for k, v in header.items() if k not in ("schema", "kind", "arrays", "payload_bytes")}
    _check_fields(kind, fields)
    payload = header.get("payload_bytes")
    if not _is_uint(payload):
        raise SchemaError(f"bad payload_bytes {payload!r:.40}")
    if len(view) < start + payload:
        raise Truncated(f"payload declares {payload} bytes, only {max(0, len(view) - start)} present")
    if len(view) > start + payload:
        raise SchemaError(f"{len(view) - start - payload} trailing bytes after the payload")
    arrays = _parse_arrays(view, header.get("arrays", []), start, payload)
    return Message(kind=kind, fields=fields, arrays=arrays, nbytes=len(view))


Spec = dict[str, tuple[str, tuple[int, ...]]]


def array_spec(arrays: Mapping[str, Any]) -> Spec:
    """``{flat name: (dtype str, shape)}`` of (nested) arrays, e.g. of an example transition.

    Entries given as ``(dtype, shape)`` tuples are normalised instead, so a spec can be
    written by hand: ``{"obs": {"state": ("float32", (18,))}, "action": ("float32", (7,))}``.
    """
    def walk(tree: Mapping[str, Any], prefix: str = ""):  # like flatten, but accepts flat specs too
        for key, value in tree.items():
            if isinstance(value, Mapping):
                yield from walk(value, f"{prefix}{key}/")
            else:
                yield f"{prefix}{key}", value

    spec: Spec = {}
    for name, value in walk(arrays):
        if isinstance(value, tuple) and len(value) == 2:
            dtype, shape = value
        else:
            value = np.asarray(value)
            dtype, shape = value.dtype, value.shape
        spec[name] = (np.dtype(dtype).newbyteorder("<").str if np.dtype(dtype).itemsize > 1
                      else np.dtype(dtype).str, tuple(int(s) for s in shape))
    return spec


def check_arrays(arrays: Mapping[str, np.ndarray], expected: Spec | None = None, finite: bool = True,
                 optional: Spec | None = None, max_abs: float | None = None) -> None:
    """Check flat decoded arrays against an expected spec and for NaN/inf.

    Args:
        arrays: flat name -> array (as decoded).
        expected: names that must all be present, with their dtype and shape.
        finite: refuse NaN/inf in float arrays.
        optional: names that may be present (checked like ``expected`` when they are).
        max_abs: refuse float arrays with any ``|x| > max_abs`` (None: no bound).

    Raises:
        SpecMismatch: missing/extra names, or another dtype or shape.
        NonFinite: a float array with NaN or inf (when ``finite``).
        TooLargeValue: a float value beyond ``max_abs``.
    """
    if expected is not None:
        allowed = {**(optional or {}), **expected}
        missing, extra = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(allowed))
        if missing or extra:
            raise SpecMismatch(f"arrays differ from the expected spec: missing {missing[:8]}, unexpected {extra[:8]}")
        for name, arr in arrays.items():
            dtype, shape = allowed[name]
            if arr.dtype.str != dtype or tuple(arr.shape) != tuple(shape):
                raise SpecMismatch(f"array {name!r} is {arr.dtype.str}{list(arr.shape)}, expected {dtype}{list(shape)}")
    if finite or max_abs is not None:
        for name, arr in arrays.items():
            if arr.dtype.kind != "f" or arr.size == 0:
                continue
            if finite and not np.isfinite(arr).all():
                raise NonFinite(f"array {name!r} holds NaN or inf")
            if max_abs is not None and float(np.max(np.abs(arr))) > max_abs:
                raise TooLargeValue(f"array {name!r} holds |x| = {float(np.max(np.abs(arr))):.3g} > {max_abs:g}")
