"""The auditor's trust roots: which log keys, chain and contract a bundle must answer to.

A bundle carries its log key, chain id and contract, but those are the operator's claims: a
forger ships their own. The auditor pins them instead, in a trust file (TOML, read with
`tomllib`, at most MAX_TRUST_FILE_BYTES, unknown keys refused) or with command-line flags for
one log, and `check_trust` holds the bundle's header to the pins. Without a pin the verifier's
verdict can be at best UNPINNED, never VALID (docs/audit-bundle.md).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any, Final

from ledger.core.bundle import AuditBundle
from ledger.verify.report import CheckResult, VerificationReport

MAX_TRUST_FILE_BYTES: Final = 64 * 1024
TRUST_FILE_VERSION: Final = 1
MAX_LOGS: Final = 1_000
MAX_KEYS: Final = 64
"""Keys per log or per witness policy: rotation keeps a few, never thousands."""

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_CONTRACT = re.compile(r"0x[0-9a-fA-F]{40}")
_AGENCY = re.compile(r"[\x21-\x7e]{1,128}")
_NAME = re.compile(r"[\x21-\x7e]{1,256}")
_MAX_INT: Final = 2**63 - 1


class TrustError(ValueError):
    """The trust file or the pinning flags are malformed (exit 2, unusable input)."""


@dataclass(frozen=True, slots=True)
class ChainTrust:
    """Where a log's checkpoints are anchored: anchors are read from `deployment_block` on."""

    chain_id: int
    contract: str
    deployment_block: int
    required: bool


@dataclass(frozen=True, slots=True)
class WitnessKey:
    name: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    quorum: int
    keys: tuple[WitnessKey, ...]


@dataclass(frozen=True, slots=True)
class LogTrust:
    agency: str
    public_keys: tuple[bytes, ...]
    chain: ChainTrust | None
    witnesses: WitnessPolicy | None


@dataclass(frozen=True, slots=True)
class TrustFile:
    logs: tuple[LogTrust, ...]

    def for_agency(self, agency: str) -> LogTrust | None:
        return next((log for log in self.logs if log.agency == agency), None)

    def for_key(self, public_key: bytes) -> LogTrust | None:
        return next((log for log in self.logs if public_key in log.public_keys), None)


def _table(value: Any, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TrustError(f"{where}: expected a table")
    unknown = set(value) - required - optional
    if unknown:
        raise TrustError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    missing = required - set(value)
    if missing:
        raise TrustError(f"{where}: missing key {sorted(missing)[0]!r}")
    return value


def _int(value: Any, where: str, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= _MAX_INT:
        raise TrustError(f"{where}: expected an integer from {low}")
    return value


def _key(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX_KEY.fullmatch(value):
        raise TrustError(f"{where}: expected 64 hex digits (an Ed25519 public key)")
    return bytes.fromhex(value)


def _text(value: Any, pattern: re.Pattern[str], where: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise TrustError(f"{where}: expected {what}")
    return value


def _keys(value: Any, where: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_KEYS:
        raise TrustError(f"{where}: expected a list of 1..{MAX_KEYS} keys")
    return tuple(_key(v, f"{where}[{i}]") for i, v in enumerate(value))


def _chain(value: Any, where: str) -> ChainTrust:
    table = _table(value, where, {"chain_id", "contract", "deployment_block"}, {"required"})
    required = table.get("required", True)
    if not isinstance(required, bool):
        raise TrustError(f"{where}.required: expected true or false")
    return ChainTrust(_int(table["chain_id"], f"{where}.chain_id", 1),
                      _text(table["contract"], _CONTRACT, f"{where}.contract",
                            "0x and 40 hex digits"),
                      _int(table["deployment_block"], f"{where}.deployment_block"), required)


def _witnesses(value: Any, where: str) -> WitnessPolicy:
    table = _table(value, where, {"quorum", "key"}, set())
    keys = table["key"]
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
        raise TrustError(f"{where}.key: expected 1..{MAX_KEYS} witness keys")
    parsed = []
    for n, item in enumerate(keys):
        entry = _table(item, f"{where}.key[{n}]", {"name", "public_key"}, set())
        parsed.append(WitnessKey(_text(entry["name"], _NAME, f"{where}.key[{n}].name",
                                       "a key name"),
                                 _key(entry["public_key"], f"{where}.key[{n}].public_key")))
    quorum = _int(table["quorum"], f"{where}.quorum", 1)
    if quorum > len(parsed):
        raise TrustError(f"{where}.quorum: {quorum} exceeds the {len(parsed)} keys given")
    return WitnessPolicy(quorum, tuple(parsed))


def _log(value: Any, where: str) -> LogTrust:
    table = _table(value, where, {"agency", "public_keys"}, {"chain", "witnesses"})
    return LogTrust(_text(table["agency"], _AGENCY, f"{where}.agency",
                          "1..128 printable ASCII characters"),
                    _keys(table["public_keys"], f"{where}.public_keys"),
                    _chain(table["chain"], f"{where}.chain") if "chain" in table else None,
                    _witnesses(table["witnesses"], f"{where}.witnesses")
                    if "witnesses" in table else None)


def parse_trust(data: bytes) -> TrustFile:
    """A trust file's bytes, strictly: raises TrustError saying what is wrong where."""
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise TrustError(f"trust file exceeds {MAX_TRUST_FILE_BYTES} bytes")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrustError(f"trust file is not TOML: {exc}") from None
    top = _table(document, "trust file", {"version", "log"}, set())
    if top["version"] != TRUST_FILE_VERSION:
        raise TrustError(f"trust file version {top['version']!r:.20}, this verifier reads "
                         f"{TRUST_FILE_VERSION}")
    logs = top["log"]
    if not isinstance(logs, list) or not 1 <= len(logs) <= MAX_LOGS:
        raise TrustError(f"trust file: expected 1..{MAX_LOGS} [[log]] tables")
    parsed = tuple(_log(item, f"log[{n}]") for n, item in enumerate(logs))
    agencies = [log.agency for log in parsed]
    if len(set(agencies)) != len(agencies):
        raise TrustError("trust file: an agency has two [[log]] tables")
    return TrustFile(parsed)


def trust_from_flags(agency: str | None, log_keys: list[str], chain_id: int | None,
                     contract: str | None, from_block: int | None) -> TrustFile:
    """The pins given on the command line, for one log (the bundle's agency when `agency` is
    None, matched by key); a contract given this way is required."""
    keys = tuple(_key(k, "--log-key") for k in log_keys)
    if not keys:
        raise TrustError("--chain-id, --contract and --from-block pin a log: give --log-key too")
    chain = None
    if contract is not None or chain_id is not None or from_block is not None:
        if contract is None or chain_id is None:
            raise TrustError("pin the chain with both --chain-id and --contract")
        chain = ChainTrust(_int(chain_id, "--chain-id", 1),
                           _text(contract, _CONTRACT, "--contract", "0x and 40 hex digits"),
                           _int(from_block or 0, "--from-block"), True)
    return TrustFile((LogTrust(agency or "", keys, chain, None),))


def pinned_log(bundle: AuditBundle, trust: TrustFile) -> LogTrust | None:
    """The pins for the bundle's log: by the header's agency, or by key when the pins came
    from flags (agency "") or the header names no chain (so no agency)."""
    if bundle.chain is not None:
        found = trust.for_agency(bundle.chain.agency)
    else:
        found = trust.for_key(bundle.log_public_key)
    return found or next((log for log in trust.logs if log.agency == ""), None)


def check_trust(bundle: AuditBundle, trust: TrustFile | None, report: VerificationReport,
                offline: bool) -> LogTrust | None:
    """Hold the bundle's log key, chain id and contract to the auditor's pins; the log's pins
    (None without a trust file, which leaves the verdict UNPINNED at best)."""
    result = CheckResult("trust-roots")
    report.checks.append(result)
    if trust is None:
        result.passed, result.detail = None, "no trust file or --log-key: nothing is pinned"
        report.unpinned.append("no trust file pinned the log key: the log key, chain and "
                               "contract are the bundle's own claims (give --trust FILE)")
        return None
    log = pinned_log(bundle, trust)
    agency = bundle.chain.agency if bundle.chain else None
    result.items = 1
    if log is None:
        result.fail(f"expected a pinned log for agency {agency!r}, the trust file has none")
        return None
    if bundle.log_public_key not in log.public_keys:
        result.fail(f"expected one of the {len(log.public_keys)} pinned log key(s) of "
                    f"{log.agency or 'the pinned log'}, bundle's log key is "
                    f"{bundle.log_public_key.hex()}")
    if log.agency and agency is not None and agency != log.agency:
        result.fail(f"expected agency {log.agency!r}, bundle names {agency!r}")
    pinned = log.chain
    if pinned is not None:
        if bundle.chain is None:
            result.fail(f"expected checkpoints anchored on chain {pinned.chain_id} in contract "
                        f"{pinned.contract}, bundle names no chain")
        elif bundle.chain.chain_id != pinned.chain_id:
            result.fail(f"expected chain id {pinned.chain_id}, bundle names "
                        f"{bundle.chain.chain_id}")
        elif bundle.chain.contract.lower() != pinned.contract.lower():
            result.fail(f"expected contract {pinned.contract}, bundle names "
                        f"{bundle.chain.contract}")
        if offline and pinned.required:
            report.unpinned.append("the trust file requires the chain anchors, which only a "
                                   "node can confirm: verify with --rpc URL")
    return log
