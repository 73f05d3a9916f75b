#!/usr/bin/env python3
"""How cheap is /feed.atom to serve? Requests/s and p99 latency on 127.0.0.1, side by side:

- ``static``: the same bytes as a file, served by Starlette's StaticFiles on the same app,
  under the same uvicorn (the baseline the issue names);
- ``bytes``: the same bytes from memory by a bare Starlette route (a second reference);
- ``feed 200``: /feed.atom of N stories, a full response from the render cache;
- ``feed 304``: /feed.atom with If-None-Match, the conditional request feed readers send.

The server runs in its own process through ``aggregator.web.server.serve`` (what
``aggregator serve`` runs: uvicorn, httptools and uvloop when installed), on a SQLite
database of synthetic French stories. The load generator is wrk when installed (Debian's
``wrk``), else a Python keep-alive client (then the client, not the server, is the limit).
Each case runs for a bounded time; cases are interleaved, in a new order each round.

    python scripts/bench_serve.py                     # 200 stories, 10 s per case
    python scripts/bench_serve.py --duration 3 --rounds 2 --connections 16

Targets (issue 5): feed 200 >= 0.8x static; feed 304 >= 3x feed 200.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORD_POOL = (
    "gouvernement Assemblée réforme retraites grève syndicats ministre budget Élysée sommet "
    "Ukraine Kyiv Russie drones frappes cessez-le-feu Bruxelles Union européenne élections "
    "sondage inflation prix énergie tempête Bretagne inondations pompiers procès tribunal "
    "enquête police Marseille Lyon Paris Lille Bordeaux football Ligue rugby Tour hôpital "
    "urgences médecins école enseignants bac agriculteurs manifestation Sénat motion censure"
)
WORDS = WORD_POOL.split()
OUTLETS = [
    "Le Monde",
    "Libération",
    "Le Figaro",
    "franceinfo",
    "France 24",
    "RFI",
    "20 Minutes",
    "Ouest-France",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize()


def build_database(data_dir: Path, stories: int) -> None:
    """N stories of 1-6 articles from different outlets, saved as clustering would."""
    from aggregator.config import load_settings
    from aggregator.models import FeedSpec, ParsedEntry, StoryCluster
    from aggregator.store import Store

    settings = load_settings(env={"AGGREGATOR_DATA_DIR": str(data_dir)})
    store = Store(settings.database.url)
    rng = random.Random(5)
    now = datetime(2025, 2, 10, 20, 0, tzinfo=UTC)
    store.sync_sources(
        [FeedSpec(f"https://bench{i}.example/rss", o) for i, o in enumerate(OUTLETS)], now
    )
    sources = {s.outlet: s for s in store.list_sources()}
    planned: list[list[tuple[str, ParsedEntry]]] = []
    per_outlet: dict[str, list[ParsedEntry]] = {o: [] for o in OUTLETS}
    for s in range(stories):
        members = []
        for outlet in rng.sample(OUTLETS, rng.randint(1, 6)):
            key = f"{s}-{outlet}"
            when = now - timedelta(minutes=rng.randint(0, 3 * 24 * 60))
            e = ParsedEntry(
                key=key,
                title=sentence(rng, rng.randint(6, 12)),
                link=f"https://{outlet.lower().replace(' ', '')}.example/{s}/{rng.randint(1, 10**6)}",
                summary_html=f"<p>{sentence(rng, rng.randint(25, 45))}.</p>",
                published=when,
            )
            members.append((outlet, e))
            per_outlet[outlet].append(e)
        planned.append(members)
    for outlet, entries in per_outlet.items():
        store.save_fetch(sources[outlet], entries, now)
    ids = {(e.outlet, e.key): e.id for e in store.entries_between(now - timedelta(days=30), now)}
    clusters = []
    for s, members in enumerate(planned):
        article_ids = tuple(str(ids[(o, e.key)]) for o, e in members)
        clusters.append(
            StoryCluster(
                id=f"b{s:05d}",
                article_ids=article_ids,
                label=members[0][1].title,
                lead_id=article_ids[0],
            )
        )
    store.save_clusters(clusters, list(ids.values()), now)
    store.close()


def serve(data_dir: Path, static_dir: Path, port: int, max_items: int) -> None:
    """The server process: the real app, plus the two reference routes."""
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from aggregator.config import load_settings
    from aggregator.store import Store
    from aggregator.web import create_app
    from aggregator.web.server import serve as serve_http

    settings = load_settings(
        env={
            "AGGREGATOR_DATA_DIR": str(data_dir),
            "AGGREGATOR_SERVER_PORT": str(port),
            # Fixed, so that both server runs render identical bytes.
            "AGGREGATOR_SERVER_PUBLIC_URL": "http://127.0.0.1:8080",
            "AGGREGATOR_PUBLISH_MAX_ITEMS": str(max_items),
        }
    )
    app = create_app(settings, Store(settings.database.url))
    body = (static_dir / "feed.atom").read_bytes() if (static_dir / "feed.atom").exists() else b""

    async def in_memory(request: Request) -> Response:
        return Response(body, media_type="application/atom+xml; charset=utf-8")

    # First in the routing table: the references pay no route matching for the app's routes.
    app.router.routes.insert(0, Route("/bytes", in_memory))
    app.router.routes.insert(0, Mount("/static", app=StaticFiles(directory=static_dir)))
    serve_http(app, "127.0.0.1", port, threading.Event(), "warning")


def start_server(
    data_dir: Path, static_dir: Path, port: int, max_items: int
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            str(data_dir),
            str(static_dir),
            str(port),
            str(max_items),
        ],
        cwd=REPO,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def run_wrk(
    url: str, headers: dict[str, str], duration: float, connections: int
) -> tuple[float, float, int]:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert m, out
    p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, int(errors.group(1)) if errors else 0


def run_python(
    port: int, path: str, headers: dict[str, str], duration: float, connections: int
) -> tuple[float, float, int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = []
        while time.monotonic() < stop:
            t = time.perf_counter()
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            mine.append(time.perf_counter() - t)
            if r.status >= 400:
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    return len(latencies) / duration, p99, errors[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stories", type=int, default=200)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case and round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]), int(args.serve[2]), int(args.serve[3]))
        return 0

    tool = args.tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        data_dir, static_dir = Path(tmp) / "data", Path(tmp) / "static"
        static_dir.mkdir()
        started = time.perf_counter()
        build_database(data_dir, args.stories)
        print(f"database: {args.stories} stories built in {time.perf_counter() - started:.1f} s")

        # First run: render the feed, save its bytes as the static file, then restart so the
        # in-memory reference serves the same bytes too.
        port = free_port()
        proc = start_server(data_dir, static_dir, port, args.stories)
        status, headers, body = get(port, "/feed.atom", {"Accept-Encoding": "identity"})
        assert status == 200, status
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        (static_dir / "feed.atom").write_bytes(body)
        port = free_port()
        proc = start_server(data_dir, static_dir, port, args.stories)
        try:
            _, headers, again = get(port, "/feed.atom", {"Accept-Encoding": "identity"})
            etag = headers["etag"]
            for path in ("/static/feed.atom", "/bytes"):
                assert get(port, path)[2] == body, path
            assert again == body
            entries = body.count(b"<entry>")
            print(f"/feed.atom: {len(body) / 1024:.0f} KiB, {entries} entries, ETag {etag}")
            import uvicorn

            try:
                import httptools  # noqa: F401

                http_impl = "httptools"
            except ImportError:
                http_impl = "h11"
            try:
                import uvloop  # noqa: F401

                loop = "uvloop"
            except ImportError:
                loop = "asyncio"
            print(
                f"stack: uvicorn {uvicorn.__version__} ({http_impl}, {loop}), one worker; "
                f"load generator: {tool}, {args.connections} connections, "
                f"{args.duration:g} s per case x {args.rounds} round(s)"
            )
            print(
                f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)"
            )
            identity = {"Accept-Encoding": "identity"}
            cases = {
                "static": ("/static/feed.atom", identity),
                "bytes": ("/bytes", identity),
                "feed 200": ("/feed.atom", identity),
                "feed 304": ("/feed.atom", {**identity, "If-None-Match": etag}),
            }
            results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in cases}
            order = random.Random(1)
            for _ in range(args.rounds):
                # A new order each round: the machine's load drifts, no case always goes first.
                names = list(cases)
                order.shuffle(names)
                for name in names:
                    path, hdrs = cases[name]
                    if tool == "wrk":
                        results[name].append(
                            run_wrk(
                                f"http://127.0.0.1:{port}{path}",
                                hdrs,
                                args.duration,
                                args.connections,
                            )
                        )
                    else:
                        results[name].append(
                            run_python(port, path, hdrs, args.duration, args.connections)
                        )
            print(f"load average after:  {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)

    if args.rounds > 1:
        print()
        for name, rs in results.items():
            rounds = ", ".join(f"{r[0]:.0f} req/s p99 {r[1]:.1f} ms" for r in rs)
            print(f"{name:<10} rounds: {rounds}")
    median = {
        n: (
            statistics.median(r[0] for r in rs),
            statistics.median(r[1] for r in rs),
            sum(r[2] for r in rs),
        )
        for n, rs in results.items()
    }
    static = median["static"][0]
    print()
    print(f"{'case':<10} {'req/s':>10} {'p99 ms':>9} {'x static':>9} {'errors':>7}")
    for name, (rps, p99, errors) in median.items():
        print(f"{name:<10} {rps:>10.0f} {p99:>9.2f} {rps / static:>9.2f} {errors:>7}")
    r200 = median["feed 200"][0] / static
    r304 = median["feed 304"][0] / median["feed 200"][0]
    print()
    print(
        f"feed 200 / static   = {r200:.2f}  (target >= 0.80: {'met' if r200 >= 0.8 else 'NOT met'})"
    )
    print(
        f"feed 304 / feed 200 = {r304:.2f}  (target >= 3.00: {'met' if r304 >= 3 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
