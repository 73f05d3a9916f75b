"""The streaming story index: each article joins the best active story or starts one.

Stories keep the sum of their members' vectors (the centroid, unnormalised) and their
first member's vector (the seed). An inverted index (term -> story -> weight) finds the
stories an article shares terms with, so the cost follows shared terms: no N x N matrix.
The same index serves a full rebuild (a batch streamed in publication order), the
daemon's incremental runs (stored stories seeded first, new articles streamed) and the
benchmark's years-long stream.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field

from aggregator.cluster.features import Vector, dot
from aggregator.cluster.params import ClusterParams

# A term shared by more active stories than this is not used to *find* candidates (its
# weight is low anyway); candidates found through rarer terms still get its exact share
# of the similarity. Bounds the cost per article in large windows (100k articles).
CANDIDATE_POSTINGS_MAX = 1000
# Slack on "a cosine is at most 1" (rounding of the incrementally kept centroid norm).
_COSINE_SLACK = 1e-6


@dataclass(slots=True)
class StoryState:
    """One story as the index knows it."""

    sum: Vector
    seed: Vector
    norm2: float
    first: float
    last: float
    members: list[int] = field(default_factory=list)
    active: bool = True
    # Template frames of its members (``features.template_frame``).
    frames: list[str] = field(default_factory=list)


class StoryIndex:
    """Active stories of a sliding window and the decision to join one."""

    def __init__(self, params: ClusterParams) -> None:
        self.params = params
        self.stories: list[StoryState] = []
        self.postings: dict[str, dict[int, float]] = defaultdict(dict)
        self._by_first: list[tuple[float, int]] = []  # heap for expiry
        # 1 / |centroid sum| and first member's time per story, for the first cut in ``best``.
        self.inv_norm: list[float] = []
        self.first: list[float] = []
        self.by_frame: dict[str, int] = {}  # template frame -> the active story holding it
        # A cosine is at most 1, so a story idle for longer than ``horizon`` hours needs
        # more than any article can give (the time penalty) and can never be chosen. When
        # that is shorter than the story window, ``recent`` holds the postings of the
        # stories active within ``horizon`` of the latest query (``clock``) and candidates
        # are found there: in a window of months the cost follows the last few days, not
        # the whole window. (Default settings: horizon 96 h, window 72 h, so unused.)
        self.horizon = (
            max(0.0, (1.0 + _COSINE_SLACK - params.threshold) * params.time_scale_hours)
            / params.time_penalty
            if params.time_penalty > 0
            else math.inf
        )
        self.use_recent = self.horizon < params.window_hours
        self.recent: dict[str, dict[int, float]] = defaultdict(dict)
        self.in_recent: set[int] = set()
        self.clock = -math.inf
        self._by_last: list[tuple[float, int]] = []  # heap: when stories leave ``recent``
        # Stories below this number are retired (``retire``): out of the postings, their
        # entries counted here per term.
        self._retired_upto = 0
        self._retired: dict[str, int] = {}

    def best(self, vec: Vector, t: float, banned: Collection[int] = ()) -> tuple[int, float]:
        """The story ``vec`` should join at time ``t`` (-1 if none) and its centroid dot.

        Candidates are found through the article's heaviest terms only: a story that
        shares none of them can reach at most the norm of the remaining terms (Cauchy-
        Schwarz: a centroid divided by its norm has unit length), and when that is below
        ``threshold`` it could never be chosen. The result is the same as scoring every
        story sharing a term (tests/test_cluster_index.py), at a fraction of the cost.
        """
        p = self.params
        recent = self._recent_for(t)
        finding: list[tuple[float, dict[int, float]]] = []
        frequent: list[tuple[str, float]] = []
        postings, retired = self.postings, self._retired
        for term, w in vec.items():
            bucket = postings.get(term)
            # Bucket sizes count retired stories too: the same terms find candidates.
            size = len(bucket) if bucket else 0
            if retired:
                size += retired.get(term, 0)
            if not size:
                continue
            if size > CANDIDATE_POSTINGS_MAX:
                frequent.append((term, w))
            elif recent is None:
                finding.append((w, bucket or {}))
            else:
                finding.append((w, recent.get(term) or {}))
        # Vectors list their heaviest terms first: drop the lightest finding terms while
        # what is left out (with the frequent terms) cannot reach the threshold on its own.
        rest2 = sum(w * w for _, w in frequent)
        bound2 = p.threshold * p.threshold * (1.0 - 1e-9)
        k = len(finding)
        while k and rest2 + finding[k - 1][0] ** 2 < bound2:
            k -= 1
            rest2 += finding[k][0] ** 2
        # Weights are positive: the first term's products are the sums so far exactly
        # (0.0 + x is x), the others are added in order.
        dots: dict[int, float] = {}
        if k:
            w0, bucket0 = finding[0]
            dots = {s: w0 * cw for s, cw in bucket0.items()}
        for w, bucket in finding[1:k]:
            for s, cw in bucket.items():
                dots[s] = dots.get(s, 0.0) + w * cw
        rest = math.sqrt(rest2)
        skip = {term for term, _ in frequent}
        # The article's terms in order, frequent ones after, for the exact dots.
        exact_terms = [(term, w) for term, w in vec.items() if term not in skip]
        # Cheap first cut (one multiply per candidate): the centroid cosine from the terms
        # used to find it, plus the most the others could add, must reach the threshold;
        # and the story must be recent enough to take the article.
        inv_norm, floor = self.inv_norm, p.threshold - rest - 1e-9
        first, window = self.first, p.window_hours
        hopeful = sorted(
            s for s, d in dots.items() if d * inv_norm[s] >= floor and t - first[s] <= window
        )
        best, best_dot, best_margin = -1, 0.0, -math.inf
        for s in hopeful:
            story = self.stories[s]
            if not story.active or s in banned:
                continue
            needed = p.threshold + p.time_penalty * max(0.0, t - story.last) / p.time_scale_hours
            norm = math.sqrt(story.norm2)
            if dots[s] / norm + rest < needed:
                continue  # even the terms left out cannot lift it to what is needed
            # The exact dot, summed in the same order as a full scan of the postings.
            weight_of = story.sum.get
            d = sum(w * weight_of(term, 0.0) for term, w in exact_terms)
            d += sum(w * weight_of(term, 0.0) for term, w in frequent)
            margin = d / norm - needed
            if margin < 0 or margin <= best_margin:
                continue
            if len(story.members) > 1 and dot(vec, story.seed) < p.seed_threshold:
                continue
            best, best_dot, best_margin = s, d, margin
        return best, best_dot

    def _recent_for(self, t: float) -> dict[str, dict[int, float]] | None:
        """The postings to find candidates in at time ``t``: ``recent``, brought up to
        ``t`` first, or None (all postings) when it is not in use or ``t`` is earlier
        than an earlier query (stories that left ``recent`` may be within reach again)."""
        if not self.use_recent or t < self.clock:
            return None
        self.clock = t
        heap, cutoff = self._by_last, t - self.horizon
        while heap and heap[0][0] < cutoff:
            last, s = heapq.heappop(heap)
            story = self.stories[s]
            if story.last == last and s in self.in_recent:
                self._leave_recent(s, story)
        return self.recent

    def _leave_recent(self, s: int, story: StoryState) -> None:
        self.in_recent.discard(s)
        for term in story.sum:
            bucket = self.recent.get(term)
            if bucket is not None:
                bucket.pop(s, None)
                if not bucket:
                    del self.recent[term]

    def new_story(self, t: float) -> int:
        s = len(self.stories)
        self.stories.append(StoryState(sum={}, seed={}, norm2=0.0, first=t, last=t))
        self.inv_norm.append(0.0)
        self.first.append(t)
        heapq.heappush(self._by_first, (t, s))
        return s

    def add(
        self,
        s: int,
        member: int,
        vec: Vector,
        t: float,
        story_dot: float | None = None,
        frame: str = "",
    ) -> None:
        """Add ``vec`` to story ``s``; ``story_dot`` is its dot with the sum, if known."""
        story = self.stories[s]
        if frame and story.active and frame not in self.by_frame:
            self.by_frame[frame] = s
            story.frames.append(frame)
        if story_dot is None:
            story_dot = dot(vec, story.sum)
        if not story.members:
            story.seed = vec
        story.members.append(member)
        story.norm2 += 2.0 * story_dot + sum(w * w for w in vec.values())
        self.inv_norm[s] = 1.0 / math.sqrt(story.norm2) if story.norm2 > 0 else 0.0
        story.first = min(story.first, t)
        self.first[s] = story.first
        story.last = max(story.last, t)
        if story.active and s < self._retired_upto:
            # Retired: a new term counts in its bucket's size, nothing else changes there.
            retired = self._retired
            for term, w in vec.items():
                if term not in story.sum:
                    retired[term] = retired.get(term, 0) + 1
                story.sum[term] = story.sum.get(term, 0.0) + w
            return
        for term, w in vec.items():
            story.sum[term] = story.sum.get(term, 0.0) + w
            if story.active:
                bucket = self.postings[term]
                bucket[s] = bucket.get(s, 0.0) + w
        if self.use_recent and story.active:
            # ``recent`` holds the story's own sums (the same floats as ``postings``).
            if s in self.in_recent:
                for term in vec:
                    self.recent[term][s] = story.sum[term]
            elif story.last >= self.clock - self.horizon:
                self.in_recent.add(s)
                for term, w in story.sum.items():
                    self.recent[term][s] = w
            if s in self.in_recent:
                heapq.heappush(self._by_last, (story.last, s))

    def assign(
        self,
        member: int,
        vec: Vector,
        t: float,
        banned: Collection[int] = (),
        frame: str = "",
    ) -> int:
        """Stream one article: join the story of its template, else the best story, else
        start a new one; returns the story."""
        s = self.by_frame.get(frame, -1) if frame else -1
        if s >= 0 and (s in banned or t - self.stories[s].first > self.params.window_hours):
            s = -1
        d = None
        if s < 0:
            s, d = self.best(vec, t, banned)
        if s < 0:
            s, d = self.new_story(t), 0.0
        self.add(s, member, vec, t, d, frame)
        return s

    def expire(self, now: float) -> list[int]:
        """Retire stories too old to take new articles; returns them (their memory can go)."""
        gone = []
        while self._by_first and now - self._by_first[0][0] > self.params.window_hours:
            _, s = heapq.heappop(self._by_first)
            story = self.stories[s]
            if not story.active:
                continue
            story.active = False
            retired = s < self._retired_upto
            for term in story.sum:
                bucket = self.postings.get(term)
                if retired:
                    left = self._retired[term] - 1
                    if left:
                        self._retired[term] = left
                    else:
                        del self._retired[term]
                if bucket is not None:
                    bucket.pop(s, None)
                    if not bucket and term not in self._retired:
                        del self.postings[term]
            if s in self.in_recent:
                self._leave_recent(s, story)
            for frame in story.frames:
                if self.by_frame.get(frame) == s:
                    del self.by_frame[frame]
            gone.append(s)
        return gone

    def retire(self, now: float) -> None:
        """Take stories too old to take an article at ``now`` out of the postings.

        For streams in time order (a batch rebuild): no later ``best`` may be asked about
        an earlier time. ``best`` then gives the same answers, without walking the
        entries of stories it would leave out as too old. Stories are taken in creation
        order up to the first one still recent; their entries are counted per term, so
        that bucket sizes (``CANDIDATE_POSTINGS_MAX``) stay those of every story.
        """
        s, window = self._retired_upto, self.params.window_hours
        postings, retired, first = self.postings, self._retired, self.first
        while s < len(self.stories) and now - first[s] > window:
            story = self.stories[s]
            if story.active:
                for term in story.sum:
                    bucket = postings.get(term)
                    if bucket is not None and bucket.pop(s, None) is not None:
                        retired[term] = retired.get(term, 0) + 1
            s += 1
        self._retired_upto = s

    def release(self, s: int) -> None:
        """Drop an expired story's vectors (a long stream keeps only ids and members)."""
        story = self.stories[s]
        story.sum, story.seed = {}, {}
