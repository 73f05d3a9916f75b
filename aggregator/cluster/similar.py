"""How close stories are to each other: cosine between story centroids, with the features
clustering uses (``features.make_doc`` and ``TermStats``: French stems, aliases, title
weighted, sublinear TF x IDF, top terms).

The editors' desk shows a story's nearest neighbours with this, as merge candidates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from aggregator.cluster.features import TermStats, Vector, dot, make_doc
from aggregator.cluster.params import ClusterParams
from aggregator.models import Article
from aggregator.text import FrenchAnalyzer


def _centroid(vectors: Sequence[Vector]) -> Vector:
    total: Vector = {}
    for vec in vectors:
        for term, w in vec.items():
            total[term] = total.get(term, 0.0) + w
    norm = math.sqrt(sum(w * w for w in total.values()))
    return {t: w / norm for t, w in total.items()} if norm else {}


def story_similarities(
    story: Sequence[Article],
    others: Mapping[str, Sequence[Article]],
    *,
    analyzer: FrenchAnalyzer,
    params: ClusterParams | None = None,
    limit: int = 10,
) -> list[tuple[str, float]]:
    """The ``limit`` stories of ``others`` most similar to ``story``: (id, cosine), best first.

    IDF is learnt on the articles given, so scores are relative to that neighbourhood.
    Stories with nothing in common (cosine 0) are left out; ties go to the smaller id.
    """
    params = params or ClusterParams()
    ids = [sid for sid in sorted(others) if others[sid]]
    if not story or not ids:
        return []
    groups = [list(story), *(list(others[sid]) for sid in ids)]
    docs = [[make_doc(a, analyzer, params) for a in group] for group in groups]
    stats = TermStats(params.max_df, params.max_terms)
    for group_docs in docs:
        for doc in group_docs:
            stats.add(doc.terms)
    centroids = [_centroid([stats.vector(d.terms) for d in group_docs]) for group_docs in docs]
    target = centroids[0]
    scored = [(ids[i], dot(target, c)) for i, c in enumerate(centroids[1:])]
    ranked = sorted(
        ((sid, s) for sid, s in scored if s > 0), key=lambda pair: (-round(pair[1], 6), pair[0])
    )
    return ranked[:limit]
