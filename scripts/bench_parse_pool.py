#!/usr/bin/env python3
"""What parsing in worker processes costs: worker start-up, and the 183 real feeds of
../shared/data/feeds parsed in-process vs. through ``ParsePool`` (1 and 2 workers).

    python scripts/bench_parse_pool.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aggregator.config import load_settings
from aggregator.errors import ParseError
from aggregator.parse import parse_feed
from aggregator.pipeline.parsing import ParsePool


def main() -> int:
    default = os.environ.get(
        "AGGREGATOR_SHARED_DATA", str(Path(__file__).parents[2] / "shared" / "data")
    )
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(default))
    args = ap.parse_args()
    bodies = [p.read_bytes() for p in sorted((args.data / "feeds").rglob("*.xml"))]
    settings = load_settings(env={})

    def run(parse: object) -> tuple[float, int]:
        def one(body: bytes) -> int:
            try:
                return len(parse(body, url="http://x/", headers={}, max_entries=500).entries)  # type: ignore[operator]
            except ParseError:
                return 0

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as ex:
            entries = sum(ex.map(one, bodies))
        return time.perf_counter() - started, entries

    inproc, entries = run(parse_feed)
    print(
        f"{len(bodies)} feeds, {entries} entries: in-process {inproc:.2f} s ({entries / inproc:.0f} entries/s, 1 core)"
    )
    for workers in (1, 2):
        fetch = settings.fetch.__class__(
            **{
                **{f: getattr(settings.fetch, f) for f in settings.fetch.__slots__},
                "parse_workers": workers,
            }
        )
        with ParsePool(fetch) as pool:
            started = time.perf_counter()
            pool.parse(bodies[0], "http://x/")
            first = time.perf_counter() - started
            wall, _ = run(
                lambda b, **kw: pool.parse(b, kw["url"], kw["headers"], kw["max_entries"])
            )
        print(
            f"pool of {workers}: first parse (worker start-up included) {first * 1000:.0f} ms; "
            f"all feeds {wall:.2f} s ({entries / wall:.0f} entries/s, {inproc / wall:.2f}x in-process); "
            f"peak worker RSS {pool.peak_rss_bytes / 2**20:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
