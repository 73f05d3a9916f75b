"""Starlette application factory."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from aggregator.config import Settings
from aggregator.publish import FeedMeta, render_atom
from aggregator.publish.content import feed_tag, french_time, safe_href
from aggregator.store import Store

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    etag: str
    media_type: str


class RenderCache:
    """Rendered feed bytes, kept until the stories change (the store's version moves)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._items: dict[str, tuple[str, Rendered]] = {}

    def get(self, key: str, media_type: str, render: Callable[[], bytes]) -> Rendered:
        version = self.store.stories_version()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        body = render()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        rendered = Rendered(body=body, etag=etag, media_type=media_type)
        with self._lock:
            self._items[key] = (version, rendered)
        return rendered


def _etag_matches(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    return any(tag.strip() in (etag, "*") for tag in header.split(","))


def create_app(settings: Settings, store: Store) -> Starlette:
    base = settings.server.base_url
    jinja = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        auto_reload=False,
    )
    jinja.filters["french_time"] = french_time
    jinja.filters["safe_href"] = lambda url: safe_href(url) or ""
    cache = RenderCache(store)

    def feed_response(request: Request, rendered: Rendered) -> Response:
        headers = {"ETag": rendered.etag, "Cache-Control": "public, max-age=60"}
        if _etag_matches(request, rendered.etag):
            return Response(status_code=304, headers=headers)
        return Response(rendered.body, media_type=rendered.media_type, headers=headers)

    async def feed_atom(request: Request) -> Response:
        def render() -> bytes:
            stories = store.recent_stories(limit=settings.publish.max_items)
            updated = max((s.last_activity_at for s in stories), default=datetime.now(UTC))
            meta = FeedMeta(
                title=settings.publish.title,
                self_url=f"{base}/feed.atom",
                site_url=f"{base}/",
                feed_id=feed_tag(settings.publish.tag_authority, "merged"),
                updated=updated,
                tag_authority=settings.publish.tag_authority,
                subtitle="Les articles des médias français regroupés par événement",
                hub_url=settings.publish.websub_hub,
            )
            return render_atom(stories, meta)

        rendered = cache.get("feed.atom", "application/atom+xml; charset=utf-8", render)
        return feed_response(request, rendered)

    async def index(request: Request) -> Response:
        stories = store.recent_stories(limit=settings.publish.max_items)
        page = jinja.get_template("index.html").render(
            title=settings.publish.title, stories=stories, base=base
        )
        return HTMLResponse(page)

    async def healthz(request: Request) -> Response:
        store.count_stories()
        return PlainTextResponse("ok\n")

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/feed.atom", feed_atom, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes)
