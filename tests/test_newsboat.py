"""A real feed reader subscribes: newsboat (Debian's) reloads our feeds from 127.0.0.1 and
we read what it stored in its cache database.

How newsboat decides (src/cache.cpp, ``update_rssitem_unlocked``): an item is the same
item when its guid (Atom id, RSS guid) is already in the cache; it then updates title,
link and content in place, and with ``reset-unread-on-update`` listing the feed it marks
the item unread again when the content changed. So a story that grows must keep its id
and change its content: one row, unread again, new content, never a second row.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.models import ParsedEntry
from aggregator.publish import story_tag
from aggregator.store import Store
from tests.conftest import need
from tests.feedtools import add_entries, save_story

pytestmark = [pytest.mark.newsboat]

NOW = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)


def entry(key: str, title: str, minutes: int) -> ParsedEntry:
    return ParsedEntry(
        key=key, title=title, link=f"https://news.example/{key}",
        published=NOW - timedelta(hours=3) + timedelta(minutes=minutes),
        summary_html=f"<p>Résumé : {title}</p>",
    )  # fmt: skip


class Newsboat:
    """newsboat with its own HOME, URL list, config and cache file."""

    def __init__(self, home: Path, urls: list[str]) -> None:
        self.home = home
        home.mkdir()
        (home / "urls").write_text("\n".join(urls) + "\n", encoding="utf-8")
        quoted = " ".join(f'"{u}"' for u in urls)
        (home / "config").write_text(
            f"reset-unread-on-update {quoted}\nmax-items 0\ndownload-timeout 15\n",
            encoding="utf-8",
        )
        self.cache = home / "cache.db"

    def reload(self) -> None:
        proc = subprocess.run(
            ["newsboat", "-u", str(self.home / "urls"), "-c", str(self.cache),
             "-C", str(self.home / "config"), "-x", "reload"],
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr

    def items(self) -> list[sqlite3.Row]:
        with sqlite3.connect(self.cache) as db:
            db.row_factory = sqlite3.Row
            return list(db.execute("SELECT guid, title, url, feedurl, unread, content FROM rss_item"))  # fmt: skip

    def mark_all_read(self) -> None:
        """What the reader's user does by reading everything."""
        with sqlite3.connect(self.cache) as db:
            db.execute("UPDATE rss_item SET unread = 0")


@pytest.mark.parametrize("fmt", ["atom", "rss"])
def test_newsboat_subscribes_and_sees_a_growing_story_as_updated(
    fmt, tmp_path, serve_app, settings
) -> None:  # type: ignore[no-untyped-def]
    need(
        shutil.which("newsboat") is not None, "newsboat is not installed (apt-get install newsboat)"
    )
    store = Store(settings.database.url)
    a = add_entries(store, "Le Monde", [entry("a1", "Kyiv sous les drones", 0), entry("a2", "Budget : le 49.3 & « motion »", 10)], NOW)  # fmt: skip
    b = add_entries(store, "Libération", [entry("b1", "Drones sur Kyiv cette nuit", 5), entry("b3", "Tempête en Bretagne", 20)], NOW)  # fmt: skip
    save_story(store, "s1", [a[0], b[0]], "Kyiv sous les drones", NOW)
    save_story(store, "s2", [a[1]], "Budget : le 49.3 & « motion »", NOW)
    save_story(store, "s3", [b[1]], "Tempête en Bretagne", NOW)
    server, app_settings = serve_app(store, publish_version_check_seconds="0")
    url = f"{server.url}/feed.{fmt}"
    reader = Newsboat(tmp_path / "newsboat", [url])
    authority = app_settings.publish.tag_authority

    reader.reload()
    items = {row["guid"]: row for row in reader.items()}
    expected = {
        story_tag(authority, "s1"): ("Kyiv sous les drones", "https://news.example/a1"),
        story_tag(authority, "s2"): ("Budget : le 49.3 & « motion »", "https://news.example/a2"),
        story_tag(authority, "s3"): ("Tempête en Bretagne", "https://news.example/b3"),
    }
    assert {g: (r["title"], r["url"]) for g, r in items.items()} == expected
    assert all(r["feedurl"] == url and r["unread"] == 1 for r in items.values())
    reader.mark_all_read()

    # Reloading an unchanged feed changes nothing.
    reader.reload()
    assert all(r["unread"] == 0 for r in reader.items())

    # A third outlet joins story s1.
    c = add_entries(store, "France 24", [entry("c1", "Nuit d’attaques de drones sur Kyiv", 60)], NOW + timedelta(minutes=5))  # fmt: skip
    save_story(store, "s1", [a[0], b[0], c[0]], "Kyiv sous les drones", NOW + timedelta(minutes=5))
    reader.reload()
    rows = reader.items()
    assert len(rows) == 3, "the grown story arrived as a duplicate"
    after = {row["guid"]: row for row in rows}
    grown = after[story_tag(authority, "s1")]
    assert grown["unread"] == 1, "newsboat does not show the grown story as updated"
    assert (
        "France 24" in grown["content"] and "Nuit d’attaques de drones sur Kyiv" in grown["content"]
    )
    assert grown["title"] == "Kyiv sous les drones"
    assert after[story_tag(authority, "s2")]["unread"] == 0
    assert after[story_tag(authority, "s3")]["unread"] == 0
    store.close()
