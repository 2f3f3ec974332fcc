"""Suite-wide fixtures: real services the tests start themselves."""

from fixtures.mosquitto import mosquitto

__all__ = ["mosquitto"]
