"""The fault suite's end checks, read from the database and the chain after a run has stopped.

- every sequence an agent issued is stored exactly once (`lost`, `duplicated`): an observation
  row per (reader, seq), each answered by one decision at most and cited by one custody event
  at most; nothing quarantined;
- no sequence gap left open;
- each agency's log size equals its custody events, whose leaf indexes are 0..size-1;
- every asset's hash chain is intact from genesis (`ledger.core.hashchain`);
- every stored checkpoint is signed by the log's key and its root equals the root recomputed
  from the stored events alone, in a fresh in-memory tree;
- the newest anchored checkpoint covers the whole log and is what the configured contract
  holds for it (after a replaced chain: the new contract the operator configured), and every
  checkpoint recorded as anchored is on that contract, on the chain at its size with its
  root, its transaction in the block the database recorded;
- no anchor the service retired as lost (`anchor_history`) is still shown as a checkpoint's
  anchor.

Recomputation never reads `log_node`: a wrong stored node must not vouch for itself.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from web3 import Web3

from ledger.chain.client import CustodyAnchorClient
from ledger.core.checkpoint import Checkpoint, chain_log_id
from ledger.core.encoding import parse_record
from ledger.core.envelope import Envelope, public_key_from_raw, verify_envelope
from ledger.core.errors import LedgerError
from ledger.core.hashchain import verify_chain
from ledger.core.records import CustodyEvent
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore

READ_ONLY_KEY = "0x" + "11" * 32
"""The account the chain is read as (a read needs one, never signs with it)."""

_OWED = text(
    "SELECT seq FROM observation WHERE device_id = :d AND kind <> 'depart' AND ("
    "upper(epc_hex) IN (SELECT upper(epc_hex) FROM asset) OR "
    "upper(epc_hex) IN (SELECT upper(epc_hex) FROM badge))")
"""A reader's reads that are owed an answer: badges, and kit arriving or read (a departure
or a tag nobody registered gets none)."""


@dataclass
class EndReport:
    """What the end checks found; `problems` lists every broken invariant in words."""

    expected: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    beyond: int = 0
    quarantined: int = 0
    open_gaps: int = 0
    events: int = 0
    unanswered: int = 0
    anchors_lost: int = 0
    """Anchors the service found gone from the chain and moved to `anchor_history`."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_end(engine: Engine, issued: dict[str, int], w3: Web3 | None = None,
              contract: str | None = None, *, answers: bool = False) -> EndReport:
    """Every end check; `issued` maps each reader to the next sequence its agent would issue.
    With `answers`, also that every stored read owed an answer got its decision."""
    report = EndReport()
    with engine.connect() as conn:
        _sequences(conn, issued, report, answers)
        events = _events(conn, report)
        _checkpoints(conn, events, report, w3, contract)
    return report


def stalls(engine: Engine) -> dict[str, float]:
    """Per reader, the longest any read waited for its answer (seconds from the reading to
    the decision; agent and API share this machine's clock). PostgreSQL only."""
    with engine.connect() as conn:
        return {reader: float(wait) for reader, wait in conn.execute(text(
            "SELECT o.device_id, max(extract(epoch FROM d.created_at - o.observed_at)) "
            "FROM observation o JOIN decision d ON d.reader_id = o.device_id AND d.seq = o.seq "
            "GROUP BY o.device_id ORDER BY o.device_id"))}


def _sequences(conn: object, issued: dict[str, int], report: EndReport, answers: bool) -> None:
    run = conn.execute  # type: ignore[attr-defined]
    for reader, below in sorted(issued.items()):
        seqs = Counter(s for (s,) in run(text(
            "SELECT seq FROM observation WHERE device_id = :d"), {"d": reader}))
        stored = {s for s in seqs if 0 <= s < below}
        report.expected += below
        report.stored += len(stored)
        lost = below - len(stored)
        report.lost += lost
        if lost:
            missing = sorted(set(range(below)) - stored)
            report.problems.append(f"{reader}: {lost} of {below} sequences never stored "
                                   f"(first {missing[:5]})")
        twice = sum(n - 1 for n in seqs.values() if n > 1)
        beyond = sum(1 for s in seqs if s >= below)
        report.beyond += beyond
        if beyond:
            report.problems.append(f"{reader}: {beyond} stored sequences the agent never "
                                   "issued (an outbox reused its sequence numbers)")
        decisions = Counter(s for (s,) in run(text(
            "SELECT seq FROM decision WHERE reader_id = :d"), {"d": reader}))
        twice += sum(n - 1 for n in decisions.values() if n > 1)
        if answers:
            owed = {s for (s,) in run(_OWED, {"d": reader})}
            unanswered = len(owed - set(decisions))
            report.unanswered += unanswered
            if unanswered:
                report.problems.append(f"{reader}: {unanswered} stored reads never answered")
        report.duplicated += twice
        if twice:
            report.problems.append(f"{reader}: {twice} observations or decisions stored twice")
    report.quarantined = run(text("SELECT count(*) FROM quarantine")).scalar_one()
    if report.quarantined:
        reasons = [r for (r,) in run(text("SELECT DISTINCT reason FROM quarantine"))]
        report.problems.append(f"{report.quarantined} messages quarantined ({reasons})")
    report.open_gaps = run(text(
        "SELECT count(*) FROM sequence_gap WHERE closed_at IS NULL")).scalar_one()
    if report.open_gaps:
        report.problems.append(f"{report.open_gaps} sequence gaps still open")


def _events(conn: object, report: EndReport) -> dict[str, list[bytes]]:
    """Check logs and chains; return each agency's leaves (records) in leaf order."""
    run = conn.execute  # type: ignore[attr-defined]
    leaves: dict[str, list[bytes]] = defaultdict(list)
    chains: dict[str, list[CustodyEvent]] = defaultdict(list)
    cited: Counter[str] = Counter()
    # A log's leaves are its custody events and its registry records (readers, classes, tags,
    # shares), one leaf index sequence between them.
    rows = run(text(
        "SELECT agency_id, asset_id, leaf_index, record FROM custody_event UNION ALL "
        "SELECT agency_id, NULL, leaf_index, record FROM registry_record "
        "ORDER BY 1, 3"))
    for agency, asset, leaf, record in rows:
        if leaf != len(leaves[agency]):
            report.problems.append(f"{agency}: leaf {leaf} where {len(leaves[agency])} was due")
        leaves[agency].append(bytes(record))
        if asset is None:
            continue
        event = CustodyEvent.from_record(parse_record(bytes(record)))
        chains[asset].append(event)
        cited.update(event.observations)
        report.events += 1
    cited_twice = sum(n - 1 for n in cited.values() if n > 1)
    if cited_twice:
        report.duplicated += cited_twice
        report.problems.append(f"{cited_twice} observations justify more than one event")
    sizes = dict(run(text("SELECT agency_id, size FROM agency_log")).all())
    for agency in sorted(set(sizes) | set(leaves)):
        if sizes.get(agency, 0) != len(leaves[agency]):
            report.problems.append(f"{agency}: log size {sizes.get(agency, 0)} but "
                                   f"{len(leaves[agency])} custody events and registry records")
    for asset, events in sorted(chains.items()):
        try:
            verify_chain(asset, sorted(events, key=lambda e: e.seq))
        except LedgerError as exc:
            report.problems.append(f"chain of {asset} broken: {exc}")
    return leaves


def _checkpoints(conn: object, leaves: dict[str, list[bytes]], report: EndReport,
                 w3: Web3 | None, contract: str | None) -> None:
    run = conn.execute  # type: ignore[attr-defined]
    keys = {a: bytes(k) for a, k in run(text(
        "SELECT agency_id, public_key FROM agency_log WHERE public_key IS NOT NULL"))}
    trees: dict[str, MerkleLog] = {}
    for agency, records in leaves.items():
        trees[agency] = MerkleLog(MemoryNodeStore())
        trees[agency].append_many(records)
    newest: dict[str, tuple[int, bytes, str]] = {}
    anchored_points: list[tuple[str, int, bytes, str]] = []
    receipts: list[tuple[str, int, bytes, bytes]] = []
    elsewhere: list[str] = []
    for agency, size, root, envelope, tx_hash, block_hash, on in run(text(
            "SELECT agency_id, tree_size, root, envelope, tx_hash, block_hash, contract "
            "FROM log_checkpoint ORDER BY agency_id, tree_size")):
        anchored = tx_hash is not None
        if anchored:
            receipts.append((agency, size, bytes(tx_hash), bytes(block_hash or b"")))
            if contract is not None and str(on).lower() != contract.lower():
                elsewhere.append(f"{agency} size {size} on {on}")
        tree = trees.get(agency)
        if tree is None or size > tree.size:
            report.problems.append(f"{agency}: checkpoint of size {size} beyond the log")
            continue
        if bytes(root) != tree.root(size):
            report.problems.append(f"{agency}: checkpoint {size} root differs from the "
                                   "root recomputed from its events")
        try:
            signed = Envelope.from_bytes(bytes(envelope))
            verify_envelope(signed, public_key_from_raw(keys[agency]))
            point = Checkpoint.from_record(signed.payload)
        except (LedgerError, KeyError) as exc:
            report.problems.append(f"{agency}: checkpoint {size} not signed by its log key "
                                   f"({type(exc).__name__})")
            continue
        if point.tree_size != size or point.root != bytes(root):
            report.problems.append(f"{agency}: checkpoint {size}'s envelope says otherwise")
        if anchored:
            newest[agency] = (size, bytes(root), point.log_id)
            anchored_points.append((agency, size, bytes(root), point.log_id))
    _retired(conn, report)
    for agency, records in sorted(leaves.items()):
        if agency in newest and newest[agency][0] < len(records):
            report.problems.append(f"{agency}: log size {len(records)} but the newest anchored "
                                   f"checkpoint is size {newest[agency][0]}")
    if w3 is None or contract is None:
        return
    if elsewhere:
        report.problems.append(f"{len(elsewhere)} checkpoints recorded as anchored on another "
                               f"contract than {contract} ({elsewhere[:3]})")
    from eth_account import Account

    client = CustodyAnchorClient(w3, contract, Account.from_key(READ_ONLY_KEY))
    for agency, (size, root, log_id) in sorted(newest.items()):
        try:
            on_chain = client.latest_checkpoint(chain_log_id(log_id))
        except Exception as exc:  # a node without the contract answers nothing decodable
            report.problems.append(f"{agency}: the chain cannot say what it holds "
                                   f"({type(exc).__name__})")
            continue
        if (on_chain.tree_size, on_chain.root) != (size, root):
            report.problems.append(
                f"{agency}: newest anchored checkpoint is size {size} but the chain holds "
                f"size {on_chain.tree_size}" + ("" if on_chain.tree_size != size
                                                 else " with another root"))
    lost_anchors = [f"{agency} size {size}" for agency, size, root, log_id in anchored_points
                    if agency in newest and _root_at(client, log_id, size) != root]
    lost_anchors += [f"{agency} size {size} (block)" for agency, size, tx, block in receipts
                     if _block_of(w3, tx) != block]
    if lost_anchors:
        report.problems.append(f"{len(lost_anchors)} checkpoints recorded as anchored are not "
                               f"on the chain ({lost_anchors[:3]})")
    for agency in sorted(set(leaves) - set(newest)):
        if leaves[agency]:
            report.problems.append(f"{agency}: {len(leaves[agency])} events, never anchored")


def _retired(conn: object, report: EndReport) -> None:
    """Count the anchors retired as lost; none of them may still be a checkpoint's anchor (the
    same signed transaction mined again in another block is a new anchor, not the lost one)."""
    run = conn.execute  # type: ignore[attr-defined]
    report.anchors_lost = run(text(
        "SELECT count(*) FROM anchor_history WHERE status = 'lost'")).scalar_one()
    shown = run(text(
        "SELECT h.agency_id, h.tree_size FROM anchor_history h JOIN log_checkpoint c ON "
        "c.agency_id = h.agency_id AND c.tree_size = h.tree_size AND c.tx_hash = h.tx_hash "
        "AND c.block_hash IS NOT DISTINCT FROM h.block_hash WHERE h.status = 'lost'")).all()
    if shown:
        report.problems.append(f"{len(shown)} anchors retired as lost still shown as anchored "
                               f"({[f'{a} size {n}' for a, n in shown[:3]]})")


def _block_of(w3: Web3, tx_hash: bytes) -> bytes | None:
    """The hash of the block the chain has transaction `tx_hash` in (None: not on it)."""
    try:
        return bytes(w3.eth.get_transaction_receipt(tx_hash)["blockHash"])  # type: ignore[arg-type]
    except Exception:  # unknown to this node
        return None


def _root_at(client: CustodyAnchorClient, log_id: str, size: int) -> bytes | None:
    try:
        return client.root_at(chain_log_id(log_id), size)
    except Exception:  # the chain does not know the log at all
        return None


def _life(lives: dict[int, list[tuple[float, float | None]]], node: int | None,
          at: float) -> int | None:
    """Which of `node`'s lives (its index) was running at wall-clock time `at` (a block's
    timestamp: whole seconds, hence the second's slack)."""
    for n, (start, end) in enumerate(lives.get(node, []) if node is not None else []):
        if start - 1 <= at and (end is None or at <= end + 1):
            return n
    return None


def anchorer_overlaps(w3: Web3, contract: str, log_ids: list[str], node_of: dict[str, int],
                      lives: dict[int, list[tuple[float, float | None]]]) -> list[str]:
    """Times two nodes anchored one log at once: node X anchored it, then node Y, then X again
    in the same life (process run) as before, so X never gave the role up while Y held it.
    A hand-over (X stops anchoring, Y goes on) is no overlap, however long X's process then
    takes to stop. Each node anchors from its own account (`node_of`: address -> node);
    `lives` are each node's wall-clock runs (end None while running)."""
    from eth_account import Account

    client = CustodyAnchorClient(w3, contract, Account.from_key(READ_ONLY_KEY))
    found = []
    for log_id in log_ids:
        runs: list[tuple[int | None, int | None]] = []  # (node, life) of each run of anchors
        for event in client.anchored_events(chain_log_id(log_id), 0):
            node = node_of.get(event.anchorer.lower())
            at = float(w3.eth.get_block(event.block_number)["timestamp"])
            run = (node, _life(lives, node, at))
            if runs and runs[-1] == run:
                continue
            if run[1] is not None and run in runs:
                found.append(f"log {log_id[:8]}: node {node} anchored size {event.tree_size} "
                             f"after node {runs[-1][0]} had anchored it, in the same run as "
                             "its earlier anchors")
            runs.append(run)
    return found
