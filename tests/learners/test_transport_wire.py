"""The wire format: exact round trips and a specific error for every kind of bad frame."""

from __future__ import annotations

import pickle
import struct

import msgpack
import numpy as np
import pytest

from learners.transport import wire
from tests.learners.transport_helpers import assert_same, make_transition

FIELDS = {"actor": "a0", "stream": 7, "seq": 3, "policy_version": 2}


def _frame(header: dict, payload: bytes = b"", version: int = wire.WIRE_VERSION) -> bytes:
    head = msgpack.packb(header)
    pad = wire._align(wire.PREFIX.size + len(head)) - wire.PREFIX.size - len(head)
    return wire.PREFIX.pack(wire.MAGIC, version, 0, len(head)) + head + bytes(pad) + payload


def _header(**over) -> dict:
    h = {"schema": wire.SCHEMA, "kind": "transition", **FIELDS,
         "arrays": [{"name": "x", "dtype": "<f4", "shape": [2], "offset": 0, "nbytes": 8}], "payload_bytes": 8}
    h.update(over)
    return h


def test_round_trip_is_exact_for_every_dtype_and_shape():
    arrays = {f"a_{dt.replace('<', 'l').replace('|', 'p')}": np.arange(6).astype(dt).reshape(2, 3)
              for dt in sorted(wire.ALLOWED_DTYPES)}
    arrays.update(scalar=np.float64(1.5), empty=np.zeros((0, 4), np.float32),
                  strided=np.arange(20, dtype=np.int16).reshape(4, 5)[:, ::2], bigendian=np.arange(3, dtype=">f8"))
    msg = wire.decode(wire.encode("transition", FIELDS, arrays))
    assert msg.kind == "transition" and msg.fields == FIELDS
    for name, value in arrays.items():
        got = msg.arrays[name]
        assert got.shape == np.shape(value)
        np.testing.assert_array_equal(got, value)
        assert got.dtype.str in wire.ALLOWED_DTYPES
    nested = make_transition(4)
    assert_same(nested, wire.unflatten(wire.decode(wire.encode("transition", FIELDS, nested)).arrays))


def test_buffers_are_aligned_and_frame_is_exact_size():
    data = wire.encode("transition", FIELDS, {"a": np.ones(3, np.uint8), "b": np.ones(5, np.float64)})
    msg = wire.decode(data)
    assert msg.nbytes == len(data)
    for arr in msg.arrays.values():
        assert arr.ctypes.data % 8 == (msg.arrays["a"].ctypes.data % 8)
    with pytest.raises(ValueError):  # received arrays are read-only views
        msg.arrays["a"][0] = 2


def test_encode_refuses_what_cannot_travel():
    with pytest.raises(TypeError):
        wire.encode("transition", FIELDS, {"o": np.array([object()])})
    with pytest.raises(TypeError):
        wire.encode("transition", FIELDS, {"c": np.zeros(2, np.complex64)})
    with pytest.raises(wire.SchemaError):
        wire.encode("transition", {"actor": "a"}, {})
    with pytest.raises(wire.UnknownKind):
        wire.encode("pickle", {}, {})
    with pytest.raises(ValueError):
        wire.encode("transition", FIELDS, {"a/b": np.zeros(1)})


GOOD = wire.encode("transition", FIELDS, {"x": np.arange(1000, dtype=np.float32)})


@pytest.mark.parametrize("data,error", [
    (b"", wire.Truncated),
    (b"HIL", wire.Truncated),
    (b"\x00" * 64, wire.BadMagic),
    (pickle.dumps({"obs": np.zeros(3)}), wire.BadMagic),
    (msgpack.packb(_header()), wire.BadMagic),
    (GOOD[:20], wire.Truncated),
    (GOOD[:-1], wire.Truncated),
    (GOOD + b"\0", wire.SchemaError),
    (GOOD[:4] + struct.pack("<H", 2) + GOOD[6:], wire.VersionMismatch),
    (GOOD[:6] + struct.pack("<H", 1) + GOOD[8:], wire.SchemaError),
    (GOOD[:8] + struct.pack("<I", 2**31) + GOOD[12:], wire.TooLarge),
    (_frame(_header(schema="other.proto"), bytes(8)), wire.VersionMismatch),
    (_frame(_header(), bytes(8), version=0), wire.VersionMismatch),
    (_frame(_header(kind="exec"), bytes(8)), wire.UnknownKind),
    (_frame(_header(kind="weights", version=1, learner=1), bytes(8)), wire.UnknownKind),
    (_frame(_header(seq=-1), bytes(8)), wire.SchemaError),
    (_frame(_header(seq="3"), bytes(8)), wire.SchemaError),
    (_frame(_header(actor=""), bytes(8)), wire.SchemaError),
    (_frame({k: v for k, v in _header().items() if k != "policy_version"}, bytes(8)), wire.SchemaError),
    (_frame(_header(arrays=[{"name": "x", "dtype": "|O", "shape": [1], "offset": 0, "nbytes": 8}]), bytes(8)), wire.SchemaError),
    (_frame(_header(arrays=[{"name": "x", "dtype": "<c8", "shape": [1], "offset": 0, "nbytes": 8}]), bytes(8)), wire.SchemaError),
    (_frame(_header(arrays=[{"name": "x", "dtype": "<f4", "shape": [3], "offset": 0, "nbytes": 8}]), bytes(8)), wire.SchemaError),
    (_frame(_header(arrays=[{"name": "x", "dtype": "<f4", "shape": [2**40, 2**40], "offset": 0, "nbytes": 8}]), bytes(8)), wire.SchemaError),
    (_frame(_header(arrays=[{"name": "x", "dtype": "<f4", "shape": [4], "offset": 0, "nbytes": 16}], payload_bytes=16), bytes(8)), wire.Truncated),
    (_frame(_header(arrays=[{"name": "x", "dtype": "<f4", "shape": [2], "offset": 8, "nbytes": 8}], payload_bytes=16), bytes(16)), wire.SchemaError),
    (_frame(_header(arrays=[{"name": "x", "dtype": "<f4", "shape": [1], "offset": 0, "nbytes": 4},
                            {"name": "x", "dtype": "<f4", "shape": [1], "offset": 8, "nbytes": 4}]), bytes(8)), wire.SchemaError),
    (_frame(_header(arrays="x"), bytes(8)), wire.SchemaError),
    (_frame(_header(payload_bytes=-8), bytes(8)), wire.SchemaError),
    (wire.PREFIX.pack(wire.MAGIC, 1, 0, 3) + b"\xc1\xc1\xc1" + bytes(5), wire.SchemaError),
    (wire.PREFIX.pack(wire.MAGIC, 1, 0, 1) + b"\x93" + bytes(7), wire.SchemaError),
    (wire.PREFIX.pack(wire.MAGIC, 1, 0, 2) + b"\xd4\x05" + bytes(6), wire.SchemaError),
])
def test_decode_rejects_bad_frames_with_a_specific_error(data, error):
    with pytest.raises(error) as info:
        wire.decode(data, expect={"transition", "ping"})  # what the transition receiver accepts
    assert isinstance(info.value, wire.WireError) and info.value.reason and str(info.value)


def test_decode_rejects_oversized_before_parsing():
    big = wire.encode("transition", FIELDS, {"x": np.zeros(100_000, np.uint8)})
    with pytest.raises(wire.TooLarge):
        wire.decode(big, max_bytes=50_000)
    assert wire.decode(big, max_bytes=len(big)).arrays["x"].shape == (100_000,)


def test_unflatten_refuses_colliding_names():
    with pytest.raises(wire.SchemaError):
        wire.unflatten({"obs": np.zeros(1), "obs/state": np.zeros(1)})


def test_transition_spec_converts_float_width_and_refuses_other_dtypes():
    """A float64 state (gym envs) becomes the spec's float32; one beyond float32 is
    non-finite; an int state, a (5,) state or a missing action is a spec mismatch."""
    from learners.transport.spec import conform_floats, transition_spec

    required, optional = transition_spec({"state": ((4,), "float32")}, 2)

    def flat(state):
        return {"obs/state": state, "next_obs/state": np.zeros(4, np.float32), "action": np.zeros(2, np.float32),
                "base_action": np.zeros(2, np.float32), "residual_action": np.zeros(2, np.float32),
                "reward": np.float32(0), "terminated": np.bool_(False), "truncated": np.bool_(False)}

    ok = conform_floats(flat(np.ones(4, np.float64)), required, optional)
    assert ok["obs/state"].dtype == np.float32
    wire.check_arrays(ok, required, optional=optional)
    with pytest.raises(wire.NonFinite):
        wire.check_arrays(conform_floats(flat(np.full(4, 1e300)), required, optional), required, optional=optional)
    for bad in (flat(np.ones(4, np.int32)), flat(np.ones(5, np.float32)),
                {k: v for k, v in flat(np.ones(4, np.float32)).items() if k != "action"}):
        with pytest.raises(wire.SpecMismatch):
            wire.check_arrays(conform_floats(bad, required, optional), required, optional=optional)


def test_declared_shapes_numpy_refuses_are_schema_errors():
    """[0, 2**63] passes the byte arithmetic (0 bytes) but numpy cannot shape it."""
    head = msgpack.packb({"schema": wire.SCHEMA, "kind": "weights", "version": 1, "learner": 1, "payload_bytes": 0,
                          "arrays": [{"name": "x", "dtype": "<f4", "shape": [0, 2**63], "offset": 0, "nbytes": 0}]})
    frame = wire.PREFIX.pack(wire.MAGIC, wire.WIRE_VERSION, 0, len(head)) + head
    frame += bytes(wire._align(len(frame)) - len(frame))
    with pytest.raises(wire.SchemaError, match="refused by numpy"):
        wire.decode(frame)
