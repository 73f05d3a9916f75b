"""The clustering interface: ``cluster_articles``, for the daemon and ``cluster-file`` alike."""

from __future__ import annotations

import functools
import gc
from collections import Counter
from collections.abc import Callable, Container, Mapping, Sequence
from datetime import datetime
from typing import ParamSpec, TypeVar

from aggregator.cluster.features import Doc, TermStats, hours, make_doc
from aggregator.cluster.ids import follow_majority
from aggregator.cluster.labels import key_terms, lead_of, topic_label
from aggregator.cluster.params import ClusterParams, Constraints
from aggregator.cluster.stories import group_stories, sum_vectors
from aggregator.cluster.topics import TOPIC_DOC_TERMS, StoryInfo, link_topics
from aggregator.cluster.wire import wire_copies
from aggregator.models import Article, StoryCluster
from aggregator.text import FrenchAnalyzer

P = ParamSpec("P")
R = TypeVar("R")


def _collector_paused(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` with Python's cyclic garbage collector paused (if it was on).

    Clustering allocates hundreds of thousands of small lists, dicts and tuples and
    makes no reference cycles (a 10k-article run leaves none behind), so the full
    collections its allocations trigger traverse them for nothing: a quarter of the
    run. Reference counting still frees everything; the collector resumes after.
    """

    @functools.wraps(func)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return func(*args, **kwargs)
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            gc.enable()

    return paused


@_collector_paused
def cluster_articles(
    articles: Sequence[Article],
    *,
    analyzer: FrenchAnalyzer,
    params: ClusterParams | None = None,
    now: datetime | None = None,
    previous: Mapping[str, str] | None = None,
    constraints: Constraints | None = None,
    taken_ids: Container[str] = frozenset(),
    incremental: bool = False,
    previous_topics: Mapping[str, str] | None = None,
    taken_topic_ids: Container[str] = frozenset(),
) -> list[StoryCluster]:
    """Group ``articles`` into stories and stories into topics, with stable ids and labels.

    ``previous`` maps article ids to the story ids they had. A full run (the default)
    regroups every article of a story still open at ``now`` (active within the story
    window) and ids follow the majority of members; an ``incremental`` run keeps every
    stored assignment and only places new articles. ``previous_topics`` maps story ids
    to their topic ids, likewise. ``taken_ids``/``taken_topic_ids`` are ids new stories
    and topics must not reuse. Same input, same output.
    """
    params = params or ClusterParams()
    constraints = constraints or Constraints()
    previous = previous or {}
    docs = sorted(
        (make_doc(a, analyzer, params) for a in articles), key=lambda d: (d.t, d.article.id)
    )
    if not docs:
        return []
    stats = TermStats(params.max_df, params.max_terms)
    for doc in docs:
        stats.add(doc.terms)
    # Each article's story vector (`max_terms` terms) and topic vector, weighed at once.
    vectors, topic_vectors = [], []
    for doc in docs:
        vec, topic_vec = stats.vectors(doc.terms, None, TOPIC_DOC_TERMS)
        vectors.append(vec)
        topic_vectors.append(topic_vec)

    pos = {d.article.id: i for i, d in enumerate(docs)}
    locked = {
        pos[a]: story_id
        for story_id, members in constraints.locked.items()
        for a in members
        if a in pos
    }
    settled = _settled(docs, previous, params, now, incremental)
    groups = group_stories(
        docs, vectors, params=params, constraints=constraints, settled=settled, locked=locked
    )
    fixed = {g: group.fixed_id for g, group in enumerate(groups) if group.fixed_id}
    ids = follow_majority(
        [[docs[i].article.id for i in g.members] for g in groups],
        previous,
        taken_ids,
        fixed=fixed,
        reserved=set(constraints.locked),
    )

    infos = [
        StoryInfo(
            id=story_id,
            sum=sum_vectors(topic_vectors[i] for i in group.members),
            first=docs[group.members[0]].t,
            last=max(docs[i].t for i in group.members),
            kickers=_kicker_shares(docs, group.members),
        )
        for story_id, group in zip(ids, groups, strict=True)
    ]
    topic_of = link_topics(
        infos,
        params=params,
        previous=previous_topics or {},
        keep_previous=incremental,
        forced=constraints.topic_links,
        taken=taken_topic_ids,
    )
    topic_titles: dict[str, list[list[str]]] = {}
    topic_summaries: dict[str, list[list[str]]] = {}
    for story_id, group in zip(ids, groups, strict=True):
        if story_id in topic_of:
            members = [docs[i].article for i in group.members]
            topic_titles.setdefault(topic_of[story_id], []).append([a.title for a in members])
            summaries = [a.summary for a in members if a.summary]
            topic_summaries.setdefault(topic_of[story_id], []).append(summaries)
    topic_labels = {
        tid: constraints.fixed_topic_labels.get(tid)
        or topic_label(titles, analyzer, topic_summaries[tid])
        for tid, titles in topic_titles.items()
    }

    clusters = []
    for story_id, group in zip(ids, groups, strict=True):
        lead = lead_of(docs, group.members)
        copies = wire_copies(docs, group.members, params.wire_similarity)
        topic_id = topic_of.get(story_id)
        clusters.append(
            StoryCluster(
                id=story_id,
                article_ids=tuple(docs[i].article.id for i in group.members),
                label=constraints.fixed_labels.get(story_id) or docs[lead].article.title,
                lead_id=docs[lead].article.id,
                terms=key_terms(group.sum, docs, group.members),
                topic_id=topic_id,
                topic_label=topic_labels.get(topic_id) if topic_id else None,
                wire_of=tuple(
                    (docs[c].article.id, docs[o].article.id) for c, o in sorted(copies.items())
                ),
            )
        )
    return sorted(clusters, key=lambda c: c.id)


def _kicker_shares(docs: Sequence[Doc], members: Sequence[int]) -> dict[str, float]:
    counts = Counter(docs[i].kicker for i in members if docs[i].kicker)
    return {k: n / len(members) for k, n in counts.items()}


def _settled(
    docs: Sequence[object],
    previous: Mapping[str, str],
    params: ClusterParams,
    now: datetime | None,
    incremental: bool,
) -> dict[int, str]:
    """Positions whose stored story is kept as it is.

    Incremental runs keep every stored assignment. A full run keeps only stories that
    are closed (no member within the story window before ``now``): rebuilding them
    could only churn ids and labels of stories no new article can join.
    """
    found = {
        i: previous[d.article.id]  # type: ignore[attr-defined]
        for i, d in enumerate(docs)
        if d.article.id in previous  # type: ignore[attr-defined]
    }
    if incremental or now is None:
        return found if incremental else {}
    cutoff = hours(now) - params.window_hours
    latest: dict[str, float] = {}
    for i, story_id in found.items():
        latest[story_id] = max(latest.get(story_id, -1e18), docs[i].t)  # type: ignore[attr-defined]
    return {i: s for i, s in found.items() if latest[s] < cutoff}
