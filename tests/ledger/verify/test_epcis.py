"""EPCIS 2.0 export: every custody event becomes an ObjectEvent that GS1's schema accepts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from epcpy import hex_to_tag_encodable
from jsonschema import Draft7Validator

from ledger.cli import main
from ledger.core.bundle import Scope
from ledger.core.records import Holder, event_hash
from ledger.epcis import (
    MAX_EXPORT_EVENTS,
    Correction,
    EpcisExportError,
    asset_epc_uris,
    cbv_event_hash,
    digital_link,
    epcis_document,
    gs1_uri,
)
from tests.ledger.verify.audit_support import Story, make_story, person_ref
from tests.paths import VECTORS_DIR

VECTORS = VECTORS_DIR / "epcis"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = json.loads((VECTORS / "EPCIS-JSON-Schema.json").read_text())
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def story() -> Story:
    return make_story(None)


@pytest.fixture(scope="module")
def document(story: Story) -> dict[str, Any]:
    return epcis_document(story.events, "2026-03-01T00:00:00.000Z")


def test_schema_accepts_gs1_example(validator: Draft7Validator) -> None:
    example = json.loads((VECTORS / "Example_9.6.1-ObjectEvent.jsonld").read_text())
    # GS1's example names its document with a JSON-LD blank node ("_:document1"), which the
    # strict "uri" format refuses; structurally it is valid. Our export passes the strict form.
    assert not list(Draft7Validator(validator.schema).iter_errors(example))
    assert [e.message for e in validator.iter_errors(example)] == [
        "'_:document1' is not a 'uri'"]


def test_export_validates_against_gs1_schema(validator: Draft7Validator,
                                             document: dict[str, Any], story: Story) -> None:
    errors = [e.message for e in validator.iter_errors(document)]
    assert errors == []
    events = document["epcisBody"]["eventList"]
    assert len(events) == len(story.events)
    first = events[0]
    assert first["epcList"] == ["urn:epc:id:giai:0614141.1001"]
    assert first["bizStep"] == "commissioning" and first["action"] == "ADD"
    assert {"type": "owning_party", "destination": "urn:kitledger:agency:met-police"} in first[
        "destinationList"]
    checkout = events[1]
    assert checkout["sourceList"] == [{"type": "possessing_party",
                                       "source": "urn:kitledger:location:store-central"}]
    assert checkout["destinationList"][0]["destination"].startswith("urn:kitledger:person:")
    assert checkout["readPoint"] == {"id": "urn:kitledger:reader:met-police:desk-1"}
    assert checkout["kl:custodyEventHash"] == event_hash(story.events[1]).hex()
    grai = [e for e in events if e["epcList"][0].startswith("urn:epc:id:grai:")]
    assert grai, "GRAI assets are exported too"


def test_event_ids_are_cbv_hashes(document: dict[str, Any]) -> None:
    events = document["epcisBody"]["eventList"]
    ids = [e["eventID"] for e in events]
    assert len(set(ids)) == len(ids)
    for event in events:
        assert event["eventID"].startswith("ni:///sha-256;")
        assert event["eventID"].endswith("?ver=CBV2.0")
        # Deterministic and independent of key order; sensitive to every hashed field.
        reordered = dict(reversed(list(event.items())))
        assert cbv_event_hash(reordered) == event["eventID"]
        changed = {**event, "eventTime": "2030-01-01T00:00:00.000Z"}
        assert cbv_event_hash(changed) != event["eventID"]


def test_broken_event_fails_validation(validator: Draft7Validator,
                                       document: dict[str, Any]) -> None:
    broken_cases = []
    for damage in ("no-action", "bad-action", "bad-source-type", "bad-offset", "not-a-list"):
        broken = copy.deepcopy(document)
        event = broken["epcisBody"]["eventList"][0]
        if damage == "no-action":
            del event["action"]
        elif damage == "bad-action":
            event["action"] = "STEAL"
        elif damage == "bad-source-type":
            event["destinationList"][0]["type"] = "holder of the parcel"
        elif damage == "bad-offset":
            event["eventTimeZoneOffset"] = "+25:00"
        else:
            event["epcList"] = "urn:epc:id:giai:0614141.1001"
        broken_cases.append((damage, broken))
    for damage, broken in broken_cases:
        assert list(validator.iter_errors(broken)), damage


def test_export_is_bounded(story: Story, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ledger.epcis.MAX_EXPORT_EVENTS", 3)
    with pytest.raises(EpcisExportError):
        epcis_document(story.events, "2026-03-01T00:00:00.000Z")
    assert MAX_EXPORT_EVENTS >= 10_000


# GS1 identifiers: custody events name assets by registry id ("radio-1"); the tag their signed
# reads name gives the GS1 URI the export lists.
GIAI_HEX = "341800000000000000000101"
GIAI_URI = "urn:epc:id:giai:000000.257"
OTHER_GIAI_HEX = "341800000000000000000102"
CHIP_DEFAULT_HEX = "E28011700000020A1B2C3D4E"


@pytest.fixture(scope="module")
def tagged() -> Story:
    """radio-1 read with a GIAI tag (and once by badge with another GIAI), radio-2 with a
    chip-default EPC, radio-3 with two different GIAI tags."""
    story = Story()
    story.add_reader("desk-1")
    store = Holder("location", "store-central")
    officer = Holder("person", person_ref("officer-17"))
    story.custody("radio-1", "register", "2026-01-02T08:00:00.000Z", "desk-1", None, store,
                  epc=GIAI_HEX)
    badge = story.observe("desk-1", OTHER_GIAI_HEX, "2026-01-02T09:00:00.000Z", kind="badge")
    story.custody("radio-1", "check_out", "2026-01-02T09:00:00.000Z", "desk-1", store, officer,
                  epc=GIAI_HEX, cites=(badge,))
    story.custody("radio-2", "register", "2026-01-03T08:00:00.000Z", "desk-1", None, store,
                  epc=CHIP_DEFAULT_HEX)
    story.custody("radio-3", "register", "2026-01-04T08:00:00.000Z", "desk-1", None, store,
                  epc=GIAI_HEX.replace("0101", "0103"))
    story.custody("radio-3", "check_out", "2026-01-04T09:00:00.000Z", "desk-1", store, officer,
                  epc=OTHER_GIAI_HEX)
    story.checkpoint()
    return story


def test_gs1_uri_agrees_with_epcpy() -> None:
    assert gs1_uri(GIAI_HEX) == GIAI_URI == hex_to_tag_encodable(GIAI_HEX).epc_uri
    for hostile in (CHIP_DEFAULT_HEX, "", "ZZ", "34", "34" * 200, GIAI_HEX[:-2]):
        assert gs1_uri(hostile) is None, hostile


def test_asset_named_by_its_tags_gs1_uri(tagged: Story, validator: Draft7Validator) -> None:
    lines = [e.to_bytes() for e in tagged.observations]
    epcs = asset_epc_uris(lines, tagged.events)
    # A badge read is not the asset's tag; a raw tag and two different tags name nothing.
    assert epcs == {"radio-1": GIAI_URI}
    document = epcis_document(tagged.events, "2026-03-01T00:00:00.000Z", epcs=epcs)
    assert [e["epcList"] for e in document["epcisBody"]["eventList"]] == [
        [GIAI_URI], [GIAI_URI], ["urn:kitledger:asset:radio-2"], ["urn:kitledger:asset:radio-3"],
        ["urn:kitledger:asset:radio-3"]]
    assert [e.message for e in validator.iter_errors(document)] == []


def test_unreadable_observation_lines_name_nothing(tagged: Story) -> None:
    lines = [b"", b"{", b"\xff" * 64, *(b"x" * 10_000,)]
    assert asset_epc_uris(lines, tagged.events) == {}


def test_epcis_command_lists_gs1_uris(tagged: Story, tmp_path: Path) -> None:
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(tagged.bundle(scope=Scope("assets", ("radio-1", "radio-2", "radio-3"))))
    out = tmp_path / "events.jsonld"
    assert main(["epcis", str(path), "--out", str(out)]) == 0
    events = json.loads(out.read_text())["epcisBody"]["eventList"]
    assert events[0]["epcList"] == [GIAI_URI]
    assert not any("radio-1" in e["epcList"][0] for e in events)


# The CBV event hash against GS1's reference generator, run here on our own export.
GENERATOR_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
"""The EPCIS context URL the generator ships a copy of (it fetches any other: no network here).
Both name the EPCIS 2.0 context; the hash does not cover `@context`."""


def _reference_hashes(document: dict[str, Any]) -> list[str]:
    from epcis_event_hash_generator.hash_generator import epcis_hashes_from_events
    from epcis_event_hash_generator.json_to_py import event_list_from_epcis_document_json

    given = copy.deepcopy(document)
    given["@context"] = [GENERATOR_CONTEXT, *given["@context"][1:]]
    for event in given["epcisBody"]["eventList"]:
        del event["eventID"]
    hashes: list[str] = epcis_hashes_from_events(event_list_from_epcis_document_json(given))
    return hashes


def _every_scheme() -> Story:
    """One asset per GS1 scheme our tags use, each named by its pure-identity URI, and one by a
    registry id only, through loans, transfers and a disposal."""
    story = Story()
    story.add_reader("desk-1")
    store, agency = Holder("location", "store-central"), Holder("agency", "city-police")
    officer = Holder("person", person_ref("officer-17"))
    assets = ("urn:epc:id:sgtin:0614141.812345.6789", "urn:epc:id:sscc:0614141.1234567890",
              "urn:epc:id:grai:0614141.12345.400", "urn:epc:id:giai:0614141.12345400",
              "urn:epc:id:giai:000000.0", "radio-1")
    for n, asset in enumerate(assets):
        day = f"2026-01-{n + 10}"
        story.custody(asset, "register", f"{day}T08:00:00.000Z", "desk-1", None, store)
        story.custody(asset, "check_out", f"{day}T09:00:00.000Z", "desk-1", store, officer)
        story.custody(asset, "transfer", f"{day}T10:00:00.000Z", "desk-1", officer, agency)
        story.custody(asset, "loan_return", f"{day}T11:00:00.000Z", "desk-1", agency, store)
        story.custody(asset, "dispose", f"{day}T12:00:00.000Z", "desk-1", store, None)
    return story


def test_event_ids_equal_gs1_reference_generator(document: dict[str, Any],
                                                 tagged: Story) -> None:
    tagged_document = epcis_document(
        tagged.events, "2026-03-01T00:00:00.000Z",
        epcs=asset_epc_uris([e.to_bytes() for e in tagged.observations], tagged.events))
    schemes = epcis_document(_every_scheme().events, "2026-03-01T00:00:00.000Z",
                             sites={"desk-1": "hq"})
    compared = 0
    for doc in (document, tagged_document, schemes):
        ours = [e["eventID"] for e in doc["epcisBody"]["eventList"]]
        assert ours == _reference_hashes(doc)
        compared += len(ours)
    assert compared == 12 + 5 + 30


@pytest.mark.parametrize("uri", [
    "urn:epc:id:sgtin:0614141.812345.6789", "urn:epc:id:sgtin:061414123456.0.0",
    "urn:epc:id:sscc:0614141.1234567890", "urn:epc:id:sscc:061414123456.00000",
    "urn:epc:id:grai:0614141.12345.400", "urn:epc:id:grai:061414123456..7",
    "urn:epc:id:giai:0614141.12345400", GIAI_URI])
def test_digital_link_agrees_with_gs1(uri: str) -> None:
    from epcis_event_hash_generator.dl_normaliser import normaliser

    # GS1's normaliser leaves a GRAI with an empty asset type (12-digit prefix) as a URN (None).
    assert digital_link(uri) == (normaliser(uri) or uri)


def test_other_uris_are_hashed_as_given() -> None:
    for uri in ("urn:kitledger:asset:radio-1", "urn:epc:raw:96.xE280", "urn:epc:id:giai:1",
                "urn:epc:id:giai:0614141.1.2", "urn:epc:id:sgtin:0614141.812345"):
        assert digital_link(uri) == uri


def test_a_corrected_event_is_followed_by_its_error_declaration(
        validator: Draft7Validator, story: Story) -> None:
    """EPCIS 2.0 declares an event wrong by publishing it again with an errorDeclaration: the
    same eventID (the declaration is not hashed), and GS1's schema accepts it."""
    corrected = story.events[1]
    correction = Correction("2026-02-01T10:00:00.000Z", "checked out to the wrong officer", 40)
    document = epcis_document(story.events, "2026-03-01T00:00:00.000Z",
                              corrections={event_hash(corrected).hex(): [correction]})
    assert [e.message for e in validator.iter_errors(document)] == []
    events = document["epcisBody"]["eventList"]
    assert len(events) == len(story.events) + 1
    original, declared = events[1], events[2]
    assert "errorDeclaration" not in original
    assert declared["eventID"] == original["eventID"] == cbv_event_hash(declared)
    assert declared["errorDeclaration"] == {
        "declarationTime": correction.time, "reason": "incorrect_data",
        "kl:reason": correction.reason, "kl:correctionLeaf": 40}
    assert {k: v for k, v in declared.items() if k != "errorDeclaration"} == original
