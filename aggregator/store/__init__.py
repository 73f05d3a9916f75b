"""Storage: SQLAlchemy only. Returns ``aggregator.models`` objects, never ORM rows.

``Store`` is the small interface the pipeline, web app and CLI use; each aggregate's SQL
lives in its own module (sources, entries, stories).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from aggregator.models import (
    Decision,
    DeskSession,
    EditorConstraint,
    Entry,
    FeedSpec,
    ParsedEntry,
    Source,
    Story,
    StoryCluster,
    StorySummary,
    Topic,
    TopicSummary,
    User,
)
from aggregator.store import entries as _entries
from aggregator.store import feeds as _feeds
from aggregator.store import locks as _locks
from aggregator.store import retention as _retention
from aggregator.store import sources as _sources
from aggregator.store import stories as _stories
from aggregator.store.desk import accounts as _accounts
from aggregator.store.desk import marks as _marks
from aggregator.store.desk import membership as _membership
from aggregator.store.desk import queries as _desk_queries
from aggregator.store.desk import state as _desk_state
from aggregator.store.desk.queries import StoryFilter
from aggregator.store.engine import create_engine, migrate, read_transaction, write_transaction
from aggregator.store.entries import UpsertReport
from aggregator.store.ops import OpsFigures, ops_figures
from aggregator.store.retention import PruneReport
from aggregator.store.schema import fetch_log, meta

__all__ = ["OpsFigures", "PruneReport", "Store", "StoryFilter", "UpsertReport"]

_INSERT_FETCH_LOG = fetch_log.insert()  # built once; its columns come from each row


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

    # -- editors' desk (issue 6): accounts and sessions
    def add_user(self, name: str, password: str, now: datetime) -> User:
        with write_transaction(self.engine) as conn:
            return _accounts.add_user(conn, name, password, now)

    def set_user_password(self, name: str, password: str, now: datetime) -> None:
        with write_transaction(self.engine) as conn:
            _accounts.set_password(conn, name, password, now)

    def set_user_disabled(self, name: str, disabled: bool, now: datetime) -> None:
        with write_transaction(self.engine) as conn:
            _accounts.set_disabled(conn, name, disabled, now)

    def list_users(self) -> list[User]:
        with read_transaction(self.engine) as conn:
            return _accounts.list_users(conn)

    def sign_in(self, name: str, password: str, client: str, now: datetime) -> User | None:
        """Check a password (raises ``LoginBlocked`` when throttled) and record the attempt.

        The slow argon2 check runs between two short transactions, never holding a lock.
        """
        with read_transaction(self.engine) as conn:
            row = _accounts.credentials(conn, name, client, now)
        ok = _accounts.verify_password(row, password)
        with write_transaction(self.engine) as conn:
            return _accounts.record_sign_in(conn, row, name, password, client, ok, now)

    def create_session(
        self, user_id: int, now: datetime, lifetime: timedelta
    ) -> tuple[str, DeskSession]:
        with write_transaction(self.engine) as conn:
            return _accounts.create_session(conn, user_id, now, lifetime)

    def session_by_token(self, token: str, now: datetime) -> DeskSession | None:
        with read_transaction(self.engine) as conn:
            return _accounts.session_by_token(conn, token, now)

    def delete_session(self, token: str) -> None:
        with write_transaction(self.engine) as conn:
            _accounts.delete_session(conn, token)

    # -- editors' desk: decisions (each applied at once and recorded as constraints)
    def rename_story(self, user_id: int, uid: str, label: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.rename_story(conn, user_id, uid, label, now)

    def rename_topic(self, user_id: int, topic_uid: str, label: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.rename_topic(conn, user_id, topic_uid, label, now)

    def set_story_flag(self, user_id: int, uid: str, flag: str, value: bool, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.set_flag(conn, user_id, uid, flag, value, now)

    def attach_topic(
        self,
        user_id: int,
        uid: str,
        now: datetime,
        *,
        topic_uid: str | None = None,
        new_label: str | None = None,
    ) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.attach_topic(
                conn, user_id, uid, now, topic_uid=topic_uid, new_label=new_label
            )

    def detach_topic(self, user_id: int, uid: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.detach_topic(conn, user_id, uid, now)

    def mark_reviewed(self, user_id: int, uid: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.review(conn, user_id, uid, now)

    def merge_stories(self, user_id: int, uid: str, other_uid: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _membership.merge(conn, user_id, uid, other_uid, now)

    def split_story(
        self, user_id: int, uid: str, entry_ids: Sequence[int], now: datetime
    ) -> tuple[int, str]:
        with write_transaction(self.engine) as conn:
            return _membership.split(conn, user_id, uid, entry_ids, now)

    def move_entry(
        self, user_id: int, uid: str, entry_id: int, target_uid: str, now: datetime
    ) -> int:
        with write_transaction(self.engine) as conn:
            return _membership.move(conn, user_id, uid, entry_id, target_uid, now)

    def remove_entry(self, user_id: int, uid: str, entry_id: int, now: datetime) -> tuple[int, str]:
        with write_transaction(self.engine) as conn:
            return _membership.remove(conn, user_id, uid, entry_id, now)

    def undo_decision(self, user_id: int, decision_id: int, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _desk_state.undo(conn, user_id, decision_id, now)

    # -- editors' desk: the contract with clustering
    def editor_constraints(self) -> tuple[list[EditorConstraint], dict[str, list[int]]]:
        """Active constraints (oldest decision first) and locked stories' members."""
        with read_transaction(self.engine) as conn:
            return _desk_state.active_constraints(conn), _desk_state.locked_members(conn)

    def reapply_editor_state(self, now: datetime, since: datetime | None = None) -> int:
        with write_transaction(self.engine) as conn:
            return _desk_state.reapply(conn, now, since)

    # -- editors' desk: reading
    def desk_stories(
        self,
        filters: StoryFilter,
        *,
        now: datetime,
        review: timedelta,
        limit: int,
        offset: int = 0,
    ) -> tuple[list[StorySummary], int]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.desk_stories(
                conn, filters, now=now, review=review, limit=limit, offset=offset
            )

    def desk_story(
        self, uid: str, *, now: datetime, review: timedelta
    ) -> tuple[Story, StorySummary] | None:
        with read_transaction(self.engine) as conn:
            return _desk_queries.desk_story(conn, uid, now=now, review=review)

    def neighbour_candidates(
        self, around: datetime, hours: float, limit: int, exclude: str
    ) -> list[Story]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.neighbour_candidates(conn, around, hours, limit, exclude)

    def story_labels(self, uids: list[str]) -> dict[str, str]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.story_labels(conn, uids)

    def desk_topics(self) -> list[TopicSummary]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.desk_topics(conn)

    def topic_by_uid(self, uid: str) -> Topic | None:
        with read_transaction(self.engine) as conn:
            return _desk_queries.topic_by_uid(conn, uid)

    def decisions(
        self, *, story_uid: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Decision], int]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.history(conn, story_uid=story_uid, limit=limit, offset=offset)

    def decision(self, decision_id: int) -> Decision | None:
        with read_transaction(self.engine) as conn:
            return _desk_queries.decision_by_id(conn, decision_id)
