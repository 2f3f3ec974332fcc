"""Security headers on every answer, pages and API alike, and pages the policy does not break:
no inline script, no inline event handler, no inline style in any template."""

from __future__ import annotations

import re
from pathlib import Path

from api.security_headers import CSP
from tests.security.conftest import Service
from tests.security.security_support import sign_in

TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "web" / "templates"


def _assert_headers(answer: object, path: str) -> None:
    headers = answer.headers  # type: ignore[attr-defined]
    policy = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, path
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, path
    assert headers.get("x-content-type-options") == "nosniff", path
    assert headers.get("referrer-policy") == "same-origin", path


def test_pages_carry_the_headers(service: Service) -> None:
    client = service.new_client()
    _assert_headers(client.get("/web/login"), "/web/login")
    _assert_headers(client.get("/web/agency"), "redirect to sign-in")
    assert sign_in(client, service.keys["all"]).status_code == 303
    for path in ("/web/", "/web/desk", "/web/desk/feed", "/web/agency", "/web/audit",
                 "/web/audit/assets/N-1", "/web/assets/N-1", "/web/static/custody.css",
                 "/web/static/htmx.min.js", "/docs", "/openapi.json"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        _assert_headers(answer, path)


def test_api_answers_carry_the_headers(service: Service) -> None:
    for who, path, status in (("all", "/v1/assets", 200), ("", "/v1/assets", 401),
                              ("none", "/v1/assets", 403), ("all", "/v1/assets/nope", 404),
                              ("", "/healthz", 200), ("", "/metrics", 401)):
        answer = service.call(who, "GET", path)
        assert answer.status_code == status, (path, answer.text)
        _assert_headers(answer, path)
    assert service.call("all", "GET", "/v1/assets?limit=0").status_code == 422
    _assert_headers(service.call("all", "GET", "/v1/assets?limit=0"), "422")


def test_redoc_alone_relaxes_styles_never_scripts(service: Service) -> None:
    answer = service.client.get("/redoc")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert service.client.get("/docs").headers["content-security-policy"] == CSP


def test_no_template_has_inline_script_style_or_handlers() -> None:
    for template in sorted(TEMPLATES.glob("*.html")):
        text = template.read_text()
        for script in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in script, (template.name, script)
        assert not re.search(r"<style\b", text), template.name
        assert not re.search(r"\sstyle=", text), template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        assert "javascript:" not in text, template.name
