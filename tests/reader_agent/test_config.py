"""agent.toml validation: the example is valid; every kind of mistake is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from reader_agent.config import MAX_CONFIG_BYTES, load_config, parse_config
from reader_agent.errors import ConfigError

from tests.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "reader-agent" / "agent.example.toml"


def example() -> str:
    return EXAMPLE.read_text()


def test_the_documented_example_is_valid() -> None:
    config = parse_config(example(), Path("/etc/kitledger"))
    assert config.reader_id == "stores-desk-1"
    assert config.pipeline.antennas[1].rssi_floor == -65
    assert config.pipeline.antennas[2].rssi_floor == -70  # the [pipeline] default
    assert config.mqtt.client_id == "kitledger-stores-desk-1"
    assert config.mqtt.tls_cert == Path("/etc/kitledger/reader.crt")
    assert config.indicator.pins() == {"green_pin": 17, "red_pin": 27, "buzzer_pin": 22}


def test_without_an_indicator_section_no_pin_is_driven() -> None:
    start = example().index("[indicator]")
    end = example().index("# [portal]")
    config = parse_config(example()[:start] + example()[end:], Path("/etc/kitledger"))
    assert config.indicator.pins() == {}


TLS_KEY_LINE = re.compile(r'(?<![a-z_])tls_key = "([^"]+)"')  # not the API's mqtt_tls_key


def test_every_document_names_the_same_tls_key_file() -> None:
    """The example config, the broker example and the deployment guide agree on where the
    reader's TLS key is (they once said reader.key.pem and reader-tls.key)."""
    documents = [EXAMPLE, REPO_ROOT / "hardware" / "pi" / "mosquitto-tls.conf.example",
                 REPO_ROOT / "docs" / "deploy.md"]
    named = {path.name: TLS_KEY_LINE.findall(path.read_text()) for path in documents}
    assert all(named.values()), named
    assert {key for keys in named.values() for key in keys} == {
        "/var/lib/kitledger/reader-tls.key"}, named
    assert "reader.key.pem" not in "".join(p.read_text() for p in documents)


@pytest.mark.parametrize(("change", "message"), [
    (("[reader]\n", "[reader]\nbaud = 9600\n"), "unknown keys ['baud']"),
    (("[badges]", "[badge]"), "unknown sections ['badge']"),
    (('port = "/dev/rfid0"', ""), "missing required key 'port'"),
    (('zone = "desk"', 'zone = "desk/#"'), "zone must be"),
    (("[antennas.1]", "[antennas.one]"), "antenna number"),
    (("min_reads = 2", "min_reads = 0"), "min_reads = 0 is outside"),
    (("depart_after_s = 5.0", 'depart_after_s = "soon"'), "depart_after_s must be"),
    (("rssi_floor = -65", "rssi_floor = 300"), "rssi_floor = 300"),
    (('role = "issue_desk"', 'role = "kiosk"'), "role 'kiosk'"),
    (('prefixes = ["E2801190"]', 'prefixes = ["not hex"]'), "hex byte strings"),
    (("inflight_window = 1000", "inflight_window = 70000"), "inflight_window"),
    (("envelopes_per_message = 50", "envelopes_per_message = 65"), "envelopes_per_message"),
    (("envelopes_per_message = 50", "envelopes_per_message = 0"), "envelopes_per_message"),
    (('tls_key = "/var/lib/kitledger/reader-tls.key"', "#"), "given together"),
    (("green_pin = 17", "green_pin = 28"), "green_pin = 28 is outside 0..27"),
    (("green_pin = 17", "green_pin = 27"), "pins must differ"),
    (("green_pin = 17", 'green_pin = "GPIO17"'), "green_pin must be int"),
    (("buzzer_pin = 22", "buzzer_pin = 22\nbuzzer = 23"), "unknown keys ['buzzer']"),
    (("min_reads = 2", "min_reads = true"), "min_reads must be int"),
])
def test_mistakes_are_named(change: tuple[str, str], message: str) -> None:
    old, new = change
    text = example()
    assert old in text
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(text.replace(old, new, 1), Path("."))


def test_portal_zones_must_exist() -> None:
    text = example().replace('role = "issue_desk"', 'role = "portal"')
    with pytest.raises(ConfigError, match=r"\[portal\]"):
        parse_config(text, Path("."))
    text += '\n[portal]\ninside = "desk"\noutside = "garage"\n'
    with pytest.raises(ConfigError, match="'garage' is not the zone"):
        parse_config(text, Path("."))
    config = parse_config(text.replace('"garage"', '"shelf"'), Path("."))
    assert (config.pipeline.portal_inside, config.pipeline.portal_outside) == ("desk", "shelf")


@pytest.mark.parametrize("garbage", [b"[reader\n", b"\xff\xfe\x00", b"= = =", b"[[antennas]]\n"])
def test_garbage_files_are_refused(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(garbage)
    with pytest.raises(ConfigError):
        load_config(path)


def test_oversized_and_missing_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
