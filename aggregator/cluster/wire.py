"""Wire copies: the same dispatch (AFP, Reuters...) republished by several outlets.

A copy is counted once for coverage: it must not make one dispatch look like broad,
independent reporting. Members are compared on their plain stems (no IDF, no title
weight), so only near-identical texts match.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from aggregator.cluster.features import Doc

# Stories larger than this compare each member with this many earlier originals only
# (a live blog of hundreds of posts must not cost a quadratic pass).
MAX_ORIGINALS_COMPARED = 200


def wire_copies(docs: Sequence[Doc], members: Sequence[int], threshold: float) -> dict[int, int]:
    """Map each copy (position) to the earliest member it copies; members are time-sorted."""
    if len(members) < 2:
        return {}
    originals: list[tuple[int, Counter[str], float]] = []
    copies: dict[int, int] = {}
    for i in members:
        counts = Counter(docs[i].plain)
        norm = math.sqrt(sum(c * c for c in counts.values()))
        if not norm:
            continue
        for j, other, other_norm in originals[-MAX_ORIGINALS_COMPARED:]:
            shared = sum(c * other.get(t, 0) for t, c in counts.items())
            if shared / (norm * other_norm) >= threshold:
                copies[i] = j
                break
        else:
            originals.append((i, counts, norm))
    return copies
