"""Starlette application factory: assembles the route groups (public feeds, operations,
and the editors' desk) around one shared ``WebContext``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from aggregator.config import Settings
from aggregator.publish.content import french_time, safe_href
from aggregator.store import Store
from aggregator.web.httpcache import CachedFastPath

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class WebContext:
    """What every route group needs."""

    settings: Settings
    store: Store
    jinja: Environment

    @property
    def base_url(self) -> str:
        return self.settings.server.base_url


def make_jinja() -> Environment:
    """Jinja2 with autoescaping on every HTML template (feed text is untrusted)."""
    jinja = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        auto_reload=False,
    )
    jinja.filters["french_time"] = french_time
    jinja.filters["safe_href"] = lambda url: safe_href(url) or ""
    return jinja


def create_app(
    settings: Settings, store: Store, *, probe: Callable[[], Mapping[str, Any]] | None = None
) -> Starlette:
    """The app; ``probe`` tells /healthz whether this process's scheduler is alive."""
    from aggregator.web import desk, feeds, ops

    ctx = WebContext(settings=settings, store=store, jinja=make_jinja())
    cache = feeds.feed_cache(ctx)
    routes: list[BaseRoute] = [
        *feeds.routes(ctx, cache), *ops.routes(ctx, probe), *desk.routes(ctx),
    ]  # fmt: skip
    # Polls of the plain merged feeds are answered from the render cache before routing.
    fast_path = Middleware(CachedFastPath, cache=cache, keys=feeds.FAST_PATH_KEYS)
    return Starlette(routes=routes, middleware=[fast_path])
