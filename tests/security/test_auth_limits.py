"""Failed authentication is limited per address and per client id: past the limit, 429 with
Retry-After, and even a good key is refused until the window has passed. The window here is
the setting's shortest (1 s), so waiting it out keeps the tests short."""

from __future__ import annotations

import time

from tests.security.conftest import FAILURE_LIMIT, FAILURE_WINDOW_S, Service
from tests.security.security_support import sign_in


def _wrong(key: str) -> str:
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def _wait_out(answer: object) -> None:
    """Sleep as long as Retry-After says, which the window bounds."""
    retry = int(answer.headers["retry-after"])  # type: ignore[attr-defined]
    assert 1 <= retry <= FAILURE_WINDOW_S
    time.sleep(retry + 0.1)


def test_failed_sign_ins_lock_out_the_address_then_the_window_passes(service: Service) -> None:
    client = service.new_client("203.0.113.5")
    good = service.keys["all"]
    for _ in range(FAILURE_LIMIT):
        assert sign_in(client, "kl_0123456789abcdef_" + "x" * 43).status_code == 401
    limited = sign_in(client, good)
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert "kitledger_web" not in limited.cookies
    # The same address is refused on the API too, with a good key; another address is not.
    api = client.get("/v1/assets", headers={"Authorization": f"Bearer {good}"})
    assert api.status_code == 429 and int(api.headers["retry-after"]) >= 1
    assert service.new_client("203.0.113.6").get(
        "/v1/assets", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    _wait_out(limited)
    assert sign_in(client, good).status_code == 303


def test_failed_api_keys_lock_out_the_address(service: Service) -> None:
    client = service.new_client("203.0.113.7")
    good = service.keys["all"]
    for bad in ("kl_nope", _wrong(good), "x" * 200)[:FAILURE_LIMIT]:
        answer = client.get("/v1/assets", headers={"Authorization": f"Bearer {bad}"})
        assert answer.status_code == 401, bad
    limited = client.get("/v1/assets", headers={"Authorization": f"Bearer {good}"})
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    _wait_out(limited)
    assert client.get("/v1/assets", headers={"Authorization": f"Bearer {good}"}
                      ).status_code == 200


def test_failures_naming_one_client_lock_out_that_client_from_any_address(
        service: Service) -> None:
    good = service.keys["assets"]
    for index in range(FAILURE_LIMIT):  # a spread-out guesser: a new address each time
        attacker = service.new_client(f"192.0.2.{index + 1}")
        assert attacker.get("/v1/assets", headers={"Authorization": f"Bearer {_wrong(good)}"}
                            ).status_code == 401
    owner = service.new_client("198.51.100.1")
    limited = owner.get("/v1/assets", headers={"Authorization": f"Bearer {good}"})
    assert limited.status_code == 429
    # Other clients, from that address, are not held up.
    assert owner.get("/v1/assets", headers={"Authorization": f"Bearer {service.keys['all']}"}
                     ).status_code == 200
    _wait_out(limited)
    assert owner.get("/v1/assets", headers={"Authorization": f"Bearer {good}"}
                     ).status_code == 200


def test_good_keys_and_missing_keys_never_count(service: Service) -> None:
    client = service.new_client("203.0.113.9")
    for _ in range(FAILURE_LIMIT * 3):
        assert client.get("/v1/assets", headers={
            "Authorization": f"Bearer {service.keys['all']}"}).status_code == 200
        assert client.get("/v1/assets").status_code == 401
    assert client.get("/v1/assets", headers={
        "Authorization": f"Bearer {service.keys['all']}"}).status_code == 200


def test_wrong_metrics_keys_count_too(service: Service) -> None:
    client = service.new_client("203.0.113.10")
    for _ in range(FAILURE_LIMIT):
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}
                          ).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 32}
                      ).status_code == 429
