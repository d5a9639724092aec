"""Per-instance columns on disk: Arrow IPC files (Feather v2), written atomically, memory-mapped on read.

Two kinds of files live in a sweep folder (the schema is in ``docs/results-format.md``):

``<dataset>-reference.arrow``
    Once per dataset: ``instance_id``, ``ground_truth``, ``h1_prediction``,
    ``h1_confidence``; the row order of every column of that dataset.
``<i>-evaluation.arrow``
    Once per datapoint: ``h2_prediction``, ``h2_confidence``, in the rows of
    its dataset's reference file.

Files are uncompressed, with one record batch, so that a reader maps them
into memory and gets numpy arrays without copying. Label columns use the
narrowest signed integer type that holds their values (``int8`` for up to
127 classes); confidences are ``float32``. pandas (``read_feather``), polars
(``read_ipc``) and pyarrow read them without this package.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import numpy as np
import pyarrow as pa

__all__ = [
    "FORMAT", "REFERENCE_COLUMNS", "EVALUATION_COLUMNS", "reference_name", "columns_name", "info_name",
    "narrow_labels", "write_columns", "read_columns", "read_metadata",
]

FORMAT = "bcml-columns/1"
REFERENCE_COLUMNS = ("instance_id", "ground_truth", "h1_prediction", "h1_confidence")
EVALUATION_COLUMNS = ("h2_prediction", "h2_confidence")
_FORMAT_KEY = b"bcml.format"
_INT_TYPES = (np.int8, np.int16, np.int32, np.int64)


def reference_name(dataset: str) -> str:
    """File name of a dataset's reference columns (``testing-reference.arrow``)."""
    return f"{dataset}-reference.arrow"


def columns_name(datapoint_index: int) -> str:
    """File name of a datapoint's h2 columns (``3-evaluation.arrow``)."""
    return f"{int(datapoint_index)}-evaluation.arrow"


def info_name(datapoint_index: int) -> str:
    """File name of a datapoint's scores and counts (``3-evaluation.json``)."""
    return f"{int(datapoint_index)}-evaluation.json"


def narrow_labels(values: np.ndarray) -> np.ndarray:
    """``values`` (integer labels) as the narrowest signed integer type that holds them."""
    values = np.asarray(values)
    if values.size == 0:
        return values.astype(np.int8)
    low, high = int(values.min()), int(values.max())
    for kind in _INT_TYPES:
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return values.astype(kind, copy=False)
    raise ValueError(f"labels beyond int64: {low}..{high}")  # pragma: no cover - numpy ints cannot be


def write_columns(store: Any, name: str, columns: Mapping[str, np.ndarray],
                  metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write ``columns`` as one Arrow IPC file ``name`` of ``store``'s folder, atomically.

    Parameters
    ----------
    store : SweepStore
        The folder (its ``_write_atomic``: a temporary file, fsync, then ``os.replace``).
    name : str
        File name.
    columns : mapping of str to numpy.ndarray
        Equally long 1-D arrays, in column order.
    metadata : mapping of str to str, optional
        Extra schema metadata (``bcml.format`` is always set).
    """
    table = pa.table({key: pa.array(np.ascontiguousarray(value)) for key, value in columns.items()})
    tags = {_FORMAT_KEY: FORMAT.encode()}
    tags.update({key.encode(): str(value).encode() for key, value in (metadata or {}).items()})
    table = table.replace_schema_metadata(tags)

    def write(handle: Any) -> None:
        with pa.ipc.new_file(handle, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(1, table.num_rows))

    store._write_atomic(name, write, "wb")


def read_columns(path: "str | os.PathLike[str]") -> Dict[str, np.ndarray]:
    """The columns of an Arrow IPC file as read-only numpy arrays over a memory map.

    Raises
    ------
    OSError, pyarrow.ArrowInvalid
        If the file is missing or not an Arrow IPC file.
    """
    source = pa.memory_map(os.fspath(path), "r")
    table = pa.ipc.open_file(source).read_all()
    arrays = {}
    for name in table.column_names:
        column = table.column(name)
        if column.num_chunks == 1:
            chunk = column.chunk(0)
        elif column.num_chunks == 0:
            chunk = pa.array([], type=column.type)
        else:
            chunk = column.combine_chunks()
        array = _as_numpy(chunk)
        array.setflags(write=False)
        arrays[name] = array
    return arrays


def _as_numpy(chunk: pa.Array) -> np.ndarray:
    """A numpy view of a primitive Arrow array without nulls (no copy, and no pandas import as
    ``to_numpy`` does on first use); other arrays through ``to_numpy``."""
    kind = chunk.type
    if chunk.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        prefix = "i" if pa.types.is_signed_integer(kind) else "u" if pa.types.is_integer(kind) else "f"
        dtype = np.dtype(f"<{prefix}{kind.bit_width // 8}")
        data = chunk.buffers()[1]
        if data is None or len(chunk) == 0:
            return np.empty(0, dtype=dtype)
        return np.frombuffer(data, dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
    return chunk.to_numpy(zero_copy_only=False)


def read_metadata(path: "str | os.PathLike[str]") -> Dict[str, str]:
    """The schema metadata of an Arrow IPC file (``bcml.format``, ``bcml.dataset``, ...)."""
    with pa.memory_map(os.fspath(path), "r") as source:
        schema = pa.ipc.open_file(source).schema
    return {key.decode(): value.decode() for key, value in (schema.metadata or {}).items()}
