"""WebSub publishing against a real local HTTP server standing in for the hub."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer

from aggregator.models import ParsedEntry
from aggregator.pipeline import recluster
from aggregator.pipeline.websub import URLS_PER_PING, ping_hub, published_feed_urls
from aggregator.store import Store
from tests.conftest import free_port
from tests.feedtools import add_entries, add_topic, save_story

NOW = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)


def forms(httpserver: HTTPServer) -> list[dict[str, list[str]]]:
    out = []
    for request, _ in httpserver.log:
        assert request.method == "POST"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        out.append(parse_qs(request.get_data(as_text=True)))
    return out


def test_ping_posts_publish_with_every_topic_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hub", method="POST").respond_with_data("", status=204)
    urls = [f"http://127.0.0.1:8080/topics/t{i}.atom" for i in range(URLS_PER_PING * 2 + 5)]
    assert ping_hub(httpserver.url_for("/hub"), urls, user_agent="aggregator-test")
    sent = forms(httpserver)
    assert len(sent) == 3  # batches of URLS_PER_PING
    assert all(f["hub.mode"] == ["publish"] for f in sent)
    assert [u for f in sent for u in f["hub.url"]] == urls
    assert httpserver.log[0][0].headers["User-Agent"] == "aggregator-test"


def test_a_failing_or_absent_hub_is_logged_not_raised(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/hub").respond_with_data("busy", status=503)
    with caplog.at_level(logging.WARNING):
        assert not ping_hub(httpserver.url_for("/hub"), ["http://127.0.0.1:8080/feed.atom"])
        assert not ping_hub(
            f"http://127.0.0.1:{free_port()}/hub", ["http://x/feed.atom"], timeout=2
        )
    assert "answered 503" in caplog.text and "unreachable" in caplog.text


def test_recluster_pings_the_hub_when_stories_change_and_only_then(
    httpserver: HTTPServer, make_settings
) -> None:  # type: ignore[no-untyped-def]
    httpserver.expect_request("/hub", method="POST").respond_with_data("", status=202)
    settings = make_settings(
        publish_websub_hub=httpserver.url_for("/hub"), publish_version_check_seconds="0"
    )
    store = Store(settings.database.url)
    published = NOW - timedelta(hours=2)
    add_entries(store, "Le Monde", [ParsedEntry(key="m1", title="Séisme au Japon : des milliers d’évacués", link="https://lemonde.example/1", published=published)], NOW)  # fmt: skip
    add_entries(store, "Libération", [ParsedEntry(key="l1", title="Japon : un séisme fait des milliers d’évacués", link="https://libe.example/1", published=published)], NOW)  # fmt: skip

    report = recluster(settings, store, NOW)
    assert report.created >= 1
    sent = forms(httpserver)
    assert len(sent) == 1
    base = settings.server.base_url
    assert {f"{base}/feed.atom", f"{base}/feed.rss", f"{base}/feed.json", f"{base}/articles.atom"} <= set(sent[0]["hub.url"])  # fmt: skip

    # Nothing new: no ping.
    again = recluster(settings, store, NOW + timedelta(minutes=5))
    assert again.created == again.changed == again.deleted == 0
    assert len(httpserver.log) == 1

    # A new article joins: ping again, with every visible topic's feeds.
    add_entries(store, "France 24", [ParsedEntry(key="f1", title="Séisme au Japon : des milliers d’évacués et des répliques", link="https://f24.example/1", published=NOW - timedelta(minutes=30))], NOW)  # fmt: skip
    recluster(settings, store, NOW + timedelta(minutes=10))
    sent = forms(httpserver)
    assert len(sent) == 2
    assert set(sent[1]["hub.url"]) == set(published_feed_urls(settings, store))
    store.close()


def test_announced_urls_cover_every_visible_topic(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    store = Store(settings.database.url)
    ids = add_entries(store, "Le Monde", [ParsedEntry(key=f"m{i}", title=f"Titre {i}", link=f"https://lemonde.example/{i}", published=NOW) for i in range(2)], NOW)  # fmt: skip
    save_story(store, "s1", ids[:1], "Titre 0", NOW)
    save_story(store, "s2", ids[1:], "Titre 1", NOW)
    add_topic(store, "seisme-japon", "Séisme au Japon", ["s1"], NOW)
    add_topic(store, "cache", "Caché", ["s2"], NOW, hidden=True)
    urls = published_feed_urls(settings, store)
    base = settings.server.base_url
    for fmt in ("atom", "rss", "json"):
        assert f"{base}/topics/seisme-japon.{fmt}" in urls
        assert f"{base}/topics/cache.{fmt}" not in urls
    assert f"{base}/feed.atom" in urls and f"{base}/articles.atom" in urls
    store.close()


def test_no_hub_configured_means_no_request(httpserver: HTTPServer, make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    store = Store(settings.database.url)
    add_entries(store, "Le Monde", [ParsedEntry(key="m1", title="Un titre", link="https://lemonde.example/1", published=NOW - timedelta(hours=1))], NOW)  # fmt: skip
    assert recluster(settings, store, NOW).created == 1
    assert httpserver.log == []
    store.close()
