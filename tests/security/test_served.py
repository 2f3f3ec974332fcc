"""The trust boundaries of a real `kitledger serve` process: keys put in a URL never reach its
log, the placeholder secret serves loopback only (with a warning) and is refused anywhere
else, and `/docs` and `/redoc` render in a real browser with no network beyond the service."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from api.auth import create_api_client
from api.config import DEFAULT_SECRET, load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Agency, Scope
from tests.fixtures.ports import free_port, wait_for_port
from tests.security.security_support import KITLEDGER, serve_env


@dataclass
class Served:
    url: str
    key: str
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`serve` on loopback in development with the placeholder secret (the default)."""
    tmp_path = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    with Session(engine) as session:
        session.add(Agency(id="north", name="North"))
        session.flush()
        _, key = create_api_client(session, agency_id="north", name="t", scopes=list(Scope),
                                   server_secret=DEFAULT_SECRET, now=datetime.now(UTC))
        session.commit()
    engine.dispose()
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [KITLEDGER, "serve", "--port", str(port), "--ingest-workers", "0"],
            env=serve_env(tmp_path, url), stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=60)
        yield Served(f"http://127.0.0.1:{port}", key, log)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)


def _log_when(served: Served, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = served.log.read_text(errors="replace")
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never logged: {served.log.read_text()[-2000:]}")


def test_serve_warns_about_the_placeholder_secret_on_loopback(served: Served) -> None:
    log = _log_when(served, "WARNING")
    assert "placeholder secret" in log and "127.0.0.1" in log


def test_keys_in_a_url_are_refused_and_never_logged(served: Served) -> None:
    secret_part = served.key.split("_", 2)[2]
    with httpx.Client(base_url=served.url) as client:
        for path in (f"/v1/assets?api_key={served.key}", f"/v1/assets?key={served.key}&limit=5",
                     f"/v1/assets?access_token={served.key}", f"/v1/assets/{served.key}",
                     f"/web/login?key={served.key}", "/v1/assets?token=not-a-key-shape"):
            answer = client.get(path)
            assert answer.status_code in (200, 401), (path, answer.status_code)
            if path.startswith("/v1/"):
                assert answer.status_code == 401, path  # only the header carries keys
        assert client.get("/healthz?marker=end-of-key-test").status_code == 200
    log = _log_when(served, "end-of-key-test")
    assert "/v1/assets?api_key=[redacted]" in log  # the access log is on, and redacted
    assert secret_part not in log and "not-a-key-shape" not in log
    for line in log.splitlines():
        if line.startswith("{"):
            json.loads(line)  # still one JSON object a line


def test_serve_refuses_other_addresses_with_the_placeholder_secret(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'refused.db'}"
    for host, env in (("0.0.0.0", {}), ("192.0.2.10", {}), ("::", {}),
                      ("0.0.0.0", {"KITLEDGER_SECRET_KEY": "short"})):
        done = subprocess.run([KITLEDGER, "serve", "--host", host, "--port", str(free_port())],
                              env=serve_env(tmp_path, url, **env), capture_output=True, text=True,
                              timeout=60, check=False)
        verdict = json.loads(done.stdout.strip().splitlines()[-1])
        assert (done.returncode, verdict["verdict"]) == (2, "unusable"), (host, done.stderr)
        assert "KITLEDGER_SECRET_KEY" in verdict["reason"] and "loopback" in verdict["reason"]
        assert "short" not in verdict["reason"].replace("KITLEDGER", "")


def _offline_page(browser: Any, served: Served) -> tuple[Any, list[str], list[str]]:
    """A page that can reach the service and nothing else; what it tried, what it logged."""
    page = browser.new_page()
    blocked: list[str] = []
    console: list[str] = []

    def route(request_route: Any) -> None:
        if request_route.request.url.startswith(served.url):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: console.append(message.text))
    return page, blocked, console


def _policy_breaks(console: list[str], served: Served) -> list[str]:
    """CSP violations other than an outside image the policy kept from loading (ReDoc's
    sidebar logo, from its CDN: refused, which is the policy working, and nothing else)."""
    return [m for m in console if "Content Security Policy" in m and not (
        "Loading the image 'https://" in m and served.url not in m)]


def test_swagger_ui_renders_offline(browser: Any, served: Served) -> None:
    page, blocked, console = _offline_page(browser, served)
    try:
        page.goto(served.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "kitledger API" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector("[data-path='/v1/api-clients']", timeout=30_000)
        assert page.is_visible(".swagger-ui .auth-wrapper .authorize")  # securitySchemes
    finally:
        page.close()
    assert blocked == []
    assert _policy_breaks(console, served) == [], console


def test_redoc_renders_offline(browser: Any, served: Served) -> None:
    page, blocked, console = _offline_page(browser, served)
    try:
        page.goto(served.url + "/redoc")
        page.wait_for_selector("h1:has-text('kitledger API')", timeout=30_000)
        page.wait_for_selector("text=apiKey", timeout=30_000)  # the declared scheme
    finally:
        page.close()
    assert blocked == []
    assert _policy_breaks(console, served) == [], console


def test_a_browser_signs_in_uses_the_desk_and_signs_out_under_the_policy(
        browser: Any, served: Served) -> None:
    """The pages work in a real browser under the policy (its Origin and Sec-Fetch-Site on our
    own forms, the desk's event stream) and signing out ends the session server-side."""
    page, blocked, console = _offline_page(browser, served)
    try:
        page.goto(served.url + "/web/desk")
        page.fill("#key", served.key)
        page.click("#key-submit")
        page.wait_for_url(served.url + "/web/", timeout=30_000)
        cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "kitledger_web")
        with page.expect_response(lambda r: "/web/desk/stream" in r.url,
                                  timeout=30_000) as streamed:
            page.goto(served.url + "/web/desk")
        assert streamed.value.status == 200
        page.wait_for_function("document.body.dataset.live === 'open'", timeout=30_000)
        page.click("form.who button[type=submit]")
        page.wait_for_url(served.url + "/web/login", timeout=30_000)
    finally:
        page.close()
    assert blocked == [] and _policy_breaks(console, served) == [], console
    replayed = httpx.get(served.url + "/web/agency", cookies={"kitledger_web": cookie})
    assert replayed.status_code == 303 and replayed.headers["location"] == "/web/login"
