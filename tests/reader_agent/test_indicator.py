"""The desk's light and buzzer: `[indicator]` pins drive gpiozero devices, tested on gpiozero's
own MockFactory pin backend (its real test backend: the same LED and Buzzer code, pins that
record what was driven). Pins that cannot be driven stop the agent with a named error; the
agent passes its configured pins to the indicator that the real publisher shows decisions on."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import gpiozero
import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.agent import ReaderAgent
from reader_agent.config import IndicatorSettings, load_config
from reader_agent.decisions import Decision, DecisionIndicator, IndicatorError

from tests.fixtures.mosquitto import MosquittoBroker
from tests.reader_agent.agent_support import ListSource, wait_for

AGENT = str(Path(sys.executable).parent / "kitledger-agent")
PINS = IndicatorSettings(green_pin=17, red_pin=27, buzzer_pin=22)
INDICATOR_TOML = "\n[indicator]\ngreen_pin = 17\nred_pin = 27\nbuzzer_pin = 22\n"
BASE = "kitledger/v1/testforce/stores/desk-1"
ACCEPT = Decision(seq=1, accepted=True, reason=None, asset="R-1")
REFUSE = Decision(seq=2, accepted=False, reason="not trained", asset="T-9")


def _driven_high(factory: MockFactory, pin: int) -> bool:
    return any(state.state for state in factory.pin(pin).states)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    made = MockFactory()
    yield made
    made.close()


def test_an_accepted_message_blinks_green_only(factory: MockFactory) -> None:
    indicator = DecisionIndicator(PINS, pin_factory=factory)
    indicator.show([ACCEPT])
    assert wait_for(lambda: _driven_high(factory, 17), 5)
    indicator.close()  # waits for the blink thread; every pin ends low
    assert not _driven_high(factory, 27) and not _driven_high(factory, 22)
    assert not factory.pin(17).state


def test_a_refusal_in_a_tray_blinks_red_and_beeps(factory: MockFactory) -> None:
    indicator = DecisionIndicator(PINS, pin_factory=factory)
    indicator.show([ACCEPT, REFUSE])  # one answer for the tray: refused
    assert wait_for(lambda: _driven_high(factory, 27) and _driven_high(factory, 22), 5)
    indicator.close()
    assert not _driven_high(factory, 17)


def test_without_pins_no_gpio_is_touched(factory: MockFactory) -> None:
    indicator = DecisionIndicator(IndicatorSettings(), pin_factory=factory)
    indicator.show([REFUSE])
    assert factory.pins == {}


def test_a_pin_already_taken_is_refused_by_name(factory: MockFactory) -> None:
    other = gpiozero.LED(27, pin_factory=factory)
    with pytest.raises(IndicatorError, match=r"red_pin = 27: cannot drive it \(GPIOPinInUse"):
        DecisionIndicator(PINS, pin_factory=factory)
    other.close()
    # The green LED made before the failure was released: the indicator can be made now.
    DecisionIndicator(PINS, pin_factory=factory).close()


def test_the_agent_will_not_start_with_pins_it_cannot_drive(
        write_config: Callable[..., Path]) -> None:
    """On a machine with no GPIO backend (this one), configured pins are an error at start,
    not a desk that silently answers only in the log."""
    config = write_config()
    config.write_text(config.read_text() + INDICATOR_TOML)
    environment = {"PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([AGENT, "run", "--config", str(config)], capture_output=True,
                            timeout=60, env=environment)
    assert result.returncode == 2, result.stderr
    line = result.stderr.decode().strip().splitlines()[-1]
    assert line.startswith("kitledger-agent run: [indicator] green_pin = 17: cannot drive it")
    assert "docs/deploy.md" in line and b"Traceback" not in result.stderr


def test_without_gpiozero_the_error_names_the_extra() -> None:
    script = (
        "import sys, importlib.abc\n"
        "class Blocker(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'gpiozero':\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from reader_agent.config import IndicatorSettings\n"
        "from reader_agent.decisions import DecisionIndicator, IndicatorError\n"
        "try:\n"
        "    DecisionIndicator(IndicatorSettings(green_pin=17))\n"
        "except IndicatorError as exc:\n"
        "    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    assert "pip install 'kitledger[agent]'" in result.stdout


def test_the_agent_shows_broker_decisions_on_its_configured_pins(
        mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(mqtt_port=mosquitto.port)
    path.write_text(path.read_text() + INDICATOR_TOML)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")  # gpiozero's own variable
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)
    agent = ReaderAgent(load_config(path), source=ListSource([1]))
    factory = gpiozero.Device.pin_factory
    assert isinstance(factory, MockFactory)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="api-decisions")
    try:
        assert wait_for(lambda: agent.publisher.connected, 15)
        sender.connect("127.0.0.1", mosquitto.port)
        sender.loop_start()
        sender.publish(f"{BASE}/decisions", b'{"seq":0,"decision":"accept"}',
                       qos=1).wait_for_publish(5)
        assert wait_for(lambda: _driven_high(factory, 17), 10)
        assert not _driven_high(factory, 27)
        sender.publish(f"{BASE}/decisions", b'{"seq":0,"decision":"refuse","reason":"x"}',
                       qos=1).wait_for_publish(5)
        assert wait_for(lambda: _driven_high(factory, 27) and _driven_high(factory, 22), 10)
    finally:
        sender.loop_stop()
        sender.disconnect()
        agent.stopping.set()
        thread.join(15)
        agent.publisher.indicator.close()
        factory.close()
