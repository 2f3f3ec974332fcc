"""Sign in (with an agency API key), sign out, and the start page listing the three pages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SessionDep, SettingsDep
from api.web.session import COOKIE, SESSION_SECONDS, CurrentUser, read_form, sign_in
from api.web.templating import page

router = APIRouter(prefix="/web", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The sign-in form."""
    return page(request, "login.html", error=None)


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Check the key; on success set the session cookie and go to the start page."""
    form = await read_form(request)
    cookie = sign_in(session, settings.secret_key.get_secret_value(), form.get("key", ""))
    if cookie is None:
        return page(request, "login.html", status_code=401,
                    error="That key is unknown, revoked or mistyped.")
    response = RedirectResponse("/web/", status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/web")
    return response


@router.post("/logout")
async def logout(request: Request, user: CurrentUser) -> Response:
    """Forget the session cookie (the form carries the CSRF token)."""
    form = await read_form(request)
    if form.get("csrf") != user.csrf:
        return Response("bad form token", status_code=403)
    response = RedirectResponse("/web/login", status_code=303)
    response.delete_cookie(COOKIE, path="/web")
    return response


@router.get("/", response_class=HTMLResponse)
def start(request: Request, user: CurrentUser) -> Response:
    """The three pages, one per kind of user."""
    return page(request, "start.html", user=user)
