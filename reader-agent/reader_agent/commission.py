"""`kitledger-agent write-tag`: commission a new asset at the desk reader.

    kitledger-agent write-tag --protocol r200 --port /dev/rfid0 \\
        --uri urn:epc:id:giai:0614141.5678 [--filter 1] [--overwrite] [--lock] \\
        [--register https://api.example --asset-id R-17 --class-id radio --site north-store]

Encodes the asset's GS1 EPC (GIAI-96 for an individual asset, GRAI-96 for a returnable one),
checks that exactly one tag is on the reader and that it does not already carry a GS1 EPC
(someone's asset) unless `--overwrite`, writes PC and EPC, and reads the field again: the write
counts only if the one tag now answers with the new EPC. With `--register` the asset is then
created in the registry (POST /v1/assets) with the EPC written, using the API key in the
KITLEDGER_API_KEY environment variable (never on the command line, where `ps` shows it).

With `--lock` the verified tag then gets the access password held in the
KITLEDGER_TAG_ACCESS_PASSWORD environment variable (8 hex digits, not zero; never printed or
logged) and its EPC bank and access password are locked: a later rewrite fails with Gen2
"memory locked" unless it carries that password.

Families whose write command is documented to us byte for byte can write: ThingMagic (Write
Tag Data, 0x24), R200 (write tag memory, 0x49), R2000 (0x82) and Chafon (Write EPC, 0x04);
all but Chafon can also lock (docs/reader-protocols.md, "Writing tags"). Prints one JSON
line; exit status 0, 2 for bad arguments, 1 if the tag was not written, verified and (with
--lock) locked, or the registry refused it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reader_agent.drivers import CommandTimeout, DriverError, open_driver
from reader_agent.epc import EpcError, decode_epc, encode_pure_uri
from reader_agent.errors import AgentError

SURVEY_SECONDS = 1.0
"""Long enough for every family to finish several inventory rounds on a desk reader."""
ASSET_SCHEMES = frozenset({"giai", "grai"})
"""GIAI for individual assets, GRAI for returnable ones: what the registry tracks."""
API_KEY_ENV = "KITLEDGER_API_KEY"
ACCESS_PASSWORD_ENV = "KITLEDGER_TAG_ACCESS_PASSWORD"  # noqa: S105 -- a variable name
ACCESS_PASSWORD_DIGITS = 8
HTTP_TIMEOUT = 10.0
MAX_ANSWER_BYTES = 64 * 1024


class CommissionError(AgentError):
    """The tag was not written, or not verified, or the registry refused the asset."""


class TagWriter(Protocol):
    """What commissioning needs of a driver: the serial `ReaderDriver`s and `LlrpDriver`."""

    @property
    def protocol(self) -> str: ...

    @property
    def can_write(self) -> bool: ...

    @property
    def can_lock(self) -> bool: ...

    def survey(self, seconds: float) -> dict[bytes, int]: ...

    def write_epc(self, epc: bytes, current: bytes | None = None) -> None: ...

    def lock_epc(self, access_password: int) -> None: ...

    def close(self) -> None: ...

    def release(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Commissioned:
    epc: bytes
    uri: str
    previous: bytes
    reads_after: int
    locked: bool = False


def asset_epc(uri: str, filter_value: int = 0) -> bytes:
    """The 96-bit EPC of a GIAI or GRAI pure-identity URI."""
    scheme = uri.split(":")[3] if uri.count(":") >= 4 else ""
    if scheme not in ASSET_SCHEMES:
        raise CommissionError(f"{uri[:60]!r} is not a GIAI or GRAI pure-identity URI")
    try:
        return encode_pure_uri(uri, filter_value)
    except EpcError as exc:
        raise CommissionError(str(exc)) from None


def access_password(text: str) -> int:
    """The tag access password from its environment variable: 8 hex digits, not zero. The
    error never repeats the value."""
    if len(text) != ACCESS_PASSWORD_DIGITS or any(c not in "0123456789abcdefABCDEF"
                                                  for c in text):
        raise CommissionError(f"${ACCESS_PASSWORD_ENV} must be {ACCESS_PASSWORD_DIGITS} hex "
                              "digits")
    value = int(text, 16)
    if value == 0:
        raise CommissionError(f"${ACCESS_PASSWORD_ENV} must not be zero: a tag whose access "
                              "password is zero grants every access, so its lock holds nothing")
    return value


def commission(driver: TagWriter, epc: bytes, *, overwrite: bool = False,
               seconds: float = SURVEY_SECONDS, lock_password: int | None = None) -> Commissioned:
    """Write `epc` to the one tag on the reader and read it back; with `lock_password`, then
    give the tag that access password and lock its EPC bank and the password."""
    if not driver.can_write:
        raise CommissionError(f"{driver.protocol} readers cannot write tags here: no "
                              "documented write command")
    if lock_password is not None and not driver.can_lock:
        raise CommissionError(f"{driver.protocol} readers cannot lock tags here: no "
                              "documented lock command")
    before = driver.survey(seconds)
    if len(before) != 1:
        raise CommissionError(f"{len(before)} tags answered; put exactly one blank tag on "
                              "the desk reader")
    (previous,) = before
    current = decode_epc(previous)
    if current.gs1 and previous != epc and not overwrite:
        raise CommissionError(f"the tag already carries {current.uri}: it may be another "
                              "asset's (use --overwrite to replace it)")
    # An answer lost on the line (a bad checksum, say) says nothing: the read-back decides.
    with contextlib.suppress(CommandTimeout):
        driver.write_epc(epc, current=previous)
    after = driver.survey(seconds)
    if set(after) != {epc}:
        found = ", ".join(sorted(e.hex().upper() for e in after)) or "nothing"
        raise CommissionError(f"read back {found} instead of {epc.hex().upper()}")
    if lock_password is not None:
        driver.lock_epc(lock_password)
    return Commissioned(epc, decode_epc(epc).uri, previous, after[epc],
                        locked=lock_password is not None)


def register_asset(api: str, key: str, asset: dict[str, Any]) -> dict[str, Any]:
    """POST the asset to the registry; returns the created asset."""
    if not api.startswith(("https://", "http://")):
        raise CommissionError(f"the registry URL {api[:60]!r} is not http(s)")
    # The scheme is checked above: only the operator's http(s) API is ever opened.
    request = urllib.request.Request(  # noqa: S310
        api.rstrip("/") + "/v1/assets", data=json.dumps(asset).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:  # noqa: S310
            created: dict[str, Any] = json.loads(answer.read(MAX_ANSWER_BYTES))
            return created
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode(errors="replace")
        raise CommissionError(f"the registry refused the asset ({exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CommissionError(f"cannot reach the registry at {api}: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kitledger-agent write-tag",
                                     description="Write a new asset's GS1 EPC to the one tag "
                                                 "on the desk reader, verify it, register it.")
    parser.add_argument("--protocol", required=True,
                        help="thingmagic, r200, r2000, chafon or llrp")
    parser.add_argument("--port", required=True,
                        help="serial port, e.g. /dev/rfid0, or llrp://host for a fixed reader")
    parser.add_argument("--baudrate", type=int, default=115_200)
    parser.add_argument("--uri", required=True, help="urn:epc:id:giai:... or urn:epc:id:grai:...")
    parser.add_argument("--filter", type=int, default=0, help="EPC filter value 0..7")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a GS1 EPC already on the tag")
    parser.add_argument("--lock", action="store_true",
                        help=f"set the access password in ${ACCESS_PASSWORD_ENV} and lock the "
                             "EPC bank against rewriting")
    parser.add_argument("--seconds", type=float, default=SURVEY_SECONDS,
                        help="inventory time before and after the write")
    parser.add_argument("--register", metavar="API_URL",
                        help=f"create the asset in the registry (key in ${API_KEY_ENV})")
    parser.add_argument("--asset-id")
    parser.add_argument("--class-id")
    parser.add_argument("--site", help="the asset's home site id")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    options = parser.parse_args(list(argv))
    key = os.environ.get(API_KEY_ENV, "")
    if options.register and not (options.asset_id and options.class_id and options.site):
        parser.error("--register needs --asset-id, --class-id and --site")
    if options.register and not key:
        parser.error(f"--register needs the API key in ${API_KEY_ENV}")
    if not 0 < options.seconds <= 60:
        parser.error("--seconds must be within 0..60")
    if options.lock and not os.environ.get(ACCESS_PASSWORD_ENV):
        parser.error(f"--lock needs the tag access password in ${ACCESS_PASSWORD_ENV}")
    try:
        password = access_password(os.environ[ACCESS_PASSWORD_ENV]) if options.lock else None
        epc = asset_epc(options.uri, options.filter)
        serial = {} if options.protocol.lower() == "llrp" else {"baudrate": options.baudrate}
        opened = open_driver(options.protocol, options.port, **serial)
    except (CommissionError, DriverError, ValueError) as exc:
        print(f"kitledger-agent write-tag: {exc}", file=sys.stderr)
        return 2
    driver: TagWriter = opened
    try:
        done = commission(driver, epc, overwrite=options.overwrite, seconds=options.seconds,
                          lock_password=password)
        result: dict[str, Any] = {"epc": done.epc.hex().upper(), "uri": done.uri,
                                  "previous_epc": done.previous.hex().upper(),
                                  "verified_reads": done.reads_after, "locked": done.locked}
        if options.register:
            asset = {"id": options.asset_id, "class_id": options.class_id,
                     "epc_hex": result["epc"], "epc_uri": done.uri,
                     "home_site_id": options.site}
            result["registered"] = register_asset(options.register, key, asset)["id"]
    except (CommissionError, DriverError) as exc:
        print(f"kitledger-agent write-tag: {exc}", file=sys.stderr)
        return 1
    finally:
        driver.close()
        driver.release()
    print(json.dumps(result))
    return 0
