"""Pure, incremental frame codecs for the UHF reader families the agent drives.

No serial import and no clock here: bytes in, frames and parsed messages out.

Public API (one module per family: `thingmagic`, `r200`, `r2000`, `chafon`, each with the same
shape):

- `decode(buffer, offset=0) -> DecodeResult`: the next reader->host frame from `offset`.
  `result.consumed` bytes are to be dropped; then `result.frame` (checksum-valid bytes),
  `result.rejected` (a candidate whose check failed; only its first byte was consumed) or
  neither (`result.need_more`). `result.garbage` counts skipped bytes.
- `decode_command(buffer, offset=0)`: the same for host->reader frames (simulator side).
- `parse(frame, monotonic) -> TagRead | ReaderReply`; raises `MalformedFrame` for a
  checksum-valid frame whose inner lengths contradict each other. `Codec.parse_all` returns
  every message of a frame as a list: a Chafon inventory answer carries several tags.
- `cmd_*` encoders for the commands drivers send, and encoders of reader->host frames
  (`encode_tag_record`, `encode_notification`, `encode_tag`, ...) for the simulator and tests.
- `gen2_crc16(pc_and_epc)`: the tag CRC every family reports; `MAX_EPC_BYTES`.
- `FrameStream(decode, spec=None)` (or `codec.stream()`): buffers serial chunks, returns
  whole frames, counts garbage bytes, bad checksums and resyncs; with a `FrameSpec` it scans
  each chunk in one loop (`scan_frames`, the fast path). `flush_stale()` implements the
  inter-byte timeout.
- `get_codec(name)`: the `Codec` of a family by its config name.

Errors: `ProtocolError` is the root (`MalformedFrame`, `EncodeError`, `UnknownProtocol`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reader_agent.protocol import chafon, r200, r2000, thingmagic
from reader_agent.protocol.framing import (
    MAX_EPC_BYTES,
    Buffer,
    DecodeResult,
    EncodeError,
    FrameCounters,
    FrameSpec,
    FrameStream,
    MalformedFrame,
    ProtocolError,
    ReaderReply,
    gen2_crc16,
)
from reader_agent.reads import TagRead

__all__ = [
    "MAX_EPC_BYTES",
    "Codec",
    "DecodeResult",
    "EncodeError",
    "FrameCounters",
    "FrameSpec",
    "FrameStream",
    "MalformedFrame",
    "ProtocolError",
    "ReaderReply",
    "UnknownProtocol",
    "gen2_crc16",
    "get_codec",
]


class UnknownProtocol(ProtocolError):
    """A protocol name that no codec answers to."""


@dataclass(frozen=True, slots=True)
class Codec:
    """The decode/parse entry points of one reader family."""

    name: str
    decode: Callable[[Buffer, int], DecodeResult]
    decode_command: Callable[[Buffer, int], DecodeResult]
    parse: Callable[[bytes, float], TagRead | ReaderReply]
    max_frame_len: int
    spec: FrameSpec
    parse_all: Callable[[bytes, float], list[TagRead | ReaderReply]]

    def stream(self) -> FrameStream:
        """A FrameStream for reader->host traffic using the batch scanner."""
        return FrameStream(self.decode, self.spec)


def _one(parse: Callable[[bytes, float], TagRead | ReaderReply],
         ) -> Callable[[bytes, float], list[TagRead | ReaderReply]]:
    """`parse_all` of a family whose frames hold one message each."""
    return lambda frame, monotonic: [parse(frame, monotonic)]


CODECS = {
    "thingmagic": Codec("thingmagic", thingmagic.decode, thingmagic.decode_command,
                        thingmagic.parse, thingmagic.MAX_FRAME_LEN, thingmagic.RESPONSE_SPEC,
                        _one(thingmagic.parse)),
    "r200": Codec("r200", r200.decode, r200.decode_command, r200.parse, r200.MAX_FRAME_LEN,
                  r200.FRAME_SPEC, _one(r200.parse)),
    "r2000": Codec("r2000", r2000.decode, r2000.decode_command, r2000.parse,
                   r2000.MAX_FRAME_LEN, r2000.FRAME_SPEC, _one(r2000.parse)),
    "chafon": Codec("chafon", chafon.decode, chafon.decode_command, chafon.parse,
                    chafon.MAX_FRAME_LEN, chafon.RESPONSE_SPEC, chafon.parse_all),
}
ALIASES = {"mercury": "thingmagic", "m6e": "thingmagic", "m7e": "thingmagic",
           "yrm100": "r200", "magicrf": "r200", "impinj-r2000": "r2000", "a0": "r2000",
           "uhfreader18": "chafon", "uhfreader288": "chafon", "cf-ru5102": "chafon",
           "cf-ru6402": "chafon"}


def get_codec(name: str) -> Codec:
    """The codec for a config name such as "thingmagic", "r200", "r2000" or "chafon" (or an
    alias)."""
    key = ALIASES.get(name.lower(), name.lower())
    try:
        return CODECS[key]
    except KeyError:
        known = sorted([*CODECS, *ALIASES])
        raise UnknownProtocol(f"unknown reader protocol {name[:40]!r}; known: {known}") from None
