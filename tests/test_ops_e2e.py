"""Daemon and cron as operators run them: real CLI subprocesses, a real SQLite file, a real
local feed server. Restart after downtime, one daemon per database, overlapping cron runs,
SIGTERM mid-fetch, /healthz and /metrics of a running daemon.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import base_env, free_port, run_cli, wait_for_http
from tests.feed_server import FeedServer

pytestmark = pytest.mark.slow


@pytest.fixture
def feed_server() -> Iterator[list[FeedServer]]:
    servers: list[FeedServer] = []
    yield servers
    for s in servers:
        s.stop()


def start(servers: list[FeedServer], feeds: int, **kwargs: float) -> FeedServer:
    server = FeedServer(feeds, **kwargs)  # type: ignore[arg-type]
    servers.append(server)
    return server


def env_for(tmp: Path, server: FeedServer, **extra: str) -> dict[str, str]:
    return base_env(
        tmp,
        AGGREGATOR_FEEDS_FILE=str(server.write_feeds(tmp / "feeds.toml")),
        AGGREGATOR_SERVER_PORT=str(free_port()),
        AGGREGATOR_FETCH_TICK_SECONDS="1",
        **extra,
    )


def db(tmp: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp / "data" / "aggregator.sqlite3", timeout=30)


def scalar(tmp: Path, sql: str, *args: object) -> int:
    with db(tmp) as conn:
        return conn.execute(sql, args).fetchone()[0]


def wait_until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def daemon(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run"], env=env, stderr=subprocess.PIPE, text=True
    )


def stop(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[int, float, str]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=timeout)
    return code, time.monotonic() - started, proc.stderr.read() if proc.stderr else ""


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_restart_after_two_hours_fetches_each_overdue_feed_once(tmp_path, feed_server) -> None:  # type: ignore[no-untyped-def]
    n = 12
    server = start(feed_server, n)
    env = env_for(tmp_path, server)
    port = env["AGGREGATOR_SERVER_PORT"]
    run_cli("status", env=env)  # create the database
    first = daemon(env)
    try:
        wait_until(lambda: scalar(tmp_path, "SELECT count(*) FROM fetch_log") >= n, 60, "a pass")
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        health = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "ok" and body["database"] == "ok"
        assert body["scheduler"]["alive"] is True
        assert {"fetch", "cluster", "retention"} <= set(body["scheduler"]["jobs"])
        # Same process as the scheduler: counters match what the database recorded.
        values = metric_values(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
        fetched = sum(v for (name, _), v in values.items() if name == "aggregator_fetches_total")
        assert fetched == scalar(tmp_path, "SELECT count(*) FROM fetch_log") == n
        assert values[("aggregator_entries_ingested_total", ())] == 3 * n
        assert values[("aggregator_entries", ())] == scalar(
            tmp_path, "SELECT count(*) FROM entries"
        )
        assert values[("aggregator_parse_seconds_count", ())] == n
        assert values[("aggregator_feeds", (("state", "ok"),))] == n

        # A second daemon on the same SQLite file refuses, in one line, with a non-zero code.
        second = run_cli("run", env={**env, "AGGREGATOR_SERVER_PORT": str(free_port())},
                         check=False, timeout=30)  # fmt: skip
        assert second.returncode == 3, second.stderr
        assert second.stderr.strip().count("\n") == 0, second.stderr
        assert "a daemon (aggregator run) on this database already runs (pid" in second.stderr
        print(f"second daemon: exit {second.returncode}: {second.stderr.strip()}")
    finally:
        code, _, stderr = stop(first)
    assert code == 0, stderr

    # Simulate two hours of downtime: every feed is two hours overdue.
    with db(tmp_path) as conn:
        conn.execute("UPDATE sources SET next_check_at = datetime('now', '-2 hours'), "
                     "last_fetched_at = datetime('now', '-150 minutes')")  # fmt: skip
        conn.execute("UPDATE fetch_log SET started_at = datetime(started_at, '-150 minutes'), "
                     "finished_at = datetime(finished_at, '-150 minutes')")  # fmt: skip
    before = scalar(tmp_path, "SELECT count(*) FROM fetch_log")
    server.reset()
    again = daemon(env)
    try:
        wait_until(lambda: server.total() >= n, 60, "the restarted daemon's pass")
        time.sleep(5)  # five more fetch ticks (tick_seconds = 1): none may fetch again
        per_feed = dict(server.arrivals)
        with db(tmp_path) as conn:
            rows = conn.execute(
                "SELECT source_id, count(*) FROM fetch_log WHERE id > ? GROUP BY source_id",
                (before,),
            ).fetchall()
    finally:
        code, _, stderr = stop(again)
    assert code == 0, stderr
    assert sorted(per_feed) == sorted(server.paths()) and set(per_feed.values()) == {1}, per_feed
    assert len(rows) == n and {c for _, c in rows} == {1}, rows
    print(f"{n} feeds two hours overdue, daemon restarted: each overdue feed fetched exactly once "
          f"({sum(per_feed.values())} requests, {sum(c for _, c in rows)} fetch_log rows, "
          "over 5+ ticks)")  # fmt: skip


def test_sigterm_during_a_fetch_pass_exits_within_seconds(tmp_path, feed_server) -> None:  # type: ignore[no-untyped-def]
    server = start(feed_server, 3, delay=30.0)
    env = env_for(tmp_path, server)
    run_cli("status", env=env)

    def sigterm_in_flight(command: str) -> tuple[int, float, str]:
        """Start `aggregator COMMAND`, SIGTERM it once its first request is in flight."""
        arrived = server.total()
        proc = subprocess.Popen([sys.executable, "-m", "aggregator", command], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        try:
            wait_until(lambda: server.total() > arrived, 60, f"`{command}` fetching")
        finally:
            result = stop(proc)
        return result

    code, took, stderr = sigterm_in_flight("run")
    assert code == 0, stderr
    assert took < 8, f"the daemon took {took:.1f} s to stop"
    assert "abandoned" in stderr and "stopped" in stderr
    cron_code, cron_took, cron_err = sigterm_in_flight("fetch")
    assert cron_code == 143, cron_err
    assert cron_took < 8, f"`aggregator fetch` took {cron_took:.1f} s to stop"

    with db(tmp_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Abandoned fetches left no trace: no log row, no entries, every feed still due.
        assert conn.execute("SELECT count(*) FROM fetch_log").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 0
        assert (
            conn.execute("SELECT count(*) FROM sources WHERE next_check_at IS NULL").fetchone()[0]
            == 3
        )
    server.delay = 0
    done = run_cli("fetch", env=env)
    assert "fetched 3 feeds: 9 new entries, 0 errors" in done.stdout
    print(f"SIGTERM mid-fetch: daemon stopped in {took:.1f} s (exit {code}), "
          f"`aggregator fetch` in {cron_took:.1f} s (exit {cron_code}); database consistent, "
          "the next fetch stored 9 entries once")  # fmt: skip


def test_overlapping_cron_fetches_never_double_fetch(tmp_path, feed_server) -> None:  # type: ignore[no-untyped-def]
    server = start(feed_server, 4, delay=1.5, missing=1)
    env = env_for(tmp_path, server, AGGREGATOR_LOG_FORMAT="json")
    run_cli("status", env=env)  # create the database before the race
    cmd = [sys.executable, "-m", "aggregator", "fetch"]
    pipes = {"env": env, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    first = subprocess.Popen(cmd, **pipes)  # type: ignore[call-overload]
    wait_until(lambda: server.total() >= 1, 60, "the first fetch under way")
    waiter = subprocess.Popen([*cmd, "--wait", "60"], **pipes)  # type: ignore[call-overload]
    second = run_cli("fetch", env=env, check=False)
    out, err = first.communicate(timeout=60)
    w_out, w_err = waiter.communicate(timeout=60)

    assert second.returncode == 0, second.stderr
    assert "a fetch pass already runs (pid" in second.stderr and "nothing done" in second.stderr
    assert "fetched" not in second.stdout
    # Individual feed errors (the 404) do not make the exit code non-zero.
    assert first.returncode == 0, err
    assert "fetched 5 feeds: 12 new entries, 1 errors" in out
    assert waiter.returncode == 0 and "fetched 0 feeds" in w_out, w_err
    assert set(server.arrivals.values()) == {1} and len(server.arrivals) == 5, server.arrivals
    assert scalar(tmp_path, "SELECT count(*) FROM fetch_log") == 5
    # Not a terminal: progress as plain lines; logs as JSON lines.
    assert "fetch: 5/5 feeds" in err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r["level"] == "WARNING" and "HTTP 404" in r["message"] for r in logs), err

    status = run_cli("status", env=env).stdout
    summary = status.split("feeds with errors (1):")[1]
    assert "/missing/0.xml" not in summary and "HTTP 404 Not Found" in summary
    broken = base_env(tmp_path, AGGREGATOR_DATABASE_URL="postgresql+psycopg://u@127.0.0.1:9/x")
    failed = run_cli("fetch", env=broken, check=False)
    assert failed.returncode == 1 and failed.stderr.strip().count("\n") == 0, failed.stderr
    print(f"overlapping cron fetches: 3 runs, {server.total()} requests for 5 feeds "
          "(0 duplicates); the overlapping run exited 0 doing nothing, the waiting one "
          "found nothing due")  # fmt: skip


def test_importing_an_opml_of_500_feeds_shows_progress_lines(tmp_path: Path) -> None:
    outlines = "".join(
        f'<outline type="rss" text="Flux {n}" xmlUrl="http://127.0.0.1:9/flux/{n}.xml"/>'
        for n in range(500)
    )
    opml = tmp_path / "big.opml"
    opml.write_text(f'<?xml version="1.0"?><opml version="2.0"><head/><body>{outlines}'
                    "</body></opml>", encoding="utf-8")  # fmt: skip
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("")
    proc = run_cli("feeds", "import-opml", str(opml),
                   env=base_env(tmp_path, AGGREGATOR_FEEDS_FILE=str(feeds)))  # fmt: skip
    assert "imported 500 feeds (0 already present)" in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("import: ")]
    assert lines and lines[-1] == "import: 500/500 feeds", proc.stderr
    assert "\r" not in proc.stderr  # no bar drawing when stderr is not a terminal
