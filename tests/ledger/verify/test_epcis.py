"""EPCIS 2.0 export: every custody event becomes an ObjectEvent that GS1's schema accepts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jsonschema import Draft7Validator

from ledger.core.records import event_hash
from ledger.epcis import MAX_EXPORT_EVENTS, EpcisExportError, cbv_event_hash, epcis_document
from tests.ledger.verify.audit_support import Story, make_story
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
