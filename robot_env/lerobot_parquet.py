"""LeRobot v2.1 parquet data files: numpy columns to one parquet file per episode, and back.

LeRobot writes its data files with Hugging Face ``datasets`` from the ``features`` of
``meta/info.json``: a feature of shape ``[1]`` is a plain column (``Value``), a feature of
shape ``[N]`` a fixed-size list of N values (``Sequence(length=N)``), an ``image`` feature a
struct ``{bytes: PNG, path: null}`` (``Image``), a ``video`` feature no column at all (its
frames are in the mp4). This module writes the same arrow types, plus the ``huggingface``
schema metadata ``datasets`` reads the features back from, so that ``datasets`` and LeRobot
see the columns they would have written themselves. Only ``pyarrow`` and OpenCV are needed;
neither ``datasets`` nor ``lerobot`` is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robot_env.dataset import DatasetError
from robot_env.atomic import atomic_write


def hf_feature(feature: dict[str, Any]) -> dict[str, Any]:
    """The ``datasets`` feature (as its JSON) of LeRobot feature ``feature``; video features have none."""
    if feature["dtype"] == "image":
        return {"_type": "Image"}
    value: dict[str, Any] = {"dtype": feature["dtype"], "_type": "Value"}
    if list(feature["shape"]) == [1]:
        return value
    for size in reversed(feature["shape"]):  # (A, B) -> Sequence(Sequence(Value, B), A)
        value = {"feature": value, "length": int(size), "_type": "Sequence"}
    return value


def _encode_png(frames: np.ndarray) -> pa.Array:
    import cv2

    blobs = []
    for frame in frames:
        ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if not ok:
            raise DatasetError("OpenCV cannot encode a frame as PNG")
        blobs.append(png.tobytes())
    return pa.StructArray.from_arrays([pa.array(blobs, pa.binary()), pa.nulls(len(blobs), pa.string())],
                                      names=["bytes", "path"])


def _decode_png(column: pa.Array) -> np.ndarray:
    import cv2

    frames = []
    for blob in column.field("bytes").to_pylist():
        frame = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            raise DatasetError("cannot decode an image cell of a parquet data file")
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return np.stack(frames)


def to_arrow(array: np.ndarray, feature: dict[str, Any]) -> pa.Array:
    """Column ``array`` (T, *shape) as the arrow array LeRobot writes for ``feature``."""
    if feature["dtype"] == "image":
        return _encode_png(array)
    shape = [] if list(feature["shape"]) == [1] else [int(s) for s in feature["shape"]]
    column: pa.Array = pa.array(np.ascontiguousarray(array).reshape(-1))
    for size in reversed(shape):
        column = pa.FixedSizeListArray.from_arrays(column, size)
    return column


def from_arrow(column: pa.ChunkedArray | pa.Array, feature: dict[str, Any] | None) -> np.ndarray:
    """A parquet column back to numpy: (T,) for a ``[1]`` feature, (T, *shape) otherwise.

    Reads fixed-size and variable-size lists (``datasets`` >= 4 may write the latter) and
    PNG image structs; ``feature`` None (a column info.json does not list) is read as it is.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_struct(column.type):
        return _decode_png(column)
    rows, inner = len(column), column
    while pa.types.is_list(inner.type) or pa.types.is_fixed_size_list(inner.type) \
            or pa.types.is_large_list(inner.type):
        inner = inner.flatten()
    values = inner.to_numpy(zero_copy_only=False)
    if feature is None or list(feature["shape"]) == [1]:
        return values.reshape(rows, -1).squeeze(1) if values.size == rows else values.reshape(rows, -1)
    return values.reshape(rows, *[int(s) for s in feature["shape"]])


def write_episode_parquet(path: Path, columns: dict[str, np.ndarray], features: dict[str, dict]) -> None:
    """Write the non-video ``columns`` to ``path`` atomically, in the order of ``features``.

    Args:
        path: ``.../data/chunk-XXX/episode_XXXXXX.parquet``; its folder is created.
        columns: name -> (T, *shape) array, LeRobot's column names.
        features: ``meta/info.json``'s ``features``; video features are skipped.
    """
    names = [n for n, f in features.items() if f["dtype"] != "video"]
    table = pa.table({n: to_arrow(columns[n], features[n]) for n in names})
    hf_meta = {"info": {"features": {n: hf_feature(features[n]) for n in names}}}
    table = table.replace_schema_metadata({"huggingface": json.dumps(hf_meta)})
    atomic_write(path, lambda f: pq.write_table(table, f))


def read_episode_parquet(path: Path, features: dict[str, dict]) -> dict[str, np.ndarray]:
    """Read one episode's data file: column name -> numpy array (see :func:`from_arrow`)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"cannot read parquet data file {path}: {exc}") from exc
    return {name: from_arrow(table.column(name), features.get(name)) for name in table.column_names}
