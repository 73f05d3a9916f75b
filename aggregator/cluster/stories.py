"""Story grouping: stored stories seeded, new articles streamed in publication order.

Each article joins the best active story of the index (``index.StoryIndex``) or starts
one. Editors' must-link and cannot-link pairs steer each decision, and a final pass
makes them hold even between articles that were settled in earlier runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.cluster.features import Doc, Vector
from aggregator.cluster.index import CANDIDATE_POSTINGS_MAX, StoryIndex
from aggregator.cluster.params import ClusterParams, Constraints


@dataclass(slots=True)
class Group:
    """A story being formed: member positions (in ``docs``), their summed vector, and
    the id it must keep (settled and locked stories), if any."""

    members: list[int]
    sum: Vector
    fixed_id: str = ""
    locked: bool = False


def group_stories(
    docs: Sequence[Doc],
    vectors: Sequence[Vector],
    *,
    params: ClusterParams,
    constraints: Constraints,
    settled: Mapping[int, str],
    locked: Mapping[int, str],
) -> list[Group]:
    """Group ``docs`` (sorted by time, then id) into stories.

    ``settled`` maps positions to the stored story they keep; ``locked`` maps positions
    to the editor-locked story they belong to. Every other article is streamed.
    """
    index = StoryIndex(params)
    story_of: dict[int, int] = {}
    fixed: dict[int, str] = {}

    by_story: dict[str, list[int]] = defaultdict(list)
    for i, story_id in settled.items():
        if i not in locked:
            by_story[story_id].append(i)
    for story_id, members in sorted(by_story.items(), key=lambda kv: (min(kv[1]), kv[0])):
        members.sort()
        s = index.new_story(docs[members[0]].t)
        fixed[s] = story_id
        for i in members:
            index.add(s, i, vectors[i], docs[i].t, frame=docs[i].frame)
            story_of[i] = s

    pos = {d.article.id: i for i, d in enumerate(docs)}
    must = _pairs(constraints.must_link, pos)
    cannot = _pairs(constraints.cannot_link, pos)
    for i, doc in enumerate(docs):
        if i in story_of or i in locked:
            continue
        banned = {story_of[j] for j in cannot.get(i, ()) if j in story_of}
        forced = sorted({story_of[j] for j in must.get(i, ()) if j in story_of} - banned)
        if forced:
            index.add(forced[0], i, vectors[i], doc.t, frame=doc.frame)
            story_of[i] = forced[0]
        else:
            index.retire(doc.t)  # docs come in time order
            story_of[i] = index.assign(i, vectors[i], doc.t, banned, doc.frame)

    if params.merge_threshold:
        _merge_stories(index, story_of, fixed, cannot, params)
    groups = _enforce_links(index, story_of, fixed, must, cannot)
    by_lock: dict[str, list[int]] = defaultdict(list)
    for i, story_id in locked.items():
        by_lock[story_id].append(i)
    for story_id, members in sorted(by_lock.items()):
        members.sort()
        groups.append(
            Group(members, sum_vectors(vectors[i] for i in members), fixed_id=story_id, locked=True)
        )
    for group in groups:
        if not group.sum:
            group.sum = sum_vectors(vectors[i] for i in group.members)
    return groups


def _merge_stories(
    index: StoryIndex,
    story_of: dict[int, int],
    fixed: Mapping[int, str],
    cannot: Mapping[int, set[int]],
    params: ClusterParams,
) -> None:
    """Second pass: stories whose members agree on average merge (``story_of`` is updated).

    A single pass is order-dependent: an article that came before a story took shape
    may have started a story of its own. Finished stories are taken in order of their
    first article; each merges into the earlier merged story with the highest mean
    article-to-article cosine (average link: the sum vectors' dot over both sizes) if
    that clears ``merge_threshold`` plus the time penalty. Candidates come from an
    inverted index over merged stories (no N x N). Stories kept from earlier runs
    (``fixed``) neither merge nor absorb.
    """
    p = params
    members: dict[int, list[int]] = defaultdict(list)
    for i, s in story_of.items():
        members[s].append(i)
    order = sorted(
        (s for s in members if s not in fixed and index.stories[s].norm2 > 0),
        key=lambda s: (index.stories[s].first, s),
    )
    postings: dict[str, dict[int, float]] = defaultdict(dict)
    size: dict[int, int] = {}
    last: dict[int, float] = {}
    first: dict[int, float] = {}
    into: dict[int, int] = {}  # story -> the merged story (named by its first story)
    for s in order:
        story = index.stories[s]
        dots: dict[int, float] = defaultdict(float)
        for term, w in story.sum.items():
            bucket = postings.get(term)
            if bucket is None or len(bucket) > CANDIDATE_POSTINGS_MAX:
                continue
            for k, kw in bucket.items():
                dots[k] += w * kw
        banned = {
            into[story_of[j]]
            for i in members[s]
            for j in cannot.get(i, ())
            if story_of.get(j) in into
        }
        best, best_margin = -1, 0.0
        n = len(members[s])
        for k in sorted(dots):
            if k in banned or story.last - first[k] > p.window_hours:
                continue
            gap = max(0.0, story.first - last[k])
            needed = p.merge_threshold + p.time_penalty * gap / p.time_scale_hours
            margin = dots[k] / (n * size[k]) - needed
            if margin >= best_margin and (best < 0 or margin > best_margin):
                best, best_margin = k, margin
        k = s if best < 0 else best
        into[s] = k
        size[k] = size.get(k, 0) + n
        first.setdefault(k, story.first)
        last[k] = max(last.get(k, story.last), story.last)
        for term, w in story.sum.items():
            postings[term][k] = postings[term].get(k, 0.0) + w
    for i, s in story_of.items():
        if s in into:
            story_of[i] = into[s]


def _pairs(pairs: Sequence[tuple[str, str]], pos: Mapping[str, int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for a, b in pairs:
        if a in pos and b in pos and a != b:
            out[pos[a]].add(pos[b])
            out[pos[b]].add(pos[a])
    return out


def sum_vectors(vectors: Iterable[Vector]) -> Vector:
    """The sum of ``vectors``, term by term, in order."""
    it = iter(vectors)
    # Weights are positive (never -0.0): 0.0 + w is w, so the first vector is copied.
    total: Vector = dict(next(it, {}))
    for vec in it:
        for term, w in vec.items():
            total[term] = total.get(term, 0.0) + w
    return total


def _enforce_links(
    index: StoryIndex,
    story_of: dict[int, int],
    fixed: Mapping[int, str],
    must: Mapping[int, set[int]],
    cannot: Mapping[int, set[int]],
) -> list[Group]:
    """Make must-link and cannot-link hold between articles placed in earlier runs too.

    Must-linked stories merge (unless that would join a cannot-linked pair); the later
    article of a cannot-linked pair sharing a story leaves it for a story of its own.
    """
    parent = list(range(len(index.stories)))

    def root(s: int) -> int:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    members: dict[int, set[int]] = defaultdict(set)
    for i, s in story_of.items():
        members[s].add(i)
    for i in sorted(must):
        for j in sorted(must[i]):
            if i not in story_of or j not in story_of:
                continue
            a, b = root(story_of[i]), root(story_of[j])
            if a == b:
                continue
            if any(k in members[b] for m in members[a] for k in cannot.get(m, ())):
                continue
            # The earlier story survives, unless only the later one has a stored id.
            keep, drop = (a, b) if a < b else (b, a)
            if drop in fixed and keep not in fixed:
                keep, drop = drop, keep
            parent[drop] = keep
            members[keep] |= members.pop(drop)

    out: list[Group] = []
    for s in sorted(members):
        if root(s) != s:
            continue
        inside = sorted(members[s])
        kept: list[int] = []
        for i in inside:
            if any(j in cannot.get(i, ()) for j in kept):
                out.append(Group([i], {}))
            else:
                kept.append(i)
        out.append(Group(kept, {}, fixed_id=fixed.get(s, "")))
    out.sort(key=lambda g: g.members[0])
    return out
