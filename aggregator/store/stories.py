"""Stories: saving clustering results and reading them back for feeds (topics: ``topics``)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.models import Story, StoryCluster, StoryMember, Topic
from aggregator.store.entries import chunks
from aggregator.store.schema import entries, stories, story_members, topics
from aggregator.store.topics import save_topics, to_topic


def story_assignments(conn: Connection, entry_ids: Sequence[int]) -> dict[int, str]:
    """Current story uid of each entry that has one."""
    found: dict[int, str] = {}
    for part in chunks(list(entry_ids)):
        query = (
            sa.select(story_members.c.entry_id, stories.c.uid)
            .join(stories, stories.c.id == story_members.c.story_id)
            .where(story_members.c.entry_id.in_(part))
        )
        found.update({r.entry_id: r.uid for r in conn.execute(query)})
    return found


def save_clusters(
    conn: Connection, clusters: Sequence[StoryCluster], scope: Sequence[int], now: datetime
) -> dict[str, int]:
    """Make membership of the ``scope`` entries match ``clusters``; keep every story id stable.

    Only stories whose members or label changed get a new ``updated_at`` (feed readers
    show an item again only when it changes). Stories left empty are deleted.
    """
    scope_set = set(scope)
    uids = [c.id for c in clusters]
    by_uid: dict[str, Any] = {}
    for uid_part in chunks(uids):
        by_uid.update(
            {r.uid: r for r in conn.execute(sa.select(stories).where(stories.c.uid.in_(uid_part)))}
        )

    current: dict[int, int] = {}
    for part in chunks(list(scope_set)):
        query = sa.select(story_members.c.entry_id, story_members.c.story_id).where(
            story_members.c.entry_id.in_(part)
        )
        current.update({r.entry_id: r.story_id for r in conn.execute(query)})

    counts = {"created": 0, "changed": 0, "deleted": 0}
    touched: set[int] = set()
    desired: dict[int, int] = {}
    wire: dict[int, int] = {}
    lead: dict[int, int | None] = {}
    story_ids: dict[str, int] = {}
    for cluster in clusters:
        row = by_uid.get(cluster.id)
        if row is None:
            inserted = conn.execute(
                stories.insert().values(
                    uid=cluster.id,
                    label=cluster.label,
                    first_published_at=now,
                    last_activity_at=now,
                    terms=json.dumps(list(cluster.terms), ensure_ascii=False),
                    machine_changed_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            story_id = inserted.inserted_primary_key[0]  # type: ignore[index]
            counts["created"] += 1
            touched.add(story_id)
        else:
            story_id = row.id
            changes: dict[str, Any] = {}
            if not row.label_fixed and row.label != cluster.label:
                changes["label"] = cluster.label
            terms = json.dumps(list(cluster.terms), ensure_ascii=False)
            if row.terms != terms:
                changes["terms"] = terms
            if changes:
                conn.execute(stories.update().where(stories.c.id == story_id).values(**changes))
                if "label" in changes:
                    touched.add(story_id)
        story_ids[cluster.id] = story_id
        lead[story_id] = int(cluster.lead_id) if cluster.lead_id else None
        for article_id in cluster.article_ids:
            entry_id = int(article_id)
            if entry_id in scope_set:
                desired[entry_id] = story_id
        for copy, original in cluster.wire_of:
            wire[int(copy)] = int(original)

    current_wire: dict[int, int | None] = {}
    for part in chunks(list(scope_set)):
        query = sa.select(story_members.c.entry_id, story_members.c.wire_of).where(
            story_members.c.entry_id.in_(part)
        )
        current_wire.update({r.entry_id: r.wire_of for r in conn.execute(query)})
    moved = [e for e in scope_set if current.get(e) != desired.get(e)]
    for part in chunks(moved):
        conn.execute(story_members.delete().where(story_members.c.entry_id.in_(part)))
    rows = [
        {"entry_id": e, "story_id": desired[e], "added_at": now, "wire_of": wire.get(e)}
        for e in moved
        if e in desired
    ]
    if rows:
        conn.execute(story_members.insert(), rows)
    for e in moved:
        touched.update(s for s in (current.get(e), desired.get(e)) if s is not None)
    # A copy found or lost without a move (its text was updated) changes the coverage.
    moved_set = set(moved)
    for e in sorted(scope_set - moved_set):
        if e in desired and current_wire.get(e) != wire.get(e):
            conn.execute(
                story_members.update()
                .where(story_members.c.entry_id == e)
                .values(wire_of=wire.get(e))
            )
            touched.add(desired[e])

    for story_id in sorted(touched):
        if _refresh_story(conn, story_id, lead.get(story_id), now):
            counts["changed"] += 1
        else:
            counts["deleted"] += 1
    counts["topics"] = save_topics(conn, clusters, story_ids, now)
    return counts


def _refresh_story(conn: Connection, story_id: int, lead_entry: int | None, now: datetime) -> bool:
    """Recompute a story's counts and times from its members; delete it if it has none."""
    # Outlets count independent reporting: a wire copy's outlet is not counted.
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
    if not stats.n:
        conn.execute(stories.delete().where(stories.c.id == story_id))
        return False
    values: dict[str, Any] = {
        "article_count": stats.n,
        "outlet_count": stats.outlets,
        "first_published_at": stats.first,
        "last_activity_at": stats.last,
        "machine_changed_at": now,
        "updated_at": now,
    }
    if lead_entry is not None:
        values["lead_entry_id"] = lead_entry
    conn.execute(stories.update().where(stories.c.id == story_id).values(**values))
    return True


def recent_stories(
    conn: Connection,
    *,
    limit: int,
    min_outlets: int = 1,
    topic_slug: str | None = None,
    include_hidden: bool = False,
    before: datetime | None = None,
) -> list[Story]:
    """Stories by newest activity (pinned first), with their members, lead first."""
    query = sa.select(stories).where(stories.c.outlet_count >= min_outlets)
    if not include_hidden:
        query = query.where(stories.c.hidden.is_(False))
    if topic_slug is not None:
        query = query.join(topics, topics.c.id == stories.c.topic_id).where(
            topics.c.slug == topic_slug
        )
    if before is not None:
        query = query.where(stories.c.last_activity_at < before)
    query = query.order_by(
        stories.c.pinned.desc(), stories.c.last_activity_at.desc(), stories.c.id.desc()
    ).limit(limit)
    return with_members(conn, list(conn.execute(query)))


def story_by_uid(conn: Connection, uid: str) -> Story | None:
    rows = list(conn.execute(sa.select(stories).where(stories.c.uid == uid)))
    found = with_members(conn, rows)
    return found[0] if found else None


def with_members(conn: Connection, rows: list[Any]) -> list[Story]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    members: dict[int, list[StoryMember]] = defaultdict(list)
    for part in chunks(ids):
        query = (
            sa.select(story_members.c.story_id, story_members.c.wire_of, entries)
            .join(entries, entries.c.id == story_members.c.entry_id)
            .where(story_members.c.story_id.in_(part))
            .order_by(entries.c.published_at, entries.c.id)
        )
        for m in conn.execute(query):
            members[m.story_id].append(
                StoryMember(
                    entry_id=m.id,
                    outlet=m.outlet,
                    title=m.title,
                    link=m.link,
                    published_at=m.published_at,
                    summary_text=m.summary_text,
                    summary_html=m.summary_html,
                    wire_of=m.wire_of,
                )
            )
    topic_ids = {r.topic_id for r in rows if r.topic_id is not None}
    topic_map: dict[int, Topic] = {}
    if topic_ids:
        for t in conn.execute(sa.select(topics).where(topics.c.id.in_(topic_ids))):
            topic_map[t.id] = to_topic(t)
    out = []
    for r in rows:
        ms = members.get(r.id, [])
        if not ms:
            continue
        lead_first = sorted(ms, key=lambda m: (m.entry_id != r.lead_entry_id,))
        out.append(
            Story(
                id=r.id,
                uid=r.uid,
                label=r.label,
                first_published_at=r.first_published_at,
                last_activity_at=r.last_activity_at,
                members=tuple(lead_first),
                lead_entry_id=r.lead_entry_id,
                topic=topic_map.get(r.topic_id) if r.topic_id is not None else None,
                pinned=r.pinned,
                hidden=r.hidden,
                locked=r.locked,
                updated_at=r.updated_at,
            )
        )
    return out


def story_uid_exists(conn: Connection, uid: str) -> bool:
    return conn.scalar(sa.select(stories.c.id).where(stories.c.uid == uid)) is not None


def count_stories(conn: Connection, *, min_outlets: int = 1) -> int:
    query = (
        sa.select(sa.func.count()).select_from(stories).where(stories.c.outlet_count >= min_outlets)
    )
    return int(conn.scalar(query) or 0)


def stories_version(conn: Connection) -> str:
    """Changes whenever any story changes: the basis of feed ETags."""
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.max(stories.c.updated_at), sa.func.max(stories.c.id))
    ).one()
    return f"{row[0]}-{row[1]}-{row[2]}"


def delete_stories(conn: Connection, uids: Iterable[str]) -> int:
    return conn.execute(stories.delete().where(stories.c.uid.in_(list(uids)))).rowcount
