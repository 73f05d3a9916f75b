"""Evaluate story clustering on the development set, through ``aggregator cluster-file``.

Prints B-cubed precision/recall/F1 and ARI of the product's defaults side by side, in the
same run, with (a) all singletons and (b) TF-IDF + average-link agglomerative clustering
at its best threshold on this very file (an oracle: tuned on the answers). Also shows,
for the seed live blog, which items share a story and a topic.

    python scripts/eval_clustering.py [--data DIR] [--in-process] [--liveblog]

The data (licence-limited) is read from AGGREGATOR_SHARED_DATA or ../shared/data.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEV_FILE = "clustering/ia-labo-one-day-2020-01-10.jsonl"
LIVEBLOG_FILE = "seed-liveblog-2024-11-20.txt"


def shared_data() -> Path:
    env = os.environ.get("AGGREGATOR_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def b_cubed(pred: Sequence[str], gold: Sequence[str]) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 (Bagga & Baldwin 1998), averaged over items."""
    pairs = Counter(zip(pred, gold, strict=True))
    size_p, size_g = Counter(pred), Counter(gold)
    n = len(pred)
    precision = sum(c * c / size_p[p] for (p, _), c in pairs.items()) / n
    recall = sum(c * c / size_g[g] for (_, g), c in pairs.items()) / n
    return precision, recall, 2 * precision * recall / (precision + recall)


def ari(pred: Sequence[str], gold: Sequence[str]) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(gold, pred))


def load_dev(path: Path) -> tuple[list[dict[str, object]], list[str]]:
    """Cluster-file input lines (the file has no ids: line numbers are used) and gold ids."""
    rows, gold = [], []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            obj = json.loads(line)
            # Naive dates in the file are Paris time, as cluster-file assumes.
            rows.append({"id": str(line_no), "title": obj["title"], "published": obj["published"]})
            gold.append(str(obj["cluster_id"]))
    return rows, gold


def run_cluster_file(
    rows: Sequence[dict[str, object]], *, in_process: bool
) -> list[dict[str, str]]:
    """Run the product's clustering exactly as a user would (subprocess by default)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if in_process:
        from aggregator.config import load_settings
        from aggregator.pipeline import cluster_file

        out = io.StringIO()
        cluster_file(load_settings(), io.StringIO(text), out)
        lines = out.getvalue().splitlines()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            infile = Path(tmp) / "in.jsonl"
            infile.write_text(text, encoding="utf-8")
            outfile = Path(tmp) / "out.jsonl"
            env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "aggregator",
                    "cluster-file",
                    str(infile),
                    "-o",
                    str(outfile),
                ],
                check=True,
                env=env,
                capture_output=True,
            )
            lines = outfile.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def oracle_average_link(titles: Sequence[str], gold: Sequence[str]) -> dict[str, object]:
    """TF-IDF (the product's analyser) + average-link agglomerative, best threshold on gold."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.feature_extraction.text import TfidfVectorizer

    from aggregator.config import load_settings
    from aggregator.pipeline import make_analyzer

    analyzer = make_analyzer(load_settings())
    started = time.perf_counter()
    X = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True).fit_transform(titles)
    # Rows are unit-normed (empty rows stay zero: distance 1 to everything).
    distances = 1.0 - (X @ X.T).toarray().astype(np.float64)
    np.fill_diagonal(distances, 0.0)
    np.clip(distances, 0.0, 1.0, out=distances)
    tree = linkage(squareform(distances, checks=False), method="average")
    elapsed = time.perf_counter() - started
    best: dict[str, object] = {}
    for thr in np.arange(0.20, 0.91, 0.01):
        pred = [str(c) for c in fcluster(tree, t=1 - thr, criterion="distance")]
        p, r, f = b_cubed(pred, gold)
        if not best or f > best["f1"]:  # type: ignore[operator]
            best = {"threshold": round(float(thr), 2), "p": p, "r": r, "f1": f, "pred": pred}
    best["ari"] = ari(best["pred"], gold)  # type: ignore[arg-type]
    best["seconds"] = elapsed
    return best


def liveblog_items(path: Path) -> list[dict[str, object]]:
    """The live blog's items as articles: the first sentence is the title, the rest summary."""
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("Related News"):
            continue
        title, _, summary = line.partition(". ")
        items.append(
            {"id": f"item{n}", "title": title, "summary": summary,
             "published": "2024-11-20T12:00:00+01:00", "source": f"live{n}"}
        )  # fmt: skip
    return items


def show_liveblog(path: Path, *, in_process: bool) -> None:
    items = liveblog_items(path)
    out = run_cluster_file(items, in_process=in_process)
    print(f"\nSeed live blog ({path.name}): {len(items)} items")
    by_topic: dict[str, list[str]] = defaultdict(list)
    for item, res in zip(items, out, strict=True):
        topic = res.get("topic")
        print(f"  {item['id']}: story {res['story']} topic {topic} ({res.get('topic_label')})")
        print(f"      {str(item['title'])[:90]}")
        if topic:
            by_topic[str(topic)].append(str(item["id"]))
    for topic, members in sorted(by_topic.items()):
        print(f"  topic {topic}: {', '.join(members)}")


ABLATION = [
    ("defaults", {}),
    ("no headline templates", {"templates": False}),
    ("+ average-link merge pass 0.55", {"merge_threshold": 0.55}),
    ("+ average-link merge pass 0.60", {"merge_threshold": 0.6}),
    ("+ average-link merge pass 0.65", {"merge_threshold": 0.65}),
    ("no seed guard (seed_threshold 0)", {"seed_threshold": 0.0}),
    ("all terms (max_terms 1000)", {"max_terms": 1000}),
    ("proper-noun phrases (phrase_weight 1)", {"phrase_weight": 1}),
    ("proper-noun phrases (phrase_weight 2)", {"phrase_weight": 2}),
    ("title weight 1", {"title_weight": 1}),
    ("no time penalty", {"time_penalty": 0.0}),
    ("threshold 0.50", {"threshold": 0.5}),
    ("threshold 0.70", {"threshold": 0.7}),
]


def ablation(rows: Sequence[dict[str, object]], gold: Sequence[str]) -> None:
    """Each text and clustering choice switched off or changed alone, in process."""
    import dataclasses

    from aggregator.cluster import cluster_articles
    from aggregator.config import load_settings
    from aggregator.pipeline import cluster_params, make_analyzer
    from aggregator.pipeline.recluster import read_articles
    from aggregator.text import FrenchAnalyzer

    settings = load_settings()
    articles = list(read_articles(json.dumps(r, ensure_ascii=False) for r in rows))
    analyzer = make_analyzer(settings)
    no_aliases = FrenchAnalyzer(analyzer.stopwords)
    variants = [(n, kw, analyzer) for n, kw in ABLATION] + [("no aliases", {}, no_aliases)]
    print("\nablation (in process, one change at a time):")
    for name, changes, an in variants:
        params = dataclasses.replace(cluster_params(settings), **changes)
        clusters = cluster_articles(articles, analyzer=an, params=params)
        story = {a: c.id for c in clusters for a in c.article_ids}
        pred = [story[str(r["id"])] for r in rows]
        p, r, f = b_cubed(pred, gold)
        print(f"  {name:<40} {p:6.3f} {r:6.3f} {f:6.3f} {ari(pred, gold):6.3f} {len(set(pred)):8d}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=shared_data())
    ap.add_argument("--in-process", action="store_true", help="call cluster_file() directly")
    ap.add_argument("--no-oracle", action="store_true", help="skip the agglomerative oracle")
    ap.add_argument("--liveblog", action="store_true", help="also show the seed live blog")
    ap.add_argument("--ablation", action="store_true", help="also measure each choice alone")
    args = ap.parse_args(argv)

    rows, gold = load_dev(args.data / DEV_FILE)
    started = time.perf_counter()
    out = run_cluster_file(rows, in_process=args.in_process)
    elapsed = time.perf_counter() - started
    story = {o["id"]: o["story"] for o in out}
    pred = [story[str(r["id"])] for r in rows]

    print(f"development set: {DEV_FILE}, {len(rows)} headlines, {len(set(gold))} gold stories")
    print(f"load average: {os.getloadavg()}")
    print(f"{'method':<42} {'P':>6} {'R':>6} {'B3-F1':>6} {'ARI':>6} {'stories':>8}")

    def line(name: str, p: Sequence[str]) -> None:
        bp, br, bf = b_cubed(p, gold)
        print(f"{name:<42} {bp:6.3f} {br:6.3f} {bf:6.3f} {ari(p, gold):6.3f} {len(set(p)):8d}")

    line("all singletons", [str(i) for i in range(len(rows))])
    if not args.no_oracle:
        best = oracle_average_link([str(r["title"]) for r in rows], gold)
        line(f"average-link oracle (thr {best['threshold']})", best["pred"])  # type: ignore[arg-type]
    line(f"aggregator cluster-file (defaults, {elapsed:.1f} s)", pred)
    with_topic = sum(1 for o in out if o.get("topic"))
    print(
        f"articles in a topic: {with_topic}; topics: {len({o.get('topic') for o in out} - {None})}"
    )
    if args.ablation:
        ablation(rows, gold)
    if args.liveblog:
        show_liveblog(args.data / LIVEBLOG_FILE, in_process=args.in_process)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
