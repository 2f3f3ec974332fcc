"""Suite-wide fixtures: real services the tests start themselves."""

from tests.fixtures.anvil import anvil
from tests.fixtures.browser import browser
from tests.fixtures.mosquitto import mosquitto

__all__ = ["anvil", "browser", "mosquitto"]
