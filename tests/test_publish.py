"""Feed rendering: well-formed Atom that feedparser reads back exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import feedparser

from aggregator.models import Story, StoryMember
from aggregator.publish import FeedMeta, render_atom, story_tag

T0 = datetime(2025, 2, 10, 9, 0, tzinfo=UTC)
META = FeedMeta(
    title="Actualités",
    self_url="http://127.0.0.1:8080/feed.atom",
    site_url="http://127.0.0.1:8080/",
    feed_id="tag:test,2026:feed/merged",
    updated=T0,
    tag_authority="test",
)


def member(i: int, outlet: str, title: str, link: str) -> StoryMember:
    return StoryMember(
        entry_id=i, outlet=outlet, title=title, link=link,
        published_at=T0 + timedelta(minutes=i), summary_html=f"<p>Résumé {i} &amp; co</p>",
    )  # fmt: skip


def story(uid: str, *members: StoryMember, label: str = "Grève & « manif » <b>") -> Story:
    return Story(
        id=1, uid=uid, label=label, first_published_at=members[0].published_at,
        last_activity_at=members[-1].published_at, members=members, lead_entry_id=members[0].entry_id,
    )  # fmt: skip


def test_atom_round_trips_through_feedparser() -> None:
    stories = [
        story("s1", member(1, "BFM", "Titre <1> & \"2\"", "https://bfm.fr/a"),
              member(2, "Le Figaro", "Titre ’deux’", "https://lefigaro.fr/b")),
        story("s2", member(3, "RFI", "Seul\x0b titre", "javascript:alert(1)"), label="Autre"),
    ]  # fmt: skip
    body = render_atom(stories, META)
    d = feedparser.parse(body)
    assert d.bozo == 0, d.get("bozo_exception")
    assert d.feed.title == "Actualités"
    first, second = d.entries
    assert first.id == story_tag("test", "s1")
    assert first.title == "Grève & « manif » <b>"
    assert first.link == "https://bfm.fr/a"
    assert first.updated_parsed[:5] == (2025, 2, 10, 9, 2)
    assert first.published_parsed[:5] == (2025, 2, 10, 9, 1)
    content = first.content[0].value
    assert "Voir aussi" in content and "https://lefigaro.fr/b" in content and "Le Figaro" in content
    assert "javascript:" not in body.decode()
    assert "\x0b" not in body.decode()
    assert second.title == "Autre"


def test_story_ids_do_not_depend_on_content() -> None:
    a = render_atom([story("s1", member(1, "A", "x", "https://a.fr/1"))], META)
    b = render_atom(
        [story("s1", member(1, "A", "y", "https://a.fr/1"), member(2, "B", "z", "https://b.fr/2"))],
        META,
    )
    assert feedparser.parse(a).entries[0].id == feedparser.parse(b).entries[0].id
