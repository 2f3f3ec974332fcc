"""Single sign-on by OpenID Connect: the authorization code flow with PKCE, for the pages.

Authlib does the protocol: its OAuth 2 client builds the authorization request (S256 code
challenge, state, nonce) and redeems the code, and its `CodeIDToken` checks the ID token's
claims; joserfc (Authlib's JOSE library) checks the signature against the provider's JWKS.
What is ours is the policy around them:

- `start` keeps each attempt server-side (`SsoAttempt`) under the SHA-256 of its state, with
  its nonce, its PKCE verifier and the SHA-256 of a cookie set in the browser that started it:
  a callback is taken only once, only within `SSO_ATTEMPT_SECONDS`, and only in that browser
  (another site cannot finish a sign-in it started in its own browser in the victim's).
- `finish` checks the provider's `iss` answer parameter when given (RFC 9207, mix-up), redeems
  the code, and accepts the ID token only if it is signed by a key of the provider's JWKS with
  an asymmetric algorithm, issued by the configured issuer, for our client id, unexpired, and
  carrying the attempt's nonce.
- `account_for` maps the token's groups to a role of the provider's agency and finds or makes
  the account keyed by (provider, subject); a person in no mapped group, or whose account is
  disabled, is refused.

Every refusal is an `SsoRefused` whose message is shown on the page: it says what was wrong,
never a token, code or secret.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlmodel import Session, col, delete, select, update

from api.accounts import audit
from api.accounts.roles import StaffRole, strongest
from api.config import OidcProvider, is_loopback
from api.errors import ConfigError
from api.models.accounts import (
    MAX_DISPLAY_CHARS,
    MAX_SUBJECT_CHARS,
    AccountAction,
    SsoAttempt,
    StaffAccount,
)

SSO_ATTEMPT_SECONDS: Final = 600
"""Time to sign in at the provider and come back; a slower callback is refused."""
HTTP_TIMEOUT_S: Final = 10.0
"""A provider that does not answer within this is reported as unreachable."""
MAX_DOCUMENT_BYTES: Final = 256 * 1024
"""Discovery documents and key sets are a few KiB; a larger answer is refused unread."""
MAX_ID_TOKEN_CHARS: Final = 16 * 1024
MAX_GROUPS: Final = 1024
"""Groups read from one token; a person in more is refused rather than half-read."""
MAX_CALLBACK_CHARS: Final = 4096
"""State, code and error fields of a callback, each: ours are 43 characters."""
CLOCK_LEEWAY_S: Final = 60
"""Clock difference allowed between us and the provider for `exp`, `iat` and `nbf`."""
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
"""ID token signatures we accept: never `none`, never an HMAC keyed by the client secret."""


class SsoRefused(Exception):
    """A sign-on that may not go on; the message is shown to the person (and is safe to)."""

    def __init__(self, reason: str, status_code: int = 401) -> None:
        super().__init__(reason)
        self.status_code = status_code


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ProviderDirectory:
    """Each configured provider's discovery document and key set, fetched on first use and
    kept; the key set is fetched again, once, when a token names a key id it lacks (the
    provider rotated its keys)."""

    def __init__(self, providers: tuple[OidcProvider, ...]) -> None:
        self._providers = {p.name: p for p in providers}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, KeySet] = {}
        self._lock = threading.Lock()

    def providers(self) -> list[OidcProvider]:
        return list(self._providers.values())

    def get(self, name: str) -> OidcProvider | None:
        return self._providers.get(name)

    def metadata(self, provider: OidcProvider) -> dict[str, Any]:
        with self._lock:
            if provider.name not in self._metadata:
                url = provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = _fetch_json(url)
                # OIDC Discovery §4.3: the document must name the issuer we asked.
                if document.get("issuer") != provider.issuer:
                    raise SsoRefused(f"the provider's discovery document names issuer "
                                     f"{str(document.get('issuer'))[:200]!r}, expected "
                                     f"{provider.issuer!r}", 502)
                for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(field), str):
                        raise SsoRefused(f"the provider's discovery document has no {field}",
                                         502)
                self._metadata[provider.name] = document
            return self._metadata[provider.name]

    def keys(self, provider: OidcProvider, *, refresh: bool = False) -> KeySet:
        metadata = self.metadata(provider)
        with self._lock:
            if refresh or provider.name not in self._keys:
                try:
                    self._keys[provider.name] = KeySet.import_key_set(
                        _fetch_json(metadata["jwks_uri"]))  # type: ignore[arg-type]
                except (JoseError, ValueError, TypeError, KeyError):
                    raise SsoRefused("the provider's signing keys (JWKS) are unusable",
                                     502) from None
            return self._keys[provider.name]


def _fetch_json(url: str) -> dict[str, Any]:
    try:
        with httpx2.Client(timeout=HTTP_TIMEOUT_S, follow_redirects=False) as client, \
                client.stream("GET", url, headers={"Accept": "application/json"}) as answer:
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise SsoRefused("the provider's answer is too large", 502)
            if answer.status_code != 200:
                raise SsoRefused(f"the provider answered {answer.status_code} for {url}", 502)
            document = json.loads(body) if body else None
    except (httpx2.HTTPError, ValueError):
        raise SsoRefused(f"the provider could not be reached at {url}", 502) from None
    if not isinstance(document, dict):
        raise SsoRefused(f"the provider's answer at {url} is not a JSON object", 502)
    return document


def _client(provider: OidcProvider, redirect_uri: str) -> OAuth2Client:
    try:
        secret = provider.client_secret().get_secret_value()
    except ConfigError as exc:
        raise SsoRefused(f"single sign-on is misconfigured: {exc}", 500) from None
    return OAuth2Client(client_id=provider.client_id, client_secret=secret,
                        token_endpoint_auth_method="client_secret_basic",  # noqa: S106
                        scope=provider.scope, redirect_uri=redirect_uri,
                        code_challenge_method="S256", timeout=HTTP_TIMEOUT_S)


def end_session_url(directory: ProviderDirectory, provider: OidcProvider,
                    signed_out_uri: str) -> str | None:
    """Where to send a browser signing out, so it is signed out at the provider too
    (OpenID Connect RP-Initiated Logout 1.0): the provider's `end_session_endpoint` with our
    client id and `signed_out_uri` to come back to. None when the provider publishes no such
    endpoint, cannot be reached, or names one that is not https (http only on loopback, as
    for its issuer): signing out here still holds."""
    try:
        endpoint = directory.metadata(provider).get("end_session_endpoint")
    except SsoRefused:
        return None
    if not isinstance(endpoint, str) or len(endpoint) > MAX_CALLBACK_CHARS:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname
                                        and is_loopback(parts.hostname)):
        return None
    query = urlencode({"client_id": provider.client_id,
                       "post_logout_redirect_uri": signed_out_uri})
    return f"{endpoint}{'&' if parts.query else '?'}{query}"


def start(session: Session, directory: ProviderDirectory, provider: OidcProvider,
          redirect_uri: str, now: datetime) -> tuple[str, str]:
    """Begin a sign-on: the provider URL to send the browser to, and the cookie value that
    binds the attempt to this browser."""
    metadata = directory.metadata(provider)
    verifier, nonce, browser = (secrets.token_urlsafe(48), secrets.token_urlsafe(32),
                                secrets.token_urlsafe(32))
    with _client(provider, redirect_uri) as client:
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], state=secrets.token_urlsafe(32),
            code_verifier=verifier, nonce=nonce)
    session.execute(delete(SsoAttempt).where(col(SsoAttempt.expires_at) < now))
    session.add(SsoAttempt(id=_digest(state), provider=provider.name, browser=_digest(browser),
                           nonce=nonce, code_verifier=verifier, created_at=now,
                           expires_at=now + timedelta(seconds=SSO_ATTEMPT_SECONDS)))
    session.commit()
    return url, browser


def spend_attempt(session: Session, provider: OidcProvider, state: str, browser: str,
                  now: datetime) -> SsoAttempt:
    """The attempt `state` names, spent now: unknown, expired, already used, another
    provider's or started in another browser is refused."""
    if not state or len(state) > MAX_CALLBACK_CHARS:
        raise SsoRefused("the sign-in answer has no usable state; start again")
    attempt = session.get(SsoAttempt, _digest(state))
    if attempt is None or attempt.provider != provider.name:
        raise SsoRefused("this sign-in answer matches no sign-in started here; start again")
    if not browser or not secrets.compare_digest(attempt.browser, _digest(browser)):
        raise SsoRefused("this sign-in was started in another browser; start again here")
    if attempt.expires_at <= now:
        raise SsoRefused("this sign-in took too long; start again")
    spent = session.execute(update(SsoAttempt).where(
        col(SsoAttempt.id) == attempt.id, col(SsoAttempt.used_at).is_(None))
        .values(used_at=now))
    session.commit()
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise SsoRefused("this sign-in answer was already used; start again")
    return attempt


def redeem(directory: ProviderDirectory, provider: OidcProvider, code: str,
           attempt: SsoAttempt, redirect_uri: str) -> dict[str, Any]:
    """Exchange `code` (with the attempt's PKCE verifier) for the provider's tokens."""
    if not code or len(code) > MAX_CALLBACK_CHARS:
        raise SsoRefused("the sign-in answer has no usable code; start again")
    metadata = directory.metadata(provider)
    try:
        with _client(provider, redirect_uri) as client:
            token = client.fetch_token(metadata["token_endpoint"], code=code,
                                       grant_type="authorization_code",
                                       code_verifier=attempt.code_verifier)
    except OAuthError as exc:
        raise SsoRefused(f"the provider refused the sign-in code ({str(exc.error)[:100]})"
                         ) from None
    except (httpx2.HTTPError, ValueError):
        raise SsoRefused("the provider's token endpoint could not be reached", 502) from None
    if not isinstance(token.get("id_token"), str):
        raise SsoRefused("the provider gave no ID token (is 'openid' in the scope?)")
    return dict(token)


def verify_id_token(id_token: str, *, keys: KeySet, issuer: str, client_id: str, nonce: str,
                    access_token: str | None, algorithms: list[str], now: int) -> dict[str, Any]:
    """The claims of `id_token` if it is signed by one of `keys` with one of `algorithms`
    and its claims hold (issuer, audience, expiry at `now`, nonce); else `SsoRefused`. A
    key id missing from `keys` raises `InvalidKeyIdError` (the caller refreshes the keys)."""
    if len(id_token) > MAX_ID_TOKEN_CHARS:
        raise SsoRefused("the ID token is too large")
    try:
        token = jwt.decode(id_token, keys, algorithms=algorithms)
    except InvalidKeyIdError:
        raise
    except JoseError as exc:
        raise SsoRefused(f"the ID token does not verify ({exc.error})") from None
    claims = CodeIDToken(
        token.claims, token.header,
        {"iss": {"essential": True, "value": issuer},
         "aud": {"essential": True, "value": client_id},
         "nonce": {"essential": True}},
        {"nonce": nonce, "client_id": client_id, "access_token": access_token})
    try:
        claims.validate(now=now, leeway=CLOCK_LEEWAY_S)
    except JoseError as exc:
        raise SsoRefused(f"the ID token was refused: {exc.error}"
                         f"{': ' + exc.description if exc.description else ''}") from None
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SsoRefused("the ID token was refused: invalid_claim: nonce")
    return dict(claims)


def token_claims(directory: ProviderDirectory, provider: OidcProvider, token: dict[str, Any],
                 nonce: str, now: datetime) -> dict[str, Any]:
    """The verified claims of the ID token in `token` (the keys refreshed once if it names
    a key id the provider's JWKS lacked)."""
    metadata = directory.metadata(provider)
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = sorted(ASYMMETRIC_ALGORITHMS.intersection(
        a for a in offered if isinstance(a, str)))
    verify = partial(verify_id_token, token["id_token"], issuer=provider.issuer,
                     client_id=provider.client_id, nonce=nonce,
                     access_token=token.get("access_token"), algorithms=algorithms,
                     now=int(now.timestamp()))
    try:
        return verify(keys=directory.keys(provider))
    except InvalidKeyIdError:
        try:
            return verify(keys=directory.keys(provider, refresh=True))
        except InvalidKeyIdError:
            raise SsoRefused("the ID token is signed by a key the provider does not publish"
                             ) from None


def role_of(provider: OidcProvider, claims: dict[str, Any]) -> StaffRole:
    """The role `claims`' groups give in the provider's agency; refused if none does."""
    groups = claims.get(provider.groups_claim, [])
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise SsoRefused(f"the ID token's {provider.groups_claim} claim is not a list of "
                         f"at most {MAX_GROUPS} groups", 403)
    roles = {StaffRole(provider.group_roles[g]) for g in groups
             if isinstance(g, str) and g in provider.group_roles}
    role = strongest(roles)
    if role is None:
        raise SsoRefused("you are signed in at your provider, but none of your groups has a "
                         "role here; ask your agency admin to map your group", 403)
    return role


def account_for(session: Session, provider: OidcProvider, claims: dict[str, Any],
                now: datetime) -> StaffAccount:
    """The account of the person `claims` names, made on first sign-in; its role set from
    the groups of this sign-in. A disabled account is refused. Making the account, or a role
    other than its last, adds a row to its audit trail, by `sso:<issuer>`."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_CHARS:
        raise SsoRefused("the ID token's subject is missing or too long")
    role = role_of(provider, claims)
    account = session.exec(select(StaffAccount).where(
        StaffAccount.oidc_provider == provider.name,
        StaffAccount.oidc_subject == subject)).first()
    shown = claims.get("preferred_username") or claims.get("name")
    display = shown[:MAX_DISPLAY_CHARS] if isinstance(shown, str) and shown.isprintable() \
        else None
    if account is None:
        account = StaffAccount(id=secrets.token_hex(8), agency_id=provider.agency_id,
                               username=f"{provider.name}:{subject}", role=role.value,
                               oidc_provider=provider.name, oidc_subject=subject,
                               display_name=display, created_at=now)
        change: AccountAction | None = AccountAction.SSO_CREATED
        detail = f"role {role.value} from groups"
    elif account.disabled_at is not None:
        raise SsoRefused("this account is disabled; ask your agency admin", 403)
    else:
        change = AccountAction.SSO_ROLE_MAPPED if account.role != role.value else None
        detail = f"{account.role} -> {role.value}"
    account.role = role.value
    account.display_name = display or account.display_name
    account.last_sign_in_at = now
    session.add(account)
    if change is not None:
        session.flush()
        audit.record(session, account, change, actor=audit.sso_actor(provider.issuer), now=now,
                     detail=detail)
    session.commit()
    return account
