"""French dates: what feedparser cannot parse or gets wrong, through the parser itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from aggregator.config import Settings
from aggregator.dates import parse_date, resolve_date
from aggregator.models import FeedSpec
from aggregator.parse import parse_feed
from aggregator.pipeline import refresh_due
from aggregator.store import Store
from aggregator.store.schema import entries


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


CASES = [
    # feedparser gives None for all of these.
    ("lun., 03 mars 2025 10:00:00 +0100", utc(2025, 3, 3, 9)),
    ("Lundi 3 mars 2025 à 10h00", utc(2025, 3, 3, 9)),
    ("03/03/2025 10:00", utc(2025, 3, 3, 9)),  # day first, Paris (CET)
    ("04/07/2025 10:00", utc(2025, 7, 4, 8)),  # 4 July, Paris (CEST)
    ("4 mars 2025 10h00", utc(2025, 3, 4, 9)),
    ("1er août 2025 8h", utc(2025, 8, 1, 6)),
    ("1er aout 2025 8h30", utc(2025, 8, 1, 6, 30)),
    ("3 févr. 2025 10:00", utc(2025, 2, 3, 9)),
    ("3 fevr 2025 10:00", utc(2025, 2, 3, 9)),
    ("mer. 12 déc. 2024 07:05:00 GMT+1", utc(2024, 12, 12, 6, 5)),
    ("sam. 15 juil. 2023 23:30:00 +0200", utc(2023, 7, 15, 21, 30)),
    ("Mon, 03 Mar 2025 10:00:00", utc(2025, 3, 3, 9)),  # no zone: Paris
    # feedparser reads these as UTC: one or two hours off.
    ("Mon, 03 Mar 2025 10:00:00 CET", utc(2025, 3, 3, 9)),
    ("Thu, 03 Jul 2025 10:00:00 CEST", utc(2025, 7, 3, 8)),
    ("2025-03-03T10:00:00", utc(2025, 3, 3, 9)),
    ("2025-07-03 10:00", utc(2025, 7, 3, 8)),
    # Paris DST: the spring gap takes the offset before the change, the autumn fold the
    # first (summer-time) occurrence.
    ("30/03/2025 02:30", utc(2025, 3, 30, 1, 30)),
    ("26/10/2025 02:30", utc(2025, 10, 26, 0, 30)),
    ("26/10/2025 03:30", utc(2025, 10, 26, 2, 30)),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_french_dates_through_parse_feed(raw: str, expected: datetime) -> None:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<item><title>x</title><guid>g</guid><pubDate>{raw}</pubDate></item>"
        "</channel></rss>"
    ).encode()
    [entry] = parse_feed(body).entries
    assert entry.published == expected
    assert entry.published_raw == raw  # the raw value is kept as the outlet wrote it


def test_feedparser_is_kept_when_right_and_garbage_gives_none() -> None:
    fp = utc(2025, 3, 3, 9)
    assert resolve_date("Mon, 03 Mar 2025 10:00:00 +0100", fp) is fp
    assert resolve_date("Mon, 03 Mar 2025 10:00:00 EST", utc(2025, 3, 3, 15)) == utc(2025, 3, 3, 15)
    for garbage in ("", "demain", "32/01/2025 10:00", "3 brumaire 2025", "10:00 XYZ", "9" * 200):
        assert parse_date(garbage) is None, garbage
    assert resolve_date("n'importe quoi", None) is None
    assert resolve_date("Mon, 03 Mar 2025 10:00:00 ABCD", fp) is fp  # unknown name: trust it


def test_missing_date_is_none_then_first_seen_in_the_store() -> None:
    body = (
        b'<rss version="2.0"><channel><item><title>x</title><guid>g</guid></item></channel></rss>'
    )
    [entry] = parse_feed(body).entries
    assert entry.published is None and entry.published_raw == ""


def test_future_and_missing_dates_through_the_pipeline(
    httpserver: HTTPServer, settings: Settings, store: Store
) -> None:
    items = [
        ("futur", "lun., 03 mars 2099 10:00:00 +0100"),
        ("sans-date", ""),
        ("cet", "Mon, 03 Mar 2025 10:00:00 CET"),
    ]
    body = "".join(
        f"<item><title>{g}</title><guid>{g}</guid>"
        + (f"<pubDate>{d}</pubDate>" if d else "")
        + "</item>"
        for g, d in items
    )
    httpserver.expect_request("/d.xml").respond_with_data(
        f'<rss version="2.0"><channel><title>D</title>{body}</channel></rss>'
    )
    store.add_source(FeedSpec(httpserver.url_for("/d.xml"), "D"), datetime.now(UTC))
    before = datetime.now(UTC)
    refresh_due(settings, store)
    with store.engine.connect() as conn:
        rows = {
            r.key: r
            for r in conn.execute(
                sa.select(
                    entries.c.key,
                    entries.c.published_at,
                    entries.c.published_raw,
                    entries.c.first_seen_at,
                )
            )
        }
    # Clamped to the fetch time for ordering, the raw value kept as written.
    assert rows["futur"].published_at == rows["futur"].first_seen_at >= before
    assert rows["futur"].published_raw == "lun., 03 mars 2099 10:00:00 +0100"
    assert rows["sans-date"].published_at == rows["sans-date"].first_seen_at >= before
    assert rows["cet"].published_at == utc(2025, 3, 3, 9)
