"""Sources (feeds) and their fetch state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.errors import InputError
from aggregator.models import FeedSpec, Source
from aggregator.store.entries import insert_ignore
from aggregator.store.schema import entry_sources, sources

REMOVED_FROM_FILE = "removed from the feeds file"
# pg_advisory_xact_lock key serialising feed claims ("aggr" "claim" as two ASCII words).
CLAIM_LOCK_KEY = 0x61676772_636C6169

# Columns a fetch may update (see ``update_source``).
FETCH_STATE_COLUMNS = frozenset(
    {
        "url",
        "title",
        "etag",
        "last_modified",
        "content_hash",
        "rejected_hash",
        "next_check_at",
        "last_fetched_at",
        "last_success_at",
        "last_status",
        "last_error",
        "error_count",
        "failing",
        "disabled",
        "disabled_reason",
        "redirect_url",
        "redirect_count",
        "lease_owner",
        "lease_until",
        "fetched_by",
    }
)


def host_of(url: str) -> str:
    """The host politeness counts requests by: the URL's lowercased hostname."""
    return (urlsplit(url).hostname or "").lower()


def _to_source(row: Any, entry_count: int = 0) -> Source:
    return Source(
        id=row.id,
        url=row.url,
        outlet=row.outlet,
        section=row.section,
        title=row.title,
        origin=row.origin,
        etag=row.etag,
        last_modified=row.last_modified,
        content_hash=row.content_hash,
        rejected_hash=row.rejected_hash,
        next_check_at=row.next_check_at,
        last_fetched_at=row.last_fetched_at,
        last_success_at=row.last_success_at,
        last_status=row.last_status,
        last_error=row.last_error,
        error_count=row.error_count,
        failing=row.failing,
        disabled=row.disabled,
        disabled_reason=row.disabled_reason,
        redirect_url=row.redirect_url,
        redirect_count=row.redirect_count,
        entry_count=entry_count,
    )


def sync_sources(conn: Connection, specs: Sequence[FeedSpec], now: datetime) -> dict[str, int]:
    """Make the feeds file's list current: add new feeds, refresh names, retire removed ones.

    Feeds added from the command line or an OPML file are left alone.
    """
    wanted = {spec.url: spec for spec in specs}
    rows = {r.url: r for r in conn.execute(sa.select(sources))}
    counts = {"added": 0, "updated": 0, "retired": 0}
    for url, spec in wanted.items():
        row = rows.get(url)
        if row is None:
            # ON CONFLICT DO NOTHING: several workers starting at once on PostgreSQL all
            # apply the feeds file; the first insert wins, the others are no-ops.
            insert_ignore(
                conn,
                sources,
                [
                    {
                        "url": url,
                        "host": host_of(url),
                        "outlet": spec.outlet or _outlet_from_url(url),
                        "section": spec.section,
                        "origin": "config",
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
                ["url"],
            )
            counts["added"] += 1
            continue
        changes: dict[str, Any] = {}
        if spec.outlet and row.outlet != spec.outlet:
            changes["outlet"] = spec.outlet
        if row.section != spec.section and spec.section:
            changes["section"] = spec.section
        if row.disabled and row.disabled_reason == REMOVED_FROM_FILE:
            changes.update(disabled=False, disabled_reason=None)
        if changes:
            conn.execute(
                sources.update().where(sources.c.id == row.id).values(**changes, updated_at=now)
            )
            counts["updated"] += 1
    for url, row in rows.items():
        if row.origin == "config" and url not in wanted and not row.disabled:
            conn.execute(
                sources.update()
                .where(sources.c.id == row.id)
                .values(disabled=True, disabled_reason=REMOVED_FROM_FILE, updated_at=now)
            )
            counts["retired"] += 1
    return counts


def _outlet_from_url(url: str) -> str:
    host = urlsplit(url).hostname or url
    return host.removeprefix("www.")


def add_source(conn: Connection, spec: FeedSpec, origin: str, now: datetime) -> Source:
    """Add a feed; an existing URL is an error unless it was retired (then it comes back)."""
    row = conn.execute(sa.select(sources).where(sources.c.url == spec.url)).first()
    if row is not None and not row.disabled:
        raise InputError(f"feed already present: {spec.url} (id {row.id})")
    values = {
        "outlet": spec.outlet or _outlet_from_url(spec.url),
        "section": spec.section,
        "origin": origin,
        "updated_at": now,
    }
    if row is not None:
        conn.execute(
            sources.update()
            .where(sources.c.id == row.id)
            .values(**values, disabled=False, disabled_reason=None, next_check_at=None)
        )
        source_id = row.id
    else:
        inserted = conn.execute(
            sources.insert().values(url=spec.url, host=host_of(spec.url), created_at=now, **values)
        )
        source_id = inserted.inserted_primary_key[0]  # type: ignore[index]
    found = get_source(conn, source_id)
    assert found is not None
    return found


def get_source(conn: Connection, source_id: int) -> Source | None:
    row = conn.execute(sa.select(sources).where(sources.c.id == source_id)).first()
    return _to_source(row) if row is not None else None


def source_by_url(conn: Connection, url: str) -> Source | None:
    row = conn.execute(sa.select(sources).where(sources.c.url == url)).first()
    return _to_source(row) if row is not None else None


def list_sources(conn: Connection, *, include_disabled: bool = True) -> list[Source]:
    counts = (
        sa.select(entry_sources.c.source_id, sa.func.count().label("n"))
        .group_by(entry_sources.c.source_id)
        .subquery()
    )
    query = (
        sa.select(sources, sa.func.coalesce(counts.c.n, 0).label("entry_count"))
        .select_from(sources.outerjoin(counts, counts.c.source_id == sources.c.id))
        .order_by(sources.c.outlet, sources.c.section, sources.c.id)
    )
    if not include_disabled:
        query = query.where(sources.c.disabled.is_(False))
    return [_to_source(r, r.entry_count) for r in conn.execute(query)]


def due_sources(
    conn: Connection, now: datetime, *, limit: int | None = None, all_sources: bool = False
) -> list[Source]:
    """Enabled feeds whose ``next_check_at`` has come (never-fetched ones first)."""
    query = sa.select(sources).where(sources.c.disabled.is_(False))
    if not all_sources:
        query = query.where(
            sa.or_(sources.c.next_check_at.is_(None), sources.c.next_check_at <= now)
        )
    query = query.order_by(
        sources.c.next_check_at.is_not(None), sources.c.next_check_at, sources.c.id
    )
    if limit is not None:
        query = query.limit(limit)
    return [_to_source(r) for r in conn.execute(query)]


def claim_due(
    conn: Connection,
    now: datetime,
    owner: str,
    lease_seconds: float,
    limit: int,
    *,
    all_sources: bool = False,
    fetched_before: datetime | None = None,
    host_spacing: float | None = None,
) -> list[Source]:
    """Lease up to ``limit`` due feeds to ``owner`` so that no other worker fetches them.

    A feed is claimable when enabled, due (or any feed with ``all_sources``), not leased
    (or its lease expired: its worker died) and, with ``fetched_before``, not fetched since
    then (one pass fetches a feed at most once). On PostgreSQL the rows are locked with
    ``FOR UPDATE SKIP LOCKED``, so concurrent claims never take the same feed; on SQLite
    the caller's write transaction (BEGIN IMMEDIATE) serialises claims. The lease ends
    when the fetch result writes ``next_check_at``.

    With ``host_spacing`` (seconds; other fetchers may run), politeness holds across
    workers: a feed is not claimable while another worker holds a live lease on a feed of
    the same host, nor within ``host_spacing`` of another worker's last fetch there. A
    host thus belongs to one worker at a time, which queues its feeds one request at a
    time, spaced (three workers must not hit one site three times as often as one).
    Claims are serialised (a transaction-level advisory lock on PostgreSQL, which works
    behind pgbouncer), or two workers claiming at once could each take one host's feeds.
    """
    query = sa.select(sources.c.id).where(
        sources.c.disabled.is_(False),
        sa.or_(sources.c.lease_until.is_(None), sources.c.lease_until < now),
    )
    if host_spacing is not None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))
        other = sources.alias("other")
        busy = sa.or_(
            sa.and_(other.c.lease_owner != owner, other.c.lease_until >= now),
            sa.and_(
                other.c.fetched_by != owner,
                other.c.last_fetched_at > now - timedelta(seconds=host_spacing),
            ),
        )
        query = query.where(~sa.exists().where(other.c.host == sources.c.host, busy))
    if not all_sources:
        query = query.where(
            sa.or_(sources.c.next_check_at.is_(None), sources.c.next_check_at <= now)
        )
    if fetched_before is not None:
        query = query.where(
            sa.or_(sources.c.last_fetched_at.is_(None), sources.c.last_fetched_at < fetched_before)
        )
    query = (
        query.order_by(sources.c.next_check_at.is_not(None), sources.c.next_check_at, sources.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(conn.scalars(query))
    if not ids:
        return []
    conn.execute(
        sources.update()
        .where(sources.c.id.in_(ids))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
    )
    rows = conn.execute(sa.select(sources).where(sources.c.id.in_(ids)))
    order = {source_id: n for n, source_id in enumerate(ids)}
    return sorted((_to_source(r) for r in rows), key=lambda s: order[s.id])


def renew_lease(
    conn: Connection, source_id: int, owner: str, now: datetime, lease_seconds: float
) -> bool:
    """Extend ``owner``'s lease on a feed; False when it lost it (expired and re-claimed)."""
    updated = conn.execute(
        sources.update()
        .where(sources.c.id == source_id, sources.c.lease_owner == owner)
        .values(lease_until=now + timedelta(seconds=lease_seconds))
    )
    return bool(updated.rowcount)


def release_leases(conn: Connection, owner: str | None, ids: Iterable[int] | None = None) -> int:
    """Give back feeds ``owner`` claimed but did not fetch (stopping, a pass cut short);
    ``owner=None``: every lease, whoever holds it (only for a process that knows no other
    fetcher runs, e.g. one holding the SQLite fetch lock after a crash)."""
    query = sources.update().where(
        sources.c.lease_owner.is_not(None) if owner is None else sources.c.lease_owner == owner
    )
    if ids is not None:
        query = query.where(sources.c.id.in_(list(ids)))
    return conn.execute(query.values(lease_owner=None, lease_until=None)).rowcount


def update_source(conn: Connection, source_id: int, now: datetime, **values: Any) -> None:
    """Write fetch state; writing ``next_check_at`` (a fetch's result) ends its lease."""
    unknown = set(values) - FETCH_STATE_COLUMNS
    if unknown:
        raise ValueError(f"not a fetch-state column: {sorted(unknown)}")
    if "next_check_at" in values:
        values.setdefault("lease_owner", None)
        values.setdefault("lease_until", None)
    if "url" in values:
        values["host"] = host_of(values["url"])
    # A statement built once, its SET clause taken from the parameters: building and
    # cache-keying ``.values(**values)`` per feed was ~10% of a fetch pass's main process.
    conn.execute(_UPDATE_SOURCE, {**values, "updated_at": now, "b_source_id": source_id})


_UPDATE_SOURCE = sources.update().where(sources.c.id == sa.bindparam("b_source_id"))


def remove_sources(conn: Connection, ids: Iterable[int]) -> int:
    return conn.execute(sources.delete().where(sources.c.id.in_(list(ids)))).rowcount
