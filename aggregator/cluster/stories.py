"""Story grouping: single-pass centroid clustering in publication order.

Each article joins the most similar active story (cosine to the story's centroid, TF-IDF
over French stems, title weighted) if the similarity clears a threshold that rises with the
time gap; otherwise it starts a new story. Similarities come from an inverted index over
story centroids, so the cost follows shared terms, never an N x N matrix.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from aggregator.cluster.params import ClusterParams, Constraints
from aggregator.models import Article, StoryCluster
from aggregator.text import FrenchAnalyzer

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Pruning frequent terms keeps posting lists short; below this document frequency a
# term is always kept, so small windows (a handful of articles) cluster normally.
MIN_PRUNED_DF = 20
KEY_TERMS = 6


def _hours(a: Article) -> float:
    return ((a.published or EPOCH) - EPOCH).total_seconds() / 3600.0


def _identity(doc: list[str]) -> list[str]:
    return doc


def group_stories(
    articles: Sequence[Article],
    *,
    analyzer: FrenchAnalyzer,
    params: ClusterParams,
    constraints: Constraints,
) -> list[StoryCluster]:
    """Group articles; returned clusters have an empty ``id`` (see ``ids.assign_ids``)."""
    if not articles:
        return []
    arts = sorted(articles, key=lambda a: (_hours(a), a.id))
    n = len(arts)
    docs: list[list[str]] = []
    surface: dict[str, Counter[str]] = defaultdict(Counter)
    for a in arts:
        title_words = analyzer.tokens(a.title)
        summary_words = analyzer.tokens(a.summary)
        title_stems = analyzer.stems(title_words)
        summary_stems = analyzer.stems(summary_words)
        for word, stem in zip(
            title_words + summary_words, title_stems + summary_stems, strict=True
        ):
            surface[stem][word] += 1
        docs.append(title_stems * params.title_weight + summary_stems)

    max_df = max(int(params.max_df * n), MIN_PRUNED_DF)
    vectorizer = TfidfVectorizer(
        analyzer=_identity, sublinear_tf=True, max_df=max_df, dtype=np.float32
    )
    try:
        X = vectorizer.fit_transform(docs).tocsr()
    except ValueError:  # empty vocabulary: nothing to compare, every article alone
        X = sp.csr_matrix((n, 1), dtype=np.float32)
    vocab = vectorizer.get_feature_names_out() if X.shape[1] > 1 else np.array([""])

    labels = _assign(arts, X, params, constraints)
    return _build_clusters(arts, X, labels, vocab, surface)


def _assign(
    arts: Sequence[Article], X: sp.csr_matrix, params: ClusterParams, constraints: Constraints
) -> list[int]:
    must: dict[str, set[str]] = defaultdict(set)
    for a, b in constraints.must_link:
        must[a].add(b)
        must[b].add(a)
    cannot: dict[str, set[str]] = defaultdict(set)
    for a, b in constraints.cannot_link:
        cannot[a].add(b)
        cannot[b].add(a)

    postings: dict[int, dict[int, float]] = defaultdict(dict)  # term -> story -> weight sum
    norm2: list[float] = []
    first_time: list[float] = []
    last_time: list[float] = []
    story_of: dict[str, int] = {}
    labels: list[int] = []
    indptr, indices, data = X.indptr, X.indices, X.data
    for i, art in enumerate(arts):
        t = _hours(art)
        row = slice(indptr[i], indptr[i + 1])
        terms, weights = indices[row], data[row]
        forced = {story_of[m] for m in must.get(art.id, ()) if m in story_of}
        banned = {story_of[m] for m in cannot.get(art.id, ()) if m in story_of}
        best, best_dot = -1, 0.0
        if len(forced) == 1:
            best = forced.pop()
            best_dot = sum(
                float(w) * postings[int(term)].get(best, 0.0)
                for term, w in zip(terms, weights, strict=True)
            )
        elif len(terms):
            dots: dict[int, float] = defaultdict(float)
            for term, w in zip(terms, weights, strict=True):
                for s, cw in postings[int(term)].items():
                    dots[s] += float(w) * cw
            best_score = -1.0
            for s in sorted(dots):
                if s in banned or t - first_time[s] > params.window_hours:
                    continue
                gap = max(0.0, t - last_time[s])
                needed = params.threshold + params.time_penalty * gap / params.time_scale_hours
                score = dots[s] / math.sqrt(norm2[s])
                if score >= needed and score - needed > best_score:
                    best, best_dot, best_score = s, dots[s], score - needed
        if best < 0:
            best = len(norm2)
            norm2.append(0.0)
            first_time.append(t)
            last_time.append(t)
        self_norm2 = float(np.dot(weights, weights))
        norm2[best] += 2.0 * best_dot + self_norm2
        last_time[best] = max(last_time[best], t)
        for term, w in zip(terms, weights, strict=True):
            bucket = postings[int(term)]
            bucket[best] = bucket.get(best, 0.0) + float(w)
        story_of[art.id] = best
        labels.append(best)
    return labels


def _build_clusters(
    arts: Sequence[Article],
    X: sp.csr_matrix,
    labels: list[int],
    vocab: np.ndarray,
    surface: dict[str, Counter[str]],
) -> list[StoryCluster]:
    n_stories = max(labels) + 1
    membership = sp.csr_matrix(
        (np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))),
        shape=(n_stories, len(labels)),
    )
    centroids = (membership @ X).tocsr()
    # Centrality of each article: its dot product with its own story's centroid.
    centrality = np.asarray(X.multiply(centroids[labels]).sum(axis=1)).ravel()
    members: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(labels):
        members[s].append(i)
    clusters = []
    for s in range(n_stories):
        idx = members[s]
        # Most central headline; ties go to the earliest article.
        lead = max(idx, key=lambda i: (round(float(centrality[i]), 6), -i))
        row = centroids.getrow(s)
        top = np.argsort(-row.data, kind="stable")[:KEY_TERMS]
        terms = tuple(
            surface[str(vocab[row.indices[j]])].most_common(1)[0][0]
            for j in top
            if surface.get(str(vocab[row.indices[j]]))
        )
        clusters.append(
            StoryCluster(
                id="",
                article_ids=tuple(arts[i].id for i in idx),
                label=arts[lead].title,
                lead_id=arts[lead].id,
                terms=terms,
            )
        )
    return clusters
