"""Stable ids: a story (or topic) keeps its id while the majority of its members stay."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Container, Mapping, Sequence


def fresh_id(seed: str, taken: Container[str], used: set[str], prefix: str = "s") -> str:
    """A new id derived from the group's first member, so reruns give the same id."""
    salt = 0
    while True:
        text = seed if salt == 0 else f"{seed}#{salt}"
        candidate = prefix + hashlib.sha256(text.encode("utf-8")).hexdigest()[:15]
        if candidate not in used and candidate not in taken:
            return candidate
        salt += 1


def follow_majority(
    groups: Sequence[Sequence[str]],
    previous: Mapping[str, str],
    taken: Container[str],
    *,
    fixed: Mapping[int, str] | None = None,
    reserved: Container[str] = frozenset(),
    prefix: str = "s",
) -> list[str]:
    """An id for each group: the one most of its members had before, else a fresh one.

    Groups claim ids greedily, largest overlap first, so when a group splits the larger
    part keeps the id, and when two merge the id of the larger one survives. ``fixed``
    groups (by index) keep the id given; ``reserved`` ids are never claimed by vote.
    """
    fixed = fixed or {}
    used: set[str] = set(fixed.values())
    claims = []
    for g, members in enumerate(groups):
        if g in fixed:
            continue
        votes = Counter(previous[m] for m in members if m in previous)
        for old, count in votes.items():
            if old not in reserved and old not in used:
                claims.append((-count, -len(members), old, g))
    chosen: dict[int, str] = dict(fixed)
    for _, _, old, g in sorted(claims):
        if g in chosen or old in used:
            continue
        chosen[g] = old
        used.add(old)
    out = []
    for g, members in enumerate(groups):
        if g not in chosen:
            chosen[g] = fresh_id(members[0], taken, used, prefix)
            used.add(chosen[g])
        out.append(chosen[g])
    return out
