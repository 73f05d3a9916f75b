"""Editors' decisions turned into one consistent set of clustering constraints
(pipeline/editorial.py): the newest decision wins, groups are closed, cannot-links span
whole groups, and only the window's articles are handed over."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.models import EditorConstraint
from aggregator.pipeline.editorial import resolve_constraints

T0 = datetime(2025, 3, 10, tzinfo=UTC)


class Rows:
    """Constraint rows as decisions store them, in decision order."""

    def __init__(self) -> None:
        self.rows: list[EditorConstraint] = []
        self.decision = 0

    def _add(self, kind: str, **values: object) -> None:
        self.rows.append(
            EditorConstraint(id=len(self.rows) + 1, decision_id=self.decision, kind=kind, **values)  # type: ignore[arg-type]
        )

    def together(self, *ids: int) -> Rows:
        self.decision += 1
        for e in ids[1:]:
            self._add("must_link", entry_a=ids[0], entry_b=e)
        return self

    def apart(self, left: Sequence[int], right: Sequence[int]) -> Rows:
        self.decision += 1
        for a in left:
            for b in right:
                self._add("cannot_link", entry_a=a, entry_b=b)
        return self

    def mark(self, kind: str, **values: object) -> Rows:
        self.decision += 1
        self._add(kind, **values)
        return self


def times(*ids: int) -> dict[int, datetime]:
    return {e: T0 + timedelta(hours=e) for e in ids}


def groups(pairs: Sequence[tuple[str, str]]) -> list[set[str]]:
    found: list[set[str]] = []
    for a, b in pairs:
        hit = [g for g in found if a in g or b in g]
        merged = {a, b}.union(*hit)
        found = [g for g in found if g not in hit] + [merged]
    return found


def test_the_newest_decision_wins_and_older_ones_are_only_set_aside() -> None:
    window = times(1, 2, 3)
    merged_then_moved = Rows().together(1, 2, 3).apart([1], [2, 3])
    c = resolve_constraints(merged_then_moved.rows, {}, window)
    assert groups(c.must_link) == [{"2", "3"}]  # 2 and 3 stay together without 1
    assert set(c.cannot_link) == {("1", "2"), ("1", "3")}
    moved_then_merged = Rows().apart([1], [2, 3]).together(1, 2, 3)
    c = resolve_constraints(moved_then_merged.rows, {}, window)
    assert groups(c.must_link) == [{"1", "2", "3"}] and not c.cannot_link


def test_groups_are_stars_from_their_earliest_article_and_apart_spans_groups() -> None:
    window = {1: T0 + timedelta(hours=5), 2: T0, 3: T0 + timedelta(hours=1), 4: T0, 5: T0}
    rows = Rows().together(1, 2, 3).together(4, 5).apart([1], [4])
    c = resolve_constraints(rows.rows, {}, window)
    assert sorted(c.must_link) == [("2", "1"), ("2", "3"), ("4", "5")]
    assert len(c.cannot_link) == 6  # every pair across {1,2,3} x {4,5}
    assert {frozenset(p) for p in c.cannot_link} == {
        frozenset((str(a), str(b))) for a in (1, 2, 3) for b in (4, 5)
    }


def test_only_the_windows_articles_are_handed_over_but_links_through_others_count() -> None:
    rows = Rows().together(1, 2).together(2, 3).apart([9], [3])
    c = resolve_constraints(rows.rows, {}, times(1, 3))
    assert c.must_link == [("1", "3")]  # joined through 2, outside the window
    assert c.cannot_link == []


def test_labels_locks_and_topics_latest_first() -> None:
    rows = (
        Rows()
        .mark("fixed_label", story_uid="s1", value="Premier")
        .mark("fixed_label", story_uid="s1", value="Second")
        .mark("topic_link", story_uid="s1", topic_uid="t1")
        .mark("topic_link", story_uid="s1", topic_uid=None)
        .mark("fixed_topic_label", topic_uid="t2", value="Retraites")
    )
    c = resolve_constraints(rows.rows, {"s9": [3, 1]}, times(1, 3))
    assert c.fixed_labels == {"s1": "Second"}
    assert c.topic_links == {"s1": None}
    assert c.fixed_topic_labels == {"t2": "Retraites"}
    assert c.locked == {"s9": ("3", "1")}


ENTRIES = st.integers(min_value=1, max_value=8)
DECISION = st.one_of(
    st.tuples(st.just("together"), st.lists(ENTRIES, min_size=2, max_size=5, unique=True)),
    st.tuples(
        st.just("apart"),
        st.lists(ENTRIES, min_size=1, max_size=3, unique=True),
        st.lists(ENTRIES, min_size=1, max_size=3, unique=True),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(DECISION, min_size=1, max_size=12))
def test_any_history_resolves_to_consistent_constraints_honouring_the_newest(
    history: list[tuple],  # type: ignore[type-arg]
) -> None:
    rows = Rows()
    for decision in history:
        if decision[0] == "together":
            rows.together(*decision[1])
        else:
            left, right = decision[1], [e for e in decision[2] if e not in decision[1]]
            if right:
                rows.apart(left, right)
            else:
                rows.decision += 1
    c = resolve_constraints(rows.rows, {}, times(*range(1, 9)))
    component = {e: i for i, g in enumerate(groups(c.must_link)) for e in g}
    for a, b in c.cannot_link:
        assert a not in component or component.get(a) != component.get(b), (a, b)
    newest = history[-1]
    if newest[0] == "together":
        assert len({component.get(str(e), str(e)) for e in newest[1]}) == 1
    else:
        cannot = {frozenset(p) for p in c.cannot_link}
        for a in newest[1]:
            for b in newest[2]:
                if a != b and b not in newest[1]:
                    assert frozenset((str(a), str(b))) in cannot
