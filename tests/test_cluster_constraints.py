"""Editors' constraints are honoured by full rebuilds and incremental runs alike."""

from __future__ import annotations

import pytest

from aggregator.cluster import Constraints, cluster_articles
from tests.test_cluster import ANALYZER, articles, story_of

MODES = [
    pytest.param({}, id="full"),
    # Incremental: stored stories as a rebuild would give them, nothing new to place.
    pytest.param({"previous": {"m1": "a", "m2": "a", "m3": "a", "r1": "b", "r2": "b",
                               "f1": "c"}, "incremental": True}, id="incremental"),
]  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
def test_locked_story_keeps_exactly_its_members(mode: dict[str, object]) -> None:
    constraints = Constraints(locked={"locked-1": ["f1", "r1"]})
    clusters = cluster_articles(articles(), analyzer=ANALYZER, constraints=constraints, **mode)  # type: ignore[arg-type]
    by_id = {c.id: c for c in clusters}
    assert set(by_id["locked-1"].article_ids) == {"f1", "r1"}
    assert sorted(a for c in clusters for a in c.article_ids) == sorted(story_of(clusters))


@pytest.mark.parametrize("mode", MODES)
def test_fixed_label_replaces_the_machine_label(mode: dict[str, object]) -> None:
    ids = story_of(cluster_articles(articles(), analyzer=ANALYZER, **mode))  # type: ignore[arg-type]
    constraints = Constraints(fixed_labels={ids["m1"]: "Des mines américaines pour Kyiv"})
    clusters = cluster_articles(articles(), analyzer=ANALYZER, constraints=constraints, **mode)  # type: ignore[arg-type]
    [mines] = [c for c in clusters if "m1" in c.article_ids]
    assert mines.label == "Des mines américaines pour Kyiv"


@pytest.mark.parametrize("mode", MODES)
def test_cannot_link_separates_even_stored_companions(mode: dict[str, object]) -> None:
    constraints = Constraints(cannot_link=[("m1", "m2")])
    placed = story_of(
        cluster_articles(articles(), analyzer=ANALYZER, constraints=constraints, **mode)
    )  # type: ignore[arg-type]
    assert placed["m1"] != placed["m2"]


@pytest.mark.parametrize("mode", MODES)
def test_must_link_joins_even_stored_strangers(mode: dict[str, object]) -> None:
    constraints = Constraints(must_link=[("f1", "r2")])
    placed = story_of(
        cluster_articles(articles(), analyzer=ANALYZER, constraints=constraints, **mode)
    )  # type: ignore[arg-type]
    assert placed["f1"] == placed["r2"]


@pytest.mark.parametrize("mode", MODES)
def test_topic_links_and_fixed_topic_labels(mode: dict[str, object]) -> None:
    ids = story_of(cluster_articles(articles(), analyzer=ANALYZER, **mode))  # type: ignore[arg-type]
    constraints = Constraints(
        topic_links={ids["m1"]: "t-ukraine", ids["f1"]: "t-ukraine", ids["r1"]: None},
        fixed_topic_labels={"t-ukraine": "Aide américaine à l'Ukraine"},
    )
    clusters = cluster_articles(articles(), analyzer=ANALYZER, constraints=constraints, **mode)  # type: ignore[arg-type]
    by_article = {a: c for c in clusters for a in c.article_ids}
    assert by_article["m1"].topic_id == by_article["f1"].topic_id == "t-ukraine"
    assert by_article["m1"].topic_label == "Aide américaine à l'Ukraine"
    assert by_article["r1"].topic_id is None
