"""Operational routes: health (and, later, metrics)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from aggregator.web.app import WebContext


def routes(ctx: WebContext) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        ctx.store.count_stories()
        return PlainTextResponse("ok\n")

    return [Route("/healthz", healthz, methods=["GET"])]
