"""Durability: SIGKILL the real fetcher (``aggregator fetch --all``) mid-ingest, 30 times."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aggregator.config import load_settings
from aggregator.pipeline import refresh_due, sync_feed_list
from aggregator.store import Store
from tests.conftest import base_env, run_cli

KILLS = 30
SEED = 20250303


def database_file(data_dir: Path) -> Path:
    return data_dir / "aggregator.sqlite3"


def snapshot(path: Path) -> tuple[list[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """Entries as (outlet, key, title, link, summary) rows, and (outlet, key, feed) links."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT outlet, key, title, link, summary_text FROM entries ORDER BY outlet, key"
        ).fetchall()
        links = set(
            db.execute(
                "SELECT e.outlet, e.key, s.url FROM entry_sources es "
                "JOIN entries e ON e.id = es.entry_id JOIN sources s ON s.id = es.source_id"
            ).fetchall()
        )
    return rows, links


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.slow
def test_sigkill_while_ingesting_loses_and_duplicates_nothing(
    shared_data: Path, replay: Callable[..., Any], tmp_path: Path
) -> None:
    server = replay(shared_data / "feeds" / "multi-outlet-2025-02-10", latency=(0.0, 0.02))
    feeds = tmp_path / "feeds.toml"
    server.write_feeds(feeds)

    # The reference: one clean ingest of the same feeds into its own database.
    ref_env = base_env(tmp_path / "ref", AGGREGATOR_FEEDS_FILE=str(feeds))
    ref_settings = load_settings(env=ref_env)
    ref_store = Store(ref_settings.database.url)
    sync_feed_list(ref_settings, ref_store)
    refresh_due(ref_settings, ref_store)
    ref_store.close()
    reference, reference_links = snapshot(database_file(tmp_path / "ref" / "data"))
    assert len(reference) > 1000

    env = base_env(tmp_path / "killed", AGGREGATOR_FEEDS_FILE=str(feeds))
    rng = random.Random(SEED)
    killed = finished = 0
    started = time.monotonic()
    for _ in range(KILLS):
        seen = len(server.requests)
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "fetch", "--all"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Wait for the first request of this run, then kill at a random point after it.
        deadline = time.monotonic() + 60
        while len(server.requests) == seen and proc.poll() is None:
            assert time.monotonic() < deadline, "the fetcher never sent a request"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        else:
            finished += 1
        proc.wait(timeout=30)
    kill_seconds = time.monotonic() - started
    db = database_file(tmp_path / "killed" / "data")
    after_kills = integrity(db)
    partial, _ = snapshot(db)

    run_cli("fetch", "--all", env=env)  # the restart
    got, got_links = snapshot(db)
    keys = [(r[0], r[1]) for r in got]
    ref_keys = {(r[0], r[1]) for r in reference}
    lost = len(ref_keys - set(keys))
    duplicated = (len(keys) - len(set(keys))) + len(set(keys) - ref_keys)
    check = integrity(db)
    print(
        f"{KILLS} SIGKILLs ({killed} mid-run, {finished} runs had finished; "
        f"{len(partial)}/{len(reference)} entries stored before the restart) in "
        f"{kill_seconds:.0f}s: integrity_check {check}, {lost} entries lost, "
        f"{duplicated} duplicated"
    )
    assert after_kills == "ok" and check == "ok"
    assert killed >= KILLS // 2  # most kills did land while ingesting
    assert lost == 0 and duplicated == 0
    assert got == reference and got_links == {
        (o, k, u) for o, k, u in reference_links
    }  # every entry linked to the same feeds too
