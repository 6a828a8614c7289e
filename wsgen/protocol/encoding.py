"""Wire encodings of server messages: JSON text and the binary data frame.

JSON: one object per WebSocket text message, serialised with orjson (numpy
arrays directly; NaN becomes ``null``).

Binary data frame (``encoding: "binary"``), all little-endian::

    offset size  field
    0      1     version (1)
    1      1     flags: bit 0 = labels present
    2      2     id_len: bytes of the UTF-8 subscription id
    4      4     count: samples in this frame
    8      8     seq: index of the first sample (uint64)
    16     8     t: Unix time of the first sample (float64)
    24     8     dt: seconds between samples (float64)
    32     4     lag: seconds behind schedule (float32)
    36     4     skipped: samples dropped before this frame (uint32)
    40     id_len   subscription id (UTF-8)
    ..     8*count  values, float64
    ..     ceil(count/8) labels packed as bits, least significant bit first
                    (only when flags bit 0 is set)
"""
from __future__ import annotations

import struct
from typing import Any, NamedTuple

import numpy as np
import orjson

BINARY_VERSION = 1
HEADER = struct.Struct("<BBHIQddfI")
assert HEADER.size == 40
_OPTS = orjson.OPT_SERIALIZE_NUMPY


def wire_lag(lag: float) -> float:
    """A data message's ``lag`` as it is sent: seconds (>= 0) to the
    microsecond, rounded half up (``round()`` costs four times more)."""
    return int(lag * 1e6 + 0.5) / 1e6


def dumps(message: dict[str, Any]) -> bytes:
    """JSON bytes of a server message (numpy arrays allowed)."""
    return orjson.dumps(message, option=_OPTS)


def encode_binary(id: str, seq: int, t: float, dt: float, values: np.ndarray,
                  labels: np.ndarray | None = None, lag: float = 0.0, skipped: int = 0) -> bytes:
    """One binary data frame (layout in the module docstring)."""
    ident = id.encode()
    count = len(values)
    head = HEADER.pack(BINARY_VERSION, 1 if labels is not None else 0, len(ident), count, seq, t, dt,
                       lag, min(skipped, 0xFFFFFFFF))
    parts = [head, ident, np.ascontiguousarray(values, dtype="<f8").tobytes()]
    if labels is not None:
        parts.append(np.packbits(labels, bitorder="little").tobytes())
    return b"".join(parts)


class BinaryFrame(NamedTuple):
    id: str
    seq: int
    t: float
    dt: float
    values: np.ndarray
    labels: np.ndarray | None
    lag: float
    skipped: int


def decode_binary(frame: bytes) -> BinaryFrame:
    """Parse a binary data frame; raises ``ValueError`` if malformed."""
    if len(frame) < HEADER.size:
        raise ValueError(f"binary frame of {len(frame)} bytes is shorter than its {HEADER.size}-byte header")
    version, flags, id_len, count, seq, t, dt, lag, skipped = HEADER.unpack_from(frame)
    if version != BINARY_VERSION:
        raise ValueError(f"unsupported binary frame version {version}")
    pos = HEADER.size
    ident = frame[pos:pos + id_len].decode()
    pos += id_len
    end = pos + 8 * count
    values = np.frombuffer(frame, dtype="<f8", count=count, offset=pos)
    labels = None
    if flags & 1:
        labels = np.unpackbits(np.frombuffer(frame, np.uint8, offset=end), count=count,
                               bitorder="little").astype(bool)
    return BinaryFrame(ident, seq, t, dt, values, labels, lag, skipped)
