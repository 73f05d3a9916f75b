"""The desk's shared machinery: settings, store, templates, the guard, and rendering."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from jinja2 import Environment
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from aggregator.config import Settings
from aggregator.models import Decision, DeskSession
from aggregator.pipeline.websub import announce_changes
from aggregator.publish.content import PARIS, french_time
from aggregator.store import Store
from aggregator.text import FrenchAnalyzer
from aggregator.web.app import make_jinja
from aggregator.web.desk.forms import MAX_ID, Problem
from aggregator.web.desk.security import Guard, now, own_origins, safe_next, wants_html

# What the history calls each decision (decisions.action).
ACTION_NAMES = {
    "rename_story": "Titre",
    "rename_topic": "Sujet",
    "merge": "Fusion",
    "split": "Séparation",
    "move": "Déplacement",
    "remove": "Retrait",
    "pin": "Épinglage",
    "unpin": "Épinglage",
    "hide": "Masquage",
    "unhide": "Masquage",
    "lock": "Verrou",
    "unlock": "Verrou",
    "attach_topic": "Sujet",
    "detach_topic": "Sujet",
    "review": "Vérification",
}
PROBLEM_TITLES = {
    400: "Demande invalide",
    401: "Connexion requise",
    403: "Accès refusé",
    404: "Introuvable",
    409: "Impossible pour l’instant",
    413: "Formulaire trop volumineux",
    414: "Adresse trop longue",
    415: "Format non pris en charge",
    429: "Trop de tentatives",
}


def ago(when: datetime | None, reference: datetime | None = None) -> str:
    """'il y a 5 min', 'il y a 3 h', 'il y a 2 j' (or the date beyond a week)."""
    if when is None:
        return ""
    seconds = ((reference or now()) - when).total_seconds()
    if seconds < 60:
        return "à l’instant"
    if seconds < 3600:
        return f"il y a {int(seconds // 60)} min"
    if seconds < 86400:
        return f"il y a {int(seconds // 3600)} h"
    if seconds < 7 * 86400:
        return f"il y a {int(seconds // 86400)} j"
    return french_time(when)


def short_time(when: datetime) -> str:
    """'10/02 14h05' in Paris time."""
    local = when.astimezone(PARIS)
    return f"{local:%d/%m} {local:%H}h{local:%M}"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


class Desk:
    """One per app: what every desk page and action uses."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.jinja: Environment = make_jinja()
        self.jinja.filters.update(ago=ago, short_time=short_time, plural=plural)
        self.jinja.globals["action_names"] = ACTION_NAMES
        self.guard = Guard(settings, store, self.problem)

    @cached_property
    def analyzer(self) -> FrenchAnalyzer:
        from aggregator.pipeline import make_analyzer

        return make_analyzer(self.settings)

    @property
    def review_window(self) -> timedelta:
        return timedelta(hours=self.settings.desk.review_hours)

    def render(
        self,
        request: Request,
        template: str,
        session: DeskSession | None,
        *,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        page = self.jinja.get_template(f"desk/{template}").render(
            user=session.user if session else None,
            csrf=session.csrf_token if session else "",
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            section=context.pop("section", ""),
            flash=self._flash(request, session),
            title_site="Bureau des éditeurs",
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def _flash(self, request: Request, session: DeskSession | None) -> Decision | None:
        """The decision just taken (``?fait=ID``), shown with an undo button. Display only."""
        if session is None:
            return None
        raw = request.query_params.get("fait", "")
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) > MAX_ID:
            return None
        return self.store.decision(int(raw))

    def problem(self, request: Request, problem: Problem, session: DeskSession | None) -> Response:
        if wants_html(request):
            return self.render(
                request,
                "error.html",
                session,
                status=problem.status,
                heading=PROBLEM_TITLES.get(problem.status, "Erreur"),
                message=problem.message,
                back=self.back(request),
            )
        return PlainTextResponse(problem.message, status_code=problem.status)

    def back(self, request: Request) -> str:
        """Where "Retour" goes: the desk page the editor came from, if it was ours."""
        parts = urlsplit(request.headers.get("referer", ""))
        if f"{parts.scheme}://{parts.netloc}".lower() not in own_origins(request, self.settings):
            return "/desk"
        return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))

    def done(self, fields_next: str | None, default: str, decision: int) -> Response:
        """After an action: back to the page the editor came from, with the decision shown."""
        target = safe_next(fields_next, default)
        base, _, query = target.partition("?")
        params = [(k, v) for k, v in _pairs(query) if k != "fait"]
        params.append(("fait", str(decision)))
        # The feeds changed: tell the WebSub hub, if one is configured, once the editor
        # has the answer (announce_changes waits for feed caches first).
        ping = BackgroundTask(announce_changes, self.settings, self.store, {"changed": 1})
        return RedirectResponse(f"{base}?{urlencode(params)}", status_code=303, background=ping)


def _pairs(query: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=50)
    except ValueError:
        return []
