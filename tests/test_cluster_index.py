"""The story index's pruned search picks exactly what scoring every candidate would."""

from __future__ import annotations

import math
import random

import pytest

from aggregator.cluster.features import Vector, dot
from aggregator.cluster.index import CANDIDATE_POSTINGS_MAX, StoryIndex
from aggregator.cluster.params import ClusterParams


def full_scan(index: StoryIndex, vec: Vector, t: float) -> int:
    """Every active story sharing a term, scored exactly (the reference)."""
    p = index.params
    best, best_margin = -1, -math.inf
    for s, story in enumerate(index.stories):
        if not story.active or not story.members or t - story.first > p.window_hours:
            continue
        if not set(vec) & set(story.sum):
            continue
        needed = p.threshold + p.time_penalty * max(0.0, t - story.last) / p.time_scale_hours
        margin = dot(vec, story.sum) / math.sqrt(story.norm2) - needed
        if margin < 0 or margin <= best_margin + 1e-12:
            continue
        if len(story.members) > 1 and dot(vec, story.seed) < p.seed_threshold:
            continue
        best, best_margin = s, margin
    return best


def unit(rng: random.Random, vocabulary: list[str], n_terms: int) -> Vector:
    terms = rng.sample(vocabulary, n_terms)
    weights = sorted((rng.random() ** 2 + 0.01 for _ in terms), reverse=True)
    norm = math.sqrt(sum(w * w for w in weights))
    return {t: w / norm for t, w in zip(terms, weights, strict=True)}


def stream_against_full_scan(
    index: StoryIndex, rng: random.Random, vocabulary: list[str], times: list[tuple[float, float]]
) -> int:
    """Stream random articles at ``(when, now)`` times, checking each choice of ``best``
    against a full scan; returns how many joined a story."""
    joined = 0
    for n, (when, now) in enumerate(times):
        vec = unit(rng, vocabulary, rng.randint(2, 12))
        expected = full_scan(index, vec, when)
        got, _ = index.best(vec, when)
        assert got == expected, (n, got, expected)
        joined += got >= 0
        index.assign(n, vec, when)
        index.expire(now)
    return joined


def test_pruned_best_matches_a_full_scan() -> None:
    rng = random.Random(7)
    # A small vocabulary so that stories overlap a lot and many are near the threshold.
    vocabulary = [f"t{i}" for i in range(120)]
    index = StoryIndex(ClusterParams(threshold=0.45, seed_threshold=0.3))
    times = [(n * 0.05, n * 0.05) for n in range(3000)]
    joined = stream_against_full_scan(index, rng, vocabulary, times)
    assert 300 < joined < 2700, joined  # the comparison covered both outcomes often


def test_search_among_recent_stories_matches_a_full_scan_in_a_long_window() -> None:
    """In a window longer than the time penalty's reach, only stories active lately are
    searched; the choice is still exactly that of a full scan, out-of-order articles too."""
    rng = random.Random(11)
    vocabulary = [f"t{i}" for i in range(150)]
    params = ClusterParams(threshold=0.45, seed_threshold=0.3, window_hours=24 * 60)
    index = StoryIndex(params)
    assert index.use_recent and index.horizon < params.window_hours
    times, t = [], 0.0
    for _ in range(3000):
        t += rng.random() * 1.5  # ~40 days of articles: many horizons
        times.append((t - rng.random() * 200 if rng.random() < 0.05 else t, t))  # some late
    late = sum(when < now for when, now in times)
    joined = stream_against_full_scan(index, rng, vocabulary, times)
    assert 300 < joined < 2700, joined
    assert late > 50, late
    # Most active stories were out of reach, and the search did not look at them.
    active = sum(1 for s in index.stories if s.active)
    assert len(index.in_recent) < active / 4, (len(index.in_recent), active)


@pytest.mark.parametrize(
    ("vocabulary_size", "threshold", "expire_every"), [(60, 0.45, 700), (12, 0.9, 2500)]
)
def test_retired_stories_change_nothing(
    vocabulary_size: int, threshold: float, expire_every: int
) -> None:
    """``retire`` (batch streams in time order) changes no answer of ``best``, with
    additions to retired stories (must-links) and expiry mixed in; the small vocabulary
    makes buckets larger than CANDIDATE_POSTINGS_MAX."""
    rng = random.Random(11)
    vocabulary = [f"t{i}" for i in range(vocabulary_size)]
    params = ClusterParams(threshold=threshold, seed_threshold=0.3, window_hours=3.0)
    plain, retiring = StoryIndex(params), StoryIndex(params)
    frequent = joined = 0
    for n in range(4000):
        t = n * 0.05
        vec = unit(rng, vocabulary, rng.randint(2, min(12, vocabulary_size)))
        retiring.retire(t)
        got = retiring.best(vec, t)
        assert got == plain.best(vec, t), n
        joined += got[0] >= 0
        frequent += any(len(plain.postings.get(term, ())) > CANDIDATE_POSTINGS_MAX for term in vec)
        if plain.stories and rng.random() < 0.05:
            s = rng.randrange(len(plain.stories))  # forced, maybe into a retired story
            plain.add(s, n, vec, t)
            retiring.add(s, n, vec, t)
        else:
            assert retiring.assign(n, vec, t) == plain.assign(n, vec, t)
        if n % expire_every == expire_every - 1:
            assert retiring.expire(t) == plain.expire(t)
    assert joined > 300, joined
    assert (frequent > 100) == (vocabulary_size < 20), frequent
