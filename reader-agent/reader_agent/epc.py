"""EPC binary <-> GS1 pure-identity URIs for the four 96-bit schemes kit is tagged with.

GIAI-96 (individual assets: radios, tasers), GRAI-96 (returnable assets: cases, chargers),
SGTIN-96 (trade items) and SSCC-96 (shipments, evidence containers), per the GS1 EPC Tag Data
Standard "EPC Binary Encoding" (docs/reader-protocols.md, Appendix A). Anything else, including the
chip-default `E2...` EPCs and 96-bit values that break a scheme's rules, stays raw hex as
`urn:epc:raw:<bits>.x<HEX>` with `gs1=False`.

Own code rather than `epcpy` (correct, but about 50 µs per decode on this machine against the
pipeline's 10 µs-per-read budget, and an extra dependency on the Pi); epcpy is the test oracle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ledger.core.bounds import MAX_EPC_BYTES

MAX_URI_TEXT_CHARS: Final = 128
"""The longest pure-identity URI of a 96-bit scheme is under 60 characters."""


class EpcError(ValueError):
    """An EPC or URI that cannot be encoded or decoded as asked."""


@dataclass(frozen=True, slots=True)
class Scheme:
    name: str  # URI scheme name, e.g. "sgtin"
    header: int
    # partition -> (company prefix bits, digits, reference bits, digits)
    partitions: tuple[tuple[int, int, int, int], ...]
    serial_bits: int  # 38 for SGTIN/GRAI; 0 when the reference takes the rest
    reserved_bits: int  # SSCC's 24 unused bits


def _table(refs: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int, int, int], ...]:
    prefixes = ((40, 12), (37, 11), (34, 10), (30, 9), (27, 8), (24, 7), (20, 6))
    return tuple((pb, pd, rb, rd) for (pb, pd), (rb, rd) in zip(prefixes, refs, strict=True))


SCHEMES: Final = {
    0x30: Scheme("sgtin", 0x30, _table(((4, 1), (7, 2), (10, 3), (14, 4), (17, 5), (20, 6),
                                        (24, 7))), 38, 0),
    0x31: Scheme("sscc", 0x31, _table(((18, 5), (21, 6), (24, 7), (28, 8), (31, 9), (34, 10),
                                       (38, 11))), 0, 24),
    0x33: Scheme("grai", 0x33, _table(((4, 0), (7, 1), (10, 2), (14, 3), (17, 4), (20, 5),
                                       (24, 6))), 38, 0),
    0x34: Scheme("giai", 0x34, _table(((42, 13), (45, 14), (48, 15), (52, 16), (55, 17),
                                       (58, 18), (62, 19))), 0, 0),
}
_BY_NAME: Final = {s.name: s for s in SCHEMES.values()}
_FREE_REFERENCE: Final = frozenset({"giai"})  # references that are plain integers
_PURE = re.compile(r"urn:epc:id:(sgtin|sscc|grai|giai):(\d+)\.(\d*)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class EpcIdentity:
    """What an EPC means: its URI, scheme (e.g. "sgtin-96" or "raw"), filter value, GS1-ness."""

    uri: str
    scheme: str
    gs1: bool
    filter: int | None = None


def raw_uri(epc: bytes) -> str:
    return f"urn:epc:raw:{len(epc) * 8}.x{epc.hex().upper()}"


def decode_epc(epc: bytes) -> EpcIdentity:
    """Decode EPC bytes (PC and CRC removed). Never raises for well-sized input: an EPC that
    is not a valid 96-bit GS1 encoding is returned raw."""
    if len(epc) > MAX_EPC_BYTES:
        raise EpcError(f"EPC of {len(epc)} bytes exceeds {MAX_EPC_BYTES}")
    scheme = SCHEMES.get(epc[0]) if len(epc) == 12 else None
    if scheme is None:
        return EpcIdentity(raw_uri(epc), "raw", False)
    value = int.from_bytes(epc[1:], "big")  # 88 bits after the header
    filter_value = value >> 85
    partition = (value >> 82) & 0x7
    if partition == 7:
        return EpcIdentity(raw_uri(epc), "raw", False)
    prefix_bits, prefix_digits, ref_bits, ref_digits = scheme.partitions[partition]
    rest = 82 - prefix_bits - ref_bits
    prefix = (value >> rest + ref_bits) & ((1 << prefix_bits) - 1)
    reference = (value >> rest) & ((1 << ref_bits) - 1)
    tail = value & ((1 << rest) - 1)
    if prefix >= 10**prefix_digits or (scheme.name != "giai" and reference >= 10**ref_digits):
        return EpcIdentity(raw_uri(epc), "raw", False)
    if scheme.reserved_bits and tail:
        return EpcIdentity(raw_uri(epc), "raw", False)
    fields = [str(prefix).zfill(prefix_digits)]
    if scheme.name == "giai":
        if reference >= 10**ref_digits:
            return EpcIdentity(raw_uri(epc), "raw", False)
        fields.append(str(reference))
    else:
        fields.append(str(reference).zfill(ref_digits) if ref_digits else "")
    if scheme.serial_bits:
        fields.append(str(tail))
    uri = f"urn:epc:id:{scheme.name}:{'.'.join(fields)}"
    return EpcIdentity(uri, f"{scheme.name}-96", True, filter_value)


def epc_to_uri(epc: bytes) -> str:
    return decode_epc(epc).uri


def encode_pure_uri(uri: str, filter_value: int = 0) -> bytes:
    """The 96-bit EPC of a pure-identity URI (or `urn:epc:raw:...`), for the simulator, tests
    and tag commissioning."""
    if len(uri) > MAX_URI_TEXT_CHARS:
        raise EpcError(f"URI longer than {MAX_URI_TEXT_CHARS} characters")
    if uri.startswith("urn:epc:raw:"):
        bits, _, hexpart = uri[len("urn:epc:raw:") :].partition(".x")
        try:
            epc = bytes.fromhex(hexpart)
        except ValueError:
            raise EpcError("raw URI hex is not hexadecimal") from None
        if not bits.isdigit() or int(bits) != len(epc) * 8 or len(epc) > MAX_EPC_BYTES:
            raise EpcError("raw URI length does not match its hex")
        return epc
    match = _PURE.fullmatch(uri)
    if match is None:
        raise EpcError(f"not a pure-identity URI of a 96-bit scheme: {uri[:60]!r}")
    name, prefix, reference, serial = match.groups()
    scheme = _BY_NAME[name]
    if (serial is None) != (scheme.serial_bits == 0):
        raise EpcError(f"{name} URI has the wrong number of fields")
    if not 0 <= filter_value <= 7:
        raise EpcError(f"filter {filter_value} outside 0..7")
    partition = next((p for p, row in enumerate(scheme.partitions) if row[1] == len(prefix)), -1)
    if partition < 0:
        raise EpcError(f"company prefix must have 6..12 digits, found {len(prefix)}")
    pb, _, rb, rd = scheme.partitions[partition]
    if name == "giai":
        if (reference[:1] == "0" and reference != "0") or not reference or len(reference) > rd:
            raise EpcError("GIAI-96 asset reference must be an integer of at most "
                           f"{rd} digits without leading zeros")
        ref_value = int(reference)
    elif len(reference) != rd:
        raise EpcError(f"{name} reference must have {rd} digits with this prefix")
    else:
        ref_value = int(reference or "0")
    value = (filter_value << 3 | partition) << pb | int(prefix)
    value = value << rb | ref_value
    if ref_value >= 1 << rb:
        raise EpcError("reference too large for its field")
    tail_bits = 82 - pb - rb
    tail = 0
    if serial is not None:
        if (serial[:1] == "0" and serial != "0") or int(serial) >= 1 << tail_bits:
            raise EpcError(f"serial must be an integer below 2^{tail_bits}, no leading zeros")
        tail = int(serial)
    value = value << tail_bits | tail
    return bytes((scheme.header,)) + value.to_bytes(11, "big")
