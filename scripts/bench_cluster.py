"""Scale benchmark of story clustering, against average-link agglomerative side by side.

Streams ../shared/data/corpus/rsstrends-fr.jsonl.gz (464,366 articles, Feb 2023 - Aug
2026) in day order through the product's incremental clusterer with a 72-hour story
window and prints articles/s and peak RSS; the time to add 1,000 articles to a window of
100,000; and, on a 10,000-article slice, the time and memory of the product's clusterer
next to TF-IDF + average-link agglomerative clustering (scipy), each in its own process:
end to end (text analysis included, the headline figure), and with the texts already
analysed for both.

    python scripts/bench_cluster.py [--limit N] [--skip-stream]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = "corpus/rsstrends-fr.jsonl.gz"


def shared_data() -> Path:
    env = os.environ.get("AGGREGATOR_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def articles(path: Path, limit: int | None = None, skip: int = 0) -> Iterator[object]:
    """The corpus, read lazily: it is in day order already (checked). Only the day is
    known, so every article of a day is dated noon (Paris) of that day."""
    from aggregator.models import Article

    last = ""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(
            itertools.islice(f, skip, None if limit is None else skip + limit)
        ):
            obj = json.loads(line)
            day = obj.get("first_seen_day") or ""
            if day < last:
                raise SystemExit(f"{path}: line {skip + n + 1} is out of day order")
            last = day
            when = datetime.fromisoformat(day).replace(hour=11, tzinfo=UTC) if day else None
            yield Article(
                id=str(skip + n), title=obj.get("title") or "", summary=obj.get("summary") or "",
                published=when, source=obj.get("outlet") or "",
            )  # fmt: skip


def analyzer():  # type: ignore[no-untyped-def]
    from aggregator.config import load_settings
    from aggregator.pipeline import make_analyzer

    return make_analyzer(load_settings())


def stream(path: Path, limit: int | None) -> None:
    from aggregator.cluster import ClusterParams
    from aggregator.cluster.stream import StreamClusterer

    clusterer = StreamClusterer(analyzer(), ClusterParams(window_hours=72))
    started = time.perf_counter()
    n = 0
    for a in articles(path, limit):  # reading and parsing the corpus is counted too
        clusterer.add(a)  # type: ignore[arg-type]
        n += 1
    elapsed = time.perf_counter() - started
    stories = len(clusterer.index.stories)
    print(
        f"stream: {n} articles in {elapsed:.1f} s = {n / elapsed:.0f} articles/s "
        f"(1 core); {stories} stories; peak RSS {peak_rss_mb():.0f} MB"
    )


def window_100k(path: Path) -> None:
    """1,000 new articles into a window already holding 100,000 (a ~year-long window)."""
    from aggregator.cluster import ClusterParams
    from aggregator.cluster.stream import StreamClusterer

    items = list(articles(path, 101_000))
    params = ClusterParams(window_hours=24 * 400)
    clusterer = StreamClusterer(analyzer(), params)
    for a in items[:100_000]:
        clusterer.add(a)  # type: ignore[arg-type]
    # Analysis is cached per text in the daemon; warm it so the figure is the clustering.
    for a in items[100_000:]:
        clusterer.analyzer.analyse(a.title)  # type: ignore[attr-defined]
        clusterer.analyzer.analyse(a.summary)  # type: ignore[attr-defined]
    started = time.perf_counter()
    for a in items[100_000:]:
        clusterer.add(a)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    print(
        f"window: 1,000 articles added to a 100,000-article window "
        f"({clusterer.active_stories} active stories) in {elapsed:.3f} s "
        f"({elapsed:.6f} s / 1000 = {elapsed:.3f} ms per article)"
    )


def _slice(path: Path, n: int) -> list[object]:
    return list(articles(path, n, skip=232_000))  # from the middle of the corpus


def run_ours(path: Path, n: int, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    from aggregator.cluster import cluster_articles
    from aggregator.config import load_settings
    from aggregator.pipeline import cluster_params

    items = _slice(path, n)
    an = analyzer()
    base = peak_rss_mb()
    params = cluster_params(load_settings())
    started = time.perf_counter()
    clusters = cluster_articles(items, analyzer=an, params=params)  # type: ignore[arg-type]
    cold = time.perf_counter() - started
    # Again with the texts analysed (the analyser's cache, as in the daemon's re-runs).
    started = time.perf_counter()
    again = cluster_articles(items, analyzer=an, params=params)  # type: ignore[arg-type]
    warm = time.perf_counter() - started
    assert again == clusters
    queue.put(("aggregator cluster_articles", cold, warm, peak_rss_mb() - base, len(clusters)))


def run_agglomerative(path: Path, n: int, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.feature_extraction.text import TfidfVectorizer

    items = _slice(path, n)
    an = analyzer()
    base = peak_rss_mb()
    started = time.perf_counter()
    texts = [f"{a.title} {a.title} {a.summary}" for a in items]  # type: ignore[attr-defined]
    X = TfidfVectorizer(analyzer=an, sublinear_tf=True).fit_transform(texts)
    analysed = time.perf_counter()
    distances = 1.0 - (X @ X.T).toarray()
    np.fill_diagonal(distances, 0.0)
    np.clip(distances, 0.0, 1.0, out=distances)
    tree = linkage(squareform(distances, checks=False), method="average")
    del distances
    # The oracle's best threshold on the development set (eval_clustering.py): 0.54.
    labels = fcluster(tree, t=1 - 0.54, criterion="distance")
    done = time.perf_counter()
    queue.put(("average-link agglomerative (scipy)", done - started, done - analysed,
               peak_rss_mb() - base, len(set(labels))))  # fmt: skip


def side_by_side(path: Path, n: int) -> None:
    ctx = mp.get_context("spawn")
    results = []
    for target in (run_ours, run_agglomerative):
        queue = ctx.Queue()
        proc = ctx.Process(target=target, args=(path, n, queue))
        proc.start()
        results.append(queue.get())
        proc.join()
    print(f"side by side on a {n}-article slice (each in its own process):")
    print(f"  {'':<38} {'end to end':>10}  {'texts analysed':>14}")
    for name, seconds, after, mb, groups in results:
        print(
            f"  {name:<38} {seconds:8.2f} s  {after:12.2f} s  +{mb:5.0f} MB peak RSS  "
            f"{groups} groups"
        )
    (_, ours, ours_after, *_), (_, theirs, theirs_after, *_) = results
    print(
        f"  speed-up: {theirs / ours:.1f}x end to end (the headline figure); "
        f"{theirs_after / ours_after:.1f}x with the texts already analysed (ours: stories, "
        f"topics, labels and wire copies from cached analyses; average-link: similarity "
        f"matrix and linkage from the TF-IDF matrix)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=shared_data())
    ap.add_argument("--limit", type=int, default=None, help="stream only the first N articles")
    ap.add_argument("--skip-stream", action="store_true")
    ap.add_argument("--slice", type=int, default=10_000)
    args = ap.parse_args()
    path = args.data / CORPUS
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}")
    if not args.skip_stream:
        stream(path, args.limit)
    window_100k(path)
    side_by_side(path, args.slice)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
