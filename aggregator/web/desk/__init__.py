"""The editors' desk at /desk: sign in, review stories and topics, correct them.

Pages are GET and never write; actions are POST and go through the guard (same origin,
session, CSRF token). Static files (CSS) are public under /static/desk.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from aggregator.web.app import WebContext
from aggregator.web.desk import actions, pages
from aggregator.web.desk.auth import login_routes
from aggregator.web.desk.core import Desk

STATIC = Path(__file__).resolve().parent.parent / "static" / "desk"


def routes(ctx: WebContext) -> list[BaseRoute]:
    desk = Desk(ctx.settings, ctx.store)
    guard = desk.guard

    def page(handler: Callable[..., Any]) -> Any:
        return guard.page(partial(handler, desk))

    def action(handler: Callable[..., Any]) -> Any:
        return guard.action(partial(handler, desk))

    login_form, login_submit, logout = login_routes(desk)
    story = "/desk/stories/{uid}"
    return [
        Route("/desk", page(pages.story_list), methods=["GET"]),
        Route("/desk/", page(pages.story_list), methods=["GET"]),
        Route("/desk/login", login_form, methods=["GET"]),
        Route("/desk/login", login_submit, methods=["POST"]),
        Route("/desk/logout", logout, methods=["POST"]),
        Route("/desk/topics", page(pages.topic_list), methods=["GET"]),
        Route("/desk/history", page(pages.history_page), methods=["GET"]),
        Route(story, page(pages.story_page), methods=["GET"]),
        Route(f"{story}/rename", action(actions.rename), methods=["POST"]),
        Route(f"{story}/merge", action(actions.merge), methods=["POST"]),
        Route(f"{story}/split", action(actions.split), methods=["POST"]),
        Route(f"{story}/move", action(actions.move), methods=["POST"]),
        Route(f"{story}/remove", action(actions.remove), methods=["POST"]),
        Route(f"{story}/pin", action(actions.flag("pin")), methods=["POST"]),
        Route(f"{story}/hide", action(actions.flag("hide")), methods=["POST"]),
        Route(f"{story}/lock", action(actions.flag("lock")), methods=["POST"]),
        Route(f"{story}/topic", action(actions.attach_topic), methods=["POST"]),
        Route(f"{story}/untopic", action(actions.detach_topic), methods=["POST"]),
        Route(f"{story}/review", action(actions.review), methods=["POST"]),
        Route("/desk/topics/{uid}/rename", action(actions.rename_topic), methods=["POST"]),
        Route("/desk/decisions/{decision}/undo", action(actions.undo), methods=["POST"]),
        Mount("/static/desk", StaticFiles(directory=STATIC), name="desk-static"),
    ]
