"""Several workers on one PostgreSQL: real `aggregator run` subprocesses, a real local server.

Fetch workers share the feeds through leases (no feed fetched twice for one due slot, none
forgotten, a killed worker's feeds taken over once its leases expire); the clustering role
is held by one process at a time.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.store import Store
from tests.conftest import base_env

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ITEMS_PER_FEED = 3
# Recent dates, fixed for the run (the feeds do not change): inside the clustering window.
PUBLISHED = [format_datetime(datetime.now(UTC) - timedelta(hours=k + 1)) for k in range(9)]
TOPICS = ["la réforme des retraites", "le budget de l'État", "la grève à la SNCF"]


def rss(n: int) -> bytes:
    items = "".join(
        f"<item><title>Dépêche {n}-{k} : {TOPICS[(n + k) % 3]}</title>"
        f"<link>https://media{n}.fr/{k}</link><guid>m{n}-{k}</guid>"
        f"<pubDate>{PUBLISHED[k]}</pubDate></item>"
        for k in range(ITEMS_PER_FEED)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Média {n}</title>{items}</channel></rss>"
    ).encode()


class FeedServer:
    """Generated feeds at /f/N.xml, spread over HOSTS loopback addresses (127.0.0.1,
    127.0.0.2, ...: workers keep a host to one of them at a time, as on the internet);
    paths in ``hold`` answer their first request only when ``release`` is set (a slow
    server holding a worker mid-fetch)."""

    HOSTS = 100

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.hold: set[str] = set()
        self.held = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = re.fullmatch(r"/f/(\d+)\.xml", self.path)
                if match is None:
                    self.send_error(404)
                    return
                first = self.path not in server.hits
                server.hits.append(self.path)
                if first and self.path in server.hold:
                    server.held.set()
                    server.release.wait(60)
                body = rss(int(match.group(1)))
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the worker was killed while we held its request
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.servers = [
            ThreadingHTTPServer((f"127.0.0.{1 + i}", 0), Handler) for i in range(self.HOSTS)
        ]
        for httpd in self.servers:
            httpd.daemon_threads = True
            threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def url(self, n: int) -> str:
        host, port = self.servers[n % self.HOSTS].server_address[:2]
        return f"http://{host}:{port}/f/{n}.xml"

    def write_feeds(self, path: Path, count: int) -> None:
        path.write_text(
            "".join(
                f'[[feeds]]\nurl = "{self.url(n)}"\noutlet = "Média {n}"\nsection = "Une"\n\n'
                for n in range(count)
            ),
            encoding="utf-8",
        )

    def stop(self) -> None:
        self.release.set()
        for httpd in self.servers:
            httpd.shutdown()
            httpd.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.stop()


def start_worker(env: dict[str, str], role: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run", "--role", role],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_env(tmp: Path, db: str, feeds: Path, **extra: str) -> dict[str, str]:
    return base_env(
        tmp,
        AGGREGATOR_DATABASE_URL=db,
        AGGREGATOR_FEEDS_FILE=str(feeds),
        AGGREGATOR_FETCH_TICK_SECONDS="0.5",
        AGGREGATOR_LOG_LEVEL="INFO",
        **extra,
    )


def entry_counts(store: Store) -> tuple[int, int]:
    """(entries stored, distinct (outlet, key) pairs)."""
    with store.engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM entries").scalar_one()
        distinct = conn.exec_driver_sql(
            "SELECT count(*) FROM (SELECT DISTINCT outlet, key FROM entries) AS d"
        ).scalar_one()
    return int(total), int(distinct)


def test_three_fetch_workers_share_300_feeds_without_double_fetches(
    tmp_path: Path, postgres_url: str, feed_server: FeedServer
) -> None:
    feeds = tmp_path / "feeds.toml"
    feed_server.write_feeds(feeds, 300)
    # Every feed is due again 6 s after each fetch: over the run each comes due many times.
    env = worker_env(tmp_path, postgres_url, feeds, AGGREGATOR_FETCH_INTERVAL_MINUTES="0.1")
    procs = [start_worker(env, "fetch", tmp_path / f"w{i}.log") for i in range(3)]
    started = time.monotonic()
    try:
        # Until every feed was fetched and feeds came due three times on average (a loaded
        # machine is slower), at most 75 s.
        probe = sa.create_engine(postgres_url)
        while time.monotonic() - started < 75:
            time.sleep(1)
            assert all(p.poll() is None for p in procs), [p.returncode for p in procs]
            with probe.connect() as conn:
                fetches, feeds_seen = conn.exec_driver_sql(
                    "SELECT count(*), count(DISTINCT source_id) FROM fetch_log"
                ).one()
            if fetches >= 900 and feeds_seen == 300:
                break
        probe.dispose()
    finally:
        stop_workers(procs)
    ran = time.monotonic() - started
    logs = "".join((tmp_path / f"w{i}.log").read_text(errors="replace") for i in range(3))
    assert "Traceback" not in logs, logs[-3000:]

    store = Store(postgres_url)
    try:
        with store.engine.connect() as conn:
            duplicates = conn.execute(
                sa.text(
                    "SELECT count(*) FROM (SELECT source_id, due_at FROM fetch_log "
                    "GROUP BY source_id, due_at HAVING count(*) > 1) AS d"
                )
            ).scalar_one()
            never = conn.execute(
                sa.text(
                    "SELECT count(*) FROM sources s WHERE NOT EXISTS "
                    "(SELECT 1 FROM fetch_log f WHERE f.source_id = s.id)"
                )
            ).scalar_one()
            fetches, slots_per_feed = conn.execute(
                sa.text(
                    "SELECT count(*), count(*)::float / count(DISTINCT source_id) FROM fetch_log"
                )
            ).one()
            per_worker = dict(
                conn.execute(
                    sa.text("SELECT worker, count(*) FROM fetch_log GROUP BY worker")
                ).all()
            )
            errors = conn.execute(
                sa.text("SELECT count(*) FROM fetch_log WHERE outcome = 'error'")
            ).scalar_one()
            leftover = conn.execute(
                sa.text("SELECT count(*) FROM sources WHERE lease_owner IS NOT NULL")
            ).scalar_one()
        total, distinct = entry_counts(store)
    finally:
        store.close()
    print(
        f"3 workers, 300 feeds, {ran:.0f} s: {fetches} fetches ({slots_per_feed:.1f} due slots per "
        f"feed), per worker {sorted(per_worker.values())}; duplicate fetches per feed and "
        f"due slot: {duplicates}, feeds never fetched: {never}; entries {total} "
        f"({distinct} distinct), leases left after SIGTERM: {leftover}"
    )
    assert duplicates == 0
    assert never == 0
    assert errors == 0
    assert slots_per_feed >= 2  # feeds did come due again while the workers ran
    assert len(per_worker) == 3 and min(per_worker.values()) > 0.1 * fetches  # work is shared
    assert total == distinct == 300 * ITEMS_PER_FEED
    assert leftover == 0  # stopping workers give their claims back


def test_a_killed_workers_lease_expires_and_another_fetches_its_feed(
    tmp_path: Path, postgres_url: str, feed_server: FeedServer
) -> None:
    feeds = tmp_path / "feeds.toml"
    feed_server.write_feeds(feeds, 20)
    slow = "/f/7.xml"
    feed_server.hold.add(slow)
    lease = 4.0
    env = worker_env(
        tmp_path, postgres_url, feeds, AGGREGATOR_FETCH_LEASE_SECONDS=str(lease),
        AGGREGATOR_FETCH_CONCURRENCY="2",
    )  # fmt: skip
    first = start_worker(env, "fetch", tmp_path / "a.log")
    try:
        assert feed_server.held.wait(30), "the first worker never requested the slow feed"
        time.sleep(0.3)
        first.send_signal(signal.SIGKILL)  # mid-fetch: the server still holds its request
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    killed_at = time.time()
    feed_server.release.set()
    store = Store(postgres_url)
    try:
        with store.engine.connect() as conn:
            held_by = conn.execute(
                sa.text("SELECT lease_owner, lease_until FROM sources WHERE url LIKE :u"),
                {"u": f"%{slow}"},
            ).one()
        assert held_by.lease_owner is not None  # the dead worker's lease is still there
        second = start_worker(env, "fetch", tmp_path / "b.log")
        try:
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                with store.engine.connect() as conn:
                    done = conn.execute(
                        sa.text(
                            "SELECT count(*) FROM sources WHERE last_fetched_at IS NULL "
                            "OR lease_owner IS NOT NULL"
                        )
                    ).scalar_one()
                if done == 0:
                    break
                time.sleep(0.5)
        finally:
            stop_workers([second])
        with store.engine.connect() as conn:
            slow_fetches = conn.execute(
                sa.text(
                    "SELECT f.worker, f.started_at FROM fetch_log f JOIN sources s "
                    "ON s.id = f.source_id WHERE s.url LIKE :u"
                ),
                {"u": f"%{slow}"},
            ).all()
            fetched_feeds = conn.execute(
                sa.text("SELECT count(DISTINCT source_id) FROM fetch_log")
            ).scalar_one()
        total, distinct = entry_counts(store)
    finally:
        store.close()
    expected = 20 * ITEMS_PER_FEED
    lost, duplicated = expected - distinct, total - distinct
    took_over = slow_fetches[0].started_at if slow_fetches else None
    print(
        f"worker killed mid-fetch, lease {lease:.0f} s: the slow feed fetched "
        f"{len(slow_fetches)} time(s) by the second worker, "
        f"{(took_over.timestamp() - killed_at) if took_over else float('nan'):.1f} s after "
        f"the kill; {fetched_feeds}/20 feeds fetched; entries lost {lost}, "
        f"duplicated {duplicated}"
    )
    assert len(slow_fetches) == 1  # the dead worker logged nothing; the second fetched it once
    assert isinstance(took_over, datetime)
    assert took_over >= held_by.lease_until  # taken over only once the lease had expired
    assert fetched_feeds == 20
    assert lost == 0 and duplicated == 0


CLUSTER_LINE = re.compile(r"^(\S+ \S+) INFO \S+: clustering (started|finished) by (\S+)$", re.M)


def cluster_events(logs: list[Path]) -> tuple[list[tuple[datetime, str, str]], int]:
    """(time, started|finished, process) from the processes' logs, and ticks skipped."""
    events, skipped = [], 0
    for log in logs:
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        skipped += text.count("clustering skipped")
        for when, what, who in CLUSTER_LINE.findall(text):
            events.append((datetime.strptime(when, "%Y-%m-%d %H:%M:%S,%f"), what, who))
    return sorted(events), skipped


def test_one_process_at_a_time_holds_the_cluster_role(
    tmp_path: Path, postgres_url: str, feed_server: FeedServer
) -> None:
    feeds = tmp_path / "feeds.toml"
    feed_server.write_feeds(feeds, 40)
    env = worker_env(
        tmp_path, postgres_url, feeds, AGGREGATOR_CLUSTER_INTERVAL_MINUTES="0.01",
        AGGREGATOR_CLUSTER_REBUILD_INTERVAL_HOURS="0",
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "aggregator", "fetch"], env=env, check=True, capture_output=True
    )
    logs = [tmp_path / "c1.log", tmp_path / "c2.log"]
    # Slightly different tick periods: with equal ones the two ticks can stay in phase,
    # one always landing inside the other's run (correctly turned away, forever).
    periods = ["0.01", "0.013"]
    procs = [
        start_worker({**env, "AGGREGATOR_CLUSTER_INTERVAL_MINUTES": period}, "cluster", log)
        for period, log in zip(periods, logs, strict=True)
    ]
    store = Store(postgres_url)
    held_from = held_until = None
    began = time.monotonic()
    try:
        # The processes tick every 0.6 s and 0.78 s. Once both have run, this test takes
        # the role itself for 4 s, as a third process would: neither may start meanwhile.
        while time.monotonic() - began < 45:
            time.sleep(0.5)
            events, _ = cluster_events(logs)
            if held_from is None and len({who for _, _, who in events}) == 2:
                while not store.acquire_lock("cluster", "test", _utc(), 30):
                    time.sleep(0.05)
                held_from = datetime.now()
                time.sleep(4)
                held_until = datetime.now()
                store.release_lock("cluster", "test")
            if held_until is not None and (datetime.now() - held_until).total_seconds() > 4:
                break
    finally:
        stop_workers(procs)
        store.close()
    ran = time.monotonic() - began
    events, skipped = cluster_events(logs)
    holders: set[str] = set()
    overlaps = 0
    for _, what, who in events:
        if what == "started":
            overlaps += bool(holders)
            holders.add(who)
        else:
            holders.discard(who)
    workers = {who for _, _, who in events}
    started = sum(1 for _, what, _ in events if what == "started")
    during = [
        when
        for when, what, _ in events
        if what == "started" and held_from and held_until and held_from < when < held_until
    ]
    print(
        f"2 cluster-role processes, {ran:.0f} s: {started} clustering runs by {len(workers)} "
        f"process(es), {skipped} ticks skipped (role held by another), overlapping runs: "
        f"{overlaps}, runs started while a third holder had the role for 4 s: {len(during)}"
    )
    tail = "\n".join(log.read_text(errors="replace")[-1500:] for log in logs)
    assert held_from is not None, tail  # both processes did run clustering
    assert len(workers) == 2 and started >= 3, tail
    assert skipped >= 6, tail  # ticks during the 4 s hold were turned away
    assert overlaps == 0
    assert during == []


def _utc() -> datetime:
    return datetime.now(UTC)
