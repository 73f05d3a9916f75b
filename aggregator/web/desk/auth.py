"""Signing in and out. Accounts come from the operator (``aggregator users add``)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from aggregator.models import DeskSession
from aggregator.store.desk import LoginBlocked
from aggregator.store.desk.accounts import LOGIN_WINDOW, MAX_PASSWORD_CHARS
from aggregator.web.desk.core import Desk
from aggregator.web.desk.forms import Fields, Problem, form_fields, query_fields
from aggregator.web.desk.security import (
    LOGIN_COOKIE,
    LOGIN_PATH,
    SESSION_COOKIE,
    clear_session_cookie,
    client_address,
    is_https,
    new_login_token,
    now,
    safe_next,
    same_origin,
    secure,
    set_session_cookie,
)

LOGIN_TOKEN_SECONDS = 3600


def _login_page(
    desk: Desk, request: Request, *, status: int = 200, message: str = "", name: str = "",
    after: str = "/desk",
) -> Response:  # fmt: skip
    token = new_login_token()
    response = desk.render(
        request, "login.html", None, status=status, message=message, name=name,
        login_token=token, after=after, signed_out=request.query_params.get("sortie") == "1",
    )  # fmt: skip
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_TOKEN_SECONDS,
        path=LOGIN_PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request, desk.settings),
    )
    return secure(response)


Endpoint = Callable[[Request], Awaitable[Response]]


def login_routes(desk: Desk) -> tuple[Endpoint, Endpoint, Endpoint]:
    async def login_form(request: Request) -> Response:
        try:
            after = safe_next(query_fields(request).raw("suite"))
        except Problem:
            after = "/desk"
        if await run_in_threadpool(desk.guard.session, request) is not None:
            return secure(RedirectResponse(after, status_code=303))
        return await run_in_threadpool(lambda: _login_page(desk, request, after=after))

    async def login_submit(request: Request) -> Response:
        if not same_origin(request, desk.settings):
            return secure(desk.problem(request, Problem(403, "Requête refusée : origine inconnue."),
                                       None))  # fmt: skip
        try:
            fields = await form_fields(request)
            token = fields.raw("csrf") or ""
            cookie = request.cookies.get(LOGIN_COOKIE, "")
            if not cookie or not secrets.compare_digest(token.encode(), cookie.encode()):
                raise Problem(403, "Jeton de connexion absent ou périmé : rechargez la page.")
        except Problem as e:
            return secure(desk.problem(request, e, None))
        return await run_in_threadpool(_sign_in, desk, request, fields)

    def _sign_out(request: Request, session: DeskSession, fields: Fields) -> Response:
        token = request.cookies.get(SESSION_COOKIE, "")
        desk.store.delete_session(token)
        response = RedirectResponse(f"{LOGIN_PATH}?sortie=1", status_code=303)
        clear_session_cookie(response, request, desk.settings)
        return response

    return login_form, login_submit, desk.guard.action(_sign_out)


def _sign_in(desk: Desk, request: Request, fields: Fields) -> Response:
    after = safe_next(fields.raw("suite"))
    try:
        name = fields.text("nom", max_chars=80)
        password = fields.raw("mot_de_passe") or ""
        if not password or len(password) > MAX_PASSWORD_CHARS:
            raise Problem(400, "Mot de passe manquant ou trop long.")
    except Problem as e:
        return _login_page(desk, request, status=e.status, message=e.message, after=after)
    try:
        user = desk.store.sign_in(name, password, client_address(request), now())
    except LoginBlocked:
        minutes = int(LOGIN_WINDOW / timedelta(minutes=1))
        return _login_page(
            desk, request, status=429, name=name, after=after,
            message=f"Trop de tentatives échouées. Réessayez dans {minutes} minutes.",
        )  # fmt: skip
    if user is None:
        return _login_page(desk, request, status=401, name=name, after=after,
                           message="Nom ou mot de passe incorrect.")  # fmt: skip
    token, _ = desk.store.create_session(
        user.id, now(), timedelta(hours=desk.settings.desk.session_hours)
    )
    response = RedirectResponse(after, status_code=303)
    set_session_cookie(response, request, desk.settings, token)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return secure(response)
