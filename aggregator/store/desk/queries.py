"""What the desk reads: stories with every flag, topics, decision history, neighbours."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.models import Decision, Story, StorySummary, Topic, TopicSummary
from aggregator.store.schema import constraints, decisions, stories, topics, users
from aggregator.store.stories import with_members
from aggregator.store.topics import to_topic

_UID_IN_PAYLOAD = re.compile(r'"(s[0-9a-f]{15})"')


@dataclass(frozen=True, slots=True)
class StoryFilter:
    """The desk's story list filters; every field optional."""

    topic_uid: str | None = None
    since: datetime | None = None
    min_outlets: int = 1
    needs_review: bool = False
    # "pinned", "hidden", "locked", "fixed" or None for every story
    state: str | None = None
    text: str = ""


def _last_decision(uid_column: Any) -> Any:
    return (
        sa.select(sa.func.max(decisions.c.created_at))
        .where(decisions.c.story_uid == uid_column, decisions.c.undone_at.is_(None))
        .scalar_subquery()
    )


def _needs_review(now: datetime, review: timedelta) -> Any:
    """Changed by clustering recently, and no editor has acted on it since."""
    last = _last_decision(stories.c.uid)
    return sa.and_(
        stories.c.machine_changed_at.is_not(None),
        stories.c.machine_changed_at >= now - review,
        sa.or_(last.is_(None), stories.c.machine_changed_at > last),
    )


def _summary(row: Any, topic: Topic | None) -> StorySummary:
    try:
        terms = tuple(str(t) for t in json.loads(row.terms or "[]"))
    except (ValueError, TypeError):
        terms = ()
    return StorySummary(
        uid=row.uid,
        label=row.label,
        article_count=row.article_count,
        outlet_count=row.outlet_count,
        first_published_at=row.first_published_at,
        last_activity_at=row.last_activity_at,
        label_fixed=row.label_fixed,
        pinned=row.pinned,
        hidden=row.hidden,
        locked=row.locked,
        needs_review=bool(row.needs_review),
        topic=topic,
        terms=terms,
        machine_changed_at=row.machine_changed_at,
    )


def _topics_by_id(conn: Connection, ids: set[int]) -> dict[int, Topic]:
    if not ids:
        return {}
    return {t.id: to_topic(t) for t in conn.execute(sa.select(topics).where(topics.c.id.in_(ids)))}


def desk_stories(
    conn: Connection,
    filters: StoryFilter,
    *,
    now: datetime,
    review: timedelta,
    limit: int,
    offset: int = 0,
) -> tuple[list[StorySummary], int]:
    """A page of stories, newest activity first, and how many match in all."""
    flag = _needs_review(now, review).label("needs_review")
    query = sa.select(stories, flag).where(stories.c.article_count > 0)
    if filters.topic_uid:
        topic_id = sa.select(topics.c.id).where(topics.c.uid == filters.topic_uid)
        query = query.where(stories.c.topic_id.in_(topic_id.scalar_subquery()))
    if filters.since is not None:
        query = query.where(stories.c.last_activity_at >= filters.since)
    if filters.min_outlets > 1:
        query = query.where(stories.c.outlet_count >= filters.min_outlets)
    if filters.needs_review:
        query = query.where(_needs_review(now, review))
    if filters.state in ("pinned", "hidden", "locked"):
        query = query.where(stories.c[filters.state].is_(True))
    elif filters.state == "fixed":
        query = query.where(stories.c.label_fixed.is_(True))
    if filters.text:
        escaped = filters.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(stories.c.label.ilike(f"%{escaped}%", escape="\\"))
    total = conn.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    rows = list(
        conn.execute(
            query.order_by(stories.c.last_activity_at.desc(), stories.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
    )
    topic_map = _topics_by_id(conn, {r.topic_id for r in rows if r.topic_id is not None})
    return [_summary(r, topic_map.get(r.topic_id)) for r in rows], int(total)


def desk_story(
    conn: Connection, uid: str, *, now: datetime, review: timedelta
) -> tuple[Story, StorySummary] | None:
    flag = _needs_review(now, review).label("needs_review")
    row = conn.execute(sa.select(stories, flag).where(stories.c.uid == uid)).first()
    if row is None:
        return None
    found = with_members(conn, [row])
    if not found:
        return None
    story = found[0]
    return story, _summary(row, story.topic)


def neighbour_candidates(
    conn: Connection, around: datetime, hours: float, limit: int, exclude: str
) -> list[Story]:
    """Stories active within ``hours`` of a time, the nearest in time first, with members."""
    span = timedelta(hours=hours)
    base = sa.select(stories).where(
        stories.c.uid != exclude,
        stories.c.article_count > 0,
        stories.c.last_activity_at >= around - span,
        stories.c.first_published_at <= around + span,
    )
    later = base.where(stories.c.last_activity_at >= around).order_by(
        stories.c.last_activity_at, stories.c.id
    )
    earlier = base.where(stories.c.last_activity_at < around).order_by(
        stories.c.last_activity_at.desc(), stories.c.id.desc()
    )
    half = max(1, limit // 2)
    rows = [*conn.execute(later.limit(half)), *conn.execute(earlier.limit(limit - half))]
    return with_members(conn, rows)


def story_labels(conn: Connection, uids: list[str]) -> dict[str, str]:
    if not uids:
        return {}
    query = sa.select(stories.c.uid, stories.c.label).where(stories.c.uid.in_(uids))
    return {r.uid: r.label for r in conn.execute(query)}


def desk_topics(conn: Connection) -> list[TopicSummary]:
    counts = (
        sa.select(
            stories.c.topic_id,
            sa.func.count().label("n"),
            sa.func.max(stories.c.last_activity_at).label("last"),
        )
        .group_by(stories.c.topic_id)
        .subquery()
    )
    query = (
        sa.select(topics, counts.c.n, counts.c.last)
        .outerjoin(counts, counts.c.topic_id == topics.c.id)
        .order_by(counts.c.last.desc().nulls_last(), topics.c.label)
    )
    return [
        TopicSummary(
            topic=to_topic(r), label_fixed=r.label_fixed, stories=r.n or 0, last_activity_at=r.last
        )
        for r in conn.execute(query)
    ]


def topic_by_uid(conn: Connection, uid: str) -> Topic | None:
    row = conn.execute(sa.select(topics).where(topics.c.uid == uid)).first()
    return to_topic(row) if row is not None else None


def history(
    conn: Connection,
    *,
    story_uid: str | None = None,
    decision_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Decision], int]:
    """Decisions newest first: all of them, or those that name a story (or were passed to
    it when clustering changed its id)."""
    editor = users.alias("editor")
    undoer = users.alias("undoer")
    query = (
        sa.select(decisions, editor.c.name.label("who"), undoer.c.name.label("undone_who"))
        .outerjoin(editor, editor.c.id == decisions.c.user_id)
        .outerjoin(undoer, undoer.c.id == decisions.c.undone_by)
    )
    if decision_id is not None:
        query = query.where(decisions.c.id == decision_id)
    if story_uid is not None:
        followed = sa.select(constraints.c.decision_id).where(constraints.c.story_uid == story_uid)
        query = query.where(
            sa.or_(
                decisions.c.story_uid == story_uid,
                decisions.c.payload.contains(f'"{story_uid}"', autoescape=True),
                decisions.c.id.in_(followed),
            )
        )
    total = conn.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    rows = conn.execute(query.order_by(decisions.c.id.desc()).limit(limit).offset(offset))
    out = []
    for r in rows:
        named = dict.fromkeys([*([r.story_uid] if r.story_uid else []),
                               *_UID_IN_PAYLOAD.findall(r.payload or "")])  # fmt: skip
        out.append(
            Decision(
                id=r.id,
                action=r.action,
                summary=r.summary,
                created_at=r.created_at,
                user_name=r.who or "",
                story_uid=r.story_uid,
                topic_uid=r.topic_uid,
                undone_at=r.undone_at,
                undone_by=r.undone_who or "",
                story_uids=tuple(named),
            )
        )
    return out, int(total)


def decision_by_id(conn: Connection, decision_id: int) -> Decision | None:
    found, _ = history(conn, decision_id=decision_id, limit=1)
    return found[0] if found else None
