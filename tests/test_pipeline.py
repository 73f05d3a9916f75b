"""The orchestrator against a real local HTTP server and a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from aggregator.config import Settings
from aggregator.models import FeedSpec
from aggregator.pipeline import recluster, refresh_due
from aggregator.store import Store


@pytest.fixture
def db_url(any_db_url: str | None) -> str | None:
    """Every test here runs on SQLite and on PostgreSQL."""
    return any_db_url


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>{title}</title>{items}</channel></rss>"""
ITEM = "<item><title>{t}</title><link>https://ex.fr/{g}</link><guid>{g}</guid><pubDate>Mon, 10 Feb 2025 {h}:00:00 +0100</pubDate></item>"


def rss(title: str, *items: tuple[str, str, int]) -> str:
    return RSS.format(
        title=title, items="".join(ITEM.format(g=g, t=t, h=f"{h:02d}") for g, t, h in items)
    )


def add(store: Store, *urls: tuple[str, str]) -> None:
    for url, outlet in urls:
        store.add_source(FeedSpec(url, outlet), datetime.now(UTC))


def test_refresh_stores_new_entries_then_nothing_on_unchanged_feeds(
    httpserver: HTTPServer, settings: Settings, store: Store
) -> None:
    body = rss("A", ("a1", "Premier", 9), ("a2", "Second", 10))
    httpserver.expect_request("/a.xml").respond_with_data(body, headers={"ETag": '"1"'})
    add(store, (httpserver.url_for("/a.xml"), "A"))
    report = refresh_due(settings, store)
    assert [o.outcome for o in report.outcomes] == ["ok"] and report.new_entries == 2
    [source] = store.list_sources()
    assert source.etag == '"1"' and source.title == "A" and source.next_check_at is not None
    report = refresh_due(settings, store, all_sources=True)
    assert report.new_entries == 0 and report.outcomes[0].outcome in ("unchanged", "not_modified")
    assert store.count_entries() == 2


def test_a_broken_feed_never_stops_the_others(
    httpserver: HTTPServer, settings: Settings, store: Store
) -> None:
    httpserver.expect_request("/ok.xml").respond_with_data(rss("OK", ("o1", "Bon", 9)))
    httpserver.expect_request("/html.xml").respond_with_data(
        "<!doctype html><html><body>oops</body></html>"
    )
    httpserver.expect_request("/500.xml").respond_with_data("boom", status=500)
    httpserver.expect_request("/empty.xml").respond_with_data("")
    add(
        store,
        *[(httpserver.url_for(p), p) for p in ("/ok.xml", "/html.xml", "/500.xml", "/empty.xml")],
    )
    add(store, ("http://127.0.0.1:9/unreachable.xml", "down"))
    report = refresh_due(settings, store)
    outcomes = {o.url.rsplit("/", 1)[1]: o for o in report.outcomes}
    assert outcomes["ok.xml"].outcome == "ok" and outcomes["ok.xml"].new_entries == 1
    for name in ("html.xml", "500.xml", "empty.xml", "unreachable.xml"):
        assert outcomes[name].outcome == "error", name
    errors = {s.url.rsplit("/", 1)[1]: s for s in store.list_sources()}
    assert "HTML" in errors["html.xml"].last_error  # type: ignore[operator]
    assert errors["500.xml"].last_status == 500 and errors["500.xml"].error_count == 1
    assert errors["empty.xml"].last_error == "empty body"
    assert all(s.next_check_at and s.next_check_at > datetime.now(UTC) for s in errors.values())


def test_errors_back_off_and_mark_the_feed_failing(
    httpserver: HTTPServer, make_settings, store: Store
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(fetch_failing_after="2")
    httpserver.expect_request("/down.xml").respond_with_data(
        "no", status=503, headers={"Retry-After": "7200"}
    )
    add(store, (httpserver.url_for("/down.xml"), "D"))
    delays = []
    for _ in range(3):
        before = datetime.now(UTC)
        refresh_due(settings, store, all_sources=True)
        [s] = store.list_sources()
        delays.append((s.next_check_at - before).total_seconds())  # type: ignore[operator]
    assert s.failing and s.error_count == 3
    assert all(d >= 7200 - 5 for d in delays)  # Retry-After respected


def test_permanent_redirect_updates_the_url_after_confirmations(
    httpserver: HTTPServer, settings: Settings, store: Store
) -> None:
    httpserver.expect_request("/old.xml").respond_with_data(
        "", status=301, headers={"Location": "/new.xml"}
    )
    httpserver.expect_request("/tmp.xml").respond_with_data(
        "", status=302, headers={"Location": "/new.xml"}
    )
    httpserver.expect_request("/new.xml").respond_with_data(rss("N", ("n1", "Nouveau", 9)))
    add(store, (httpserver.url_for("/old.xml"), "O"), (httpserver.url_for("/tmp.xml"), "T"))
    for _ in range(3):
        refresh_due(settings, store, all_sources=True)
    urls = sorted(s.url.rsplit("/", 1)[1] for s in store.list_sources())
    assert urls == ["new.xml", "tmp.xml"]


def test_gone_feed_is_disabled(httpserver: HTTPServer, settings: Settings, store: Store) -> None:
    httpserver.expect_request("/gone.xml").respond_with_data("gone", status=410)
    add(store, (httpserver.url_for("/gone.xml"), "G"))
    refresh_due(settings, store)
    [s] = store.list_sources()
    assert s.disabled and "410" in (s.disabled_reason or "")
    assert store.due_sources(datetime.now(UTC) + timedelta(days=30)) == []


def test_recluster_groups_real_feeds_and_keeps_ids_stable(
    multi_outlet: Path,
    replay,
    settings: Settings,
    store: Store,  # type: ignore[no-untyped-def]
) -> None:
    server = replay(multi_outlet)
    feeds = [
        p
        for p in sorted(multi_outlet.glob("*.xml"))
        if "BFM" in p.name or "Figaro" in p.name or "Lib" in p.name or "France" in p.name
    ]
    store.sync_sources(
        [FeedSpec(server.url_for(p), p.name.split(" ")[0]) for p in feeds], datetime.now(UTC)
    )
    refresh_due(settings, store)
    at = datetime(2025, 2, 10, 23, 0, tzinfo=UTC)
    first = recluster(settings, store, at)
    assert first.articles > 300 and first.stories > 0
    multi = [s for s in store.recent_stories(limit=1000) if len(s.outlets) >= 2]
    assert multi, "no story links two outlets"
    uids = {s.uid for s in store.recent_stories(limit=10_000)}
    version = store.stories_version()
    second = recluster(settings, store, at)
    assert second.created == 0 and second.changed == 0 and second.deleted == 0
    assert {s.uid for s in store.recent_stories(limit=10_000)} == uids
    assert store.stories_version() == version
