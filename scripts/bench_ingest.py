#!/usr/bin/env python3
"""How fast is ingestion? The real feeds of ../shared/data/feeds, end to end, side by side:

- ``aggregator``: every feed served by scripts/replay_server.py, each outlet on its own
  loopback address (127.0.1.1, 127.0.1.2, ...: as on the internet, where an outlet is a
  host and per-host politeness applies to it), and ingested into a fresh SQLite database
  by ``refresh_due`` (fetch, parse, store, reschedule; per-host spacing 0), i.e. whatever
  the pipeline does, worker pools included;
- ``feedparser``: bare ``feedparser.parse`` (defaults) on the same bytes, in memory, no
  HTTP and no database (the baseline the issue names);
- ``reader``: lemon24/reader ingesting the same feeds from the same servers through its own
  update path into its own fresh SQLite database, with as many workers as our
  ``[fetch] concurrency`` (8);
- ``second pass``: ``refresh_due`` again over the unchanged feeds (conditional GETs: 304).

Figures are feed items processed per second (the same item count for all three). Each case
runs ``--rounds`` times, in a new order each round, and its best round counts.

    python scripts/bench_ingest.py                 # all 183 feeds, 3 rounds
    python scripts/bench_ingest.py --rounds 1 --root ../shared/data/feeds/multi-outlet-2025-02-10

Targets (issue 3): aggregator >= 1.5x bare feedparser and >= 2x reader; second pass >= 50x
faster than the first.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import quote

import feedparser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from replay_server import ReplayServer, feed_files, load_manifest, toml_string  # noqa: E402

from aggregator.config import load_settings  # noqa: E402
from aggregator.pipeline import refresh_due, sync_feed_list  # noqa: E402
from aggregator.store import Store  # noqa: E402

# reader fetches with this many threads: as many as aggregator's [fetch] concurrency.
READER_WORKERS = 8


def default_root() -> Path:
    shared = os.environ.get("AGGREGATOR_SHARED_DATA") or str(ROOT.parent / "shared" / "data")
    return Path(shared) / "feeds"


def bare_feedparser(files: list[Path]) -> Callable[[], int]:
    blobs = [p.read_bytes() for p in files]

    def run() -> int:
        return sum(len(feedparser.parse(b).entries) for b in blobs)

    return run


def ours(
    server: OutletServers, work: Path, state: dict[str, object]
) -> tuple[Callable[[], int], Callable[[], float]]:
    """(first pass into a fresh database -> entries stored, then second pass -> seconds).

    Only ``refresh_due`` is timed (``state["seconds"]``), not creating the database.
    """

    def first() -> int:
        tmp = Path(tempfile.mkdtemp(dir=work))
        feeds = tmp / "feeds.toml"
        server.write_feeds(feeds)
        env = {
            "AGGREGATOR_DATA_DIR": str(tmp / "data"),
            "AGGREGATOR_FEEDS_FILE": str(feeds),
            "AGGREGATOR_FETCH_PER_HOST_INTERVAL_SECONDS": "0",
            "AGGREGATOR_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
            "AGGREGATOR_LOG_LEVEL": "ERROR",
        }
        settings = load_settings(env=env)
        store = Store(settings.database.url)
        sync_feed_list(settings, store)
        state.update(settings=settings, store=store)
        timer = time.perf_counter()
        report = refresh_due(settings, store)
        state["seconds"] = time.perf_counter() - timer
        return store.count_entries() if report.outcomes else 0

    def second() -> float:
        timer = time.perf_counter()
        report = refresh_due(state["settings"], state["store"], all_sources=True)  # type: ignore[arg-type]
        seconds = time.perf_counter() - timer
        assert report.new_entries == 0, "unchanged feeds gave new entries"
        state["store"].close()  # type: ignore[attr-defined]
        return seconds

    return first, second


def _serve_outlets(root: Path, hosts: dict[str, str], conn: Connection) -> None:
    """Child process: one replay server per outlet; send their base URLs, serve until told."""
    servers = {outlet: ReplayServer(root, host=host) for outlet, host in hosts.items()}
    for server in servers.values():
        server.start()
    conn.send({outlet: server.base_url for outlet, server in servers.items()})
    conn.recv()  # any message (or EOF) means stop
    for server in servers.values():
        server.stop()


class OutletServers:
    """One replay server per outlet of the manifest, each on its own loopback address.

    The servers run in a process of their own, as publishers' servers are not in ours:
    sharing the GIL with them would charge their request handling to the client measured.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.manifest = load_manifest(root)
        outlets = sorted({self._outlet(p) for p in feed_files(root)})
        self.hosts = {outlet: f"127.0.1.{n + 1}" for n, outlet in enumerate(outlets)}
        self.base_urls: dict[str, str] = {}

    def _outlet(self, path: Path) -> str:
        return self.manifest.get(str(path.resolve()), {}).get("outlet") or path.parent.name

    def url_for(self, path: Path) -> str:
        rel = path.resolve().relative_to(self.root).as_posix()
        return f"{self.base_urls[self._outlet(path)]}/{quote(rel)}"

    def write_feeds(self, out: Path) -> None:
        lines = []
        for path in feed_files(self.root):
            row = self.manifest.get(str(path.resolve()), {})
            lines += [
                "[[feeds]]",
                f"url = {toml_string(self.url_for(path))}",
                f"outlet = {toml_string(self._outlet(path))}",
                f"section = {toml_string(row.get('section') or path.stem)}",
                "",
            ]
        out.write_text("\n".join(lines), encoding="utf-8")

    def __enter__(self) -> OutletServers:
        self.conn, child = mp.get_context("spawn").Pipe()
        self.process = mp.get_context("spawn").Process(
            target=_serve_outlets, args=(self.root, self.hosts, child), daemon=True
        )
        self.process.start()
        self.base_urls = self.conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.send("stop")
        self.process.join(10)


def with_reader(server: OutletServers, files: list[Path], work: Path) -> Callable[[], int]:
    from reader import make_reader

    def run() -> int:
        tmp = Path(tempfile.mkdtemp(dir=work))
        r = make_reader(str(tmp / "reader.sqlite"))
        try:
            for path in files:
                r.add_feed(server.url_for(path))
            r.update_feeds(workers=READER_WORKERS)
            return int(r.get_entry_counts().total or 0)
        finally:
            r.close()

    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=default_root(), help="folder of saved feeds")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    files = feed_files(args.root)
    items = sum(len(feedparser.parse(p.read_bytes()).entries) for p in files)
    print(f"{len(files)} feed files, {items} items, {sum(p.stat().st_size for p in files)} bytes")

    rng = random.Random(args.seed)
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    second_best = float("inf")
    with tempfile.TemporaryDirectory() as work_dir, OutletServers(args.root) as server:
        work = Path(work_dir)
        state: dict[str, object] = {}
        first, second = ours(server, work, state)
        cases: dict[str, Callable[[], int]] = {
            "feedparser": bare_feedparser(files),
            "reader": with_reader(server, files, work),
            "aggregator": first,
        }
        for n in range(args.rounds):
            order = list(cases)
            rng.shuffle(order)
            for name in order:
                timer = time.perf_counter()
                counts[name] = cases[name]()
                seconds = time.perf_counter() - timer
                if name == "aggregator":
                    seconds = float(state["seconds"])  # type: ignore[arg-type]
                    second_seconds = second()
                    second_best = min(second_best, second_seconds)
                    print(f"round {n + 1}: second pass {second_seconds:.3f} s")
                best[name] = min(best.get(name, float("inf")), seconds)
                print(f"round {n + 1}: {name:<10} {seconds:7.2f} s  ({counts[name]} entries)")

    print()
    for name in ("aggregator", "feedparser", "reader"):
        print(
            f"{name:<11} {items / best[name]:9.0f} items/s  best {best[name]:.2f} s  "
            f"({counts[name]} entries)"
        )
    print(f"second pass {items / second_best:9.0f} items/s  best {second_best:.3f} s")
    print()
    vs_fp = best["feedparser"] / best["aggregator"]
    vs_reader = best["reader"] / best["aggregator"]
    speedup = best["aggregator"] / second_best
    print(f"aggregator vs bare feedparser: {vs_fp:.2f}x (target >= 1.5x)")
    print(f"aggregator vs reader:          {vs_reader:.2f}x (target >= 2x)")
    print(f"second pass vs first:          {speedup:.1f}x faster (target >= 50x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
