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
from aggregator.pipeline import make_analyzer, recluster, refresh_due, worker_id
from aggregator.store import Store

log = logging.getLogger(__name__)

JOB_DEFAULTS = {
    "coalesce": True,  # many missed runs -> one run
    "max_instances": 1,  # a slow pass is never overlapped by the next tick
    "misfire_grace_time": 3600,  # a late tick still runs (once) rather than being dropped
}
# The clustering role: one process at a time holds this leased row of the locks table
# (renewed while a run lasts; a killed holder loses it after CLUSTER_LOCK_SECONDS).
CLUSTER_LOCK = "cluster"
CLUSTER_LOCK_SECONDS = 120.0


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
    worker = worker_id()
    analyzer = make_analyzer(settings) if cluster else None

    def fetch_tick() -> None:
        if state.stop.is_set():
            return
        report = refresh_due(settings, store, stop=state.stop, worker=worker)
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
        with store.holding_lock(CLUSTER_LOCK, worker, CLUSTER_LOCK_SECONDS) as held:
            if not held:
                log.info(
                    "clustering skipped: %s holds the cluster role", store.lock_holder(CLUSTER_LOCK)
                )
                return
            state.dirty.clear()
            log.info("clustering started by %s", worker)
            recluster(settings, store, datetime.now(UTC), analyzer=analyzer)
            log.info("clustering finished by %s", worker)
        state.last_cluster_run = datetime.now(UTC)

    if fetch:
        scheduler.add_job(
            fetch_tick, "interval", seconds=settings.fetch.poll_seconds, id="fetch",
            replace_existing=True, next_run_time=now,
        )  # fmt: skip
    if cluster:
        scheduler.add_job(
            cluster_tick, "interval", minutes=settings.cluster.interval_minutes, id="cluster",
            replace_existing=True, next_run_time=now + timedelta(seconds=5),
        )  # fmt: skip
    return scheduler
