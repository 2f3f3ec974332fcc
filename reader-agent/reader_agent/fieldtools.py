"""Field tools for engineers holding a capture: `kitledger-agent decode` and `kitledger-agent epc`.

    kitledger-agent decode --protocol thingmagic < capture.txt       hex text (spaces, colons,
                                                                      `#` comments allowed)
    kitledger-agent decode --protocol r200 --binary < capture.bin     raw bytes
    kitledger-agent decode --protocol chafon < capture.txt           frames open with their
                                                                      length: no start byte
    kitledger-agent decode --protocol llrp < messages.txt             LLRP messages (Wireshark's
                                                                      "copy as hex stream")
    kitledger-agent epc 3074257BF7194E4000001A85                      -> urn:epc:id:sgtin:...
    kitledger-agent epc urn:epc:id:giai:0614141.5678                  -> the 96-bit hex

`decode` prints one JSON line per frame candidate: offset, kind ("tag", a reply kind,
"rejected" for a failed checksum, "malformed"), checksum verdict and the frame's fields, then
a summary line counting frames, bad checksums and skipped garbage bytes. LLRP has no
checksum: each tag of an RO_ACCESS_REPORT gets a line, every other message one line with its
name and the fields worth reading (status, events). Exit status 0, or 2 for unusable input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from reader_agent.epc import EpcError, decode_epc, encode_pure_uri
from reader_agent.protocol import (
    Codec,
    MalformedFrame,
    ProtocolError,
    ReaderReply,
    get_codec,
    llrp,
)
from reader_agent.reads import TagRead

MAX_CAPTURE_BYTES = 256 * 1024 * 1024
"""A day of the fastest reader is about 2 GB; captures handed around are minutes long. The
bound stops a wrong file (a disk image) from running for hours."""
MAX_LINE_CHARS = 1 << 20
CHUNK = 64 * 1024
_SEPARATORS = re.compile(r"[\s:,\-]|0x|0X")


class CaptureError(ValueError):
    """Input that is not a capture in the announced format."""


def _hex_chunks(stream: IO[str]) -> Iterator[bytes]:
    total = 0
    for number, line in enumerate(stream, 1):
        if len(line) > MAX_LINE_CHARS:
            raise CaptureError(f"line {number} is longer than {MAX_LINE_CHARS} characters")
        text = _SEPARATORS.sub("", line.split("#", 1)[0])
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise CaptureError(f"line {number} is not hex: {line.strip()[:40]!r}") from None
        total += len(data)
        if total > MAX_CAPTURE_BYTES:
            raise CaptureError(f"capture larger than {MAX_CAPTURE_BYTES} bytes")
        yield data


def _binary_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    total = 0
    while chunk := stream.read(CHUNK):
        total += len(chunk)
        if total > MAX_CAPTURE_BYTES:
            raise CaptureError(f"capture larger than {MAX_CAPTURE_BYTES} bytes")
        yield chunk


def describe_frame(codec: Codec, frame: bytes, offset: int) -> list[dict[str, Any]]:
    """The JSON-able description of one checksum-valid frame: one line per message it holds
    (a Chafon inventory answer holds several tags and an end-of-round summary)."""
    line: dict[str, Any] = {"offset": offset, "checksum": "ok", "hex": frame.hex().upper()}
    try:
        messages = codec.parse_all(frame, 0.0)
    except MalformedFrame as exc:
        return [{**line, "kind": "malformed", "error": str(exc)}]
    return [{**line, **_fields(message)} for message in messages]


def _fields(message: TagRead | ReaderReply) -> dict[str, Any]:
    if isinstance(message, TagRead):
        identity = decode_epc(message.epc)
        return {"kind": "tag", "epc": message.epc_hex, "uri": identity.uri,
                "rssi_dbm": message.rssi_dbm, "antenna": message.antenna,
                "frequency_khz": message.frequency_khz, "pc": message.pc}
    return {"kind": message.kind, "command": message.command, "ok": message.ok,
            "code": message.code, "data": message.data.hex().upper()}


def decode_capture(codec: Codec, chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Every frame candidate of a capture, then the summary; at the end of input, bytes of an
    incomplete frame are rescanned one byte at a time (nothing more will arrive)."""
    buffer = bytearray()
    base = 0  # stream offset of buffer[0]
    counts = {"frames": 0, "tags": 0, "bad_checksum": 0, "malformed": 0, "garbage_bytes": 0}
    at_end = False
    while True:
        chunk = next(chunks, None)
        if chunk is None:
            at_end = True
        else:
            buffer += chunk
        pos = 0
        while True:
            result = codec.decode(buffer, pos)
            counts["garbage_bytes"] += result.garbage
            if result.frame is not None:
                counts["frames"] += 1
                for line in describe_frame(codec, result.frame, base + pos + result.garbage):
                    counts["tags"] += line["kind"] == "tag"
                    counts["malformed"] += line["kind"] == "malformed"
                    yield line
            elif result.rejected is not None:
                counts["bad_checksum"] += 1
                yield {"offset": base + pos + result.garbage - 1, "kind": "rejected",
                       "checksum": "bad", "hex": result.rejected.hex().upper()}
            elif at_end and pos + result.consumed < len(buffer):
                counts["garbage_bytes"] += 1
                pos += result.consumed + 1  # an incomplete candidate: skip its start byte
                continue
            pos += result.consumed
            if result.need_more:
                break
        del buffer[:pos]
        base += pos
        if at_end:
            yield {"summary": True, **counts}
            return


def _llrp_lines(frame: bytes, offset: int) -> list[dict[str, Any]]:
    head = llrp.header(frame)
    line: dict[str, Any] = {"offset": offset, "message_id": head.message_id}
    try:
        if head.type == llrp.RO_ACCESS_REPORT:
            return [{**line, "kind": "tag", "epc": read.epc_hex, "uri": decode_epc(read.epc).uri,
                     "rssi_dbm": read.rssi_dbm, "antenna": read.antenna or None,
                     "first_seen_us": read.reader_time_us}
                    for read in llrp.parse_report(frame)]
        return [{**line, "kind": "message", **llrp.describe(llrp.decode_message(frame))}]
    except MalformedFrame as exc:
        return [{**line, "kind": "malformed", "error": str(exc), "hex": frame.hex().upper()}]


def decode_llrp_capture(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """`decode_capture` for LLRP: messages found by their headers (no start byte, no checksum),
    one line per tag report; a header cut off at the end of input is skipped byte by byte."""
    buffer = bytearray()
    base = 0
    counts = {"frames": 0, "tags": 0, "bad_checksum": 0, "malformed": 0, "garbage_bytes": 0}
    at_end = False
    while not at_end:
        chunk = next(chunks, None)
        at_end = chunk is None
        buffer += chunk or b""
        pos = 0
        while True:
            result = llrp.decode(buffer, pos)
            counts["garbage_bytes"] += result.garbage
            if result.frame is not None:
                lines = _llrp_lines(result.frame, base + pos + result.garbage)
                counts["frames"] += 1
                counts["tags"] += sum(line["kind"] == "tag" for line in lines)
                counts["malformed"] += sum(line["kind"] == "malformed" for line in lines)
                yield from lines
            elif at_end and pos + result.consumed < len(buffer):
                counts["garbage_bytes"] += 1
                pos += result.consumed + 1
                continue
            pos += result.consumed
            if result.need_more:
                break
        del buffer[:pos]
        base += pos
    yield {"summary": True, **counts}


def decode_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kitledger-agent decode",
                                     description="Decode a reader capture read from stdin.")
    parser.add_argument("--protocol", required=True,
                        help="thingmagic, r200, r2000, chafon or llrp")
    parser.add_argument("--binary", action="store_true", help="stdin holds raw bytes, not hex")
    options = parser.parse_args(list(argv))
    try:
        chunks = (_binary_chunks(sys.stdin.buffer) if options.binary
                  else _hex_chunks(sys.stdin))
        lines = (decode_llrp_capture(chunks) if options.protocol.lower() == "llrp"
                 else decode_capture(get_codec(options.protocol), chunks))
        for line in lines:
            print(json.dumps(line, separators=(",", ":")))
    except (CaptureError, ProtocolError) as exc:
        print(f"kitledger-agent decode: {exc}", file=sys.stderr)
        return 2
    return 0


def epc_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kitledger-agent epc",
                                     description="Print the GS1 URI of an EPC (or the EPC "
                                                 "hex of a pure-identity URI).")
    parser.add_argument("epc", help="EPC hex (PC and CRC removed) or urn:epc:id:... URI")
    parser.add_argument("--json", action="store_true", help="print scheme and filter too")
    options = parser.parse_args(list(argv))
    text: str = options.epc.strip()
    try:
        if text.startswith("urn:"):
            print(encode_pure_uri(text).hex().upper())
            return 0
        epc = bytes.fromhex(_SEPARATORS.sub("", text))
        if not epc:
            raise EpcError("empty EPC")
        identity = decode_epc(epc)
    except (ValueError, EpcError) as exc:
        print(f"kitledger-agent epc: {exc}", file=sys.stderr)
        return 2
    if options.json:
        print(json.dumps({"epc": epc.hex().upper(), "uri": identity.uri,
                          "scheme": identity.scheme, "gs1": identity.gs1,
                          "filter": identity.filter}))
    else:
        print(identity.uri)
    return 0
