"""The public feeds over real HTTP (uvicorn on 127.0.0.1, a real SQLite file): formats and
content types, validators and 304s without rendering, gzip, HEAD, filters, pins and hides,
RFC 5005 paging, per-topic/per-story/article feeds, OPML, French pages with autodiscovery.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import html5lib
import httpx
import jsonschema
import pytest

from aggregator.models import ParsedEntry, Story
from aggregator.opml import read_opml
from aggregator.store import Store
from aggregator.web.httpcache import RenderCache
from tests.feedtools import add_entries, add_topic, save_story, set_story

NOW = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
SCHEMA = json.loads((Path(__file__).parent / "data" / "jsonfeed-1.1.schema.json").read_text())
TYPES = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
    "json": "application/feed+json",
}


class CountingStore(Store):
    """The real store, counting the story queries that rendering makes."""

    renders = 0

    def stories_page(self, **kwargs: Any) -> tuple[list[Story], str | None]:
        self.renders += 1
        return super().stories_page(**kwargs)

    def articles_page(self, **kwargs: Any) -> Any:
        self.renders += 1
        return super().articles_page(**kwargs)


def entry(key: str, title: str, minutes: int) -> ParsedEntry:
    return ParsedEntry(
        key=key, title=title, link=f"https://news.example/{key}",
        published=NOW - timedelta(hours=5) + timedelta(minutes=minutes),
        summary_html=f"<p>Résumé de « {title} » &amp; suite</p>",
    )  # fmt: skip


def seed(store: Store) -> None:
    """Five stories: s1 (3 outlets), s2 and s5 (2), s3 and s4 (1); two topics."""
    a = add_entries(store, "Le Monde", [entry("a1", "Kyiv sous les drones", 10), entry("a2", "Sommet à Paris", 20), entry("a3", "Budget : le 49.3", 30), entry("a5", "Tempête en Bretagne", 50)], NOW)  # fmt: skip
    b = add_entries(store, "Libération", [entry("b1", "Drones sur Kyiv", 12), entry("b2", "Paris accueille un sommet", 22), entry("b4", "Grève SNCF", 40), entry("b5", "Bretagne : la tempête", 52)], NOW)  # fmt: skip
    c = add_entries(store, "France 24", [entry("c1", "Nuit d’attaques de drones à Kyiv", 14)], NOW)
    save_story(store, "s1", [a[0], b[0], c[0]], "Kyiv sous les drones", NOW)
    save_story(store, "s2", [a[1], b[1]], "Sommet à Paris sur l’Ukraine", NOW)
    save_story(store, "s3", [a[2]], "Budget : le 49.3", NOW)
    save_story(store, "s4", [b[2]], "Grève SNCF", NOW)
    save_story(store, "s5", [a[3], b[3]], "Tempête en Bretagne", NOW)
    add_topic(store, "guerre-en-ukraine", "Guerre en Ukraine", ["s1", "s2"], NOW)
    add_topic(store, "politique", "Politique", ["s3"], NOW)


@pytest.fixture
def site(serve_app, settings) -> Any:  # type: ignore[no-untyped-def]
    store = CountingStore(settings.database.url)
    seed(store)
    server, _ = serve_app(store, publish_version_check_seconds="0")
    yield server, store
    store.close()


def ids(url: str, **kwargs: Any) -> list[str]:
    d = feedparser.parse(httpx.get(url, **kwargs).content)
    assert d.bozo == 0, d.get("bozo_exception")
    return [e.id.rsplit("/", 1)[1] for e in d.entries]


def test_every_feed_and_page_has_its_type_validators_and_absolute_urls(site) -> None:  # type: ignore[no-untyped-def]
    server, _ = site
    base = server.url
    urls = {
        "/feed.atom": "atom", "/feed.rss": "rss", "/feed.json": "json",
        "/topics/guerre-en-ukraine.atom": "atom", "/topics/guerre-en-ukraine.rss": "rss",
        "/topics/guerre-en-ukraine.json": "json", "/stories/s1.atom": "atom",
        "/articles.atom": "atom", "/opml": "opml", "/": "html",
        "/topics/guerre-en-ukraine": "html", "/stories/s1": "html",
    }  # fmt: skip
    for path, kind in urls.items():
        r = httpx.get(base + path)
        assert r.status_code == 200, path
        expected = {**TYPES, "opml": "text/x-opml; charset=utf-8", "html": "text/html; charset=utf-8"}  # fmt: skip
        assert r.headers["content-type"] == expected[kind], path
        assert re.fullmatch(r'"[0-9a-f]{32}(-gz)?"', r.headers["etag"]), path  # strong
        assert parsedate_to_datetime(r.headers["last-modified"]) <= datetime.now(UTC)
        assert r.headers["cache-control"] == "public, max-age=60"
        assert r.headers["vary"] == "Accept-Encoding"
        text = r.text
        if kind in ("atom", "rss"):
            d = feedparser.parse(r.content)
            assert d.bozo == 0, (path, d.get("bozo_exception"))
            assert d.entries, path
            assert len({e.id for e in d.entries}) == len(d.entries)
            for e in d.entries:
                assert e.link.startswith("https://"), path
        if kind == "json":
            doc = json.loads(text)
            jsonschema.validate(doc, SCHEMA)
            assert len({i["id"] for i in doc["items"]}) == len(doc["items"])
        for href in re.findall(r'(?:href|xmlUrl|htmlUrl)="([^"]*)"', text):
            assert href.startswith(("http://", "https://")), (path, href)
        for link in re.findall(r"<link>([^<]*)</link>", text):
            assert link.startswith(("http://", "https://")), (path, link)


def test_validators_answer_304_without_rendering(site) -> None:  # type: ignore[no-untyped-def]
    server, store = site
    url = f"{server.url}/feed.atom"
    first = httpx.get(url, headers={"Accept-Encoding": "identity"})
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    rendered = store.renders
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-Modified-Since": modified},
        {"If-Modified-Since": format_datetime(datetime.now(UTC), usegmt=True)},
    ):
        r = httpx.get(url, headers={"Accept-Encoding": "identity", **headers})
        assert r.status_code == 304, headers
        assert r.content == b"" and r.headers["etag"] == etag
    older = parsedate_to_datetime(modified) - timedelta(seconds=1)
    assert httpx.get(url, headers={"If-Modified-Since": format_datetime(older, usegmt=True)}).status_code == 200  # fmt: skip
    assert httpx.get(url, headers={"If-None-Match": '"stale"'}).status_code == 200
    head = httpx.head(url, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == etag
    assert int(head.headers["content-length"]) == len(first.content)
    assert store.renders == rendered, "a 304, a HEAD or a repeat GET rendered the feed again"

    # New article in a story: new bytes, new ETag, a later Last-Modified.
    new = add_entries(store, "Ouest-France", [entry("o1", "Kyiv : nouvelle nuit de drones", 90)], NOW + timedelta(minutes=5))  # fmt: skip
    members = [m.entry_id for m in store.visible_story("s1").members]  # type: ignore[union-attr]
    save_story(store, "s1", [*members, *new], "Kyiv sous les drones", NOW + timedelta(minutes=5))
    again = httpx.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert again.status_code == 200 and again.headers["etag"] != etag
    assert store.renders == rendered + 1
    assert parsedate_to_datetime(again.headers["last-modified"]) > parsedate_to_datetime(modified)


def test_gzip_when_asked(site) -> None:  # type: ignore[no-untyped-def]
    server, _ = site
    url = f"{server.url}/feed.atom"
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    with httpx.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        gz_etag = r.headers["etag"]
    assert gzip.decompress(raw) == plain.content and len(raw) < len(plain.content)
    assert gz_etag != plain.headers["etag"] and gz_etag.endswith('-gz"')
    assert httpx.get(url, headers={"Accept-Encoding": "gzip;q=0"}).headers.get("content-encoding") is None  # fmt: skip
    r = httpx.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": gz_etag})
    assert r.status_code == 304


def test_filters_topics_and_bad_parameters(site) -> None:  # type: ignore[no-untyped-def]
    server, _ = site
    base = server.url
    assert ids(f"{base}/feed.atom") == ["s5", "s4", "s3", "s2", "s1"]
    assert ids(f"{base}/feed.atom?min_sources=2") == ["s5", "s2", "s1"]
    assert ids(f"{base}/feed.rss?min_sources=3") == ["s1"]
    assert ids(f"{base}/feed.atom?topic=guerre-en-ukraine") == ["s2", "s1"]
    assert ids(f"{base}/feed.atom?topic=guerre-en-ukraine&min_sources=3") == ["s1"]
    assert ids(f"{base}/topics/guerre-en-ukraine.atom") == ["s2", "s1"]
    assert ids(f"{base}/topics/politique.rss") == ["s3"]
    doc = httpx.get(f"{base}/topics/guerre-en-ukraine.json").json()
    assert [i["id"].rsplit("/", 1)[1] for i in doc["items"]] == ["s2", "s1"]
    assert doc["feed_url"] == f"{base}/topics/guerre-en-ukraine.json"
    assert "Guerre en Ukraine" in doc["title"]
    for bad in ("min_sources=0", "min_sources=abc", "min_sources=51", "page=nope", "page=s9.1.1"):
        r = httpx.get(f"{base}/feed.atom?{bad}")
        assert r.status_code == 400, bad
        assert r.headers["content-type"].startswith("text/plain")
    for missing in ("/feed.atom?topic=inconnu", "/topics/inconnu.atom", "/stories/inconnue.atom"):
        assert httpx.get(base + missing).status_code == 404, missing


def test_pinned_first_hidden_absent_everywhere(site) -> None:  # type: ignore[no-untyped-def]
    server, store = site
    base = server.url
    before = httpx.get(f"{base}/feed.atom")
    set_story(store, "s3", pinned=True)
    set_story(store, "s5", hidden=True)
    add_topic(store, "cachee", "Sujet caché", ["s4"], NOW, hidden=True)
    assert ids(f"{base}/feed.atom") == ["s3", "s4", "s2", "s1"]
    assert ids(f"{base}/feed.rss") == ["s3", "s4", "s2", "s1"]
    items = httpx.get(f"{base}/feed.json").json()["items"]
    assert [i["id"].rsplit("/", 1)[1] for i in items] == ["s3", "s4", "s2", "s1"]
    articles = feedparser.parse(httpx.get(f"{base}/articles.atom").content)
    assert not any(e.link.endswith(("/a5", "/b5")) for e in articles.entries)
    assert httpx.get(f"{base}/stories/s5.atom").status_code == 404
    assert httpx.get(f"{base}/stories/s5").status_code == 404
    assert httpx.get(f"{base}/topics/cachee.atom").status_code == 404
    index = httpx.get(f"{base}/").text
    assert "Tempête en Bretagne" not in index and "Sujet caché" not in index
    assert index.index("Budget : le 49.3") < index.index("Grève SNCF")
    # The newest story disappeared: Last-Modified must still move forward.
    after = httpx.get(f"{base}/feed.atom")
    assert after.headers["etag"] != before.headers["etag"]
    assert parsedate_to_datetime(after.headers["last-modified"]) > parsedate_to_datetime(before.headers["last-modified"])  # fmt: skip


def _follow(url: str, kind: str) -> tuple[list[str], int]:
    """Every item id across the pages reached through the next links, and the page count."""
    seen: list[str] = []
    pages = 0
    while url:
        pages += 1
        assert pages < 50, "paging does not end"
        r = httpx.get(url)
        assert r.status_code == 200, url
        if kind == "json":
            doc = r.json()
            jsonschema.validate(doc, SCHEMA)
            seen += [i["id"] for i in doc["items"]]
            assert doc.get("next_url") != doc["feed_url"]
            url = doc.get("next_url", "")
            continue
        d = feedparser.parse(r.content)
        assert d.bozo == 0
        seen += [e.id for e in d.entries]
        links = {ln.rel: ln.href for ln in d.feed.get("links", [])}
        if pages > 1:
            assert "first" in links
        url = links.get("next", "")
    return seen, pages


def test_rfc5005_paging_reaches_every_item_once_in_order(serve_app, settings) -> None:  # type: ignore[no-untyped-def]
    store = Store(settings.database.url)
    seed(store)
    set_story(store, "s2", pinned=True)
    server, _ = serve_app(store, publish_max_items="2", publish_version_check_seconds="0")
    full, _ = serve_app(store, publish_max_items="100", publish_version_check_seconds="0")
    for path, kind in (("/feed.atom", "atom"), ("/feed.rss", "rss"), ("/feed.json", "json"),
                       ("/articles.atom", "atom"), ("/feed.atom?min_sources=2", "atom")):  # fmt: skip
        paged, pages = _follow(server.url + path, kind)
        whole, one = _follow(full.url + path, kind)
        assert one == 1
        assert paged == whole, path
        assert len(set(paged)) == len(paged)
        assert pages == -(-len(whole) // 2), path
    store.close()


def test_story_feed_follows_one_story_as_it_grows(site) -> None:  # type: ignore[no-untyped-def]
    server, store = site
    url = f"{server.url}/stories/s1.atom"
    d = feedparser.parse(httpx.get(url).content)
    assert d.bozo == 0
    assert "Kyiv sous les drones" in d.feed.title
    titles = [e.title for e in d.entries]
    assert titles == ["Nuit d’attaques de drones à Kyiv", "Drones sur Kyiv", "Kyiv sous les drones"]
    first_ids = [e.id for e in d.entries]
    for e in d.entries:
        assert len([ln for ln in e.links if ln.rel == "related"]) == 2
    new = add_entries(store, "Ouest-France", [entry("o1", "Kyiv : le bilan s’alourdit", 120)], NOW)
    members = [m.entry_id for m in store.visible_story("s1").members]  # type: ignore[union-attr]
    save_story(store, "s1", [*members, *new], "Kyiv sous les drones", NOW + timedelta(minutes=1))
    d = feedparser.parse(httpx.get(url).content)
    assert d.entries[0].title == "Kyiv : le bilan s’alourdit"
    assert [e.id for e in d.entries[1:]] == first_ids


def test_pages_are_french_with_autodiscovery_everywhere(site) -> None:  # type: ignore[no-untyped-def]
    server, _ = site
    base = server.url
    for path, extra in (
        ("/", []),
        (
            "/topics/guerre-en-ukraine",
            [
                f"{base}/topics/guerre-en-ukraine.atom",
                f"{base}/topics/guerre-en-ukraine.rss",
                f"{base}/topics/guerre-en-ukraine.json",
            ],
        ),
        ("/stories/s1", [f"{base}/stories/s1.atom", f"{base}/topics/guerre-en-ukraine.atom"]),
        ("/stories/inconnue", []),
    ):
        r = httpx.get(base + path)
        doc = html5lib.parse(r.text, treebuilder="etree", namespaceHTMLElements=False)
        assert doc.get("lang") == "fr"
        alternates = {
            link.get("href"): link.get("type")
            for link in doc.find("head").findall("link")
            if link.get("rel") == "alternate"
        }
        assert alternates[f"{base}/feed.atom"] == "application/atom+xml", path
        assert alternates[f"{base}/feed.rss"] == "application/rss+xml", path
        assert alternates[f"{base}/feed.json"] == "application/feed+json", path
        for href in extra:
            assert href in alternates, (path, href)
    index = httpx.get(f"{base}/").text
    assert "Sujets" in index and "Histoires récentes" in index
    assert "Guerre en Ukraine" in index and "Politique" in index
    assert "Kyiv sous les drones" in index and "France 24" in index
    assert "Nuit d’attaques de drones à Kyiv" in index


def test_opml_lists_every_topic_feed_and_each_answers(site) -> None:  # type: ignore[no-untyped-def]
    server, _ = site
    feeds = read_opml(httpx.get(f"{server.url}/opml").content)
    urls = [f.url for f in feeds]
    assert f"{server.url}/feed.atom" in urls
    assert f"{server.url}/topics/guerre-en-ukraine.atom" in urls
    assert f"{server.url}/topics/politique.atom" in urls
    for url in urls:
        d = feedparser.parse(httpx.get(url).content)
        assert d.bozo == 0 and d.entries, url


def test_websub_hub_is_advertised_in_every_format(serve_app, settings) -> None:  # type: ignore[no-untyped-def]
    store = Store(settings.database.url)
    seed(store)
    hub = "https://hub.example/websub"
    server, _ = serve_app(store, publish_websub_hub=hub)
    atom = httpx.get(f"{server.url}/feed.atom")
    assert f'<{hub}>; rel="hub"' in atom.headers["link"]
    assert f'<{server.url}/feed.atom>; rel="self"' in atom.headers["link"]
    assert any(ln.rel == "hub" and ln.href == hub for ln in feedparser.parse(atom.content).feed.links)  # fmt: skip
    assert f'<atom:link rel="hub" href="{hub}"/>' in httpx.get(f"{server.url}/feed.rss").text
    assert httpx.get(f"{server.url}/feed.json").json()["hubs"] == [{"type": "WebSub", "url": hub}]
    store.close()


def test_bytes_rendered_across_a_change_are_served_once_not_kept() -> None:
    """A render that raced a change of the stories must not be cached as current."""
    version = ["v1"]
    cache = RenderCache(lambda: version[0], check_seconds=0)

    def render() -> tuple[bytes, datetime]:
        version[0] = "v2"  # the stories change while we render...
        cache.current("other")  # ...and another request notices it meanwhile
        return b"rendered from v1", NOW

    assert cache.fill("k", "text/plain", render, {}).body == b"rendered from v1"
    assert cache.current("k") is None
    fresh = cache.fill("k", "text/plain", lambda: (b"rendered from v2", NOW), {})
    assert cache.current("k") is fresh and cache.renders == 2


def test_fast_path_answers_exactly_as_the_routed_feed(site) -> None:  # type: ignore[no-untyped-def]
    """Plain feed URLs are answered before routing; ?min_sources=1 (same cache entry) is
    routed: both must give the same status, headers and bytes for every kind of poll."""
    server, store = site
    for fmt in ("atom", "rss", "json"):
        fast, routed = f"{server.url}/feed.{fmt}", f"{server.url}/feed.{fmt}?min_sources=1"
        first = httpx.get(routed, headers={"Accept-Encoding": "identity"})
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        rendered = store.renders
        polls: list[dict[str, str]] = [
            {"Accept-Encoding": "identity"},
            {"Accept-Encoding": "gzip"},
            {"Accept-Encoding": "identity", "If-None-Match": etag},
            {"Accept-Encoding": "gzip", "If-None-Match": etag.replace('"', "") + "x"},
            {"Accept-Encoding": "identity", "If-Modified-Since": modified},
        ]
        for method in ("GET", "HEAD"):
            for headers in polls:
                a = httpx.request(method, fast, headers=headers)
                b = httpx.request(method, routed, headers=headers)
                assert a.status_code == b.status_code, (fmt, method, headers)
                drop = {"date", "server"}
                assert {k: v for k, v in a.headers.items() if k not in drop} == {
                    k: v for k, v in b.headers.items() if k not in drop
                }, (fmt, method, headers)
                assert a.content == b.content, (fmt, method, headers)
        assert store.renders == rendered, "the fast path rendered again"


def test_fast_path_only_takes_cached_plain_feed_polls() -> None:
    """The ASGI fast path answers a cached plain feed URL itself and passes everything
    else (a miss, a query string, another path or method) to the application."""
    import asyncio

    from aggregator.web.httpcache import CachedFastPath

    cache = RenderCache(lambda: "v1", 60.0)
    passed: list[str] = []

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        passed.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    fast = CachedFastPath(app, cache, {"/feed.atom": "k"})

    def call(method: str, path: str, query: bytes = b"", headers: Any = ()) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "method": method, "path": path, "query_string": query,
                 "headers": list(headers)}  # fmt: skip
        asyncio.run(fast(scope, receive, send))
        return sent[0]["status"], sent[1]["body"]

    assert call("GET", "/feed.atom") == (299, b"app")  # nothing cached yet: the app answers
    rendered = cache.fill("k", "application/atom+xml", lambda: (b"<feed/>", NOW), {})
    assert call("GET", "/feed.atom") == (200, b"<feed/>")
    assert call("GET", "/feed.atom", headers=[(b"if-none-match", rendered.etag.encode())]) == (304, b"")  # fmt: skip
    assert call("GET", "/feed.atom", b"page=2") == (299, b"app")
    assert call("GET", "/feed.rss") == (299, b"app")
    assert call("POST", "/feed.atom") == (299, b"app")
    assert passed == [
        "GET /feed.atom?",
        "GET /feed.atom?page=2",
        "GET /feed.rss?",
        "POST /feed.atom?",
    ]
