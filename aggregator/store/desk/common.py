"""What every desk decision shares: finding stories, recording decisions and constraints,
and recomputing a story after an editor changed its members.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.errors import DecisionError
from aggregator.store.entries import chunks
from aggregator.store.schema import constraints, decisions, entries, stories, story_members, topics
from aggregator.text import clean_text

# Longest label an editor may give: French headlines rarely pass 150 characters; twice
# that leaves room without letting a form post a novel into every feed.
MAX_LABEL_CHARS = 300
# A decision names at most this many articles (a split selection): larger stories exist
# only when clustering went wrong, and the constraints grow with the product of both sides.
MAX_ENTRIES_PER_DECISION = 500

# Constraint kinds (the constraints table's "kind" column).
MUST_LINK = "must_link"
CANNOT_LINK = "cannot_link"
FIXED_LABEL = "fixed_label"
FIXED_TOPIC_LABEL = "fixed_topic_label"
TOPIC_LINK = "topic_link"
PINNED = "pinned"
HIDDEN = "hidden"
LOCKED = "locked"
# Story-level kinds keyed by story uid, re-applied after every clustering run.
STORY_KINDS = (FIXED_LABEL, TOPIC_LINK, PINNED, HIDDEN, LOCKED)
FLAGS = (PINNED, HIDDEN, LOCKED)
# Decisions that move articles between stories (undone by moving them back).
MEMBERSHIP_ACTIONS = ("merge", "split", "move", "remove")


def clean_label(label: str) -> str:
    label = clean_text(label)
    if not label:
        raise DecisionError("Le titre ne peut pas être vide.")
    if len(label) > MAX_LABEL_CHARS:
        raise DecisionError(f"Le titre est trop long ({MAX_LABEL_CHARS} caractères au plus).")
    return label


def story_row(conn: Connection, uid: str) -> Any:
    row = conn.execute(sa.select(stories).where(stories.c.uid == uid)).first()
    if row is None:
        raise DecisionError(f"Histoire inconnue : {uid[:40]}", reason="not_found")
    return row


def maybe_story(conn: Connection, uid: str) -> Any:
    return conn.execute(sa.select(stories).where(stories.c.uid == uid)).first()


def topic_row(conn: Connection, uid: str) -> Any:
    row = conn.execute(sa.select(topics).where(topics.c.uid == uid)).first()
    if row is None:
        raise DecisionError(f"Sujet inconnu : {uid[:40]}", reason="not_found")
    return row


def topic_uid_of(conn: Connection, topic_id: int | None) -> str | None:
    if topic_id is None:
        return None
    return conn.scalar(sa.select(topics.c.uid).where(topics.c.id == topic_id))


def member_ids(conn: Connection, story_id: int) -> list[int]:
    """A story's entries in publication order."""
    query = (
        sa.select(story_members.c.entry_id)
        .join(entries, entries.c.id == story_members.c.entry_id)
        .where(story_members.c.story_id == story_id)
        .order_by(entries.c.published_at, entries.c.id)
    )
    return [int(e) for e in conn.scalars(query)]


def entry_title(conn: Connection, entry_id: int) -> str:
    return conn.scalar(sa.select(entries.c.title).where(entries.c.id == entry_id)) or ""


def story_of_entry(conn: Connection, entry_id: int) -> str | None:
    query = (
        sa.select(stories.c.uid)
        .join(story_members, story_members.c.story_id == stories.c.id)
        .where(story_members.c.entry_id == entry_id)
    )
    return conn.scalar(query)


def new_story_uid(conn: Connection) -> str:
    """A fresh story id shaped like the clusterer's ("s" + 15 hex digits), never reused."""
    while True:
        uid = "s" + secrets.token_hex(8)[:15]
        if maybe_story(conn, uid) is None:
            return uid


def snapshot(conn: Connection, row: Any) -> dict[str, Any]:
    """What it takes to recreate a story an editor's decision deleted, if it is undone."""
    return {
        "uid": row.uid,
        "label": row.label,
        "label_fixed": bool(row.label_fixed),
        "topic": topic_uid_of(conn, row.topic_id),
        "terms": row.terms,
        "pinned": bool(row.pinned),
        "hidden": bool(row.hidden),
        "locked": bool(row.locked),
        "created_at": row.created_at.isoformat(),
        "machine_changed_at": row.machine_changed_at.isoformat()
        if row.machine_changed_at
        else None,
    }


def create_story(
    conn: Connection,
    uid: str,
    label: str,
    now: datetime,
    *,
    like: dict[str, Any] | None = None,
    topic_id: int | None = None,
) -> int:
    """Insert an empty story row (counts come from ``refresh_story`` once members move in)."""
    values: dict[str, Any] = {
        "uid": uid,
        "label": label,
        "first_published_at": now,
        "last_activity_at": now,
        "topic_id": topic_id,
        "created_at": now,
        "updated_at": now,
    }
    if like is not None:
        topic = like.get("topic")
        values.update(
            label=like["label"],
            label_fixed=like["label_fixed"],
            terms=like["terms"],
            pinned=like["pinned"],
            hidden=like["hidden"],
            locked=like["locked"],
            topic_id=conn.scalar(sa.select(topics.c.id).where(topics.c.uid == topic))
            if topic
            else None,
            created_at=datetime.fromisoformat(like["created_at"]),
            machine_changed_at=datetime.fromisoformat(like["machine_changed_at"])
            if like.get("machine_changed_at")
            else None,
        )
    inserted = conn.execute(stories.insert().values(**values))
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def move_entries(conn: Connection, entry_ids: Sequence[int], story_id: int, now: datetime) -> None:
    for part in chunks(list(entry_ids)):
        conn.execute(
            story_members.update()
            .where(story_members.c.entry_id.in_(part))
            .values(story_id=story_id, added_at=now, similarity=None)
        )


def refresh_story(conn: Connection, story_id: int, now: datetime) -> bool:
    """Recompute counts, times and lead after an editor's change; delete the story if empty.

    Unlike clustering, this leaves ``machine_changed_at`` alone: an editor's change is not
    one to review. ``updated_at`` moves so cached feeds are rendered again.
    """
    # A wire copy whose original left the story is no copy here any more.
    here = sa.select(story_members.c.entry_id).where(story_members.c.story_id == story_id)
    conn.execute(
        story_members.update()
        .where(
            story_members.c.story_id == story_id,
            story_members.c.wire_of.is_not(None),
            story_members.c.wire_of.not_in(here.scalar_subquery()),
        )
        .values(wire_of=None)
    )
    # Outlets count independent reporting, as clustering counts them (wire copies left out).
    independent = sa.case((story_members.c.wire_of.is_(None), entries.c.outlet), else_=None)
    stats = conn.execute(
        sa.select(
            sa.func.count().label("n"),
            sa.func.count(sa.distinct(independent)).label("outlets"),
            sa.func.min(entries.c.published_at).label("first"),
            sa.func.max(entries.c.published_at).label("last"),
        )
        .select_from(story_members.join(entries, entries.c.id == story_members.c.entry_id))
        .where(story_members.c.story_id == story_id)
    ).one()
    row = conn.execute(sa.select(stories).where(stories.c.id == story_id)).first()
    if row is None:
        return False
    if not stats.n:
        conn.execute(stories.delete().where(stories.c.id == story_id))
        refresh_topics(conn, [row.topic_id], now)
        return False
    members = member_ids(conn, story_id)
    lead = row.lead_entry_id if row.lead_entry_id in members else members[0]
    conn.execute(
        stories.update()
        .where(stories.c.id == story_id)
        .values(
            article_count=stats.n,
            outlet_count=stats.outlets,
            first_published_at=stats.first,
            last_activity_at=stats.last,
            lead_entry_id=lead,
            updated_at=now,
        )
    )
    refresh_topics(conn, [row.topic_id], now)
    return True


def refresh_topics(conn: Connection, topic_ids: Iterable[int | None], now: datetime) -> None:
    """Keep a topic's story count and last activity in step with its stories."""
    for topic_id in {t for t in topic_ids if t is not None}:
        stats = conn.execute(
            sa.select(sa.func.count(), sa.func.max(stories.c.last_activity_at)).where(
                stories.c.topic_id == topic_id
            )
        ).one()
        conn.execute(
            topics.update()
            .where(topics.c.id == topic_id)
            .values(story_count=stats[0], last_activity_at=stats[1], updated_at=now)
        )


def touch_stories(conn: Connection, where: Any, now: datetime) -> None:
    """Bump ``updated_at`` so cached feeds are rendered again (labels, flags, topics)."""
    conn.execute(stories.update().where(where).values(updated_at=now))


def record(
    conn: Connection,
    user_id: int,
    action: str,
    summary: str,
    now: datetime,
    *,
    story_uid: str | None = None,
    topic_uid: str | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    inserted = conn.execute(
        decisions.insert().values(
            user_id=user_id,
            action=action,
            story_uid=story_uid,
            topic_uid=topic_uid,
            payload=json.dumps(payload or {}, ensure_ascii=False, sort_keys=True),
            summary=summary,
            created_at=now,
        )
    )
    return int(inserted.inserted_primary_key[0])  # type: ignore[index]


def constrain(conn: Connection, decision_id: int, kind: str, now: datetime, **values: Any) -> None:
    conn.execute(
        constraints.insert().values(decision_id=decision_id, kind=kind, created_at=now, **values)
    )


def link_together(conn: Connection, decision_id: int, ids: Sequence[int], now: datetime) -> None:
    """Must-link a set of articles: a star from the first one (the set is what counts)."""
    ordered = sorted(set(ids))
    rows = [
        {"decision_id": decision_id, "kind": MUST_LINK, "entry_a": ordered[0], "entry_b": e,
         "created_at": now}
        for e in ordered[1:]
    ]  # fmt: skip
    if rows:
        conn.execute(constraints.insert(), rows)


def keep_apart(
    conn: Connection, decision_id: int, left: Sequence[int], right: Sequence[int], now: datetime
) -> None:
    """Cannot-link every article of ``left`` with every article of ``right``."""
    rows = [
        {"decision_id": decision_id, "kind": CANNOT_LINK, "entry_a": a, "entry_b": b,
         "created_at": now}
        for a in sorted(set(left)) for b in sorted(set(right)) if a != b
    ]  # fmt: skip
    for part in chunks(rows):
        conn.execute(constraints.insert(), list(part))


def quote(text: str, limit: int = 80) -> str:
    """« text » shortened for a history line."""
    text = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    return f"« {text} »"
