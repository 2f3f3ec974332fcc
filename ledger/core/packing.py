"""Several JSON objects in one MQTT message: a JSON array holding each object's bytes verbatim.

MQTT costs each message a publish, a PUBACK and a wake-up at both ends, about as much CPU as
verifying an observation. So a reader agent with a backlog (a tray of radios read in one pass,
its outbox after an outage) sends its signed envelopes several to a message, and the API
answers a batch's reads to one reader the same way. Each object keeps its own bytes: an
envelope's signature covers exactly the bytes it was sent as. A message of one object is the
bare object, not a one-element array, so a lone read is the same bytes whether or not it is packed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Final

_DECODER = json.JSONDecoder()

MAX_OBJECT_CHARS: Final = 4096
"""The longest object a packed array may hold: a signed envelope is at most about 1.2 KiB
(ingest refuses one over 4 KiB) and a decision under 1 KiB. It also bounds how deep one
parse can nest."""


def chunks(sizes: Sequence[int], max_items: int, max_bytes: int) -> Iterator[range]:
    """Consecutive ranges of indices into `sizes` (the objects' byte lengths), each as long as
    `max_items` allows and, packed, `max_bytes` (an object too large for that goes alone)."""
    start, packed = 0, 1  # "[", then each object and its "," or "]"
    for index, size in enumerate(sizes):
        if index > start and (index - start == max_items or packed + size + 1 > max_bytes):
            yield range(start, index)
            start, packed = index, 1
        packed += size + 1
    if start < len(sizes):
        yield range(start, len(sizes))


def pack(objects: Sequence[bytes]) -> bytes:
    """One message's payload: the object itself, or a JSON array of several, bytes verbatim."""
    if len(objects) == 1:
        return objects[0]
    return b"[" + b",".join(objects) + b"]"


def unpack(payload: bytes, max_items: int) -> list[bytes]:
    """The objects a message carries, each as the exact bytes it was packed as.

    A payload that is not a packed array (no leading "[") is one object. An array that is not
    1 to `max_items` JSON objects of at most `MAX_OBJECT_CHARS` each, written compactly as
    `pack` writes them, comes back whole, as one item: the caller's own checks of an object
    then refuse it (malformed, oversize), so a hostile array is refused and counted like any
    bad message, never half-read.
    """
    if not payload.startswith(b"["):
        return [payload]
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return [payload]
    objects: list[bytes] = []
    position = 1
    while len(objects) < max_items:
        # Parsed from a bounded slice: json's C parser recurses once per nesting level, and
        # py_ecc (imported with the embedded chain) raises Python's recursion limit to
        # 100,000, so an unbounded run of "[" would overflow the C stack, not raise.
        window = text[position:position + MAX_OBJECT_CHARS]
        try:
            value, length = _DECODER.raw_decode(window)
        except (ValueError, RecursionError):
            return [payload]
        if not isinstance(value, dict):
            return [payload]
        end = position + length
        objects.append(text[position:end].encode("utf-8"))
        if text[end:end + 1] == ",":
            position = end + 1
        elif end == len(text) - 1 and text[end] == "]":
            return objects
        else:
            return [payload]
    return [payload]
