"""End to end, as a user would: replayed real feeds, the CLI in subprocesses, a feed reader's parse."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import feedparser
import httpx
import pytest

from tests.conftest import base_env, free_port, run_cli, wait_for_http

# The saved feeds were collected around 2025-02-10: cluster the window ending that night.
AT = "2025-02-10T23:00"


@pytest.fixture
def instance(tmp_path: Path, multi_outlet: Path, replay):  # type: ignore[no-untyped-def]
    server = replay(multi_outlet)
    feeds = tmp_path / "feeds.toml"
    server.write_feeds(feeds)
    port = free_port()
    env = base_env(tmp_path, AGGREGATOR_FEEDS_FILE=str(feeds), AGGREGATOR_SERVER_PORT=str(port))
    return env, port, server


def test_fetch_cluster_serve_and_subscribe(instance) -> None:  # type: ignore[no-untyped-def]
    env, port, _ = instance
    fetched = run_cli("fetch", env=env)
    assert "3 errors" in fetched.stdout  # the three HTML pages
    run_cli("cluster", "--at", AT, env=env)
    status = run_cli("status", env=env).stdout
    listing, summary = status.split("feeds with errors (3):")
    assert listing.count("not a feed: got an HTML page") == 3
    assert summary.count("not a feed: got an HTML page") == 3
    entries_line = next(ln for ln in status.splitlines() if ln.startswith("entries:"))
    before = int(entries_line.split()[1])
    assert before > 1000

    # A second pass over unchanged feeds stores nothing new.
    again = run_cli("fetch", "--all", env=env)
    assert "0 new entries" in again.stdout
    status = run_cli("status", env=env).stdout
    assert f"entries: {before}" in status

    serve = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/")
        body = httpx.get(f"http://127.0.0.1:{port}/feed.atom").content
        d = feedparser.parse(body)
        assert d.bozo == 0, d.get("bozo_exception")
        assert len(d.entries) > 10
        ids = [e.id for e in d.entries]
        assert len(ids) == len(set(ids))
        multi = [
            e
            for e in d.entries
            if len({ln.get("title") for ln in e.links if ln.rel == "related"} | {e.author}) >= 2
        ]
        assert multi, "no story links articles from two or more outlets"
        assert "Voir aussi" in multi[0].content[0].value
        index = httpx.get(f"http://127.0.0.1:{port}/").text
        assert d.entries[0].title.split(" ")[0] in index
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=15) == 0, serve.stderr.read() if serve.stderr else ""


def test_run_daemon_fetches_clusters_serves_and_stops_on_sigterm(instance) -> None:  # type: ignore[no-untyped-def]
    env, port, server = instance
    env = {**env, "AGGREGATOR_CLUSTER_WINDOW_HOURS": str(24 * 365 * 10)}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 90
        entries: list = []
        # Stories may be served before the first fetch pass ends (the cluster tick runs
        # on its own); wait for both: every feed requested, and stories in the feed.
        while time.monotonic() < deadline:
            if len(server.requests) >= 71:
                entries = feedparser.parse(
                    httpx.get(f"http://127.0.0.1:{port}/feed.atom").content
                ).entries
                if entries:
                    break
            time.sleep(0.5)
        assert len(server.requests) >= 71, "the daemon did not fetch every feed within 90 s"
        assert entries, "the daemon served no story within 90 s"
    finally:
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=20)
        stderr = daemon.stderr.read() if daemon.stderr else ""
    assert code == 0, stderr
    assert time.monotonic() - started < 10
    assert "stopped" in stderr


def test_second_daemon_port_in_use_is_a_clear_error(instance) -> None:  # type: ignore[no-untyped-def]
    env, port, _ = instance
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        proc = run_cli("serve", env=env, check=False, timeout=30)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
