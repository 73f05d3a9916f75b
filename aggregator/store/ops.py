"""Figures for operators (/healthz, /metrics, `aggregator status`), read from the database so
they hold whichever process asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.store.schema import UTCDateTime, entries, fetch_log, sources, stories


@dataclass(frozen=True, slots=True)
class OpsFigures:
    now: datetime
    feeds: dict[str, int]  # enabled ok / error / failing, disabled
    entries: int
    stories: int
    last_success_at: datetime | None
    oldest_due_at: datetime | None
    recent_fetches: dict[str, int] = field(default_factory=dict)  # outcome -> count

    @property
    def last_success_age(self) -> float | None:
        if self.last_success_at is None:
            return None
        return max(0.0, (self.now - self.last_success_at).total_seconds())

    @property
    def queue_lag(self) -> float:
        """How long the most overdue enabled feed has waited (0 when none is due)."""
        if self.oldest_due_at is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_due_at).total_seconds())


def ops_figures(conn: Connection, now: datetime, recent: timedelta) -> OpsFigures:
    state = sa.case(
        (sources.c.disabled.is_(True), "disabled"),
        (sources.c.failing.is_(True), "failing"),
        (sources.c.last_error.is_not(None), "error"),
        else_="ok",
    ).label("state")
    feeds = {"ok": 0, "error": 0, "failing": 0, "disabled": 0}
    for name, n in conn.execute(sa.select(state, sa.func.count()).group_by(state)):
        feeds[name] = n
    enabled = sources.c.disabled.is_(False)
    # Never-fetched feeds are due from their creation.
    due_at = sa.func.coalesce(sources.c.next_check_at, sources.c.created_at)
    oldest_due = conn.scalar(sa.select(sa.func.min(due_at)).where(enabled, due_at <= now))
    last_success = conn.scalar(sa.select(sa.func.max(sources.c.last_success_at)))
    outcomes: dict[str, int] = dict(
        conn.execute(
            sa.select(fetch_log.c.outcome, sa.func.count())
            .where(fetch_log.c.started_at >= now - recent)
            .group_by(fetch_log.c.outcome)
        ).all()
    )
    return OpsFigures(
        now=now,
        feeds=feeds,
        entries=conn.scalar(sa.select(sa.func.count()).select_from(entries)) or 0,
        stories=conn.scalar(sa.select(sa.func.count()).select_from(stories)) or 0,
        last_success_at=_utc(conn, last_success),
        oldest_due_at=_utc(conn, oldest_due),
        recent_fetches=outcomes,
    )


def _utc(conn: Connection, value: object) -> datetime | None:
    """Aggregates lose the column type on SQLite (a naive string): read it as UTC."""
    if value is None:
        return None
    return UTCDateTime().process_result_value(value, conn.dialect)
