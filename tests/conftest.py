"""Suite-wide fixtures: real services the tests start themselves."""

from fixtures.anvil import anvil
from fixtures.mosquitto import mosquitto

__all__ = ["anvil", "mosquitto"]
