#!/usr/bin/env python3
"""Scale-out benchmark: one fetch worker versus three on PostgreSQL, side by side.

5,000 synthetic feeds (articles of ../shared/data/corpus/rsstrends-fr.jsonl.gz grouped by
outlet, 10 a feed) are served by the replay server (scripts/replay_server.py) on many
loopback addresses (127.0.0.2, 127.0.0.3, ...: 127.0.0.0/8 is all local), so per-host
politeness acts as on the internet, with 50-300 ms of latency added to every response.
Each phase starts a fresh database and real `aggregator run --role fetch` processes, and
ends when every feed has been fetched once (or after --max-seconds). Figures come from the
fetch log: feeds/s and entries/s between the first request and the last stored result.

    python scripts/bench_scale.py                     # starts its own PostgreSQL
    python scripts/bench_scale.py --feeds 1000 --hosts 100 --database-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pg_local import LocalPostgres, create_database, drop_database, pg_bin_dir  # noqa: E402
from replay_server import ReplayServer, toml_string  # noqa: E402

REPO = HERE.parent
CORPUS = "corpus/rsstrends-fr.jsonl.gz"
PER_FEED = 10


def shared_data() -> Path:
    env = os.environ.get("AGGREGATOR_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def corpus_articles(path: Path) -> Iterator[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def build_feeds(root: Path, corpus: Path, feeds: int, hosts: int) -> list[tuple[str, Path, str]]:
    """Write ``feeds`` RSS files of PER_FEED articles each (one outlet per feed), spread
    round-robin over ``hosts`` folders; returns (host address, file, outlet) in feed order."""
    by_outlet: dict[str, list[dict[str, str]]] = defaultdict(list)
    written: list[tuple[str, Path, str]] = []
    for article in corpus_articles(corpus):
        if not article.get("title") or not article.get("link"):
            continue
        outlet = article.get("outlet") or "inconnu"
        group = by_outlet[outlet]
        group.append(article)
        if len(group) < PER_FEED:
            continue
        n = len(written)
        host = f"127.0.{2 + n % hosts // 250}.{2 + n % hosts % 250}"
        path = root / host / f"feed-{n:05d}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rss(f"{outlet} {n}", group), encoding="utf-8")
        written.append((host, path, outlet))
        by_outlet[outlet] = []
        if len(written) >= feeds:
            break
    return written


def rss(title: str, articles: list[dict[str, str]]) -> str:
    items = []
    for a in articles:
        day = datetime.fromisoformat(a.get("first_seen_day") or "2025-02-10").replace(tzinfo=UTC)
        items.append(
            f"<item><title>{escape(a['title'])}</title><link>{escape(a['link'])}</link>"
            f"<guid>{escape(a['link'])}</guid><description>{escape(a.get('summary') or '')}"
            f"</description><pubDate>{format_datetime(day)}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://example.invalid/</link>"
        f"{''.join(items)}</channel></rss>"
    )


def serve(
    root: Path, hosts: list[str], port: int, latency: tuple[float, float], ready: Any
) -> None:
    """Child process: one replay server per loopback address (all on the same port)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    servers = [ReplayServer(root / h, host=h, port=port, latency=latency).start() for h in hosts]
    ready.set()
    signal.sigwait({signal.SIGTERM})
    for s in servers:
        s.stop()


def free_port_on(hosts: list[str]) -> int:
    import socket

    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            for h in hosts[:5]:
                with socket.socket() as t:
                    t.bind((h, port))
            return port
        except OSError:
            continue
    raise SystemExit("no free port")


def run_phase(
    server_pid: int | None,
    workers: int,
    admin_url: str,
    feeds_file: Path,
    total: int,
    tmp: Path,
    args: argparse.Namespace,
) -> dict[str, float]:
    db = create_database(admin_url)
    data = tmp / f"data-{workers}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    env.update(
        AGGREGATOR_DATA_DIR=str(data),
        AGGREGATOR_DATABASE_URL=db,
        AGGREGATOR_FEEDS_FILE=str(feeds_file),
        AGGREGATOR_FETCH_ALLOW_PRIVATE_NETWORKS="true",
        AGGREGATOR_FETCH_PER_HOST_INTERVAL_SECONDS=str(args.per_host_interval),
        AGGREGATOR_FETCH_CONCURRENCY=str(args.concurrency),
        AGGREGATOR_FETCH_TICK_SECONDS="1",
        AGGREGATOR_LOG_LEVEL="WARNING",
    )
    # The feeds file applied once, as an operator would before starting workers.
    subprocess.run(
        [sys.executable, "-m", "aggregator", "feeds", "list"],
        env=env,
        check=True,
        capture_output=True,
    )
    engine = sa.create_engine(db)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "--role", "fetch"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"worker-{workers}-{i}.log").open("wb"),
        )
        for i in range(workers)
    ]
    began = time.monotonic()
    cpu_before = cpu_by_role([p.pid for p in procs], server_pid)
    done = 0
    try:
        while time.monotonic() - began < args.max_seconds:
            time.sleep(1)
            with engine.connect() as conn:
                done = conn.execute(
                    sa.text("SELECT count(DISTINCT source_id) FROM fetch_log")
                ).scalar_one()
            if done >= total:
                break
    finally:
        cpu_after = cpu_by_role([p.pid for p in procs], server_pid)
        wall = time.monotonic() - began
        cpu = cpu_after["workers"]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*) AS fetches, count(DISTINCT source_id) AS feeds, "
                "coalesce(sum(new_entries), 0) AS entries, min(started_at) AS t0, "
                "max(finished_at) AS t1, count(*) FILTER (WHERE outcome = 'error') AS errors, "
                "count(*) - count(DISTINCT (source_id, due_at)) AS duplicates FROM fetch_log"
            )
        ).one()
        # Feeds finished per 10 s of the phase, by worker: shows ramp-up, the steady rate
        # and the tail (a worker still holding claimed feeds while the others are idle).
        timeline = conn.execute(
            sa.text(
                "SELECT worker, floor(extract(epoch FROM finished_at - :t0) / 10)::int AS b, "
                "count(*) FROM fetch_log GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            {"t0": row.t0},
        ).all()
    engine.dispose()
    drop_database(admin_url, sa.make_url(db).database or "")
    seconds = (row.t1 - row.t0).total_seconds() if row.t0 else float("nan")
    return {
        "workers": workers,
        "feeds": row.feeds,
        "entries": row.entries,
        "errors": row.errors,
        "duplicates": row.duplicates,
        "seconds": seconds,
        "feeds_s": row.feeds / seconds,
        "entries_s": row.entries / seconds,
        "cpu_ms_per_feed": 1000 * cpu / max(1, row.fetches),
        # CPU per fetch by role, and the machine's busy share, over the whole phase.
        "cpu_split": {
            role: 1000 * (cpu_after[role] - cpu_before[role]) / max(1, row.fetches)
            for role in ("workers", "parsers", "postgres", "server")
        },
        "busy": (cpu_after["machine"] - cpu_before["machine"]) / (wall * (os.cpu_count() or 1)),
        "load": os.getloadavg()[0],
        "timeline": timeline,
    }


def print_timeline(rows: list[Any]) -> None:
    """Feeds/s per 10 s bucket, per worker and in total."""
    per: dict[str, dict[int, int]] = defaultdict(dict)
    for worker, bucket, count in rows:
        per[worker][bucket] = count
    last = max((b for w in per.values() for b in w), default=-1)
    total = [sum(w.get(b, 0) for w in per.values()) / 10 for b in range(last + 1)]
    print("  feeds/s per 10 s: " + " ".join(f"{x:.0f}" for x in total), flush=True)
    if len(per) > 1:
        for i, (_, buckets) in enumerate(sorted(per.items())):
            rates = " ".join(f"{buckets.get(b, 0) / 10:.0f}" for b in range(last + 1))
            print(f"    worker {i + 1}: {rates}", flush=True)


def _proc_stat(pid: int | str) -> tuple[str, int, float] | None:
    """(command name, parent pid, user + system CPU seconds) of a live process (Linux
    /proc), None if it is gone."""
    try:
        name, _, rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
    except OSError:
        return None
    fields = rest.split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return name.partition("(")[2], int(fields[1]), cpu


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, 0 if unknown."""
    stat = _proc_stat(pid)
    return stat[2] if stat else 0.0


def cpu_by_role(workers: list[int], server: int | None) -> dict[str, float]:
    """CPU seconds used so far by the fetch workers, their parse processes (children of
    a worker), PostgreSQL and the replay server (its process and children), and by the
    whole machine (busy time of every CPU, from /proc/stat)."""
    out = dict.fromkeys(("workers", "parsers", "postgres", "server", "machine"), 0.0)
    for pid in workers:
        out["workers"] += cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        stat = _proc_stat(entry.name) if entry.name.isdigit() else None
        if stat is None:
            continue
        name, ppid, used = stat
        if ppid in workers:
            out["parsers"] += used
        elif name == "postgres":
            out["postgres"] += used
        elif server is not None and (int(entry.name) == server or ppid == server):
            out["server"] += used
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in first]
    # All but idle and iowait.
    out["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--hosts", type=int, default=500, help="loopback addresses")
    parser.add_argument("--latency-ms", default="50-300")
    parser.add_argument("--concurrency", type=int, default=8, help="[fetch] concurrency")
    parser.add_argument("--per-host-interval", type=float, default=2.0)
    parser.add_argument("--max-seconds", type=float, default=150.0, help="cap per phase")
    parser.add_argument(
        "--phases", default="1,3", help="worker counts to run, in order (the ratio needs 1 and 3)"
    )
    parser.add_argument("--database-url", help="PostgreSQL admin URL (default: start one)")
    args = parser.parse_args(argv)

    corpus = shared_data() / CORPUS
    if not corpus.is_file():
        raise SystemExit(f"corpus not found: {corpus} (set AGGREGATOR_SHARED_DATA)")
    low, _, high = args.latency_ms.partition("-")
    latency = (float(low) / 1000, float(high or low) / 1000)
    server_pg = None
    admin_url = args.database_url or os.environ.get("AGGREGATOR_TEST_POSTGRES_URL")
    if not admin_url:
        bin_dir = pg_bin_dir()
        if bin_dir is None:
            raise SystemExit("no PostgreSQL: pass --database-url or install postgresql")
        server_pg = LocalPostgres(bin_dir).start()
        admin_url = server_pg.url
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmpdir:
        tmp = Path(tmpdir)
        t = time.monotonic()
        written = build_feeds(tmp / "feeds", corpus, args.feeds, args.hosts)
        hosts = sorted({h for h, _, _ in written})
        port = free_port_on(hosts)
        lines = []
        for host, path, outlet in written:
            url = f"http://{host}:{port}/{path.name}"
            lines += ["[[feeds]]", f"url = {toml_string(url)}", f"outlet = {toml_string(outlet)}"]
            lines += [f'section = "{path.stem}"', ""]
        feeds_file = tmp / "feeds.toml"
        feeds_file.write_text("\n".join(lines), encoding="utf-8")
        print(
            f"{len(written)} feeds ({PER_FEED} articles each) on {len(hosts)} loopback "
            f"addresses, port {port}, latency {args.latency_ms} ms, per-host interval "
            f"{args.per_host_interval} s, concurrency {args.concurrency} per worker "
            f"(built in {time.monotonic() - t:.1f} s)",
            flush=True,
        )
        context = multiprocessing.get_context("fork")
        ready = context.Event()
        server = context.Process(
            target=serve, args=(tmp / "feeds", hosts, port, latency, ready), daemon=True
        )
        server.start()
        if not ready.wait(120):
            raise SystemExit("the replay servers did not start")
        try:
            results = []
            for workers in [int(x) for x in args.phases.split(",")]:
                r = run_phase(server.pid, workers, admin_url, feeds_file, len(written), tmp, args)
                results.append(r)
                print(
                    f"{workers} worker(s): {r['feeds']} feeds, {r['entries']} entries in "
                    f"{r['seconds']:.1f} s: {r['feeds_s']:.1f} feeds/s, "
                    f"{r['entries_s']:.0f} entries/s ({r['errors']} errors, "
                    f"{r['duplicates']} duplicate fetches); worker CPU "
                    f"{r['cpu_ms_per_feed']:.0f} ms per feed, load average {r['load']:.1f} "
                    f"on {os.cpu_count()} CPUs",
                    flush=True,
                )
                split = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_split"].items())
                print(
                    f"  CPU ms per feed: {split}; machine busy {100 * r['busy']:.0f}%",
                    flush=True,
                )
                print_timeline(r["timeline"])
        finally:
            if server.pid is not None:
                os.kill(server.pid, signal.SIGTERM)
            server.join(10)
            if server_pg is not None:
                server_pg.stop()
    print("\n| workers | feeds/s | entries/s |\n|---|---|---|")
    for r in results:
        print(f"| {r['workers']} | {r['feeds_s']:.1f} | {r['entries_s']:.0f} |")
    by_count = {r["workers"]: r for r in results}
    if 1 in by_count and 3 in by_count:
        one, three = by_count[1], by_count[3]
        print(
            f"ratio 3 vs 1: {three['feeds_s'] / one['feeds_s']:.2f}x feeds/s, "
            f"{three['entries_s'] / one['entries_s']:.2f}x entries/s (target >= 2.5x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
