"""Read queries behind the public feeds: keyset pages of stories and articles, visible
topics, and a cheap version string that changes whenever a feed would.

Pages use opaque cursors (RFC 5005 "next" links): the position of the last item served,
so a page never repeats or skips an item when new stories arrive meanwhile.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.errors import InputError
from aggregator.models import Story, Topic
from aggregator.store.schema import entries, stories, story_members, topics
from aggregator.store.stories import with_members
from aggregator.store.topics import to_topic

_STORY_CURSOR = re.compile(r"s([01])\.(\d{1,20})\.(\d{1,20})")
_ARTICLE_CURSOR = re.compile(r"a(\d{1,20})\.(\d{1,20})")


def _micros(when: datetime) -> int:
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: str) -> datetime:
    try:
        seconds, micros = divmod(int(value), 1_000_000)
        return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)
    except (OverflowError, OSError, ValueError) as e:
        raise InputError(f"invalid page cursor: {e}") from e


def _story_cursor(row: Any) -> str:
    return f"s{int(bool(row.pinned))}.{_micros(row.last_activity_at)}.{row.id}"


def _story_after(cursor: str) -> Any:
    """Rows after ``cursor`` in (pinned desc, last_activity_at desc, id desc) order."""
    match = _STORY_CURSOR.fullmatch(cursor)
    if match is None:
        raise InputError(f"invalid page cursor {cursor!r}")
    pinned, at, story_id = match.group(1) == "1", _from_micros(match.group(2)), int(match.group(3))
    same_pin = stories.c.pinned.is_(sa.true() if pinned else sa.false())
    later = sa.or_(
        stories.c.last_activity_at < at,
        sa.and_(stories.c.last_activity_at == at, stories.c.id < story_id),
    )
    if pinned:
        return sa.or_(stories.c.pinned.is_(sa.false()), sa.and_(same_pin, later))
    return sa.and_(same_pin, later)


def _with_visible_members(conn: Connection, rows: list[Any]) -> list[Story]:
    """Stories with their members; a topic that editors hid is not shown on its stories."""
    found = with_members(conn, rows)
    topic_ids = {s.topic.id for s in found if s.topic is not None}
    if not topic_ids:
        return found
    hidden = set(
        conn.scalars(
            sa.select(topics.c.id).where(topics.c.id.in_(topic_ids), topics.c.hidden.is_(True))
        )
    )
    if not hidden:
        return found
    return [
        dataclasses.replace(s, topic=None) if s.topic is not None and s.topic.id in hidden else s
        for s in found
    ]


def _visible_topic_id(slug: str) -> Any:
    return (
        sa.select(topics.c.id)
        .where(topics.c.slug == slug, topics.c.hidden.is_(False))
        .scalar_subquery()
    )


def stories_page(
    conn: Connection,
    *,
    limit: int,
    min_outlets: int = 1,
    topic_slug: str | None = None,
    after: str | None = None,
) -> tuple[list[Story], str | None]:
    """Visible stories, pinned first then newest activity; and the cursor of the next page."""
    query = sa.select(stories).where(
        stories.c.hidden.is_(False), stories.c.outlet_count >= min_outlets
    )
    if topic_slug is not None:
        query = query.where(stories.c.topic_id == _visible_topic_id(topic_slug))
    if after:
        query = query.where(_story_after(after))
    query = query.order_by(
        stories.c.pinned.desc(), stories.c.last_activity_at.desc(), stories.c.id.desc()
    ).limit(limit + 1)
    rows = list(conn.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _story_cursor(rows[-1]) if more and rows else None
    return _with_visible_members(conn, rows), next_cursor


def articles_page(
    conn: Connection,
    *,
    limit: int,
    min_outlets: int = 1,
    topic_slug: str | None = None,
    after: str | None = None,
) -> tuple[list[tuple[int, Story]], str | None]:
    """Articles of visible stories, newest first, each with its story (members included)."""
    query = (
        sa.select(entries.c.id, entries.c.published_at, story_members.c.story_id)
        .join(story_members, story_members.c.entry_id == entries.c.id)
        .join(stories, stories.c.id == story_members.c.story_id)
        .where(stories.c.hidden.is_(False), stories.c.outlet_count >= min_outlets)
    )
    if topic_slug is not None:
        query = query.where(stories.c.topic_id == _visible_topic_id(topic_slug))
    if after:
        match = _ARTICLE_CURSOR.fullmatch(after)
        if match is None:
            raise InputError(f"invalid page cursor {after!r}")
        at, entry_id = _from_micros(match.group(1)), int(match.group(2))
        query = query.where(
            sa.or_(
                entries.c.published_at < at,
                sa.and_(entries.c.published_at == at, entries.c.id < entry_id),
            )
        )
    query = query.order_by(entries.c.published_at.desc(), entries.c.id.desc()).limit(limit + 1)
    rows = list(conn.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    story_ids = sorted({r.story_id for r in rows})
    story_rows = list(conn.execute(sa.select(stories).where(stories.c.id.in_(story_ids))))
    by_id = {s.id: s for s in _with_visible_members(conn, story_rows)}
    items = [(r.id, by_id[r.story_id]) for r in rows if r.story_id in by_id]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = f"a{_micros(last.published_at)}.{last.id}"
    return items, next_cursor


def visible_topic(conn: Connection, slug: str) -> Topic | None:
    row = conn.execute(
        sa.select(topics).where(topics.c.slug == slug, topics.c.hidden.is_(False))
    ).first()
    return to_topic(row) if row is not None else None


def visible_topics(conn: Connection, *, limit: int) -> list[Topic]:
    """Topics that have at least one visible story, newest activity first."""
    has_story = (
        sa.select(stories.c.id)
        .where(stories.c.topic_id == topics.c.id, stories.c.hidden.is_(False))
        .exists()
    )
    query = (
        sa.select(topics)
        .where(topics.c.hidden.is_(False), has_story)
        .order_by(topics.c.last_activity_at.desc().nulls_last(), topics.c.id.desc())
        .limit(limit)
    )
    return [to_topic(r) for r in conn.execute(query)]


def visible_story(conn: Connection, uid: str) -> Story | None:
    """A story by its public id, unless editors hid it."""
    rows = list(
        conn.execute(sa.select(stories).where(stories.c.uid == uid, stories.c.hidden.is_(False)))
    )
    found = _with_visible_members(conn, rows)
    return found[0] if found else None


def feed_version(conn: Connection) -> str:
    """Changes whenever a published feed would: membership, labels, pins, hides, topics.

    One aggregate statement (a scan of stories and topics): cheap enough to run on every
    version check, and it catches editors' changes that do not touch ``updated_at``.
    """
    s, t = stories, topics
    story_part = sa.select(
        sa.func.count(),
        sa.func.max(s.c.updated_at),
        sa.func.max(s.c.id),
        sa.func.sum(sa.case((s.c.pinned.is_(sa.true()), s.c.id), else_=0)),
        sa.func.sum(sa.case((s.c.hidden.is_(sa.true()), s.c.id), else_=0)),
        sa.func.sum(sa.func.coalesce(s.c.topic_id, 0) * s.c.id),
        sa.func.sum(sa.func.length(s.c.label) * s.c.id),
        sa.func.sum(sa.func.coalesce(s.c.lead_entry_id, 0)),
    ).subquery()
    topic_part = sa.select(
        sa.func.count(),
        sa.func.max(t.c.updated_at),
        sa.func.sum(sa.case((t.c.hidden.is_(sa.true()), t.c.id), else_=0)),
        sa.func.sum(sa.func.length(t.c.label) * t.c.id),
    ).subquery()
    both = story_part.join(topic_part, sa.true())
    row = conn.execute(sa.select(story_part, topic_part).select_from(both)).one()
    return "|".join("" if v is None else str(v) for v in row)
