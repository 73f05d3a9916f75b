"""APScheduler 3.x jobs that only tick: each tick asks the database what is due.

Missed runs are coalesced into one (a daemon back after two hours of downtime fetches each
overdue feed once, because ``next_check_at`` decides, not the number of missed ticks).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from aggregator.config import Settings
from aggregator.pipeline import ParsePool, make_analyzer, recluster, refresh_due
from aggregator.store import Store

log = logging.getLogger(__name__)

# How often the fetch job asks the database for due feeds. Feeds are due at their own
# pace (next_check_at); the tick only bounds how late a due feed can start.
FETCH_TICK_SECONDS = 30
JOB_DEFAULTS = {
    "coalesce": True,  # many missed runs -> one run
    "max_instances": 1,  # a slow pass is never overlapped by the next tick
    "misfire_grace_time": 3600,  # a late tick still runs (once) rather than being dropped
}


@dataclass
class DaemonState:
    """What the ticks share: a stop flag and whether new entries await clustering."""

    stop: threading.Event = field(default_factory=threading.Event)
    dirty: threading.Event = field(default_factory=threading.Event)
    last_fetch_pass: datetime | None = None
    last_cluster_run: datetime | None = None


def build_scheduler(
    settings: Settings,
    store: Store,
    state: DaemonState,
    *,
    fetch: bool = True,
    cluster: bool = True,
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)
    now = datetime.now(UTC)
    analyzer = make_analyzer(settings) if cluster else None
    # One pool of parse workers for the daemon's life: ticks reuse warm workers. Idle
    # workers exit on their own when the daemon does (EOF on their stdin).
    parser = ParsePool(settings.fetch)

    def fetch_tick() -> None:
        if state.stop.is_set():
            return
        report = refresh_due(settings, store, stop=state.stop, parser=parser)
        state.last_fetch_pass = datetime.now(UTC)
        if report.outcomes:
            log.info(
                "fetched %d feeds: %d new entries, %d errors",
                len(report.outcomes),
                report.new_entries,
                len(report.errors),
            )
        if report.new_entries:
            state.dirty.set()
            if cluster:  # new articles: regroup now rather than at the next cluster tick
                scheduler.modify_job("cluster", next_run_time=datetime.now(UTC))

    def cluster_tick() -> None:
        if state.stop.is_set():
            return
        state.dirty.clear()
        recluster(settings, store, datetime.now(UTC), analyzer=analyzer)
        state.last_cluster_run = datetime.now(UTC)

    if fetch:
        scheduler.add_job(
            fetch_tick, "interval", seconds=FETCH_TICK_SECONDS, id="fetch",
            replace_existing=True, next_run_time=now,
        )  # fmt: skip
    if cluster:
        scheduler.add_job(
            cluster_tick, "interval", minutes=settings.cluster.interval_minutes, id="cluster",
            replace_existing=True, next_run_time=now + timedelta(seconds=5),
        )  # fmt: skip
    return scheduler
