"""How close stories are to each other: cosine between story centroids, with the same
features clustering uses (French stems, title weighted, sublinear TF-IDF).

The editors' desk shows a story's nearest neighbours with this, as merge candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from aggregator.cluster.params import ClusterParams
from aggregator.models import Article
from aggregator.text import FrenchAnalyzer


def _identity(doc: list[str]) -> list[str]:
    return doc


def story_similarities(
    story: Sequence[Article],
    others: Mapping[str, Sequence[Article]],
    *,
    analyzer: FrenchAnalyzer,
    params: ClusterParams | None = None,
    limit: int = 10,
) -> list[tuple[str, float]]:
    """The ``limit`` stories of ``others`` most similar to ``story``: (id, cosine), best first.

    IDF is learnt on the articles given, so the scores are relative to that neighbourhood.
    Stories with nothing in common (cosine 0) are left out. Ties go to the smaller id.
    """
    params = params or ClusterParams()
    ids = [sid for sid in sorted(others) if others[sid]]
    groups = [list(story), *(list(others[sid]) for sid in ids)]
    if not story or not ids:
        return []
    docs: list[list[str]] = []
    owner: list[int] = []
    for g, articles in enumerate(groups):
        for a in articles:
            title = analyzer.stems(analyzer.tokens(a.title))
            summary = analyzer.stems(analyzer.tokens(a.summary))
            docs.append(title * params.title_weight + summary)
            owner.append(g)
    vectorizer = TfidfVectorizer(analyzer=_identity, sublinear_tf=True, dtype=np.float32)
    try:
        X = vectorizer.fit_transform(docs)
    except ValueError:  # no vocabulary at all
        return []
    membership = sp.csr_matrix(
        (np.ones(len(owner), dtype=np.float32), (owner, np.arange(len(owner)))),
        shape=(len(groups), len(owner)),
    )
    centroids = normalize(membership @ X)
    scores = np.asarray((centroids[1:] @ centroids[0].T).todense()).ravel()
    ranked = sorted(
        ((ids[i], float(s)) for i, s in enumerate(scores) if s > 0),
        key=lambda pair: (-round(pair[1], 6), pair[0]),
    )
    return ranked[:limit]
