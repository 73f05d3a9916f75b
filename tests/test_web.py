"""The HTTP app on a real uvicorn server: feeds, caching validators, escaping."""

from __future__ import annotations

from datetime import UTC, datetime

import feedparser
import httpx

from aggregator.models import FeedSpec, ParsedEntry, StoryCluster
from aggregator.store import Store

NOW = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)


def seed(store: Store, title: str = "Un titre") -> None:
    store.sync_sources([FeedSpec("https://a.fr/rss", "A"), FeedSpec("https://b.fr/rss", "B")], NOW)
    a, b = store.list_sources()
    ids = [
        *store.save_fetch(
            a, [ParsedEntry(key="1", title=title, link="https://a.fr/1", published=NOW)], NOW
        ).new_ids,
        *store.save_fetch(
            b, [ParsedEntry(key="2", title="Autre", link="javascript:alert(1)", published=NOW)], NOW
        ).new_ids,
    ]
    store.save_clusters(
        [StoryCluster(id="s1", article_ids=tuple(map(str, ids)), label=title, lead_id=str(ids[0]))],
        ids,
        NOW,
    )


def test_feed_atom_is_served_with_validators_and_304(live_app, store: Store) -> None:  # type: ignore[no-untyped-def]
    seed(store)
    r = httpx.get(f"{live_app.url}/feed.atom")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/atom+xml")
    d = feedparser.parse(r.content)
    assert d.bozo == 0 and len(d.entries) == 1
    etag = r.headers["etag"]
    again = httpx.get(f"{live_app.url}/feed.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    head = httpx.head(f"{live_app.url}/feed.atom")
    assert head.status_code == 200 and head.headers["etag"] == etag


def test_index_lists_stories_escaped_with_autodiscovery(live_app, store: Store) -> None:  # type: ignore[no-untyped-def]
    seed(store, title="<script>alert('x')</script> Grève")
    page = httpx.get(f"{live_app.url}/").text
    assert 'rel="alternate" type="application/atom+xml"' in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    assert "javascript:" not in page
    assert 'lang="fr"' in page


def test_unknown_path_is_404(live_app) -> None:  # type: ignore[no-untyped-def]
    assert httpx.get(f"{live_app.url}/nope").status_code == 404
