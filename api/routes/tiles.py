"""The agency's Merkle log as C2SP tlog-tiles (scope `audit:read`, like its proofs and
checkpoints): `/v1/logs/{agency}/checkpoint`, `/v1/logs/{agency}/tile/<L>/<N>[.p/<W>]` and
`/v1/logs/{agency}/tile/entries/<N>[.p/<W>]` (docs/audit-bundle.md, "Tiled logs").

A caller sees its own agency's log only; another agency's answers 404, as for any id it may
not see. A malformed tile path is 400, a tile beyond the log 404. Full tiles never change and
are cached for a year; partial tiles and the checkpoint for a few seconds. Entry bundles are
gzip-compressed for clients that accept it.
"""

from __future__ import annotations

import gzip
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import Auditor, SessionDep, SettingsDep
from api.problems import Problem, not_found
from api.routes.paging import IdPath
from api.tiles import NoCheckpointNote, checkpoint_note, log_size, tile_body
from ledger.core.tiles import TileError, parse_tile_path

router = APIRouter(prefix="/v1/logs", tags=["audit"])

TILE_MEDIA_TYPE: Final = "application/octet-stream"
NOTE_MEDIA_TYPE: Final = "text/plain; charset=utf-8"
IMMUTABLE: Final = "public, max-age=31536000, immutable"
MAX_CODINGS: Final = 16
"""Accept-Encoding items looked at: a hostile header of thousands is not walked."""
SHORT_LIVED: Final = "no-cache, max-age=5"
"""A checkpoint or a partial tile may be replaced within seconds; caches must revalidate."""


def _own_log(caller: Auditor, agency_id: str) -> None:
    if agency_id != caller.agency_id:
        raise not_found("log")


@router.get("/{agency_id}/checkpoint", response_class=Response,
            responses={200: {"content": {NOTE_MEDIA_TYPE: {}}}})
def checkpoint(agency_id: IdPath, session: SessionDep, settings: SettingsDep,
               caller: Auditor) -> Response:
    """The log's latest signed checkpoint as a C2SP signed note."""
    _own_log(caller, agency_id)
    try:
        body = checkpoint_note(session, agency_id, settings.log_key_dir)
    except NoCheckpointNote:
        raise not_found("checkpoint") from None
    return Response(body, media_type=NOTE_MEDIA_TYPE, headers={"Cache-Control": SHORT_LIVED})


@router.get("/{agency_id}/tile/{path:path}", response_class=Response,
            responses={200: {"content": {TILE_MEDIA_TYPE: {}}}})
def tile(agency_id: IdPath, path: str, request: Request, session: SessionDep,
         caller: Auditor) -> Response:
    """A hash tile or entry bundle of the log."""
    _own_log(caller, agency_id)
    try:
        ref = parse_tile_path("tile/" + path)
    except TileError as exc:
        raise Problem(400, "bad-tile-path", str(exc)) from None
    try:
        body = tile_body(session, agency_id, ref, log_size(session, agency_id))
    except TileError:
        raise not_found("tile") from None
    headers = {"Cache-Control": IMMUTABLE if ref.full else SHORT_LIVED}
    if ref.level is None:
        # Entry bundles are text-like records: compressed when the client accepts gzip (hash
        # tiles are random bytes, so they are not).
        headers["Vary"] = "Accept-Encoding"
        if _accepts_gzip(request.headers.get("accept-encoding", "")):
            body = gzip.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=TILE_MEDIA_TYPE, headers=headers)


def _accepts_gzip(header: str) -> bool:
    for item in header.split(",")[:MAX_CODINGS]:
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
