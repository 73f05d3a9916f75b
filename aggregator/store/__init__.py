"""Storage: SQLAlchemy only. Returns ``aggregator.models`` objects, never ORM rows.

``Store`` is the small interface the pipeline, web app and CLI use; each aggregate's SQL
lives in its own module (sources, entries, stories).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.models import Entry, FeedSpec, ParsedEntry, Source, Story, StoryCluster, Topic
from aggregator.store import entries as _entries
from aggregator.store import feeds as _feeds
from aggregator.store import sources as _sources
from aggregator.store import stories as _stories
from aggregator.store.engine import create_engine, migrate, read_transaction, write_transaction
from aggregator.store.entries import UpsertReport
from aggregator.store.schema import fetch_log, meta

__all__ = ["Store", "UpsertReport"]


class Store:
    """The database behind aggregator: SQLite by default, PostgreSQL to share it."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = url
        self.engine: Engine = create_engine(url)
        if migrate_schema:
            migrate(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions: callers that need several operations atomically use these.
    def writing(self) -> object:
        return write_transaction(self.engine)

    def reading(self) -> object:
        return read_transaction(self.engine)

    # -- sources
    def sync_sources(self, specs: Sequence[FeedSpec], now: datetime) -> dict[str, int]:
        with write_transaction(self.engine) as conn:
            return _sources.sync_sources(conn, specs, now)

    def add_source(self, spec: FeedSpec, now: datetime, *, origin: str = "cli") -> Source:
        with write_transaction(self.engine) as conn:
            return _sources.add_source(conn, spec, origin, now)

    def list_sources(self, *, include_disabled: bool = True) -> list[Source]:
        with read_transaction(self.engine) as conn:
            return _sources.list_sources(conn, include_disabled=include_disabled)

    def get_source(self, source_id: int) -> Source | None:
        with read_transaction(self.engine) as conn:
            return _sources.get_source(conn, source_id)

    def source_by_url(self, url: str) -> Source | None:
        with read_transaction(self.engine) as conn:
            return _sources.source_by_url(conn, url)

    def due_sources(
        self, now: datetime, *, limit: int | None = None, all_sources: bool = False
    ) -> list[Source]:
        with read_transaction(self.engine) as conn:
            return _sources.due_sources(conn, now, limit=limit, all_sources=all_sources)

    def update_source(self, source_id: int, now: datetime, **values: object) -> None:
        with write_transaction(self.engine) as conn:
            _sources.update_source(conn, source_id, now, **values)

    def save_fetch(
        self,
        source: Source,
        parsed: Sequence[ParsedEntry],
        now: datetime,
        **state: object,
    ) -> UpsertReport:
        """Store entries and the feed's new fetch state (ETag...) in one transaction.

        Committing both together matters: were the ETag saved without the entries, the
        next 304 would hide the lost entries forever.
        """
        with write_transaction(self.engine) as conn:
            report = _entries.upsert_entries(conn, source, parsed, now)
            _sources.update_source(conn, source.id, now, **state)
            return report

    def log_fetch(self, conn: Connection | None = None, **row: object) -> None:
        if conn is not None:
            conn.execute(fetch_log.insert().values(**row))
            return
        with write_transaction(self.engine) as c:
            c.execute(fetch_log.insert().values(**row))

    # -- entries
    def entries_between(self, since: datetime, until: datetime) -> list[Entry]:
        with read_transaction(self.engine) as conn:
            return _entries.entries_between(conn, since, until)

    def count_entries(self) -> int:
        with read_transaction(self.engine) as conn:
            return _entries.count_entries(conn)

    # -- stories
    def story_assignments(self, entry_ids: Sequence[int]) -> dict[int, str]:
        with read_transaction(self.engine) as conn:
            return _stories.story_assignments(conn, entry_ids)

    def save_clusters(
        self, clusters: Sequence[StoryCluster], scope: Sequence[int], now: datetime
    ) -> dict[str, int]:
        with write_transaction(self.engine) as conn:
            return _stories.save_clusters(conn, clusters, scope, now)

    def recent_stories(
        self,
        *,
        limit: int,
        min_outlets: int = 1,
        topic_slug: str | None = None,
        include_hidden: bool = False,
    ) -> list[Story]:
        with read_transaction(self.engine) as conn:
            return _stories.recent_stories(
                conn,
                limit=limit,
                min_outlets=min_outlets,
                topic_slug=topic_slug,
                include_hidden=include_hidden,
            )

    def story_by_uid(self, uid: str) -> Story | None:
        with read_transaction(self.engine) as conn:
            return _stories.story_by_uid(conn, uid)

    def list_topics(self, *, limit: int = 100, include_hidden: bool = False) -> list[Topic]:
        with read_transaction(self.engine) as conn:
            return _stories.list_topics(conn, limit=limit, include_hidden=include_hidden)

    def topic_by_slug(self, slug: str) -> Topic | None:
        with read_transaction(self.engine) as conn:
            return _stories.topic_by_slug(conn, slug)

    # -- topics and incremental clustering state (issue 4)
    def story_topics(self, story_uids: Sequence[str]) -> dict[str, str]:
        with read_transaction(self.engine) as conn:
            return _stories.story_topics(conn, story_uids)

    def topic_uid_exists(self, uid: str) -> bool:
        with read_transaction(self.engine) as conn:
            return _stories.topic_uid_exists(conn, uid)

    def story_uid_exists(self, uid: str) -> bool:
        with read_transaction(self.engine) as conn:
            return _stories.story_uid_exists(conn, uid)

    def count_stories(self, *, min_outlets: int = 1) -> int:
        with read_transaction(self.engine) as conn:
            return _stories.count_stories(conn, min_outlets=min_outlets)

    def stories_version(self) -> str:
        with read_transaction(self.engine) as conn:
            return _stories.stories_version(conn)

    # -- public feeds (issue 5): keyset pages, visible topics and stories, a change marker.
    def stories_page(
        self,
        *,
        limit: int,
        min_outlets: int = 1,
        topic_slug: str | None = None,
        after: str | None = None,
    ) -> tuple[list[Story], str | None]:
        """Visible stories (pinned first) and the cursor of the next page, if any."""
        with read_transaction(self.engine) as conn:
            return _feeds.stories_page(
                conn, limit=limit, min_outlets=min_outlets, topic_slug=topic_slug, after=after
            )

    def articles_page(
        self,
        *,
        limit: int,
        min_outlets: int = 1,
        topic_slug: str | None = None,
        after: str | None = None,
    ) -> tuple[list[tuple[int, Story]], str | None]:
        """(entry id, its story) for the newest articles of visible stories, and a cursor."""
        with read_transaction(self.engine) as conn:
            return _feeds.articles_page(
                conn, limit=limit, min_outlets=min_outlets, topic_slug=topic_slug, after=after
            )

    def visible_topic(self, slug: str) -> Topic | None:
        with read_transaction(self.engine) as conn:
            return _feeds.visible_topic(conn, slug)

    def visible_topics(self, *, limit: int = 100) -> list[Topic]:
        with read_transaction(self.engine) as conn:
            return _feeds.visible_topics(conn, limit=limit)

    def visible_story(self, uid: str) -> Story | None:
        with read_transaction(self.engine) as conn:
            return _feeds.visible_story(conn, uid)

    def feed_version(self) -> str:
        """Changes whenever a published feed would (the render cache's key)."""
        with read_transaction(self.engine) as conn:
            return _feeds.feed_version(conn)

    # -- small key/value state (last cluster run, ...)
    def get_meta(self, key: str) -> str | None:
        with read_transaction(self.engine) as conn:
            return conn.scalar(sa.select(meta.c.value).where(meta.c.key == key))

    def set_meta(self, key: str, value: str) -> None:
        with write_transaction(self.engine) as conn:
            updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value))
            if not updated.rowcount:
                conn.execute(meta.insert().values(key=key, value=value))
