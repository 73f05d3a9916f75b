"""APScheduler 3.x jobs that only tick: each tick asks the database what is due.

Missed runs are coalesced into one (a daemon back after two hours of downtime fetches each
overdue feed once, because ``next_check_at`` decides, not the number of missed ticks). Jobs
have fixed ids and ``replace_existing``, never overlap themselves (``max_instances=1``), and
a late tick still runs once (generous misfire grace). On SQLite the fetch and cluster ticks
take the same file locks as the cron commands, so a cron `aggregator fetch` next to the
daemon never fetches a feed twice; on PostgreSQL the database arbitrates between processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from aggregator import metrics
from aggregator.config import Settings
from aggregator.locks import FileLock, command_lock, is_sqlite
from aggregator.pipeline import (
    ParsePool,
    clustering_role,
    make_analyzer,
    prune,
    recluster,
    refresh_due,
    worker_id,
)
from aggregator.store import Store

log = logging.getLogger(__name__)

JOB_DEFAULTS = {
    "coalesce": True,  # many missed runs -> one run
    "max_instances": 1,  # a slow pass is never overlapped by the next tick
    "misfire_grace_time": 3600,  # a late tick still runs (once) rather than being dropped
}
# The first retention run waits for the start-up fetch and clustering.
RETENTION_FIRST_DELAY_SECONDS = 120
# A job that has neither started nor reported progress for this long means a stuck
# scheduler (/healthz says so); a fetch pass reports after every feed.
STALE_JOB_SECONDS = 900


@dataclass
class DaemonState:
    """What the ticks share with each other and with /healthz."""

    stop: threading.Event = field(default_factory=threading.Event)
    dirty: threading.Event = field(default_factory=threading.Event)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_fetch_pass: datetime | None = None
    last_cluster_run: datetime | None = None
    last_prune: datetime | None = None
    # job id -> when it last started or reported progress, while it runs
    running: dict[str, datetime] = field(default_factory=dict)
    last_beat: dict[str, datetime] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)
    scheduler: BackgroundScheduler | None = None
    # This process's name in leases, locks and the fetch log.
    worker: str = field(default_factory=worker_id)
    _idle: threading.Condition = field(default_factory=threading.Condition)

    def beat(self, job: str) -> None:
        now = datetime.now(UTC)
        self.last_beat[job] = now
        if job in self.running:
            self.running[job] = now

    @contextmanager
    def job(self, name: str) -> Iterator[None]:
        with self._idle:
            self.running[name] = datetime.now(UTC)
        self.beat(name)
        try:
            yield
            self.last_error.pop(name, None)
        except Exception as e:
            self.last_error[name] = f"{type(e).__name__}: {e}"
            raise
        finally:
            with self._idle:
                self.running.pop(name, None)
                self._idle.notify_all()
            self.beat(name)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job runs; False if some still run after ``timeout`` seconds."""
        with self._idle:
            return self._idle.wait_for(lambda: not self.running, timeout)

    def health(self) -> dict[str, Any]:
        """Is the scheduler alive: running, and no job silent for STALE_JOB_SECONDS."""
        now = datetime.now(UTC)
        running = bool(self.scheduler is not None and self.scheduler.running)
        jobs: dict[str, Any] = {}
        alive = running and not self.stop.is_set()
        if self.scheduler is not None and running:
            for job in self.scheduler.get_jobs():
                beat = self.last_beat.get(job.id)
                next_run = job.next_run_time
                silent = (now - (beat or self.started_at)).total_seconds()
                # A job is stale when it should have run (or reported) long ago.
                overdue = next_run is not None and (now - next_run).total_seconds()
                stale = bool(overdue and overdue > STALE_JOB_SECONDS) or (
                    job.id in self.running and silent > STALE_JOB_SECONDS
                )
                alive = alive and not stale
                jobs[job.id] = {
                    "running": job.id in self.running,
                    "last_run": beat.isoformat() if beat else None,
                    "next_run": next_run.isoformat() if next_run else None,
                    "error": self.last_error.get(job.id),
                }
        return {"alive": alive, "started_at": self.started_at.isoformat(), "jobs": jobs}


def _locked_tick(
    lock: FileLock | None, name: str, state: DaemonState, fn: Callable[[], None]
) -> None:
    """Run ``fn`` as job ``name``, unless stopping or a cron command holds ``lock``."""
    if state.stop.is_set():
        return
    if lock is not None and not lock.try_acquire():
        log.info("%s tick skipped: %s", name, lock.message())
        state.beat(name)
        return
    try:
        with state.job(name):
            fn()
    finally:
        if lock is not None:
            lock.release()


def build_scheduler(
    settings: Settings,
    store: Store,
    state: DaemonState,
    *,
    fetch: bool = True,
    cluster: bool = True,
    retention: bool | None = None,
) -> BackgroundScheduler:
    """The daemon's jobs: ``fetch`` and ``cluster`` ticks, and ``retention`` (with cluster)."""
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults=JOB_DEFAULTS)
    state.scheduler = scheduler
    now = datetime.now(UTC)
    worker = state.worker
    analyzer = make_analyzer(settings) if cluster else None
    sqlite = is_sqlite(settings)
    fetch_lock = command_lock(settings, "fetch") if sqlite else None
    cluster_lock = command_lock(settings, "cluster") if sqlite else None
    # Its own descriptor: flock excludes it from a cluster run in this process too.
    retention_lock = command_lock(settings, "cluster") if sqlite else None
    retention = cluster if retention is None else retention
    # One pool of parse workers for the daemon's life: ticks reuse warm workers. Idle
    # workers exit on their own when the daemon does (EOF on their stdin).
    parser = ParsePool(settings.fetch)

    def fetch_pass() -> None:
        report = refresh_due(
            settings,
            store,
            stop=state.stop,
            progress=lambda total, o: state.beat("fetch"),
            parser=parser,
            worker=worker,
            only_fetcher=fetch_lock is not None,  # SQLite: the fetch lock is held
        )
        state.last_fetch_pass = datetime.now(UTC)
        if report.outcomes:
            log.info(
                "fetched %d feeds: %d new entries, %d errors",
                len(report.outcomes),
                report.new_entries,
                len(report.errors),
            )
        if report.new_entries and not state.stop.is_set():
            state.dirty.set()
            if cluster:  # new articles: regroup now rather than at the next cluster tick
                scheduler.modify_job("cluster", next_run_time=datetime.now(UTC))

    def cluster_run() -> None:
        with clustering_role(store, worker) as held:
            if not held:
                return
            state.dirty.clear()
            log.info("clustering started by %s", worker)
            started = time.perf_counter()
            report = recluster(settings, store, datetime.now(UTC), analyzer=analyzer)
            kind = "full" if report.full else "incremental"
            metrics.CLUSTER_SECONDS.labels(kind).observe(time.perf_counter() - started)
            log.info("clustering finished by %s", worker)
        state.last_cluster_run = datetime.now(UTC)

    def retention_run() -> None:
        prune(settings, store, datetime.now(UTC))
        state.last_prune = datetime.now(UTC)

    if fetch:
        scheduler.add_job(
            _locked_tick, "interval", args=(fetch_lock, "fetch", state, fetch_pass),
            seconds=settings.fetch.tick_seconds, id="fetch", replace_existing=True,
            next_run_time=now,
        )  # fmt: skip
    if cluster:
        scheduler.add_job(
            _locked_tick, "interval", args=(cluster_lock, "cluster", state, cluster_run),
            minutes=settings.cluster.interval_minutes, id="cluster", replace_existing=True,
            next_run_time=now + timedelta(seconds=5),
        )  # fmt: skip
    if retention and settings.retention.max_age_days > 0:
        scheduler.add_job(
            _locked_tick, "interval", args=(retention_lock, "retention", state, retention_run),
            hours=settings.retention.interval_hours, id="retention", replace_existing=True,
            next_run_time=now + timedelta(seconds=RETENTION_FIRST_DELAY_SECONDS),
        )  # fmt: skip
    return scheduler
