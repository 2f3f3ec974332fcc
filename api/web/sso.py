"""Single sign-on pages: send the browser to the agency's OpenID Connect provider, and take
it back (`api.accounts.oidc` checks everything that comes back).

The attempt's browser cookie is SameSite=Lax, path `/web/sso`: it must come along on the
provider's top-level redirect back to us, which Strict would drop. A refused callback shows a
page saying why, with status 401 or 403 (502 when the provider could not be used), and counts
as a failed sign-in for the address (`api.auth_limits`), like a wrong password.

The session cookie (Strict) is set on the callback's answer, which then moves on to the start
page by a same-site link and meta refresh: a redirect here would still count as part of the
cross-site navigation from the provider, and Strict cookies are not sent on it.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.accounts import oidc
from api.accounts.oidc import SsoRefused
from api.db import utcnow
from api.deps import SessionDep, address_of, get_limiter
from api.web.session import get_directory, open_account_session, set_session_cookie
from api.web.templating import page

router = APIRouter(prefix="/web/sso", include_in_schema=False)

ProviderName = Annotated[str, Path(max_length=32)]

SSO_COOKIE: Final = "kitledger_sso"
"""Binds a sign-on attempt to the browser that started it."""

OAUTH_ERRORS: Final = frozenset({
    "access_denied", "invalid_request", "unauthorized_client", "unsupported_response_type",
    "invalid_scope", "server_error", "temporarily_unavailable", "login_required",
    "consent_required", "interaction_required", "account_selection_required"})
"""Error codes a provider may send back (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6): named on
the page; anything else is shown as "an error", never echoed."""


NO_SUCH_PROVIDER: Final = "There is no single sign-on provider of that name here."


def _refusal(request: Request, status_code: int, reason: str) -> Response:
    return page(request, "sso_refused.html", status_code=status_code, reason=reason)


def _refused(request: Request, exc: SsoRefused) -> Response:
    # The attempt cookie stays: a forged answer sent to this browser must not cancel the
    # sign-in it has under way (it expires with its attempt anyway).
    get_limiter(request).failed(address_of(request))
    return _refusal(request, exc.status_code, str(exc))


@router.get("/{name}", name="sso_start")
def sso_start(request: Request, name: ProviderName, session: SessionDep) -> Response:
    """Send the browser to the provider's sign-in page."""
    directory = get_directory(request)
    provider = directory.get(name)
    if provider is None:
        return _refusal(request, 404, NO_SUCH_PROVIDER)
    callback = str(request.url_for("sso_callback", name=provider.name))
    try:
        url, browser = oidc.start(session, directory, provider, callback, utcnow())
    except SsoRefused as exc:
        return _refusal(request, exc.status_code, str(exc))
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(SSO_COOKIE, browser, max_age=oidc.SSO_ATTEMPT_SECONDS, httponly=True,
                        samesite="lax", secure=request.url.scheme == "https", path="/web/sso")
    return response


@router.get("/{name}/callback", name="sso_callback", response_class=HTMLResponse)
def sso_callback(request: Request, name: ProviderName, session: SessionDep) -> Response:
    """The provider's answer: check it, find the account, open a session."""
    directory = get_directory(request)
    provider = directory.get(name)
    if provider is None:
        return _refusal(request, 404, NO_SUCH_PROVIDER)
    wait = get_limiter(request).retry_after(address_of(request))
    if wait is not None:
        response = _refusal(request, 429, f"Too many failed sign-ins; try again in {wait} s.")
        response.headers["Retry-After"] = str(wait)
        return response
    params = request.query_params
    now = utcnow()
    try:
        if "error" in params:
            error = params["error"]
            raise SsoRefused("the provider did not sign you in ("
                             f"{error if error in OAUTH_ERRORS else 'an error'})")
        issuer = params.get("iss")
        if issuer is not None and issuer != provider.issuer:  # RFC 9207: a mixed-up answer
            raise SsoRefused("this sign-in answer comes from another issuer than the one "
                             "it was sent to")
        attempt = oidc.spend_attempt(session, provider, params.get("state", ""),
                                     request.cookies.get(SSO_COOKIE, ""), now)
        callback = str(request.url_for("sso_callback", name=provider.name))
        token = oidc.redeem(directory, provider, params.get("code", ""), attempt, callback)
        claims = oidc.token_claims(directory, provider, token, attempt.nonce, now)
        account = oidc.account_for(session, provider, claims, now)
    except SsoRefused as exc:
        session.rollback()
        return _refused(request, exc)
    response = page(request, "sso_signed_in.html", shown=account.display_name or account.username)
    set_session_cookie(request, response, open_account_session(session, account, now))
    response.delete_cookie(SSO_COOKIE, path="/web/sso")
    return response
