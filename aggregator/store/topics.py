"""Topics: saving clustering's topics and their stories' links, and reading topics back."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.models import StoryCluster, Topic
from aggregator.store.entries import chunks
from aggregator.store.schema import stories, topics

# Topic terms shown: the words most frequent among its stories' key terms.
TOPIC_TERMS = 8
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")


def slugify(label: str) -> str:
    """URL-safe ASCII slug of a French label: "Guerre en Ukraine" -> "guerre-en-ukraine"."""
    ascii_text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return _SLUG_JUNK.sub("-", ascii_text.lower()).strip("-")[:100] or "sujet"


def save_topics(
    conn: Connection, clusters: Sequence[StoryCluster], story_ids: dict[str, int], now: datetime
) -> int:
    """Create or update the clusters' topics and link their stories; returns topics touched.

    A topic's slug is chosen once, from its first label, and never changes (feed URLs
    use it); its label follows the clusters unless an editor fixed it.
    """
    by_topic: dict[str, list[StoryCluster]] = defaultdict(list)
    for c in clusters:
        if c.topic_id:
            by_topic[c.topic_id].append(c)
    rows: dict[str, Any] = {}
    for part in chunks(sorted(by_topic)):
        rows.update(
            {r.uid: r for r in conn.execute(sa.select(topics).where(topics.c.uid.in_(part)))}
        )
    topic_pk: dict[str, int] = {}
    for uid in sorted(by_topic):
        members = by_topic[uid]
        label = next((c.topic_label for c in members if c.topic_label), None) or uid
        words = Counter(t for c in members for t in c.terms)
        terms = json.dumps(
            [w for w, _ in sorted(words.items(), key=lambda wc: (-wc[1], wc[0]))][:TOPIC_TERMS],
            ensure_ascii=False,
        )
        row = rows.get(uid)
        if row is None:
            inserted = conn.execute(
                topics.insert().values(
                    uid=uid, slug=free_slug(conn, slugify(label)), label=label, terms=terms,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            topic_pk[uid] = inserted.inserted_primary_key[0]  # type: ignore[index]
            continue
        topic_pk[uid] = row.id
        changes: dict[str, Any] = {}
        if not row.label_fixed and row.label != label:
            changes["label"] = label
        if row.terms != terms:
            changes["terms"] = terms
        if changes:
            changes["updated_at"] = now
            conn.execute(topics.update().where(topics.c.id == row.id).values(**changes))

    affected: set[int] = set(topic_pk.values())
    scope = [story_ids[c.id] for c in clusters if c.id in story_ids]
    current: dict[int, int | None] = {}
    for ids_part in chunks(scope):
        query = sa.select(stories.c.id, stories.c.topic_id).where(stories.c.id.in_(ids_part))
        current.update({r.id: r.topic_id for r in conn.execute(query)})
    for c in clusters:
        sid = story_ids.get(c.id)
        if sid is None:
            continue
        want = topic_pk.get(c.topic_id) if c.topic_id else None
        if current.get(sid) != want:
            conn.execute(stories.update().where(stories.c.id == sid).values(topic_id=want))
            affected.update(t for t in (current.get(sid), want) if t is not None)
    for topic_id in sorted(affected):
        stats = conn.execute(
            sa.select(sa.func.count(), sa.func.max(stories.c.last_activity_at)).where(
                stories.c.topic_id == topic_id
            )
        ).one()
        if not stats[0]:
            conn.execute(topics.delete().where(topics.c.id == topic_id))
            continue
        conn.execute(
            topics.update()
            .where(topics.c.id == topic_id)
            .values(story_count=stats[0], last_activity_at=stats[1])
        )
    return len(affected)


def free_slug(conn: Connection, base: str) -> str:
    slug, n = base, 1
    while conn.scalar(sa.select(topics.c.id).where(topics.c.slug == slug)) is not None:
        n += 1
        slug = f"{base}-{n}"
    return slug


def story_topics(conn: Connection, story_uids: Sequence[str]) -> dict[str, str]:
    """Topic uid of each of these stories that has one."""
    found: dict[str, str] = {}
    for part in chunks(list(story_uids)):
        query = (
            sa.select(stories.c.uid, topics.c.uid.label("topic_uid"))
            .join(topics, topics.c.id == stories.c.topic_id)
            .where(stories.c.uid.in_(part))
        )
        found.update({r.uid: r.topic_uid for r in conn.execute(query)})
    return found


def topic_uid_exists(conn: Connection, uid: str) -> bool:
    return conn.scalar(sa.select(topics.c.id).where(topics.c.uid == uid)) is not None


def to_topic(row: Any) -> Topic:
    return Topic(
        id=row.id,
        uid=row.uid,
        slug=row.slug,
        label=row.label,
        story_count=row.story_count,
        updated_at=row.updated_at,
    )


def list_topics(conn: Connection, *, limit: int = 100, include_hidden: bool = False) -> list[Topic]:
    """Topics by newest activity."""
    query = sa.select(topics)
    if not include_hidden:
        query = query.where(topics.c.hidden.is_(False))
    query = query.order_by(topics.c.last_activity_at.desc().nulls_last(), topics.c.id.desc()).limit(
        limit
    )
    return [to_topic(r) for r in conn.execute(query)]


def topic_by_slug(conn: Connection, slug: str) -> Topic | None:
    row = conn.execute(sa.select(topics).where(topics.c.slug == slug)).first()
    return to_topic(row) if row is not None else None
