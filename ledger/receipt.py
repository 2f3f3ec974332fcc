"""The receipt of one custody change, in HTML and PDF from one Jinja2 template, and the check
that ties a printed receipt back to the log.

A receipt is handed over at the desk: the item, the people (named for the agency's own copy;
the log holds only their commitments), the time with its zone, the place (site and reader),
and the identifiers that let anyone check it later without trusting the agency's database:
the event's leaf index and hash, and the signed checkpoint that first includes it (tree size,
root, the checkpoint envelope's signature and the signing key's id). An event not yet in a
signed checkpoint gets a receipt that says so; reprint it once the log has signed one.

`check_receipt` takes those printed identifiers and the log's C2SP tiles (`ledger.tiled_log`)
under a pinned log key: the tiles' checkpoint note must be signed by that key and cover the
receipt's checkpoint, the tiles must hash to the receipt's root at its size, the entry at the
leaf must hash to the printed event hash, and its inclusion proof, computed from the tiles,
must hold. `check_receipt_in_bundle` does the same with an audit bundle that holds the event:
the bundle proves each event at the first signed checkpoint covering it, the checkpoint a
receipt prints, so that checkpoint must be in the bundle, signed by the pinned key, with the
receipt's root. Any edited identifier fails, saying which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hmac import compare_digest
from typing import Final

from ledger.core import hashing
from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import verify_checkpoint
from ledger.core.envelope import public_key_from_raw
from ledger.core.errors import LedgerError
from ledger.core.merkle import leaf_hash, verify_inclusion
from ledger.core.note import ED25519, NoteVerifier, parse_checkpoint_text, parse_note, verify_note
from ledger.core.tiles import TILE_WIDTH
from ledger.report import TEMPLATES
from ledger.tiled_log import TiledLog, TileSource

TEMPLATE: Final = "custody_receipt.html.j2"
PDF_IDENTIFIER: Final = b"kitledger-custody-receipt"
"""A fixed document id, so one receipt renders to the same bytes twice."""


class ReceiptMismatch(LedgerError):
    """A receipt's identifiers that the log does not bear out; the message says which."""


@dataclass(frozen=True, slots=True)
class ReceiptCheckpoint:
    """The signed checkpoint that first includes the event, as printed."""

    tree_size: int
    root: str
    signature: str
    """The checkpoint envelope's Ed25519 signature, base64, as in the bundle."""
    key_id: str
    signed_at: str


@dataclass
class CustodyReceipt:
    """Everything the template shows, already decided (no logic in the template)."""

    agency: str
    asset: str
    asset_class: str
    action: str
    time: str
    """ISO 8601 with its zone (the log's time, in UTC)."""
    site: str
    reader: str
    holder_from: str
    holder_to: str
    authorisers: list[str]
    leaf_index: int
    event_hash: str
    log_id: str
    generated: str
    manual: str | None = None
    checkpoint: ReceiptCheckpoint | None = None
    details: list[tuple[str, str]] = field(default_factory=list)
    """Further lines for the agency's copy (case and exhibit references, a disposal)."""


def render_html(receipt: CustodyReceipt) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html", "j2"]))
    return env.get_template(TEMPLATE).render(receipt=receipt)


def render_pdf(receipt: CustodyReceipt) -> bytes:
    """The receipt as a one-page PDF, laid out by WeasyPrint from the HTML."""
    from weasyprint import HTML

    pdf: bytes = HTML(string=render_html(receipt), base_url=str(TEMPLATES)).write_pdf(
        pdf_identifier=PDF_IDENTIFIER)
    return pdf


@dataclass(frozen=True, slots=True)
class ReceiptClaim:
    """What a receipt states about the log, as typed back from the paper."""

    leaf_index: int
    event_hash: bytes
    tree_size: int
    root: bytes


def check_receipt(claim: ReceiptClaim, source: TileSource, origin: str,
                  log_key: bytes) -> int:
    """Confirm `claim` against the log's tiles; returns the size of the tiles' signed
    checkpoint. Raises ReceiptMismatch (or another LedgerError for unreadable tiles)."""
    if not 0 <= claim.leaf_index < claim.tree_size:
        raise ReceiptMismatch(f"leaf {claim.leaf_index} is not inside a tree of size "
                              f"{claim.tree_size}")
    note = parse_note(TiledLog(source, 0).checkpoint_note())
    verify_note(note, (NoteVerifier(origin, ED25519, log_key),))
    body = parse_checkpoint_text(note.text)
    if body.origin != origin:
        raise ReceiptMismatch(f"tiles checkpoint: expected origin {origin}, found "
                              f"{body.origin[:80]}")
    if body.size < claim.tree_size:
        raise ReceiptMismatch(f"the tiles' signed checkpoint is of size {body.size}, older than "
                              f"the receipt's {claim.tree_size}: publish newer tiles")
    log = TiledLog(source, body.size)
    if not compare_digest(log.root(body.size), body.root):
        raise ReceiptMismatch(f"the tiles do not hash to their signed root at size {body.size}")
    at_size = log.root(claim.tree_size)
    if not compare_digest(at_size, claim.root):
        raise ReceiptMismatch(f"the log's root at size {claim.tree_size} is {at_size.hex()}, "
                              f"the receipt says {claim.root.hex()}")
    bundle, offset = divmod(claim.leaf_index, TILE_WIDTH)
    width = min(TILE_WIDTH, body.size - bundle * TILE_WIDTH)
    record = log.entries(bundle, width)[offset]
    found = hashing.domain_hash(hashing.CUSTODY_EVENT, record)
    if not compare_digest(found, claim.event_hash):
        raise ReceiptMismatch(f"leaf {claim.leaf_index} holds the event {found.hex()}, the "
                              f"receipt says {claim.event_hash.hex()}")
    verify_inclusion(leaf_hash(record), claim.leaf_index, claim.tree_size,
                     log.inclusion_proof(claim.leaf_index, claim.tree_size), claim.root)
    return body.size


def check_receipt_in_bundle(claim: ReceiptClaim, bundle: AuditBundle, log_key: bytes) -> None:
    """Confirm `claim` against an audit bundle under the pinned `log_key`; raises
    ReceiptMismatch (or another LedgerError)."""
    if not compare_digest(bundle.log_public_key, log_key):
        raise ReceiptMismatch("the bundle is of another log than the pinned key's")
    item = next((e for e in bundle.events if e.leaf_index == claim.leaf_index), None)
    if item is None:
        raise ReceiptMismatch(f"the bundle holds no event at leaf {claim.leaf_index}")
    found = hashing.domain_hash(hashing.CUSTODY_EVENT, item.record)
    if not compare_digest(found, claim.event_hash):
        raise ReceiptMismatch(f"leaf {claim.leaf_index} holds the event {found.hex()}, the "
                              f"receipt says {claim.event_hash.hex()}")
    if item.tree_size != claim.tree_size:
        raise ReceiptMismatch(f"the bundle proves leaf {claim.leaf_index} at checkpoint "
                              f"{item.tree_size}, the receipt says {claim.tree_size}")
    key = public_key_from_raw(log_key)
    for point in bundle.checkpoints:
        checkpoint = verify_checkpoint(point.envelope, key)
        if checkpoint.tree_size == claim.tree_size:
            if not compare_digest(checkpoint.root, claim.root):
                raise ReceiptMismatch(f"the signed checkpoint {claim.tree_size} has root "
                                      f"{checkpoint.root.hex()}, the receipt says "
                                      f"{claim.root.hex()}")
            verify_inclusion(leaf_hash(item.record), item.leaf_index, item.tree_size,
                             list(item.path), claim.root)
            return
    raise ReceiptMismatch(f"the bundle has no checkpoint of size {claim.tree_size}")
