"""Parsing real saved feeds and broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.errors import ParseError
from aggregator.parse import entry_key, parse_feed

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Test &amp; co</title><link>https://ex.fr/</link><ttl>60</ttl>
<item><title>&lt;b&gt;Gr&#232;ve&lt;/b&gt; &amp; manifestations</title><link>https://ex.fr/a</link>
<guid>g-1</guid><description>&lt;p onclick="x"&gt;R\xc3\xa9sum\xc3\xa9 &lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</description>
<pubDate>Mon, 10 Feb 2025 11:27:38 +0100</pubDate></item>
<item><title>Sans guid</title><link>https://ex.fr/b</link></item>
<item><title>Ni guid ni lien</title></item>
</channel></rss>"""


def test_parse_cleans_titles_and_summaries_and_keys_entries() -> None:
    feed = parse_feed(RSS, url="https://ex.fr/rss")
    assert feed.title == "Test & co"
    assert feed.ttl_minutes == 60
    first, second, third = feed.entries
    assert first.title == "Grève & manifestations"
    assert first.key == "g-1"
    assert "script" not in first.summary_html and "onclick" not in first.summary_html
    assert first.summary_text == "Résumé"
    assert (
        first.published is not None and first.published.isoformat() == "2025-02-10T10:27:38+00:00"
    )
    assert second.key == "https://ex.fr/b"
    assert third.key.startswith("sha256:")
    assert third.key == parse_feed(RSS).entries[2].key  # stable across parses


def test_relative_links_in_summaries_become_absolute_against_the_feed_url() -> None:
    # Republished under our URL, a relative link or image would point nowhere.
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>a</title><link>/article-1</link><description>"
        b'&lt;p&gt;&lt;a href="/politique/article-2"&gt;lire&lt;/a&gt; '
        b'&lt;img src="img/photo.jpg"&gt; &lt;a href="https://autre.fr/x"&gt;ailleurs&lt;/a&gt; '
        b'&lt;a href="#note"&gt;note&lt;/a&gt; &lt;a href="javascript:alert(1)"&gt;j&lt;/a&gt;&lt;/p&gt;'
        b"</description></item></channel></rss>"
    )
    (entry,) = parse_feed(body, url="https://www.ex.fr/rss/une.xml").entries
    assert entry.link == "https://www.ex.fr/article-1"
    html = entry.summary_html
    assert 'href="https://www.ex.fr/politique/article-2"' in html
    assert 'src="https://www.ex.fr/rss/img/photo.jpg"' in html
    assert 'href="https://autre.fr/x"' in html
    assert 'href="#note"' in html
    assert "javascript" not in html


def test_entry_key_prefers_guid_then_link_then_hash() -> None:
    assert entry_key("g", "l", "t", "d") == "g"
    assert entry_key("", "l", "t", "d") == "l"
    assert entry_key("", "", "t", "d") != entry_key("", "", "t", "e")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b"<!DOCTYPE html><html><body>Erreur 404</body></html>", "HTML page"),
        (b"plain text, not xml at all", "not a feed"),
    ],
)
def test_not_a_feed_is_a_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_feed(body, url="https://ex.fr/x")


def test_body_is_never_treated_as_a_path_or_url(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(RSS)
    with pytest.raises(ParseError):
        parse_feed(str(secret).encode(), url="https://ex.fr/x")


def test_real_multi_outlet_feeds_parse_and_html_pages_are_refused(multi_outlet: Path) -> None:
    import csv

    manifest = {
        row["file"].split("/", 1)[1]: row
        for row in csv.DictReader((multi_outlet.parent / "manifest.csv").open(encoding="utf-8"))
        if row["file"].startswith("multi-outlet")
    }
    refused = []
    total = 0
    for path in sorted(multi_outlet.glob("*.xml")):
        try:
            feed = parse_feed(path.read_bytes(), url="https://example.org/feed")
        except ParseError:
            refused.append(path.name)
            continue
        total += len(feed.entries)
        assert all(e.title and e.key for e in feed.entries)
    expected = sorted(n for n, r in manifest.items() if r["kind"] == "html-not-a-feed")
    assert sorted(refused) == expected and len(expected) == 3
    assert total > 1000
