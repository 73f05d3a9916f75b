"""Helpers for the feed tests: put entries, stories and topics in a real store the way the
pipeline and the clustering and desk code do (``save_fetch``, ``save_clusters``, and plain
updates of ``stories.topic_id``/``pinned``/``hidden``, the columns those issues own).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from aggregator.models import FeedSpec, ParsedEntry, StoryCluster
from aggregator.store import Store
from aggregator.store.schema import entries as entries_table
from aggregator.store.schema import stories, topics


def add_entries(store: Store, outlet: str, entries: Sequence[ParsedEntry], now: datetime) -> list[int]:  # fmt: skip
    """Store entries for ``outlet`` (one feed per outlet); return their ids in order."""
    url = f"https://{outlet.lower().replace(' ', '-')}.example/rss"
    if store.source_by_url(url) is None:
        store.add_source(FeedSpec(url, outlet), now)
    source = store.source_by_url(url)
    assert source is not None
    store.save_fetch(source, entries, now)
    query = sa.select(entries_table.c.id, entries_table.c.key).where(
        entries_table.c.outlet == outlet
    )
    with store.engine.connect() as conn:
        by_key = {r.key: r.id for r in conn.execute(query)}
    return [by_key[e.key] for e in entries]


def save_story(store: Store, uid: str, entry_ids: Sequence[int], label: str, now: datetime) -> None:  # fmt: skip
    """One story of these entries (lead: the first), as clustering would save it."""
    cluster = StoryCluster(
        id=uid, article_ids=tuple(map(str, entry_ids)), label=label, lead_id=str(entry_ids[0])
    )
    store.save_clusters([cluster], list(entry_ids), now)


def add_topic(store: Store, slug: str, label: str, story_uids: Sequence[str], now: datetime, *, hidden: bool = False) -> None:  # fmt: skip
    with store.engine.begin() as conn:
        topic_id = conn.execute(
            topics.insert().values(
                uid=slug[:32],
                slug=slug,
                label=label,
                hidden=hidden,
                story_count=len(story_uids),
                last_activity_at=now,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        conn.execute(
            stories.update().where(stories.c.uid.in_(list(story_uids))).values(topic_id=topic_id)
        )


def set_story(store: Store, uid: str, **values: object) -> None:
    """What the editors' desk does: pin, hide, rename."""
    with store.engine.begin() as conn:
        conn.execute(stories.update().where(stories.c.uid == uid).values(**values))
