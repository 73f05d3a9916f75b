"""Storage: SQLAlchemy only. Returns ``aggregator.models`` objects, never ORM rows.

``Store`` is the small interface the pipeline, web app and CLI use; each aggregate's SQL
lives in its own module (sources, entries, stories, topics).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.models import (
    Entry,
    FeedSpec,
    ParsedEntry,
    Source,
    Story,
    StoryCluster,
    Topic,
)
from aggregator.store import entries as _entries
from aggregator.store import feeds as _feeds
from aggregator.store import locks as _locks
from aggregator.store import retention as _retention
from aggregator.store import sources as _sources
from aggregator.store import stories as _stories
from aggregator.store import topics as _topics
from aggregator.store.desk.facade import DeskStore
from aggregator.store.desk.queries import StoryFilter
from aggregator.store.engine import create_engine, migrate, read_transaction, write_transaction
from aggregator.store.entries import UpsertReport
from aggregator.store.ops import OpsFigures, ops_figures
from aggregator.store.retention import PruneReport
from aggregator.store.schema import fetch_log, meta

__all__ = ["OpsFigures", "PruneReport", "Store", "StoryFilter", "UpsertReport"]

_INSERT_FETCH_LOG = fetch_log.insert()  # built once; its columns come from each row


class Store(DeskStore):
    """The database behind aggregator: SQLite by default, PostgreSQL to share it.

    The editors' desk methods come from ``DeskStore`` (``store/desk/facade.py``)."""

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

    # -- sharing the feeds between fetch workers (leases; see sources.claim_due)
    def claim_due(
        self,
        now: datetime,
        owner: str,
        lease_seconds: float,
        limit: int,
        *,
        all_sources: bool = False,
        fetched_before: datetime | None = None,
        host_spacing: float | None = None,
    ) -> list[Source]:
        with write_transaction(self.engine) as conn:
            return _sources.claim_due(
                conn,
                now,
                owner,
                lease_seconds,
                limit,
                all_sources=all_sources,
                fetched_before=fetched_before,
                host_spacing=host_spacing,
            )

    def renew_lease(self, source_id: int, owner: str, now: datetime, lease_seconds: float) -> bool:
        with write_transaction(self.engine) as conn:
            return _sources.renew_lease(conn, source_id, owner, now, lease_seconds)

    def release_leases(self, owner: str | None, ids: Sequence[int] | None = None) -> int:
        with write_transaction(self.engine) as conn:
            return _sources.release_leases(conn, owner, ids)

    # -- named locks (the clustering role, cron runs): leased rows, renewed while held
    def acquire_lock(self, name: str, owner: str, now: datetime, ttl_seconds: float) -> bool:
        with write_transaction(self.engine) as conn:
            return _locks.acquire(conn, name, owner, now, ttl_seconds)

    def release_lock(self, name: str, owner: str) -> None:
        with write_transaction(self.engine) as conn:
            _locks.release(conn, name, owner)

    def lock_holder(self, name: str) -> str | None:
        with read_transaction(self.engine) as conn:
            return _locks.holder(conn, name)

    @contextmanager
    def holding_lock(
        self,
        name: str,
        owner: str,
        ttl_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> Iterator[bool]:
        """Hold ``name`` for the block (yields False, holding nothing, when it is taken).

        A thread renews the lease every third of ``ttl_seconds`` while the block runs, so
        a long run keeps it and a killed process loses it within ``ttl_seconds``.
        """
        if not self.acquire_lock(name, owner, clock(), ttl_seconds):
            yield False
            return
        done = threading.Event()

        def renew() -> None:
            while not done.wait(ttl_seconds / 3):
                try:
                    self.acquire_lock(name, owner, clock(), ttl_seconds)
                except Exception:  # a database hiccup: the next renewal retries
                    continue

        renewer = threading.Thread(target=renew, name=f"lock:{name}", daemon=True)
        renewer.start()
        try:
            yield True
        finally:
            done.set()
            renewer.join()
            self.release_lock(name, owner)

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

    def finish_fetch(
        self,
        source: Source,
        now: datetime,
        state: Mapping[str, object],
        log: Mapping[str, object],
        parsed: Sequence[ParsedEntry] | None = None,
    ) -> UpsertReport | None:
        """A fetch's whole outcome in one transaction: the entries (when it was parsed),
        the feed's new state (ETag, ``next_check_at``, which ends the lease) and its
        fetch-log row (``new_entries`` filled in here). One commit per feed, not three.
        The log row's worker is also the feed's ``fetched_by``: other workers space
        their requests to its host by it (``claim_due``)."""
        with write_transaction(self.engine) as conn:
            report = None
            row = dict(log)
            if parsed is not None:
                report = _entries.upsert_entries(conn, source, parsed, now)
                row["new_entries"] = len(report.new_ids)
            fetched_by = row.get("worker") or None
            _sources.update_source(conn, source.id, now, **state, fetched_by=fetched_by)
            conn.execute(_INSERT_FETCH_LOG, row)
            return report

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
            return _topics.list_topics(conn, limit=limit, include_hidden=include_hidden)

    def topic_by_slug(self, slug: str) -> Topic | None:
        with read_transaction(self.engine) as conn:
            return _topics.topic_by_slug(conn, slug)

    # -- topics and incremental clustering state (issue 4)
    def story_topics(self, story_uids: Sequence[str]) -> dict[str, str]:
        with read_transaction(self.engine) as conn:
            return _topics.story_topics(conn, story_uids)

    def topic_uid_exists(self, uid: str) -> bool:
        with read_transaction(self.engine) as conn:
            return _topics.topic_uid_exists(conn, uid)

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

    # -- operations (issue 7): figures for /healthz, /metrics and status; retention
    def ops_figures(self, now: datetime, recent: timedelta = timedelta(hours=1)) -> OpsFigures:
        with read_transaction(self.engine) as conn:
            return ops_figures(conn, now, recent)

    def ping(self) -> None:
        with read_transaction(self.engine) as conn:
            conn.execute(sa.text("SELECT 1"))

    def prune(self, cutoff: datetime, *, dry_run: bool = False) -> PruneReport:
        """Delete stories, entries, empty topics and fetch log older than ``cutoff``."""
        return _retention.prune(self.engine, cutoff, dry_run=dry_run)

    # -- small key/value state (last cluster run, ...)
    def get_meta(self, key: str) -> str | None:
        with read_transaction(self.engine) as conn:
            return conn.scalar(sa.select(meta.c.value).where(meta.c.key == key))

    def set_meta(self, key: str, value: str) -> None:
        with write_transaction(self.engine) as conn:
            updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value))
            if not updated.rowcount:
                conn.execute(meta.insert().values(key=key, value=value))
