"""Public routes: the feeds people subscribe to and the French pages that list them.

Merged feeds in three formats (``/feed.atom|rss|json``, with ``?min_sources=N``,
``?topic=slug`` and ``?page=CURSOR``), per-topic and per-story feeds, the article-level
feed, the OPML of every topic feed, and HTML pages with feed autodiscovery. Every
response comes from the render cache (``httpcache``): rendered once per change of the
stories, with strong ETags, Last-Modified, 304s, gzip and HEAD.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from aggregator.errors import InputError
from aggregator.models import Story, Topic
from aggregator.publish import (
    ArticleItem,
    FeedLink,
    FeedMeta,
    feed_tag,
    render_articles_atom,
    render_atom,
    render_json_feed,
    render_opml,
    render_rss,
    stories_updated,
)
from aggregator.publish.content import EMPTY_FEED_UPDATED
from aggregator.web.app import WebContext
from aggregator.web.httpcache import RenderCache, Rendered, respond

ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
JSON_FEED = "application/feed+json"
OPML = "text/x-opml; charset=utf-8"
HTML = "text/html; charset=utf-8"
# Formats of the story feeds: URL suffix -> (media type, renderer).
STORY_FORMATS = {
    "atom": (ATOM, render_atom),
    "rss": (RSS, render_rss),
    "json": (JSON_FEED, render_json_feed),
}
# ?min_sources is a small integer: the most outlets any story can plausibly have.
MAX_MIN_SOURCES = 50
# Topics listed on the index page and in the OPML export.
MAX_TOPICS = 200
SUBTITLE = "Les articles des médias français regroupés par événement"
ARTICLES_SUBTITLE = "Chaque article, avec les articles des autres médias sur le même événement"


class NotFound(Exception):
    """The topic or story does not exist or is hidden: 404."""


@dataclass(frozen=True, slots=True)
class FeedQuery:
    """The parameters a subscriber can put on a feed URL, validated."""

    min_sources: int = 1
    topic: str | None = None
    page: str | None = None

    def params(self, *, page: str | None = None) -> str:
        items: list[tuple[str, str]] = []
        if self.min_sources > 1:
            items.append(("min_sources", str(self.min_sources)))
        if self.topic:
            items.append(("topic", self.topic))
        if page:
            items.append(("page", page))
        return "?" + urlencode(items) if items else ""

    @property
    def key(self) -> str:
        return f"{self.min_sources}|{self.topic or ''}|{self.page or ''}"


PLAIN_QUERY = FeedQuery()


def parse_query(request: Request) -> FeedQuery:
    """Read ?min_sources, ?topic and ?page; a bad value is a clear 400, never a 500."""
    if not request.scope.get("query_string"):
        return PLAIN_QUERY
    raw = request.query_params.get("min_sources", "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_MIN_SOURCES:
        raise InputError(
            f"min_sources doit être un entier entre 1 et {MAX_MIN_SOURCES} (reçu : {raw[:40]!r})"
        )
    topic = request.query_params.get("topic", "").strip() or None
    page = request.query_params.get("page", "").strip() or None
    if page is not None and (len(page) > 64 or not page.isascii()):
        raise InputError("paramètre page invalide")
    return FeedQuery(min_sources=int(raw), topic=topic, page=page)


def merged_key(fmt: str, query: FeedQuery) -> str:
    """The render-cache key of a merged feed (shared with the ASGI fast path)."""
    return f"{fmt}|merged|{query.key}"


# The plain merged feed URLs -> their cache keys, for ``httpcache.CachedFastPath``.
FAST_PATH_KEYS = {f"/feed.{fmt}": merged_key(fmt, PLAIN_QUERY) for fmt in STORY_FORMATS}


def feed_cache(ctx: WebContext) -> RenderCache:
    """The render cache of the public feeds and pages, dropped when the stories change."""
    return RenderCache(ctx.store.feed_version, ctx.settings.publish.version_check_seconds)


def routes(ctx: WebContext, cache: RenderCache) -> list[BaseRoute]:
    settings, base = ctx.settings, ctx.base_url
    store = ctx.store
    publish = settings.publish
    cache_control = f"public, max-age={publish.max_age_seconds}"
    limit = publish.max_items

    def url(path: str) -> str:
        return f"{base}{path}"

    def feed_headers(self_url: str) -> dict[str, str]:
        if not publish.websub_hub:
            return {}
        return {"Link": f'<{publish.websub_hub}>; rel="hub", <{self_url}>; rel="self"'}

    async def serve(
        request: Request, key: str, media_type: str, render: Callable[[], tuple[bytes, datetime]],
        extra: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        rendered: Rendered | None = cache.current(key)
        if rendered is None:
            headers = {"Cache-Control": cache_control, **(extra or {})}
            try:
                rendered = await run_in_threadpool(cache.fill, key, media_type, render, headers)
            except NotFound as e:
                return _not_found(request, str(e))
            except InputError as e:
                return PlainTextResponse(f"{e}\n", status_code=400)
        return respond(request, rendered)

    def _not_found(request: Request, what: str) -> Response:
        if request.url.path.endswith((".atom", ".rss", ".json")):
            return PlainTextResponse(f"Introuvable : {what}\n", status_code=404)
        page = ctx.jinja.get_template("not_found.html").render(
            page_title="Page introuvable", what=what, **page_context()
        )
        return HTMLResponse(page, status_code=404)

    # -- feed metadata -------------------------------------------------------------

    def topic_or_404(slug: str) -> Topic:
        topic = store.visible_topic(slug)
        if topic is None:
            raise NotFound(f"le sujet « {slug} »")
        return topic

    def meta_for(
        title: str, path: str, query: FeedQuery, next_cursor: str | None, updated: datetime,
        *, feed_name: str, site_url: str, subtitle: str = SUBTITLE,
    ) -> FeedMeta:  # fmt: skip
        first = url(path + query.params())
        return FeedMeta(
            title=title,
            subtitle=subtitle,
            self_url=url(path + query.params(page=query.page)),
            site_url=site_url,
            feed_id=feed_tag(publish.tag_authority, feed_name),
            updated=updated,
            tag_authority=publish.tag_authority,
            hub_url=publish.websub_hub,
            next_url=url(path + query.params(page=next_cursor)) if next_cursor else "",
            first_url=first if query.page else "",
        )

    def stories_feed(
        fmt: str, path: str, query: FeedQuery, topic_slug: str | None, *, topic_page: bool
    ) -> Callable[[], tuple[bytes, datetime]]:
        """Render one page of a story feed; ``query`` holds what its own URL carries."""
        _, renderer = STORY_FORMATS[fmt]

        def render() -> tuple[bytes, datetime]:
            title, site, name = publish.title, url("/"), "merged"
            if topic_slug is not None:
                topic = topic_or_404(topic_slug)
                site = url(f"/topics/{quote(topic.slug)}")
                if topic_page:
                    title, name = f"{topic.label} — {publish.title}", f"topic/{topic.slug}"
                else:
                    title = f"{publish.title} — {topic.label}"
                    name = f"merged;topic={topic.slug}"
            if query.min_sources > 1:
                title += f" ({query.min_sources} médias ou plus)"
                name += f";min_sources={query.min_sources}"
            stories, next_cursor = store.stories_page(
                limit=limit, min_outlets=query.min_sources, topic_slug=topic_slug,
                after=query.page,
            )  # fmt: skip
            meta = meta_for(
                title, path, query, next_cursor, stories_updated(stories),
                feed_name=name, site_url=site,
            )  # fmt: skip
            return renderer(stories, meta), _content_time(stories)

        return render

    # -- feed routes ---------------------------------------------------------------

    def merged(fmt: str) -> Callable[[Request], object]:
        media_type = STORY_FORMATS[fmt][0]
        path = f"/feed.{fmt}"

        async def endpoint(request: Request) -> Response:
            try:
                query = parse_query(request)
            except InputError as e:
                return PlainTextResponse(f"{e}\n", status_code=400)
            key = merged_key(fmt, query)
            hit = cache.current(key)
            if hit is not None:  # the hot path: no closure, no URL to build
                return respond(request, hit)
            render = stories_feed(fmt, path, query, query.topic, topic_page=False)
            headers = feed_headers(url(path + query.params(page=query.page)))
            return await serve(request, key, media_type, render, headers)

        return endpoint

    def per_topic(fmt: str) -> Callable[[Request], object]:
        media_type = STORY_FORMATS[fmt][0]

        async def endpoint(request: Request) -> Response:
            slug = request.path_params["slug"]
            try:
                # The path names the topic: ?topic is ignored and kept out of the links.
                query = replace(parse_query(request), topic=None)
            except InputError as e:
                return PlainTextResponse(f"{e}\n", status_code=400)
            path = f"/topics/{quote(slug)}.{fmt}"
            render = stories_feed(fmt, path, query, slug, topic_page=True)
            headers = feed_headers(url(path + query.params(page=query.page)))
            key = f"{fmt}|topic|{slug}|{query.key}"
            return await serve(request, key, media_type, render, headers)

        return endpoint

    async def story_feed(request: Request) -> Response:
        uid = request.path_params["uid"]
        path = f"/stories/{quote(uid)}.atom"

        def render() -> tuple[bytes, datetime]:
            story = store.visible_story(uid)
            if story is None:
                raise NotFound(f"l’histoire « {uid} »")
            newest = sorted(story.members, key=lambda m: (m.published_at, m.entry_id), reverse=True)
            items = [ArticleItem(member=m, story=story) for m in newest[:limit]]
            meta = FeedMeta(
                title=f"{story.label} — {publish.title}",
                subtitle="Chaque nouvel article sur cette histoire",
                self_url=url(path),
                site_url=url(f"/stories/{quote(story.uid)}"),
                feed_id=feed_tag(publish.tag_authority, f"story/{story.uid}"),
                updated=story.last_activity_at,
                tag_authority=publish.tag_authority,
                hub_url=publish.websub_hub,
            )
            return render_articles_atom(items, meta), _content_time([story])

        return await serve(request, f"atom|story|{uid}", ATOM, render, feed_headers(url(path)))

    async def articles_feed(request: Request) -> Response:
        try:
            query = parse_query(request)
        except InputError as e:
            return PlainTextResponse(f"{e}\n", status_code=400)
        path = "/articles.atom"

        def render() -> tuple[bytes, datetime]:
            title, name = f"{publish.title} — articles", "articles"
            if query.topic is not None:
                topic = topic_or_404(query.topic)
                title, name = f"{title} — {topic.label}", f"{name};topic={topic.slug}"
            if query.min_sources > 1:
                title += f" ({query.min_sources} médias ou plus)"
                name += f";min_sources={query.min_sources}"
            found, next_cursor = store.articles_page(
                limit=limit, min_outlets=query.min_sources, topic_slug=query.topic,
                after=query.page,
            )  # fmt: skip
            items = []
            for entry_id, story in found:
                member = next(m for m in story.members if m.entry_id == entry_id)
                items.append(ArticleItem(member=member, story=story))
            updated = max((i.member.published_at for i in items), default=EMPTY_FEED_UPDATED)
            meta = meta_for(
                title, path, query, next_cursor, updated, feed_name=name, site_url=url("/"),
                subtitle=ARTICLES_SUBTITLE,
            )  # fmt: skip
            return render_articles_atom(items, meta), _content_time([i.story for i in items])

        self_url = url(path + query.params(page=query.page))
        key = f"atom|articles|{query.key}"
        return await serve(request, key, ATOM, render, feed_headers(self_url))

    async def opml(request: Request) -> Response:
        def render() -> tuple[bytes, datetime]:
            topics = store.visible_topics(limit=MAX_TOPICS)
            main = [
                FeedLink("Toutes les histoires", url("/feed.atom"), url("/")),
                FeedLink("Au moins 2 médias", url("/feed.atom?min_sources=2"), url("/")),
                FeedLink("Article par article", url("/articles.atom"), url("/")),
            ]
            by_topic = []
            for t in topics:
                page = url(f"/topics/{quote(t.slug)}")
                by_topic.append(FeedLink(t.label, f"{page}.atom", page))
            when = max((t.updated_at for t in topics if t.updated_at), default=EMPTY_FEED_UPDATED)
            body = render_opml(publish.title, [("", main), ("Sujets", by_topic)], created=when)
            return body, when

        return await serve(request, "opml", OPML, render)

    # -- HTML pages ----------------------------------------------------------------

    def page_context(*extra_feeds: tuple[str, str, str]) -> dict[str, object]:
        feeds = [
            ("application/atom+xml", f"{publish.title} (Atom)", url("/feed.atom")),
            ("application/rss+xml", f"{publish.title} (RSS)", url("/feed.rss")),
            ("application/feed+json", f"{publish.title} (JSON Feed)", url("/feed.json")),
            *extra_feeds,
        ]
        return {"title": publish.title, "base": base, "feeds": feeds}

    def topic_feeds(topic: Topic) -> list[tuple[str, str, str]]:
        path = f"/topics/{quote(topic.slug)}"
        return [
            ("application/atom+xml", f"{topic.label} (Atom)", url(f"{path}.atom")),
            ("application/rss+xml", f"{topic.label} (RSS)", url(f"{path}.rss")),
            ("application/feed+json", f"{topic.label} (JSON Feed)", url(f"{path}.json")),
        ]

    def html(template: str, **values: object) -> bytes:
        return ctx.jinja.get_template(template).render(**values).encode("utf-8")

    async def index(request: Request) -> Response:
        def render() -> tuple[bytes, datetime]:
            stories, next_cursor = store.stories_page(limit=limit)
            topics = store.visible_topics(limit=MAX_TOPICS)
            body = html(
                "index.html", stories=stories, topics=topics, page_title=publish.title,
                more_url=url(f"/feed.atom?page={next_cursor}") if next_cursor else "",
                **page_context(),
            )  # fmt: skip
            return body, _content_time(stories)

        return await serve(request, "html|index", HTML, render)

    async def topic_page(request: Request) -> Response:
        slug = request.path_params["slug"]

        def render() -> tuple[bytes, datetime]:
            topic = topic_or_404(slug)
            stories, _ = store.stories_page(limit=limit, topic_slug=slug)
            body = html(
                "topic.html", topic=topic, stories=stories, page_title=topic.label,
                topic_feeds=topic_feeds(topic), **page_context(*topic_feeds(topic)),
            )  # fmt: skip
            return body, _content_time(stories)

        return await serve(request, f"html|topic|{slug}", HTML, render)

    async def story_page(request: Request) -> Response:
        uid = request.path_params["uid"]

        def render() -> tuple[bytes, datetime]:
            story = store.visible_story(uid)
            if story is None:
                raise NotFound(f"l’histoire « {uid} »")
            feed_url = url(f"/stories/{quote(uid)}.atom")
            feed = ("application/atom+xml", f"{story.label} (Atom)", feed_url)
            extra = [feed, *(topic_feeds(story.topic) if story.topic else [])]
            body = html(
                "story.html", story=story, page_title=story.label, story_feed=feed[2],
                **page_context(*extra),
            )  # fmt: skip
            return body, _content_time([story])

        return await serve(request, f"html|story|{uid}", HTML, render)

    get = ["GET"]  # Starlette adds HEAD to every GET route.
    return [
        Route("/", index, methods=get),
        Route("/feed.atom", merged("atom"), methods=get),
        Route("/feed.rss", merged("rss"), methods=get),
        Route("/feed.json", merged("json"), methods=get),
        Route("/articles.atom", articles_feed, methods=get),
        Route("/opml", opml, methods=get),
        Route("/topics/{slug}.atom", per_topic("atom"), methods=get),
        Route("/topics/{slug}.rss", per_topic("rss"), methods=get),
        Route("/topics/{slug}.json", per_topic("json"), methods=get),
        Route("/topics/{slug}", topic_page, methods=get),
        Route("/stories/{uid}.atom", story_feed, methods=get),
        Route("/stories/{uid}", story_page, methods=get),
    ]


def _content_time(stories: list[Story]) -> datetime:
    """When the served content last changed, as far as the stories tell (Last-Modified)."""
    times = [s.updated_at or s.last_activity_at for s in stories]
    times += [s.last_activity_at for s in stories]
    return max(times, default=EMPTY_FEED_UPDATED).astimezone(UTC)
