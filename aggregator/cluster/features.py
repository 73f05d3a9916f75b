"""Articles -> sparse term vectors: French stems, title weighted, IDF, top terms only.

Vectors are plain ``dict[str, float]`` with unit norm: the clusterer is streaming (one
article at a time, terms grow without bound over years), so a fixed matrix vocabulary
would only get in the way.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aggregator.cluster.params import ClusterParams
from aggregator.models import Article
from aggregator.text import FrenchAnalyzer

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Below this document frequency a term is never pruned as too common, so that small
# windows (a handful of articles) cluster normally.
MIN_PRUNED_DF = 20
# IDF is computed as if the window held at least this many articles. A handful of
# articles cannot tell a subject word from a common one: in a 5-item live blog
# "Ukraine" is in every item and a plain IDF would weigh it at half a one-off word.
# Below this size terms weigh nearly the same (stop words are gone already); at and
# above it (any real window: the dev set's day has 5,064) IDF is unchanged.
MIN_IDF_WINDOW = 1000

Vector = dict[str, float]
# Longer text before " : " is a sentence, not a kicker.
MAX_KICKER_TERMS = 4
# A headline template ("La météo du vendredi 10 janvier 2020 à Vitré", one per town)
# is recognised by its frame: the stems of its lower-case words. Frames shorter than
# this are ordinary phrasing ("Lyon bat Nantes"), not a template.
MIN_FRAME_STEMS = 4
_RAW_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.U)


def hours(when: datetime | None) -> float:
    """Hours since the epoch; a missing date sorts first."""
    return ((when or EPOCH) - EPOCH).total_seconds() / 3600.0


@dataclass(slots=True)
class Doc:
    """An article as the clusterer sees it: its time, weighted terms and readable words."""

    article: Article
    t: float
    terms: list[str]
    # Every analysed word with its stem, for readable key terms.
    surface: list[tuple[str, str]] = field(default_factory=list)
    # Unweighted title + summary stems, for wire-copy detection.
    plain: list[str] = field(default_factory=list)
    # The headline's kicker ("Guerre en Ukraine : ..."), as joined stems: the outlet's own
    # name for the subject, evidence for topics.
    kicker: str = ""
    # The headline's template frame (see `template_frame`), or "".
    frame: str = ""


def make_doc(article: Article, analyzer: FrenchAnalyzer, params: ClusterParams) -> Doc:
    title_words, title_stems = analyzer.analyse(article.title)
    summary_words, summary_stems = analyzer.analyse(article.summary)
    terms = title_stems * params.title_weight + summary_stems
    if params.phrase_weight:
        terms += analyzer.phrases(article.title) * params.phrase_weight
    surface = list(zip(title_stems + summary_stems, title_words + summary_words, strict=True))
    head, sep, _ = article.title.partition(" : ")
    kicker_stems = analyzer.analyse(head)[1] if sep else []
    return Doc(
        article=article,
        t=hours(article.published),
        terms=terms,
        surface=surface,
        plain=title_stems + summary_stems,
        kicker="_".join(kicker_stems) if 0 < len(kicker_stems) <= MAX_KICKER_TERMS else "",
        frame=template_frame(article.title, analyzer) if params.templates else "",
    )


def template_frame(title: str, analyzer: FrenchAnalyzer) -> str:
    """The headline with its capitalised words (names, and a template's fixed first
    word) left out, as its sorted set of stems; "" when it names nothing or the frame
    is too short to be a template.

    Generated headlines ("Rennes : la météo du vendredi 10 janvier 2020", "La météo du
    vendredi 10 janvier 2020 à Vitré") share a frame and differ by a name only: one
    story for an editor, though the name is their rarest, heaviest term.
    """
    frame: set[str] = set()
    named = False
    analyse = analyzer.analyse
    for word in _RAW_WORD.findall(title):
        if word[:1].isupper():
            # One capitalised word with a stem names something: the others need no analysis.
            if not named:
                named = bool(analyse(word)[1])
        else:
            frame.update(analyse(word)[1])
    if not named or len(frame) < MIN_FRAME_STEMS:
        return ""
    return " ".join(sorted(frame))


class TermStats:
    """Document frequencies over the articles a run can compare (the window), for IDF.

    In a batch the whole window is counted first; a stream adds and removes articles
    as the window slides. Either way each vector is weighed once, when its article
    arrives, with the statistics of that moment.
    """

    def __init__(self, max_df: float, max_terms: int) -> None:
        self.df: Counter[str] = Counter()
        self.n = 0
        self.max_df = max_df
        self.max_terms = max_terms
        # IDF by document frequency, for the window size it was computed at (at most one
        # entry per distinct frequency; emptied when the size changes).
        self._idf: dict[int, float] = {}
        self._idf_n = 0

    def add(self, terms: Iterable[str]) -> None:
        self.df.update(set(terms))
        self.n += 1

    def remove(self, terms: Iterable[str]) -> None:
        for term in set(terms):
            left = self.df[term] - 1
            if left > 0:
                self.df[term] = left
            else:
                del self.df[term]
        self.n -= 1

    def vector(self, terms: list[str], limit: int | None = None) -> Vector:
        """Sublinear TF x smoothed IDF, frequent terms dropped, top terms, unit norm.

        ``limit`` overrides ``max_terms`` (topics look at every term).
        """
        return self.vectors(terms, limit)[0]

    def vectors(self, terms: list[str], *limits: int | None) -> list[Vector]:
        """``vector(terms, limit)`` for each of ``limits``, the terms weighed once."""
        n = max(self.n, 1)
        cap = max(self.max_df * n, MIN_PRUNED_DF)
        n = max(n, MIN_IDF_WINDOW)
        if n != self._idf_n:
            self._idf, self._idf_n = {}, n
        idfs, df_of, log = self._idf, self.df.get, math.log
        # (-weight, term): sorted as they are, heaviest first, ties broken by the term
        # itself so that output is deterministic (negation is exact).
        weights: list[tuple[float, str]] = []
        for term, count in Counter(terms).items():
            df = df_of(term, 0)
            if df > cap:
                continue
            idf = idfs.get(df)
            if idf is None:
                idf = idfs[df] = log((1 + n) / (1 + df)) + 1.0
            # 1.0 + log(1) is exactly 1.0.
            weights.append((-idf if count == 1 else -(1.0 + log(count)) * idf, term))
        weights.sort()
        out = []
        for limit in limits:
            kept = weights[: self.max_terms if limit is None else limit]
            norm = math.sqrt(sum(w * w for w, _ in kept))
            out.append({term: -w / norm for w, term in kept} if norm else {})
        return out


def dot(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items())
