"""Entry identity through the whole ingest path: local HTTP servers, a real SQLite file."""

from __future__ import annotations

import csv
import itertools
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import Settings
from aggregator.models import FeedSpec
from aggregator.parse import parse_feed
from aggregator.pipeline import refresh_due
from aggregator.store import Store
from aggregator.store.schema import entries, entry_sources, sources


def rss(items: list[tuple[str, str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{g}</guid>"
        "<pubDate>Mon, 10 Feb 2025 10:00:00 +0100</pubDate></item>"
        for g, t, link in items
    )
    return f'<rss version="2.0"><channel><title>R</title>{body}</channel></rss>'.encode()


def test_rotating_guids_store_each_article_once(
    httpserver: HTTPServer, settings: Settings, store: Store
) -> None:
    fetches = itertools.count()

    def rotating(request: Request) -> Response:
        n = next(fetches)  # a new GUID for every item on every fetch, same 30 articles
        items = [(f"urn:{n}:{i}", f"Article {i}", f"https://ex.fr/a/{i}") for i in range(30)]
        return Response(rss(items), content_type="application/rss+xml")

    httpserver.expect_request("/rot.xml").respond_with_handler(rotating)
    # A feed whose items all link to its home page: the link identifies nothing there.
    home = [(f"h{i}", f"Brève {i}", "https://ex.fr/") for i in range(5)]
    httpserver.expect_request("/home.xml").respond_with_data(rss(home))
    store.add_source(FeedSpec(httpserver.url_for("/rot.xml"), "Rot"), datetime.now(UTC))
    store.add_source(FeedSpec(httpserver.url_for("/home.xml"), "Home"), datetime.now(UTC))
    for _ in range(20):
        refresh_due(settings, store, all_sources=True)
    assert next(fetches) == 20
    with store.engine.connect() as conn:
        per_outlet: dict[str, int] = dict(
            conn.execute(
                sa.select(entries.c.outlet, sa.func.count()).group_by(entries.c.outlet)
            ).all()
        )
    print(f"rotating feed: 30 items x 20 fetches -> {per_outlet['Rot']} entries")
    assert per_outlet == {"Rot": 30, "Home": 5}


def test_duplicate_guids_inside_one_fetch_store_one_entry(
    httpserver: HTTPServer, settings: Settings, store: Store
) -> None:
    items = [("g1", "Premier", "https://ex.fr/1"), ("g1", "Doublon", "https://ex.fr/1b")]
    httpserver.expect_request("/dup.xml").respond_with_data(rss([*items, ("g2", "Deux", "")]))
    store.add_source(FeedSpec(httpserver.url_for("/dup.xml"), "D"), datetime.now(UTC))
    report = refresh_due(settings, store)
    assert report.new_entries == 2 and store.count_entries() == 2


def test_le_monde_sections_store_each_article_once_linked_to_every_section(
    shared_data: Path,
    replay: Callable[..., Any],
    settings: Settings,
    store: Store,
) -> None:
    root = shared_data / "feeds" / "lemonde-2022-02"
    server = replay(root)
    with (shared_data / "feeds" / "manifest.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["file"].startswith("lemonde-2022-02/")]
    paths = {r["file"]: shared_data / "feeds" / r["file"] for r in rows}
    # What the files say, independently of the store: items, and sections per article.
    expected_sections: dict[str, set[str]] = defaultdict(set)
    items = 0
    for r in rows:
        for e in parse_feed(paths[r["file"]].read_bytes()).entries:
            items += 1
            expected_sections[e.key].add(r["section"])
    specs = [FeedSpec(server.url_for(paths[r["file"]]), r["outlet"], r["section"]) for r in rows]
    store.sync_sources(specs, datetime.now(UTC))
    report = refresh_due(settings, store)
    assert not report.errors
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one()
        links = conn.execute(
            sa.select(entries.c.key, sources.c.section)
            .join(entry_sources, entry_sources.c.entry_id == entries.c.id)
            .join(sources, sources.c.id == entry_sources.c.source_id)
        ).all()
    got_sections: dict[str, set[str]] = defaultdict(set)
    for key, section in links:
        got_sections[key].add(section)
    sections = {r["section"] for r in rows}
    print(
        f"Le Monde: {len(rows)} snapshots of {len(sections)} sections, {items} items, "
        f"{stored} entries stored, {len(links)} entry-feed links"
    )
    assert len(sections) == 16 and items == 2227
    assert stored == len(expected_sections) == 747
    assert got_sections == expected_sections  # every article linked to each of its sections
    assert report.new_entries == 747
