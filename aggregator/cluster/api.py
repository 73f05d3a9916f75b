"""The clustering interface: parameters, editors' constraints, and ``cluster_articles``."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from datetime import UTC, datetime

from aggregator.cluster.ids import assign_ids
from aggregator.cluster.params import ClusterParams, Constraints
from aggregator.cluster.stories import group_stories
from aggregator.models import Article, StoryCluster
from aggregator.text import FrenchAnalyzer


def cluster_articles(
    articles: Sequence[Article],
    *,
    analyzer: FrenchAnalyzer,
    params: ClusterParams | None = None,
    now: datetime | None = None,
    previous: Mapping[str, str] | None = None,
    constraints: Constraints | None = None,
    taken_ids: Container[str] = frozenset(),
) -> list[StoryCluster]:
    """Group ``articles`` into stories with stable ids and French labels.

    ``previous`` maps article ids to the story ids they had: a story keeps its id when
    the majority of its members stay together. ``taken_ids`` are ids that new stories
    must not reuse. Same input, same output.
    """
    params = params or ClusterParams()
    constraints = constraints or Constraints()
    locked_members = {a for members in constraints.locked.values() for a in members}
    free = [a for a in articles if a.id not in locked_members]
    groups = group_stories(free, analyzer=analyzer, params=params, constraints=constraints)
    by_id = {a.id: a for a in articles}
    for story_id, members in sorted(constraints.locked.items()):
        present = [by_id[m] for m in members if m in by_id]
        if present:
            groups.append(_locked_group(story_id, present))
    clusters = assign_ids(groups, previous or {}, taken_ids, locked=set(constraints.locked))
    if constraints.fixed_labels:
        clusters = [
            _relabel(c, constraints.fixed_labels[c.id]) if c.id in constraints.fixed_labels else c
            for c in clusters
        ]
    return clusters


def _relabel(cluster: StoryCluster, label: str) -> StoryCluster:
    return StoryCluster(
        id=cluster.id,
        article_ids=cluster.article_ids,
        label=label,
        lead_id=cluster.lead_id,
        terms=cluster.terms,
        topic_id=cluster.topic_id,
        topic_label=cluster.topic_label,
    )


def _locked_group(story_id: str, members: list[Article]) -> StoryCluster:
    members.sort(key=lambda a: (a.published or datetime.min.replace(tzinfo=UTC), a.id))
    return StoryCluster(
        id=story_id,
        article_ids=tuple(a.id for a in members),
        label=members[0].title,
        lead_id=members[0].id,
    )
