"""Public routes: the merged feed and the HTML index."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from aggregator.publish import FeedMeta, render_atom
from aggregator.publish.content import feed_tag
from aggregator.store import Store
from aggregator.web.app import WebContext


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


def routes(ctx: WebContext) -> list[BaseRoute]:
    settings, store, base = ctx.settings, ctx.store, ctx.base_url
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
        page = ctx.jinja.get_template("index.html").render(
            title=settings.publish.title, stories=stories, base=base
        )
        return HTMLResponse(page)

    return [
        Route("/", index, methods=["GET"]),
        Route("/feed.atom", feed_atom, methods=["GET"]),
    ]
