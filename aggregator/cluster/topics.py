"""Topics: stories about one ongoing subject, linked over a longer window (two weeks).

Each story is represented by its normalised centroid; stories are taken by first
publication and each joins the topic whose centroid is most similar, if that clears
``topic_threshold`` and the topic was active within ``topic_window_hours``. Topics of
fewer than ``topic_min_stories`` stories dissolve: most stories have no topic.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

from aggregator.cluster.features import Vector
from aggregator.cluster.ids import follow_majority
from aggregator.cluster.params import ClusterParams

# Topics are subjects, told by the words stories repeat in their summaries too ("la
# guerre en Ukraine"), not only by headlines: a story's topic vector sums its articles'
# vectors with this many terms each (stories use `max_terms`, 12: the headline's).
TOPIC_DOC_TERMS = 50
# A story enters topic linking with its `max_terms` heaviest terms (its gist), like an
# article enters story clustering, so that one threshold serves short and long texts.
# One shared word ("salle", "début") is a coincidence, not a subject: a story must share
# at least this many terms with a topic to join it (dev set: one-word topics of unrelated
# local news vanish).
MIN_SHARED_TERMS = 2


@dataclass(slots=True)
class StoryInfo:
    id: str
    sum: Vector
    first: float
    last: float
    # Kicker -> share of the story's headlines that carry it.
    kickers: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Topic:
    sum: Vector = field(default_factory=dict)
    norm2: float = 0.0
    last: float = -math.inf
    stories: list[int] = field(default_factory=list)
    fixed_id: str = ""


def _gist(story: StoryInfo, terms: int) -> Vector:
    """The story's ``terms`` heaviest terms, plus its kickers weighed like its heaviest term.

    A shared kicker ("Guerre en Ukraine : ...") is the outlets' own word that two
    stories have one subject, however common its words are in the window.
    """
    # Sorted as (-weight, term), heaviest first, ties by term (negation is exact).
    top = [(t, -w) for w, t in sorted((-w, t) for t, w in story.sum.items())[:terms]]
    heaviest = top[0][1] if top else 1.0
    top += [(f"kicker:{k}", share * heaviest) for k, share in sorted(story.kickers.items())]
    norm = math.sqrt(sum(w * w for _, w in top))
    return {t: w / norm for t, w in top} if norm else {}


def link_topics(
    stories: Sequence[StoryInfo],
    *,
    params: ClusterParams,
    previous: Mapping[str, str],
    keep_previous: bool,
    forced: Mapping[str, str | None],
    taken: Container[str],
) -> dict[str, str]:
    """Map story ids to topic ids. ``previous`` maps story ids to their stored topic;
    with ``keep_previous`` (incremental runs) those stay, else topics are rebuilt and
    ids follow the majority of their stories. ``forced`` is the editors' word."""
    order = sorted(range(len(stories)), key=lambda i: (stories[i].first, stories[i].id))
    gists = [_gist(s, params.max_terms) for s in stories]
    topics: list[_Topic] = []
    by_id: dict[str, int] = {}
    # Term -> the topics whose sum has it (the weights are the sums' own).
    postings: dict[str, list[int]] = defaultdict(list)
    placed: dict[int, int] = {}

    def add(k: int, i: int) -> None:
        topic = topics[k]
        d = sum(w * topic.sum.get(t, 0.0) for t, w in gists[i].items())
        topic.norm2 += 2.0 * d + sum(w * w for w in gists[i].values())
        topic.last = max(topic.last, stories[i].last)
        topic.stories.append(i)
        for t, w in gists[i].items():
            if t in topic.sum:
                topic.sum[t] += w
            else:
                topic.sum[t] = w
                postings[t].append(k)
        placed[i] = k

    def topic_named(topic_id: str) -> int:
        if topic_id not in by_id:
            by_id[topic_id] = len(topics)
            topics.append(_Topic(fixed_id=topic_id))
        return by_id[topic_id]

    for i in order:
        sid = stories[i].id
        if sid in forced:
            if forced[sid] is not None:
                add(topic_named(str(forced[sid])), i)
        elif keep_previous and sid in previous:
            add(topic_named(previous[sid]), i)
    for i in order:
        if i in placed or stories[i].id in forced:
            continue
        gist = gists[i]
        # Topics sharing terms with the gist, and how many terms each shares.
        shared = Counter(chain.from_iterable(postings[t] for t in gist if t in postings))
        when = stories[i].first
        best, best_score = -1, params.topic_threshold
        candidates = [k for k, n in shared.items() if n >= MIN_SHARED_TERMS]
        candidates.sort()
        for k in candidates:
            topic = topics[k]
            if when - topic.last > params.topic_window_hours:
                continue
            # The dot with the topic's sum, over the gist's terms in order: the same sum,
            # in the same order, as accumulating it term by term through the postings.
            tsum, d, left = topic.sum, 0.0, shared[k]
            for t, w in gist.items():
                if t in tsum:
                    d += w * tsum[t]
                    left -= 1
                    if not left:
                        break
            score = d / math.sqrt(topic.norm2)
            if score >= best_score and (best < 0 or score > best_score):
                best, best_score = k, score
        if best < 0:
            best = len(topics)
            topics.append(_Topic())
        add(best, i)

    kept = [
        k
        for k, topic in enumerate(topics)
        if len(topic.stories) >= params.topic_min_stories
        or any(stories[i].id in forced for i in topic.stories)
    ]
    first = _first(stories)
    groups = [sorted((stories[i].id for i in topics[k].stories), key=first) for k in kept]
    fixed = {g: topics[k].fixed_id for g, k in enumerate(kept) if topics[k].fixed_id}
    ids = follow_majority(groups, {} if keep_previous else previous, taken, fixed=fixed, prefix="t")
    return {sid: tid for members, tid in zip(groups, ids, strict=True) for sid in members}


def _first(stories: Sequence[StoryInfo]):  # type: ignore[no-untyped-def]
    first = {s.id: (s.first, s.id) for s in stories}
    return lambda sid: first[sid]
