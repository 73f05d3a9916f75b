"""Feed rendering: Atom, RSS 2.0 and JSON Feed 1.1 that parsers read back exactly, with
valid dates, absolute URLs, unique ids, paging and hub links; OPML our importer reads.
"""

from __future__ import annotations

import email.utils
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.models import Story, StoryMember, Topic
from aggregator.opml import read_opml
from aggregator.publish import (
    ArticleItem,
    FeedLink,
    FeedMeta,
    article_tag,
    render_articles_atom,
    render_atom,
    render_json_feed,
    render_opml,
    render_rss,
    story_tag,
)
from aggregator.text import clean_text

T0 = datetime(2025, 2, 10, 9, 0, tzinfo=UTC)
META = FeedMeta(
    title="Actualités",
    self_url="http://127.0.0.1:8080/feed.atom",
    site_url="http://127.0.0.1:8080/",
    feed_id="tag:test,2026:feed/merged",
    updated=T0,
    tag_authority="test",
)
SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "jsonfeed-1.1.schema.json").read_text(encoding="utf-8")
)
RFC822 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$")  # fmt: skip
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TOPIC = Topic(id=1, uid="t1", slug="guerre-en-ukraine", label="Guerre en Ukraine")


def member(i: int, outlet: str, title: str, link: str) -> StoryMember:
    return StoryMember(
        entry_id=i, outlet=outlet, title=title, link=link,
        published_at=T0 + timedelta(minutes=i), summary_html=f"<p>Résumé {i} &amp; co</p>",
        summary_text=f"Résumé {i} & co",
    )  # fmt: skip


def story(
    uid: str,
    *members: StoryMember,
    label: str = "Grève & « manif » <b>",
    topic: Topic | None = None,
) -> Story:
    return Story(
        id=1, uid=uid, label=label, first_published_at=members[0].published_at,
        last_activity_at=members[-1].published_at, members=members,
        lead_entry_id=members[0].entry_id, topic=topic,
    )  # fmt: skip


def sample() -> list[Story]:
    return [
        story("s1", member(1, "BFM", "Titre <1> & \"2\"", "https://bfm.fr/a"),
              member(2, "Le Figaro", "Titre ’deux’", "https://lefigaro.fr/b"), topic=TOPIC),
        story("s2", member(3, "RFI", "Seul\x0b titre", "javascript:alert(1)"), label="Autre"),
    ]  # fmt: skip


def test_atom_round_trips_through_feedparser() -> None:
    body = render_atom(sample(), META)
    d = feedparser.parse(body)
    assert d.bozo == 0, d.get("bozo_exception")
    assert d.feed.title == "Actualités"
    first, second = d.entries
    assert first.id == story_tag("test", "s1")
    # Titles are plain text with no tag that could start: "<b>" -> "‹b>".
    assert first.title == "Grève & « manif » ‹b>"
    assert first.link == "https://bfm.fr/a"
    assert first.updated_parsed[:5] == (2025, 2, 10, 9, 2)
    assert first.published_parsed[:5] == (2025, 2, 10, 9, 1)
    assert first.tags[0].term == "guerre-en-ukraine"
    content = first.content[0].value
    assert "Voir aussi" in content and "https://lefigaro.fr/b" in content and "Le Figaro" in content
    assert "Sujet : Guerre en Ukraine" in content
    assert "javascript:" not in body.decode()
    assert "\x0b" not in body.decode()
    assert second.title == "Autre"
    for date in re.findall(r"<(?:updated|published)>([^<]+)<", body.decode()):
        assert RFC3339.match(date), date


def test_rss_round_trips_through_feedparser() -> None:
    body = render_rss(sample(), META)
    d = feedparser.parse(body)
    assert d.bozo == 0, d.get("bozo_exception")
    assert d.version == "rss20"
    assert d.feed.title == "Actualités" and d.feed.language == "fr"
    first, second = d.entries
    assert first.id == story_tag("test", "s1")
    assert first.guidislink is False
    assert first.title == "Grève & « manif » ‹b>"
    assert first.link == "https://bfm.fr/a"
    # The one RSS date is the story's last new article (readers resurface a grown story).
    assert first.published_parsed[:5] == (2025, 2, 10, 9, 2)
    assert "Voir aussi" in first.summary and "https://lefigaro.fr/b" in first.summary
    assert first.tags[0].term == "Guerre en Ukraine"
    assert "link" not in second  # a javascript: lead link is dropped, not published
    text = body.decode()
    assert "javascript:" not in text and "\x0b" not in text
    dates = re.findall(r"<(?:pubDate|lastBuildDate)>([^<]+)<", text)
    assert len(dates) == 3
    for date in dates:
        assert RFC822.match(date), date
        assert email.utils.parsedate_to_datetime(date).tzinfo is not None


def test_json_feed_validates_and_round_trips() -> None:
    doc = json.loads(render_json_feed(sample(), META))
    jsonschema.validate(doc, SCHEMA)
    first, second = doc["items"]
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert first["id"] == story_tag("test", "s1")
    assert first["title"] == "Grève & « manif » ‹b>"
    assert first["url"] == "https://bfm.fr/a"
    assert datetime.fromisoformat(first["date_published"]) == T0 + timedelta(minutes=1)
    assert datetime.fromisoformat(first["date_modified"]) == T0 + timedelta(minutes=2)
    assert first["tags"] == ["Guerre en Ukraine"]
    assert first["authors"] == [{"name": "BFM"}]
    assert "Voir aussi" in first["content_html"]
    assert "url" not in second and "\x0b" not in json.dumps(doc)


def test_schema_refuses_what_the_spec_forbids() -> None:
    """The schema is not vacuous: broken feeds fail it."""
    good = json.loads(render_json_feed(sample(), META))
    broken = [
        {k: v for k, v in good.items() if k != "version"},
        {**good, "items": [{"id": "x"}]},  # neither content_html nor content_text
        {**good, "items": [{**good["items"][0], "date_published": "10/02/2025"}]},
        {**good, "items": [{**good["items"][0], "url": "/relative"}]},
        {**good, "hubs": [{"type": "WebSub"}]},
        {**good, "unknown_key": 1},
    ]
    for doc in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, SCHEMA)
    jsonschema.validate({**good, "_extension": {"about": "x"}}, SCHEMA)


def test_paging_and_hub_links_in_every_format() -> None:
    meta = FeedMeta(
        title=META.title, self_url="http://h/feed.atom?page=p1", site_url=META.site_url,
        feed_id=META.feed_id, updated=T0, tag_authority="test", hub_url="https://hub.example/",
        next_url="http://h/feed.atom?page=p2", first_url="http://h/feed.atom",
    )  # fmt: skip
    atom = feedparser.parse(render_atom(sample(), meta))
    links = {link.rel: link.href for link in atom.feed.links}
    assert links["next"] == "http://h/feed.atom?page=p2"
    assert links["first"] == "http://h/feed.atom"
    assert links["hub"] == "https://hub.example/"
    assert links["self"] == "http://h/feed.atom?page=p1"
    rss = ET.fromstring(render_rss(sample(), meta))
    atom_links = {
        el.get("rel"): el.get("href") for el in rss.iter("{http://www.w3.org/2005/Atom}link")
    }
    assert atom_links == {
        "self": "http://h/feed.atom?page=p1",
        "first": "http://h/feed.atom",
        "next": "http://h/feed.atom?page=p2",
        "hub": "https://hub.example/",
    }
    doc = json.loads(render_json_feed(sample(), meta))
    assert doc["next_url"] == "http://h/feed.atom?page=p2" != doc["feed_url"]
    assert doc["hubs"] == [{"type": "WebSub", "url": "https://hub.example/"}]
    jsonschema.validate(doc, SCHEMA)


def test_story_ids_do_not_depend_on_content() -> None:
    a = render_atom([story("s1", member(1, "A", "x", "https://a.fr/1"))], META)
    b = render_atom(
        [story("s1", member(1, "A", "y", "https://a.fr/1"), member(2, "B", "z", "https://b.fr/2"))],
        META,
    )
    assert feedparser.parse(a).entries[0].id == feedparser.parse(b).entries[0].id


def test_article_feed_links_each_article_to_the_rest_of_its_story() -> None:
    s = sample()[0]
    items = [ArticleItem(member=m, story=s) for m in reversed(s.members)]
    d = feedparser.parse(render_articles_atom(items, META))
    assert d.bozo == 0, d.get("bozo_exception")
    ids = [e.id for e in d.entries]
    assert ids == [article_tag("test", 2), article_tag("test", 1)]
    figaro, bfm = d.entries
    assert figaro.title == "Titre ’deux’" and figaro.link == "https://lefigaro.fr/b"
    assert [ln.href for ln in figaro.links if ln.rel == "related"] == ["https://bfm.fr/a"]
    assert [ln.href for ln in bfm.links if ln.rel == "related"] == ["https://lefigaro.fr/b"]
    assert figaro.updated_parsed[:5] == (2025, 2, 10, 9, 2)
    assert "Histoire : Grève" in figaro.content[0].value


def test_opml_lists_feeds_that_our_importer_reads_back() -> None:
    links = [
        FeedLink("Toutes les histoires", "http://h/feed.atom", "http://h/"),
        FeedLink("Guerre & paix « 2 »", "http://h/topics/guerre-paix.atom", "http://h/topics/x"),
    ]
    body = render_opml("Actualités", [("", links[:1]), ("Sujets", links[1:])], created=T0)
    root = ET.fromstring(body)
    assert root.get("version") == "2.0"
    feeds = read_opml(body)
    assert [f.url for f in feeds] == ["http://h/feed.atom", "http://h/topics/guerre-paix.atom"]
    assert feeds[1].outlet == "Sujets" and feeds[1].section == "Guerre & paix « 2 »"


def test_an_empty_feed_is_valid_and_stable() -> None:
    empty = FeedMeta(
        title="Vide", self_url="http://h/feed.atom", site_url="http://h/", feed_id="tag:t,2026:x",
        updated=datetime(2026, 1, 1, tzinfo=UTC), tag_authority="t",
    )  # fmt: skip
    assert feedparser.parse(render_atom([], empty)).bozo == 0
    assert feedparser.parse(render_rss([], empty)).bozo == 0
    jsonschema.validate(json.loads(render_json_feed([], empty)), SCHEMA)
    assert render_atom([], empty) == render_atom([], empty)


# A pair such as "Ç«" is also UTF-8 bytes read as Latin-1 ("ǫ"), and feedparser, the
# reader here, turns it back into "ǫ" on its own: such pairs cannot round-trip through it.
_UTF8_AS_LATIN1 = re.compile("[\u00c2-\u00f4][\u0080-\u00bf]")

# French text with the characters that break hand-written XML: &, <, quotes, apostrophes,
# non-breaking spaces, controls (XML-illegal: must vanish), surrogates, U+FFFE.
french = st.text(
    alphabet=st.sampled_from(
        list("aàâçéèêëîïôœùûüÿÉÈÀÇ &<>\"'’«»\u00a0\u202f\x00\x0b\x1f\ufffe-:;!?…€0123456789")
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: clean_text(s) != "" and not _UTF8_AS_LATIN1.search(s))


@settings(max_examples=60, deadline=None)
@given(label=french, headline=french, outlet=french)
def test_any_french_text_round_trips_in_every_format(label: str, headline: str, outlet: str) -> None:  # fmt: skip
    s = story("s1", member(1, outlet, headline, "https://a.fr/x?a=1&b=2"), label=label)
    atom = feedparser.parse(render_atom([s], META))
    assert atom.bozo == 0, atom.get("bozo_exception")
    assert atom.entries[0].title.replace("‹", "<") == clean_text(label)
    assert atom.entries[0].link == "https://a.fr/x?a=1&b=2"
    rss = feedparser.parse(render_rss([s], META))
    assert rss.bozo == 0, rss.get("bozo_exception")
    assert rss.entries[0].title.replace("‹", "<") == clean_text(label)
    doc = json.loads(render_json_feed([s], META))
    jsonschema.validate(doc, SCHEMA)
    assert doc["items"][0]["title"].replace("‹", "<") == clean_text(label)
