"""Retention: delete what is older than the cutoff, keeping what editors pinned or locked.

A story goes when its last activity is older than the cutoff and it is neither pinned nor
locked. An entry goes when it was published before the cutoff, no feed has carried it since
(else the next fetch would store it again as new), and no kept story holds it. Topics left
without stories, and fetch_log rows, follow. Deletions run in batches of short write
transactions so the daemon and the desk are never blocked for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.store.engine import read_transaction, write_transaction
from aggregator.store.schema import (
    entries,
    entry_sources,
    fetch_log,
    stories,
    story_members,
    topics,
)

# Rows deleted per write transaction: small enough to keep SQLite's write lock short.
BATCH = 500


@dataclass(frozen=True, slots=True)
class PruneReport:
    stories: int = 0
    entries: int = 0
    topics: int = 0
    fetch_log: int = 0


def _kept_story() -> sa.ColumnElement[bool]:
    return sa.or_(stories.c.pinned.is_(True), stories.c.locked.is_(True))


def old_story_ids(engine: Engine, cutoff: datetime) -> list[int]:
    query = sa.select(stories.c.id).where(stories.c.last_activity_at < cutoff, ~_kept_story())
    with read_transaction(engine) as conn:
        return list(conn.scalars(query))


def old_entry_ids(engine: Engine, cutoff: datetime, doomed_stories: set[int]) -> list[int]:
    """Entries old enough to go: not seen in a feed since ``cutoff``, in no kept story."""
    seen_since = sa.select(entry_sources.c.entry_id).where(
        entry_sources.c.entry_id == entries.c.id, entry_sources.c.last_seen_at >= cutoff
    )
    query = (
        sa.select(entries.c.id, story_members.c.story_id)
        .select_from(entries.outerjoin(story_members, story_members.c.entry_id == entries.c.id))
        .where(entries.c.published_at < cutoff, ~sa.exists(seen_since))
    )
    with read_transaction(engine) as conn:
        return [
            entry_id
            for entry_id, story_id in conn.execute(query)
            if story_id is None or story_id in doomed_stories
        ]


def prune(engine: Engine, cutoff: datetime, *, dry_run: bool = False) -> PruneReport:
    doomed = old_story_ids(engine, cutoff)
    old_entries = old_entry_ids(engine, cutoff, set(doomed))
    old_log = sa.select(sa.func.count()).where(fetch_log.c.started_at < cutoff)
    if dry_run:
        with read_transaction(engine) as conn:
            n_log = conn.scalar(old_log) or 0
        return PruneReport(stories=len(doomed), entries=len(old_entries), fetch_log=n_log)
    n_stories = _delete_in_batches(engine, stories, doomed)
    n_entries = _delete_in_batches(engine, entries, old_entries)
    with write_transaction(engine) as conn:
        has_story = sa.exists(sa.select(stories.c.id).where(stories.c.topic_id == topics.c.id))
        n_topics = conn.execute(
            topics.delete().where(
                ~has_story,
                sa.or_(topics.c.last_activity_at.is_(None), topics.c.last_activity_at < cutoff),
            )
        ).rowcount
        n_log = conn.execute(fetch_log.delete().where(fetch_log.c.started_at < cutoff)).rowcount
    return PruneReport(stories=n_stories, entries=n_entries, topics=n_topics, fetch_log=n_log)


def _delete_in_batches(engine: Engine, table: sa.Table, ids: list[int]) -> int:
    deleted = 0
    for start in range(0, len(ids), BATCH):
        with write_transaction(engine) as conn:
            batch = ids[start : start + BATCH]
            deleted += conn.execute(table.delete().where(table.c.id.in_(batch))).rowcount
    return deleted
