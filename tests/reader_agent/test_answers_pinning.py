"""Pinning the agency's answers key at enrolment: `kitledger answers-key` prints it, `kitledger-
agent enroll --api-key` writes it into agent.toml's `[mqtt]`, and the agent then run from that
file, on a real Mosquitto, ignores an unsigned decision and lights for one the agency's key
signed. A malformed or hostile key, another key over a pinned one, or a file the pin cannot be
placed in is refused with the file untouched."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from reader_agent.agent import ReaderAgent
from reader_agent.config import load_config
from reader_agent.errors import ConfigError
from reader_agent.pinning import pin_api_key

from api.agency_keys import answers_key
from ledger.core.answers import sign_answer
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.polling import wait_for
from tests.reader_agent.agent_support import ListSource
from tests.reader_agent.test_signed_answers import DECISION, DECISIONS, running, send

BIN = Path(sys.executable).parent
KEY_HEX = "5c" * 32
OTHER_HEX = "a7" * 32
HOSTILE_KEYS = [
    "", "abc", "5C" * 32, "5c" * 31, "5c" * 33, " " + KEY_HEX, KEY_HEX + "\n",
    KEY_HEX + '"\n[identity]\nkey_file = "/etc/shadow', KEY_HEX[:-1] + "\x00",
    "\u0665" * 64,  # ARABIC-INDIC DIGIT FIVE: a digit to Unicode, not hex
    "5c" * 500_000,
]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=60, check=False, env=env)


def test_enroll_pins_the_agencys_key_and_the_agent_then_refuses_unsigned_decisions(
        mosquitto: MosquittoBroker, write_config: Callable[..., Path], tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    printed = _run("kitledger", "answers-key", "--agency", "testforce",
                   env={**os.environ, "KITLEDGER_LOG_KEY_DIR": str(keys)})
    assert printed.returncode == 0, printed.stderr
    verdict = json.loads(printed.stdout.strip().splitlines()[-1])
    config = write_config(mqtt_port=mosquitto.port)
    config.chmod(0o640)
    enrolled = _run("kitledger-agent", "enroll", "--config", str(config),
                    "--api-key", verdict["api_key"])
    assert enrolled.returncode == 0, enrolled.stderr
    assert json.loads(enrolled.stdout)["api_key_pinned"] == verdict["kid"]
    pinned = config.read_text()
    assert pinned.count(f'api_key = "{verdict["api_key"]}"') == 1
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    again = _run("kitledger-agent", "enroll", "--config", str(config),
                 "--api-key", verdict["api_key"])
    assert again.returncode == 0 and config.read_text() == pinned  # enrolling again: no change
    assert json.loads(again.stdout) == json.loads(enrolled.stdout)

    agent = ReaderAgent(load_config(config), source=ListSource([1, 2, 3]))
    signing = answers_key(keys, "testforce")
    with running(agent, mosquitto.port) as sender:
        send(sender, DECISIONS, DECISION)
        assert wait_for(lambda: agent.publisher.answers_refused == 1, 10), agent.health(0.0)
        assert agent.publisher.decisions_shown == 0
        send(sender, DECISIONS, sign_answer(signing, DECISIONS, DECISION))
        assert wait_for(lambda: agent.publisher.decisions_shown == 1, 10), agent.health(0.0)
    assert agent.health(0.0)["answers_refused"] == 1


@pytest.mark.parametrize("value", HOSTILE_KEYS, ids=lambda v: repr(v[:20]) + f"/{len(v)}")
def test_a_key_that_is_not_one_is_refused_and_the_file_untouched(
        value: str, write_config: Callable[..., Path]) -> None:
    config = write_config()
    before = config.read_bytes()
    with pytest.raises(ConfigError, match="api_key must be the API's answers public key"):
        pin_api_key(config, value)
    assert config.read_bytes() == before
    assert sorted(p.name for p in config.parent.iterdir() if p.name.startswith(".agent-")) == []


def test_the_command_says_what_is_wrong_on_one_line(write_config: Callable[..., Path]) -> None:
    config = write_config()
    refused = _run("kitledger-agent", "enroll", "--config", str(config), "--api-key", "5C" * 32)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("kitledger-agent enroll: [mqtt] api_key must be")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (config.parent / "keys" / "reader.key").exists()  # refused before any key


def test_another_key_is_not_pinned_over_a_pinned_one(write_config: Callable[..., Path]) -> None:
    config = write_config()
    pin_api_key(config, KEY_HEX)
    pinned = config.read_bytes()
    with pytest.raises(ConfigError, match="already pins API key") as refused:
        pin_api_key(config, OTHER_HEX)
    assert "delete its [mqtt] api_key line" in str(refused.value)
    assert config.read_bytes() == pinned
    assert load_config(config).mqtt.api_key == bytes.fromhex(KEY_HEX)


@pytest.mark.parametrize("edit", [
    lambda text: text.replace("[mqtt]\n", "[mqtt]   # the broker\n"),
    lambda text: text.replace("[mqtt]\n", "[ mqtt ]\n"),
    lambda text: "# [mqtt] further down\n" + text,
    lambda text: text.split("[mqtt]")[0] + "[pipeline]" + text.split("[pipeline]")[1],
    lambda text: text.rstrip("\n"),
], ids=["header-comment", "header-spaces", "mqtt-in-a-comment", "no-mqtt-table",
        "no-final-newline"])
def test_the_pin_lands_in_the_mqtt_table_however_it_is_written(
        edit: Callable[[str], str], write_config: Callable[..., Path]) -> None:
    config = write_config()
    config.write_text(edit(config.read_text()))
    settings = load_config(config)
    pin_api_key(config, KEY_HEX)
    pinned = load_config(config)
    assert pinned.mqtt.api_key == bytes.fromhex(KEY_HEX)
    assert (pinned.reader_id, pinned.mqtt.port, pinned.mqtt.client_id) == (
        settings.reader_id, settings.mqtt.port, settings.mqtt.client_id)


def test_a_file_the_pin_cannot_be_placed_in_is_refused_untouched(
        write_config: Callable[..., Path]) -> None:
    config = write_config()
    head, rest = config.read_text().split("[mqtt]\n")
    inline = 'mqtt = {host = "127.0.0.1", port = 1}\n' + head + "[pipeline]" + rest.split(
        "[pipeline]")[1]
    config.write_text(inline)
    load_config(config)  # a valid file, with [mqtt] as an inline table
    with pytest.raises(ConfigError,
                       match=r"add the line api_key = \"(5c)+\" to its \[mqtt\] table by hand"):
        pin_api_key(config, KEY_HEX)
    assert config.read_text() == inline


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_the_file_keeps_its_owner_group_and_mode(write_config: Callable[..., Path]) -> None:
    config = write_config()
    os.chown(config, 4321, 8765)  # as root:kitledger is not root's own group
    config.chmod(0o640)
    pin_api_key(config, KEY_HEX)
    after = config.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (4321, 8765, 0o640)
    assert load_config(config).mqtt.api_key == bytes.fromhex(KEY_HEX)
