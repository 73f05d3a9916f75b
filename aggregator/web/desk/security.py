"""Who may do what on the desk: sessions in cookies, the CSRF token and Origin check on
every POST, and the headers every desk response carries.

Every desk route is built by ``page`` (GET: session required, never writes) or
``action`` (POST: same-origin, session, form, CSRF token, in that order), so a route
cannot forget a check; a test enumerates the app's routes to make sure of it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from aggregator.config import Settings
from aggregator.errors import DecisionError
from aggregator.models import DeskSession
from aggregator.store import Store
from aggregator.web.desk.forms import Fields, Problem, form_fields

SESSION_COOKIE = "aggregator_desk"
# Double-submit token for the sign-in form (there is no session yet to hold one).
LOGIN_COOKIE = "aggregator_desk_login"
LOGIN_PATH = "/desk/login"
# No script at all, styles and images only from us, forms only to us, never framed.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Same-origin Referer: the CSRF check can fall back on it; article sites see nothing.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}

PageHandler = Callable[[Request, DeskSession], Response]
ActionHandler = Callable[[Request, DeskSession, Fields], Response]
Endpoint = Callable[[Request], Awaitable[Response]]
ProblemRenderer = Callable[[Request, Problem, DeskSession | None], Response]


def now() -> datetime:
    return datetime.now(UTC)


def is_https(request: Request, settings: Settings) -> bool:
    if settings.desk.trust_forwarded_proto:
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            return forwarded == "https"
    return request.url.scheme == "https"


def own_origins(request: Request, settings: Settings) -> set[str]:
    """The origins a legitimate form post comes from: this host as the browser saw it,
    and the configured public URL."""
    scheme = "https" if is_https(request, settings) else "http"
    origins = set()
    host = request.headers.get("host")
    if host:
        origins.add(f"{scheme}://{host}".lower())
    if settings.server.public_url:
        parts = urlsplit(settings.server.public_url)
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origins


def same_origin(request: Request, settings: Settings) -> bool:
    """Origin (or, failing that, Referer) names this site; neither means refuse."""
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin.lower() in own_origins(request, settings)


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def safe_next(target: str | None, default: str = "/desk") -> str:
    """Only our own desk pages are redirect targets (no open redirect)."""
    if not target or not target.startswith("/desk") or "\\" in target or "//" in target:
        return default
    if any(ord(c) < 0x20 for c in target):
        return default
    return target


def set_session_cookie(
    response: Response, request: Request, settings: Settings, token: str
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.desk.session_hours * 3600),
        path="/desk",
        httponly=True,
        samesite="lax",
        secure=is_https(request, settings),
    )


def clear_session_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/desk",
        httponly=True,
        samesite="lax",
        secure=is_https(request, settings),
    )


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


class Guard:
    """Builds desk endpoints that check, in order, everything a desk request needs."""

    def __init__(self, settings: Settings, store: Store, problem: ProblemRenderer) -> None:
        self.settings = settings
        self.store = store
        self.problem = problem

    def session(self, request: Request) -> DeskSession | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        return self.store.session_by_token(token, now()) if token else None

    def unauthenticated(self, request: Request) -> Response:
        """HTML: to the sign-in page (and back afterwards); anything else: 401, no data."""
        if wants_html(request):
            target = request.url.path
            if request.url.query and request.method == "GET":
                target += "?" + request.url.query
            location = LOGIN_PATH
            if target not in ("/desk", "/desk/"):
                location += "?suite=" + quote(safe_next(target), safe="")
            return RedirectResponse(location, status_code=303)
        return PlainTextResponse("Connexion requise.", status_code=401)

    def page(self, handler: PageHandler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            session = await run_in_threadpool(self.session, request)
            if session is None:
                return secure(self.unauthenticated(request))
            return secure(await self._run(request, session, handler, request, session))

        return endpoint

    def action(self, handler: ActionHandler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if not same_origin(request, self.settings):
                return secure(
                    self.problem(request, Problem(403, "Requête refusée : origine inconnue."), None)
                )
            session = await run_in_threadpool(self.session, request)
            if session is None:
                return secure(self.unauthenticated(request))
            try:
                fields = await form_fields(request)
                token = fields.raw("csrf") or ""
                if not secrets.compare_digest(token.encode(), session.csrf_token.encode()):
                    raise Problem(403, "Requête refusée : jeton de sécurité absent ou périmé. "
                                       "Rechargez la page et recommencez.")  # fmt: skip
            except Problem as e:
                return secure(self.problem(request, e, session))
            return secure(await self._run(request, session, handler, request, session, fields))

        return endpoint

    async def _run(
        self,
        request: Request,
        session: DeskSession,
        handler: Callable[..., Response],
        *args: object,
    ) -> Response:
        try:
            return await run_in_threadpool(handler, *args)
        except DecisionError as e:
            return self.problem(request, Problem.from_decision(e), session)
        except Problem as e:
            return self.problem(request, e, session)
