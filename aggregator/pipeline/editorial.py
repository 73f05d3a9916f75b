"""Editors' decisions as clustering constraints, and their state back on the stories after
each run. ``recluster`` calls ``load_editorial`` before clustering and its ``reapply`` after
saving.

Decisions can contradict each other (merge A and B, then move one of B's articles out):
the most recent decision wins, older constraints that contradict it are set aside (not
deleted: undoing the newer decision brings them back). Must-links are closed under
transitivity and handed over as a star from each group's earliest article, so a
single-pass clusterer in publication order meets the anchor first; cannot-links are
expanded to every pair across the two groups they separate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aggregator.cluster import Constraints
from aggregator.models import EditorConstraint, Entry
from aggregator.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Groups:
    """Union-find over article ids, with the 'kept apart' relation between groups."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.apart: dict[int, set[int]] = defaultdict(set)

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def compatible(self, x: int, y: int) -> bool:
        rx, ry = self.find(x), self.find(y)
        return rx == ry or ry not in self.apart[rx]

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return
        self.parent[ry] = rx
        for other in self.apart.pop(ry, set()):
            self.apart[other].discard(ry)
            self.apart[other].add(rx)
            self.apart[rx].add(other)

    def separate(self, x: int, y: int) -> bool:
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            return False
        self.apart[rx].add(ry)
        self.apart[ry].add(rx)
        return True


def _components(pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected sets of one decision's must-link rows (the sets it said belong together)."""
    local = _Groups()
    for a, b in pairs:
        local.union(a, b)
    sets: dict[int, list[int]] = defaultdict(list)
    for x in list(local.parent):
        sets[local.find(x)].append(x)
    return [sorted(s) for _, s in sorted(sets.items())]


def resolve_constraints(
    rows: Sequence[EditorConstraint],
    locked: Mapping[str, Sequence[int]],
    published: Mapping[int, datetime],
) -> Constraints:
    """Turn stored constraints into one consistent ``Constraints`` for the window.

    ``rows`` come oldest decision first; ``published`` maps the window's entry ids to
    their times (pairs outside the window are dropped: clustering never sees them).
    """
    fixed_labels: dict[str, str] = {}
    topic_links: dict[str, str | None] = {}
    topic_labels: dict[str, str] = {}
    by_decision: dict[int, list[EditorConstraint]] = defaultdict(list)
    for row in rows:
        if row.kind == "fixed_label" and row.story_uid and row.value is not None:
            fixed_labels[row.story_uid] = row.value
        elif row.kind == "topic_link" and row.story_uid:
            topic_links[row.story_uid] = row.topic_uid
        elif row.kind == "fixed_topic_label" and row.topic_uid and row.value is not None:
            topic_labels[row.topic_uid] = row.value
        elif row.kind in ("must_link", "cannot_link") and row.entry_a and row.entry_b:
            by_decision[row.decision_id].append(row)

    groups = _Groups()
    for decision in sorted(by_decision, reverse=True):  # newest first: it wins
        decided = by_decision[decision]
        musts = [(r.entry_a, r.entry_b) for r in decided if r.kind == "must_link"]
        for together in _components(musts):  # type: ignore[arg-type]
            reps: list[int] = []
            for e in together:
                groups.find(e)
                for rep in reps:
                    if groups.compatible(e, rep):
                        groups.union(rep, e)
                        break
                else:
                    reps.append(e)
        for r in decided:
            if r.kind == "cannot_link":
                groups.separate(r.entry_a, r.entry_b)  # type: ignore[arg-type]

    def order(e: int) -> tuple[datetime, str]:
        return (published.get(e, EPOCH), str(e))

    members: dict[int, list[int]] = defaultdict(list)
    for e in groups.parent:
        if e in published:
            members[groups.find(e)].append(e)
    for ids in members.values():
        ids.sort(key=order)
    must_link = [(str(ids[0]), str(e)) for _, ids in sorted(members.items()) for e in ids[1:]]
    cannot_link: list[tuple[str, str]] = []
    for root, others in sorted(groups.apart.items()):
        for other in sorted(others):
            if root < other:
                cannot_link.extend(
                    (str(a), str(b)) for a in members.get(root, ()) for b in members.get(other, ())
                )
    return Constraints(
        locked={uid: tuple(str(e) for e in ids) for uid, ids in sorted(locked.items())},
        fixed_labels=fixed_labels,
        must_link=must_link,
        cannot_link=cannot_link,
        topic_links=topic_links,
        fixed_topic_labels=topic_labels,
    )


@dataclass(frozen=True, slots=True)
class Editorial:
    """The editors' constraints as one clustering run loaded them, and when (wall clock)."""

    constraints: Constraints
    loaded_at: datetime

    def reapply(self, store: Store, now: datetime) -> int:
        """After the run is saved: redo what editors did meanwhile, then put labels, pins,
        hides, locks and topics back on their stories."""
        return store.reapply_editor_state(now, since=self.loaded_at)


def load_editorial(store: Store, window: Sequence[Entry]) -> Editorial:
    """The constraints every clustering run over ``window`` must honour."""
    loaded_at = datetime.now(UTC)
    rows, locked = store.editor_constraints()
    constraints = resolve_constraints(rows, locked, {e.id: e.published_at for e in window})
    return Editorial(constraints=constraints, loaded_at=loaded_at)
