"""``/dashboard``: the admin page of the control tower (login with an admin API key, then a signed session cookie).

Thin routes: sessions are in :mod:`shopfloor.api.session`, panel data in :mod:`shopfloor.tower.dashboard_panels`,
the page and its script in ``api/static/dashboard`` and Chart.js in ``api/static/vendor``. Call :func:`mount` once
on the app: it includes the router and serves the static files.

The key typed into the form is checked once and never stored, logged or echoed; the cookie holds only the key's
id, signed with HMAC-SHA256 (``dashboard_session_secret``), HttpOnly and SameSite=Strict, for
``dashboard_session_ttl_s``; it is Secure over https (also behind a trusted TLS proxy) or always with
``dashboard_cookie_secure``. Every request re-checks that the key still exists, is not revoked and is an admin key,
and that the session was not logged out (logout records it server-side).

The two forms (login, logout) refuse a post from another site (:func:`cross_site_refusal`): SameSite=Strict keeps
the cookie off a cross-site request, but a cross-site login form would still log the browser in with the
attacker's key (login CSRF).
"""

from __future__ import annotations

import html
import logging
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import select

from ...bootstrap import Container
from ...domain.errors import DomainError, Forbidden, NotFound, Unauthorized
from ...store.keys import dashboard_session_ended, end_dashboard_session
from ...store.tables import api_keys
from ...tower.dashboard_panels import PANELS
from ..deps import get_container
from ..session import InvalidSession, Session, SessionSigner
from ..throttle import FailedLoginThrottle

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
COOKIE = "shopfloor_dashboard"
COOKIE_PATH = "/dashboard"
MAX_FORM_BYTES = 4096

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: under no-referrer browsers send "Origin: null" with the page's own form posts,
    # and the Origin is what tells them from a cross-site post. Other origins still get no Referer.
    "Referrer-Policy": "same-origin",
    # Everything is served from here (Chart.js is vendored): no third-party origin is needed.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
}


def _per_container(container: Container, name: str, build):
    """The container's ``name`` service, built from its settings on first use (one per process)."""
    svc = container.services.get(name)
    if svc is None:
        svc = container.services.setdefault(name, build(container.settings))
    return svc


def login_throttle(container: Container) -> FailedLoginThrottle:
    return _per_container(container, "dashboard.login_throttle", lambda s: FailedLoginThrottle(
        s.dashboard_login_max_failures, s.dashboard_login_window_s))


def session_signer(container: Container) -> SessionSigner:
    return _per_container(container, "dashboard.sessions", lambda s: SessionSigner(
        s.dashboard_session_secret.get_secret_value(), s.dashboard_session_ttl_s))


def _check_session_store(container: Container, session: Session) -> None:
    """Raises :class:`InvalidSession` when the session was logged out or its key is no longer an active admin."""
    with container.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        row = conn.execute(select(api_keys.c.scopes).where(api_keys.c.id == session.key_id,
                                                           api_keys.c.revoked_at.is_(None))).first()
        ended = dashboard_session_ended(conn, session.session_id)
    if ended:
        raise InvalidSession("logged_out")
    if row is None or "admin" not in (row.scopes or []):
        raise InvalidSession("key_revoked")


def current_session(request: Request, container: Container) -> Session:
    """The request's valid session; raises :class:`InvalidSession` otherwise (also for revoked or demoted keys, and
    for sessions that were logged out)."""
    session = session_signer(container).verify(request.cookies.get(COOKIE), container.clock.now())
    _check_session_store(container, session)
    return session


def cookie_secure(request: Request, container: Container) -> bool:
    """``Secure`` when forced by ``dashboard_cookie_secure`` or when the request came over https (directly, or
    through a trusted proxy's ``X-Forwarded-Proto``: see ``http_forwarded_allow_ips``)."""
    return container.settings.dashboard_cookie_secure or request.url.scheme == "https"


async def require_session(request: Request, container: Container = Depends(get_container)) -> Session:
    """Dependency for the JSON endpoints: 401 (error envelope) without a valid session."""
    try:
        return current_session(request, container)
    except InvalidSession as exc:
        raise Unauthorized("dashboard session missing, invalid or expired; log in at /dashboard/login",
                           [{"reason": exc.reason}]) from None


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def login_page(message: str | None = None, status: int = 200) -> HTMLResponse:
    template = (STATIC_DIR / "dashboard" / "login.html").read_text(encoding="utf-8")
    notice = f'<p class="error" role="alert" id="login-error">{html.escape(message)}</p>' if message else ""
    return _html(template.replace("<!--NOTICE-->", notice), status)


def _clear_cookie(response: Response, secure: bool = False) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(authority: str, scheme: str | None = None) -> tuple[str, int | None] | None:
    """``host[:port]`` as (lower-case host, port); the port is the scheme's default when one is given, else None
    when the authority names none. None for an authority that does not parse."""
    try:
        parts = urlsplit(f"//{authority.strip()}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme or "")


def cross_site_refusal(request: Request) -> str | None:
    """Why a form post must be refused as coming from another site, or None. Refused: ``Sec-Fetch-Site:
    cross-site``; an ``Origin`` whose host:port is not the request's ``Host`` (nor, behind a proxy that rewrites
    ``Host``, its ``X-Forwarded-Host``: a cross-site form cannot set that header); ``Origin: null`` (a sandboxed
    or privacy-stripped page) unless the browser says ``Sec-Fetch-Site: same-origin``. A request without
    ``Origin`` (an old browser, a script) is let through."""
    site = request.headers.get("sec-fetch-site", "").lower()
    if site == "cross-site":
        return "Sec-Fetch-Site: cross-site"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if origin.strip().lower() == "null":
        return None if site == "same-origin" else "Origin: null"
    scheme, sep, authority = origin.strip().partition("://")
    theirs = _host_port(authority, scheme.lower()) if sep and "/" not in authority else None
    if theirs is None:
        return f"Origin {origin[:100]!r} is not an origin"
    hosts = [request.headers.get("host", "")] + [h.split(",")[0] for h in request.headers.getlist("x-forwarded-host")]
    for host in filter(None, hosts):
        ours = _host_port(host)
        if ours is None or ours[0] != theirs[0]:
            continue
        # A Host without a port means the default one of whichever scheme the browser used: a TLS proxy may not
        # say which (X-Forwarded-Proto), so either default port is this site's.
        if ours[1] == theirs[1] or (ours[1] is None and theirs[1] in _DEFAULT_PORTS.values()):
            return None
    return f"Origin {origin[:100]!r} is not this site ({(hosts[0] or '?')[:100]})"


async def read_form_body(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it is longer than ``limit`` (never reads more than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/dashboard/login")
def login_form(request: Request, container: Container = Depends(get_container)) -> Response:
    """The login form (or straight to the dashboard when the session is still valid)."""
    try:
        current_session(request, container)
        return RedirectResponse("/dashboard", status_code=303)
    except InvalidSession:
        return login_page()


@router.post("/dashboard/login")
async def login(request: Request, container: Container = Depends(get_container)) -> Response:
    """Check the posted admin key; on success set the session cookie and go to the dashboard."""
    refused = cross_site_refusal(request)
    if refused is not None:
        log.warning("dashboard login refused as a cross-site post: %s", refused)
        return login_page("This login form was posted from another site; open /dashboard/login here and log in "
                          "again. (Behind a proxy that changes the Host header, pass X-Forwarded-Host.)", 403)
    raw = await read_form_body(request, MAX_FORM_BYTES)
    if raw is None:
        return login_page("The form is too large.", 413)
    form = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=8)
    key = (form.get("key") or [""])[0].strip()
    if not key:
        return login_page("Enter an admin API key.", 401)
    throttle = login_throttle(container)
    client = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(client)
    if wait is not None:
        log.warning("dashboard login throttled for %s (%d s left)", client, wait)
        page = login_page(f"Too many refused logins from your address; try again in {wait} s.", 429)
        page.headers["Retry-After"] = str(wait)
        return page
    try:
        key_id = request.app.state.authenticator.require("Bearer " + key, ("admin",))
    except DomainError as exc:  # Unauthorized (401) or Forbidden (403); the key itself is never logged
        throttle.failed(client)
        log.info("dashboard login refused: %s", exc.code)
        text = ("That key does not have the admin scope." if exc.status == 403
                else "That key is not valid (unknown or revoked).")
        return login_page(text, exc.status)
    throttle.succeeded(client)
    now = container.clock.now()
    signer = session_signer(container)
    response = RedirectResponse("/dashboard", status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE, signer.issue(key_id, now), max_age=signer.ttl_s, path=COOKIE_PATH,
                        httponly=True, samesite="strict", secure=cookie_secure(request, container))
    log.info("dashboard login for key %s", key_id)
    return response


@router.post("/dashboard/logout")
def logout(request: Request, container: Container = Depends(get_container)) -> Response:
    """End the session server-side (a copy of the cookie stops working too) and clear the cookie."""
    refused = cross_site_refusal(request)
    if refused is not None:
        log.warning("dashboard logout refused as a cross-site post: %s", refused)
        raise Forbidden("logout must be posted from the dashboard itself, not from another site",
                        [{"field": "origin", "reason": refused}])
    try:
        session = session_signer(container).verify(request.cookies.get(COOKIE), container.clock.now())
    except InvalidSession:
        session = None
    if session is not None:
        end_dashboard_session(container.engine, session.session_id,
                              datetime.fromtimestamp(session.expires_at, timezone.utc), container.clock.now())
        log.info("dashboard logout for key %s", session.key_id)
    response = RedirectResponse("/dashboard/login", status_code=303, headers={"Cache-Control": "no-store"})
    _clear_cookie(response, cookie_secure(request, container))
    return response


@router.get("/dashboard")
def dashboard_page(request: Request, container: Container = Depends(get_container)) -> Response:
    """The dashboard page; without a valid session, a redirect to the login form."""
    try:
        current_session(request, container)
    except InvalidSession:
        response = RedirectResponse("/dashboard/login", status_code=303, headers={"Cache-Control": "no-store"})
        if request.cookies.get(COOKIE):
            _clear_cookie(response, cookie_secure(request, container))
        return response
    template = (STATIC_DIR / "dashboard" / "index.html").read_text(encoding="utf-8")
    refresh_ms = int(container.settings.dashboard_refresh_s * 1000)
    return _html(template.replace("__REFRESH_MS__", str(refresh_ms)))


@router.get("/dashboard/api/panels")
def panel_names(_session: Session = Depends(require_session)) -> dict:
    return {"panels": list(PANELS)}


@router.get("/dashboard/api/{panel}")
def panel_data(panel: str, response: Response, container: Container = Depends(get_container),
               _session: Session = Depends(require_session)) -> dict:
    """One panel's JSON (``state`` is ``ready`` or ``empty``)."""
    build = PANELS.get(panel)
    if build is None:
        raise NotFound(f"no dashboard panel {panel!r}", [{"field": "panel", "known": list(PANELS)}])
    response.headers["Cache-Control"] = "no-store"
    return build(container, container.clock.now())


def mount(app: FastAPI) -> None:
    """Add the dashboard routes and its static files (``/dashboard/static``) to ``app``."""
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
