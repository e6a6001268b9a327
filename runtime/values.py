"""The format of a stored value: a header byte, an HMAC tag, then a cloudpickle stream with its
out-of-band buffers (numpy arrays), so a stored ``None`` is a value and never looks "missing",
large arrays are not pickled in-band, and nothing unsigned is ever unpickled (`runtime.signing`).
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import struct
from typing import Any

import cloudpickle

from runtime.errors import StoreError
from runtime.signing import TAG_BYTES, signing_key, verify

_HEADER = b"\x01"  # format version of a stored value; also what makes None non-empty
#: A value stored as a stream of chunks: this byte, then the stream's key.
STREAM_REF = b"\x02"
_COUNTS = struct.Struct("<II")
_LENGTH = struct.Struct("<Q")


def dumps(value: Any) -> bytes:
    """Serialise a value for the store.

    Format: a header byte, the HMAC-SHA256 tag of the rest (`runtime.signing`), the pickle's
    length and buffer count, the cloudpickle (protocol 5) stream, then each out-of-band buffer
    (numpy arrays) with its length, so large arrays are not pickled in-band and
    `serialised_nbytes` can measure the size without serialising.
    """
    buffers: list[pickle.PickleBuffer] = []
    head = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    parts: list[Any] = [_COUNTS.pack(len(head), len(buffers)), head]
    for buffer in buffers:
        raw = buffer.raw()
        parts += [_LENGTH.pack(raw.nbytes), raw]
    mac = hmac.new(signing_key(), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return b"".join([_HEADER, mac.digest(), *parts])


def loads(blob: bytes, key: str = "<blob>") -> Any:
    """Inverse of `dumps` (arrays come back writable).

    Raises
    ------
    StoreError
        If `blob` was not written by `dumps` (the message names `key`).
    UntrustedData
        If its signature does not match the shared key: it is not unpickled.
    """
    if not blob or blob[:1] != _HEADER:
        raise StoreError(f"value at {key!r} is not a faasdag value (bad header)")
    view = verify(memoryview(blob)[1:], f"value at {key!r}")
    n_head, n_buffers = _COUNTS.unpack_from(view, 0)
    at = _COUNTS.size
    head = view[at : at + n_head]
    at += n_head
    buffers = []
    for _ in range(n_buffers):
        (length,) = _LENGTH.unpack_from(view, at)
        at += _LENGTH.size
        buffers.append(bytearray(view[at : at + length]))
        at += length
    return pickle.loads(head, buffers=buffers)


def serialised_nbytes(value: Any) -> int:
    """Bytes `dumps(value)` takes, measured without copying large buffers (numpy arrays)."""
    buffers: list[pickle.PickleBuffer] = []
    head = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return (
        len(_HEADER)
        + TAG_BYTES
        + _COUNTS.size
        + len(head)
        + sum(_LENGTH.size + b.raw().nbytes for b in buffers)
    )


def is_value(blob: bytes | None) -> bool:
    """Whether `blob` is a stored value (by its header; its tag is checked by `loads`)."""
    return bool(blob) and blob[:1] == _HEADER
