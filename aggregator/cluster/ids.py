"""Stable story ids: a story keeps its id while the majority of its members stay together."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Container, Mapping, Sequence

from aggregator.models import StoryCluster


def fresh_id(seed: str, taken: Container[str], used: set[str]) -> str:
    """A new id derived from the story's first article, so reruns give the same id."""
    salt = 0
    while True:
        text = seed if salt == 0 else f"{seed}#{salt}"
        candidate = "s" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:15]
        if candidate not in used and candidate not in taken:
            return candidate
        salt += 1


def assign_ids(
    groups: Sequence[StoryCluster],
    previous: Mapping[str, str],
    taken: Container[str],
    *,
    locked: set[str],
) -> list[StoryCluster]:
    """Give each group the previous id most of its members had, else a fresh one.

    Groups claim ids greedily, largest overlap first, so when a story splits the larger
    part keeps the id, and when two merge the id of the larger one survives.
    """
    used: set[str] = set(locked)
    claims = []
    for g, group in enumerate(groups):
        if group.id:
            continue
        votes = Counter(previous[a] for a in group.article_ids if a in previous)
        for story_id, count in votes.items():
            if story_id not in locked:
                claims.append((-count, -len(group.article_ids), story_id, g))
    chosen: dict[int, str] = {}
    for _, _, story_id, g in sorted(claims):
        if g in chosen or story_id in used:
            continue
        chosen[g] = story_id
        used.add(story_id)
    out = []
    for g, group in enumerate(groups):
        story_id = group.id or chosen.get(g) or fresh_id(group.article_ids[0], taken, used)
        used.add(story_id)
        out.append(
            StoryCluster(
                id=story_id,
                article_ids=group.article_ids,
                label=group.label,
                lead_id=group.lead_id,
                terms=group.terms,
                topic_id=group.topic_id,
                topic_label=group.topic_label,
            )
        )
    return sorted(out, key=lambda c: c.id)
