"""A long-running stream through the story index, with a sliding window of statistics.

``cluster_articles`` rebuilds its state from the articles it is given; this keeps the
state between articles instead (IDF counts slide with the window, retired stories give
their memory back), for streams of years of news: the scale benchmark, or a process
that lives as long as the daemon.
"""

from __future__ import annotations

from collections import deque

from aggregator.cluster.features import TermStats, make_doc
from aggregator.cluster.index import StoryIndex
from aggregator.cluster.params import ClusterParams
from aggregator.models import Article
from aggregator.text import FrenchAnalyzer


class StreamClusterer:
    """Feed articles in publication order; each gets a story number at once."""

    def __init__(self, analyzer: FrenchAnalyzer, params: ClusterParams | None = None) -> None:
        self.analyzer = analyzer
        self.params = params or ClusterParams()
        self.index = StoryIndex(self.params)
        self.stats = TermStats(self.params.max_df, self.params.max_terms)
        self._window: deque[tuple[float, list[str]]] = deque()
        self.count = 0

    def add(self, article: Article) -> int:
        doc = make_doc(article, self.analyzer, self.params)
        while self._window and doc.t - self._window[0][0] > self.params.window_hours:
            self.stats.remove(self._window.popleft()[1])
        for s in self.index.expire(doc.t):
            self.index.release(s)
        self.stats.add(doc.terms)
        self._window.append((doc.t, doc.terms))
        story = self.index.assign(self.count, self.stats.vector(doc.terms), doc.t, frame=doc.frame)
        self.count += 1
        return story

    @property
    def active_stories(self) -> int:
        return sum(1 for s in self.index.stories if s.active)
