"""/healthz and /metrics on the real app over HTTP, file locks, and the daemon's jobs."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.cli.progress import Progress
from aggregator.config import Settings
from aggregator.locks import FileLock, command_lock, daemon_lock, lock_path
from aggregator.models import FeedSpec
from aggregator.pipeline import refresh_due
from aggregator.scheduler import DaemonState, build_scheduler
from aggregator.store import Store
from aggregator.web import create_app
from tests.conftest import LiveServer
from tests.feed_server import FeedServer


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def counter(values: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def feeds() -> FeedServer:
    server = FeedServer(3, missing=1)
    yield server  # type: ignore[misc]
    server.stop()


def add_feeds(store: Store, server: FeedServer) -> None:
    for n, path in enumerate(server.paths()):
        store.add_source(FeedSpec(server.base_url + path, f"Outlet {n}", ""), datetime.now(UTC))


def test_metrics_count_what_this_process_did_and_read_gauges_from_the_database(
    settings: Settings, store: Store, feeds: FeedServer
) -> None:
    add_feeds(store, feeds)
    server = LiveServer(create_app(settings, store)).start()
    try:
        before = samples(httpx.get(f"{server.url}/metrics").text)
        assert before[("aggregator_queue_lag_seconds", ())] >= 0
        assert before[("aggregator_feeds", (("state", "ok"),))] == 4
        report = refresh_due(settings, store)
        response = httpx.get(f"{server.url}/metrics")
    finally:
        server.stop()
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = samples(response.text)

    def delta(name: str, **labels: str) -> float:
        return counter(after, name, **labels) - counter(before, name, **labels)

    assert report.new_entries == 9
    assert delta("aggregator_fetches_total", outcome="ok") == 3
    assert delta("aggregator_fetches_total", outcome="error") == 1
    assert delta("aggregator_feed_errors_total", kind="http_4xx") == 1
    assert delta("aggregator_entries_ingested_total") == 9
    assert delta("aggregator_parse_seconds_count") == 3
    assert after[("aggregator_entries", ())] == store.count_entries() == 9
    assert after[("aggregator_feeds", (("state", "error"),))] == 1
    assert after[("aggregator_recent_fetches", (("outcome", "ok"),))] == 3
    assert after[("aggregator_queue_lag_seconds", ())] == 0  # nothing is due any more
    assert 0 <= after[("aggregator_last_success_age_seconds", ())] < 60


def test_healthz_is_json_ok_for_a_plain_server_and_503_when_the_database_is_gone(
    settings: Settings, store: Store
) -> None:
    server = LiveServer(create_app(settings, store)).start()
    try:
        ok = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()
    assert ok.status_code == 200
    assert ok.json()["status"] == "ok" and ok.json()["scheduler"] is None
    # A PostgreSQL server that does not answer (nothing listens on port 9).
    gone = Store("postgresql+psycopg://u@127.0.0.1:9/x", migrate_schema=False)
    server = LiveServer(create_app(settings, gone)).start()
    try:
        bad = httpx.get(f"{server.url}/healthz")
        metrics = samples(httpx.get(f"{server.url}/metrics").text)
    finally:
        server.stop()
        gone.close()
    assert bad.status_code == 503
    assert bad.json()["status"] == "unhealthy" and "database unreachable" in bad.json()["problems"]
    assert metrics[("aggregator_database_up", ())] == 0


def test_healthz_follows_the_scheduler_and_the_age_of_the_last_successful_fetch(
    settings: Settings, store: Store
) -> None:
    dead = FeedServer(0, missing=2)  # every feed answers 404
    add_feeds(store, dead)
    state = DaemonState()
    scheduler = build_scheduler(settings, store, state, cluster=False)
    server = LiveServer(create_app(settings, store, probe=state.health)).start()
    try:
        scheduler.start()
        time.sleep(0.5)
        deadline = time.monotonic() + 20
        while store.list_sources()[0].last_error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        fresh = httpx.get(f"{server.url}/healthz")
        # Up for three hours and never a successful fetch: every feed is failing.
        state.started_at -= timedelta(hours=3)
        stale = httpx.get(f"{server.url}/healthz")
        state.started_at += timedelta(hours=3)
        scheduler.shutdown(wait=True)
        stopped = httpx.get(f"{server.url}/healthz")
    finally:
        server.stop()
        dead.stop()
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["scheduler"]["alive"] is True
    assert fresh.json()["feeds"]["error"] == 2
    assert stale.status_code == 503
    assert any("no successful fetch" in p for p in stale.json()["problems"])
    assert stopped.status_code == 503 and "scheduler not alive" in stopped.json()["problems"]


def test_daemon_jobs_tick_with_fixed_ids_coalesced_and_never_overlapping(
    settings: Settings, store: Store
) -> None:
    scheduler = build_scheduler(settings, store, DaemonState())
    scheduler.start(paused=True)  # job defaults apply when the jobs reach the job store
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)
    assert set(jobs) == {"fetch", "cluster", "retention"}
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1
        assert job.misfire_grace_time >= 3600


def test_file_lock_excludes_others_names_its_holder_and_dies_with_it(settings: Settings) -> None:
    path = lock_path(settings, "fetch")
    assert path.name == "aggregator.sqlite3.fetch.lock"
    mine = command_lock(settings, "fetch")
    assert mine.try_acquire()
    other = command_lock(settings, "fetch")  # another descriptor: excluded even in-process
    assert not other.try_acquire()
    assert "a fetch pass already runs (pid" in other.message()
    mine.release()
    assert other.try_acquire()
    other.release()
    # A holder killed with SIGKILL leaves no stale lock.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
         str(daemon_lock(settings).path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert not daemon_lock(settings).try_acquire()
    finally:
        holder.kill()
        holder.wait()
    assert daemon_lock(settings).try_acquire()


def test_lock_of_a_postgresql_database_lives_in_the_data_dir(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url="postgresql+psycopg://u@127.0.0.1:9/x")
    lock = FileLock(lock_path(settings, "fetch"), "x")
    assert lock.path == settings.data.dir / "fetch.lock"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise(tty: bool) -> None:
    stream = Terminal() if tty else io.StringIO()
    with Progress("fetch", "feeds", stream=stream) as bar:
        for _ in range(40):
            bar.advance(40)
    out = stream.getvalue()
    if tty:
        assert "fetch" in out and "40/40" in out and "#" in out
        assert "fetch: 40/40 feeds" not in out
    else:
        assert out.splitlines()[-1] == "fetch: 40/40 feeds"
        assert "#" not in out and len(out.splitlines()) <= 2
