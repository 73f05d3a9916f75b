"""Story clustering on tiny inline French corpora: invariants, stability, constraints."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aggregator.cluster import ClusterParams, Constraints, cluster_articles
from aggregator.cluster.features import template_frame
from aggregator.cluster.stream import StreamClusterer
from aggregator.config import load_settings
from aggregator.models import Article
from aggregator.pipeline import make_analyzer
from aggregator.pipeline.recluster import read_articles

T0 = datetime(2024, 11, 20, 8, 0, tzinfo=UTC)
ANALYZER = make_analyzer(load_settings(env={}))

# Hard paraphrases: "Washington"/"États-Unis", "Kyiv"/"Ukraine", "livrer"/"fournir".
CORPUS = [
    ("m1", "BFM", "Washington va livrer des mines antipersonnel à l'Ukraine", 0),
    ("m2", "Le Figaro", "Les États-Unis vont fournir des mines antipersonnel à Kyiv", 1),
    (
        "m3",
        "franceinfo",
        "Guerre en Ukraine : Washington autorise la livraison de mines antipersonnel",
        2,
    ),
    ("r1", "Le Monde", "Réforme des retraites : l'intersyndicale appelle à une nouvelle grève", 0),
    ("r2", "Libération", "Retraites : nouvelle journée de grève à l'appel de l'intersyndicale", 3),
    ("f1", "L'Équipe", "Ligue 1 : le PSG s'impose face à Saint-Étienne", 1),
]


def articles(rows=CORPUS) -> list[Article]:  # type: ignore[no-untyped-def]
    return [
        Article(id=i, title=t, published=T0 + timedelta(hours=h), source=s) for i, s, t, h in rows
    ]


def groups(clusters) -> set[frozenset[str]]:  # type: ignore[no-untyped-def]
    return {frozenset(c.article_ids) for c in clusters}


def story_of(clusters) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {a: c.id for c in clusters for a in c.article_ids}


def test_same_event_from_several_outlets_is_one_story_even_paraphrased() -> None:
    result = groups(cluster_articles(articles(), analyzer=ANALYZER))
    assert frozenset({"m1", "m2", "m3"}) in result
    assert frozenset({"r1", "r2"}) in result
    assert frozenset({"f1"}) in result


def test_every_article_in_exactly_one_story_and_labels_are_member_headlines() -> None:
    clusters = cluster_articles(articles(), analyzer=ANALYZER)
    ids = [a for c in clusters for a in c.article_ids]
    assert sorted(ids) == sorted(r[0] for r in CORPUS)
    titles = {r[0]: r[2] for r in CORPUS}
    for c in clusters:
        assert c.lead_id in c.article_ids
        assert c.label == titles[c.lead_id]


def test_deterministic_whatever_the_input_order() -> None:
    a = cluster_articles(articles(), analyzer=ANALYZER)
    b = cluster_articles(list(reversed(articles())), analyzer=ANALYZER)
    assert a == b


def test_story_keeps_its_id_as_it_grows() -> None:
    first = cluster_articles(articles(CORPUS[:2]), analyzer=ANALYZER)
    [story] = [c for c in first if "m1" in c.article_ids]
    previous = story_of(first)
    for incremental in (False, True):
        grown = cluster_articles(
            articles(), analyzer=ANALYZER, previous=previous, incremental=incremental
        )
        [same] = [c for c in grown if "m1" in c.article_ids]
        assert same.id == story.id and "m3" in same.article_ids
        assert len({c.id for c in grown}) == len(grown)


def test_ids_follow_the_majority_when_stories_merge() -> None:
    previous = {"m1": "old-a", "m2": "old-a", "m3": "old-b"}
    clusters = cluster_articles(articles(), analyzer=ANALYZER, previous=previous)
    [mines] = [c for c in clusters if "m1" in c.article_ids]
    assert mines.id == "old-a"
    assert "old-b" not in {c.id for c in clusters}


def test_incremental_run_keeps_stored_stories_and_places_only_new_articles() -> None:
    # Stored state deliberately different from what a rebuild would find.
    previous = {"m1": "a", "m2": "b", "r1": "c", "r2": "c"}
    clusters = cluster_articles(articles(), analyzer=ANALYZER, previous=previous, incremental=True)
    placed = story_of(clusters)
    assert placed["m1"] == "a" and placed["m2"] == "b" and placed["r1"] == placed["r2"] == "c"
    assert placed["m3"] in {"a", "b"}  # the new article joins a stored story
    rebuilt = story_of(cluster_articles(articles(), analyzer=ANALYZER, previous=previous))
    assert rebuilt["m1"] == rebuilt["m2"] == rebuilt["m3"]


def test_new_ids_avoid_taken_ones() -> None:
    free = cluster_articles(articles(), analyzer=ANALYZER)
    taken = {c.id for c in free}
    again = cluster_articles(articles(), analyzer=ANALYZER, taken_ids=taken)
    assert not taken & {c.id for c in again}


def test_articles_beyond_the_window_never_join() -> None:
    rows = [("a", "X", "Séisme en Turquie : des milliers de victimes", 0),
            ("b", "Y", "Séisme en Turquie : des milliers de victimes", 100)]  # fmt: skip
    clusters = cluster_articles(
        articles(rows), analyzer=ANALYZER, params=ClusterParams(window_hours=72)
    )
    assert len(clusters) == 2


def test_wire_copies_are_marked_and_point_to_the_first_publication() -> None:
    text = "Le Parlement adopte définitivement la loi sur la fin de vie après des mois de débats"
    rows = [("w1", "AFP via Le Figaro", text, 0), ("w2", "BFM", text, 1),
            ("w3", "20 Minutes", text + ".", 2),
            ("o1", "Le Monde", "Le Parlement adopte définitivement la loi sur la fin de vie : ce que contient le texte", 3)]  # fmt: skip
    # Unrelated news around them, so that IDF is not that of a four-article world.
    clusters = cluster_articles(articles(rows + CORPUS), analyzer=ANALYZER)
    [story] = [c for c in clusters if "w1" in c.article_ids]
    assert dict(story.wire_of) == {"w2": "w1", "w3": "w1"}
    assert "o1" in story.article_ids and "o1" not in dict(story.wire_of)


def test_empty_and_contentless_input() -> None:
    assert cluster_articles([], analyzer=ANALYZER) == []
    rows = [("a", "X", "le la les", 0), ("b", "Y", "", 0)]
    clusters = cluster_articles(articles(rows), analyzer=ANALYZER)
    assert sorted(len(c.article_ids) for c in clusters) == [1, 1]


# One generated headline per town, in three phrasings of one template, amid other news.
TOWNS = ["Rennes", "Vitré", "Pacé", "Saint-Malo", "Fougères", "Dinan"]
WEATHER = [
    (f"w{n}", "Ouest-France", text.format(town=town), n % 3)
    for n, (town, text) in enumerate(
        (town, text)
        for town in TOWNS
        for text in (
            "{town} : la météo du vendredi 10 janvier 2020",
            "La météo du vendredi 10 janvier 2020 à {town}",
        )
    )
]


def test_headline_template_frames_ignore_the_name_and_need_four_words() -> None:
    frame = template_frame("Rennes : la météo du vendredi 10 janvier 2020", ANALYZER)
    assert frame and frame == template_frame(
        "La météo du vendredi 10 janvier 2020 à Saint-Malo", ANALYZER
    )
    assert template_frame("la météo du vendredi 10 janvier 2020", ANALYZER) == ""  # no name
    assert template_frame("Lyon bat Nantes en Ligue 1", ANALYZER) == ""  # too short
    assert frame != template_frame("Rennes : la météo du samedi 11 janvier 2020", ANALYZER)


def test_generated_headlines_of_one_template_share_a_story() -> None:
    rows = WEATHER + CORPUS + [("x1", "Le Monde", "Rennes : le maire présente ses vœux", 1)]
    clusters = cluster_articles(articles(rows), analyzer=ANALYZER)
    weather = {c.id for c in clusters for a in c.article_ids if a.startswith("w")}
    assert len(weather) == 1
    assert story_of(clusters)["x1"] not in weather  # same town, another frame


def test_the_stream_and_the_batch_apply_templates_alike() -> None:
    clusterer = StreamClusterer(ANALYZER)
    numbers = [clusterer.add(a) for a in sorted(articles(WEATHER + CORPUS), key=_when)]
    assert len({n for a, n in zip(sorted(articles(WEATHER + CORPUS), key=_when), numbers, strict=True) if a.id.startswith("w")}) == 1  # fmt: skip


def _when(a: Article) -> tuple[datetime, str]:
    assert a.published is not None
    return a.published, a.id


def test_merge_pass_is_deterministic_and_honours_cannot_links() -> None:
    params = ClusterParams(merge_threshold=0.3)
    a = cluster_articles(articles(), analyzer=ANALYZER, params=params)
    b = cluster_articles(list(reversed(articles())), analyzer=ANALYZER, params=params)
    assert a == b
    assert frozenset({"m1", "m2", "m3"}) <= next(
        frozenset(c.article_ids) for c in a if "m1" in c.article_ids
    )
    apart = cluster_articles(
        articles(),
        analyzer=ANALYZER,
        params=params,
        constraints=Constraints(cannot_link=[("m1", "m3")]),
    )
    placed = story_of(apart)
    assert placed["m1"] != placed["m3"]


# A live blog's items: long summaries about one subject, headlines about one event each.
LIVE = [
    ("l1", "Moscou dénonce la livraison de mines antipersonnel américaines à Kyiv",
     "Le Kremlin accuse les États-Unis de prolonger la guerre en Ukraine. Washington veut "
     "renforcer la défense ukrainienne alors que le front recule."),
    ("l2", "Zelensky redoute une défaite si l'aide américaine à l'Ukraine s'arrête",
     "Le président ukrainien met en garde contre un arrêt de l'aide des États-Unis, alors "
     "que la guerre en Ukraine s'étend et que le Kremlin menace Washington."),
    ("l3", "Nouvelle journée de grève dans les écoles de Marseille",
     "Les enseignants protestent contre la fermeture de classes et le manque de "
     "remplaçants dans les quartiers nord, à l'appel de plusieurs syndicats."),
]  # fmt: skip


def test_live_blog_items_on_one_subject_share_a_readable_topic() -> None:
    items = [
        Article(id=i, title=t, summary=s, published=T0, source=f"live{n}")
        for n, (i, t, s) in enumerate(LIVE)
    ]
    clusters = {a: c for c in cluster_articles(items, analyzer=ANALYZER) for a in c.article_ids}
    assert len({clusters[i].id for i, _, _ in LIVE}) == 3  # three events
    assert clusters["l1"].topic_id is not None
    assert clusters["l1"].topic_id == clusters["l2"].topic_id != clusters["l3"].topic_id
    label = clusters["l1"].topic_label or ""
    # A word the items use, as they spell it (accents and capitals), not a stem.
    words = " ".join(t + " " + s for _, t, s in LIVE[:2])
    assert label and label[0].isupper() and label.lower() in words.lower()


def test_seed_live_blog_items_on_the_war_share_a_topic(shared_data: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from eval_clustering import LIVEBLOG_FILE, liveblog_items

    rows = liveblog_items(shared_data / LIVEBLOG_FILE)
    items = list(read_articles(json.dumps(r, ensure_ascii=False) for r in rows))
    clusters = {a: c for c in cluster_articles(items, analyzer=ANALYZER) for a in c.article_ids}
    topics = {i: clusters[i].topic_id for i in clusters}
    print("seed live blog topics:", {i: (t, clusters[i].topic_label) for i, t in topics.items()})
    # Item 1 (US mines for Kyiv) and item 3 (Zelensky on the end of US aid).
    assert topics["item1"] is not None and topics["item1"] == topics["item3"]
    assert topics["item4"] != topics["item1"]  # North Korean arms: another subject


def test_topic_labels_are_the_same_from_a_cold_or_a_full_phrase_cache(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from aggregator.cluster import labels

    items = [
        Article(id=i, title=t, summary=s, published=T0, source=f"live{n}")
        for n, (i, t, s) in enumerate(LIVE)
    ]
    analyzer = make_analyzer(load_settings(env={}))  # its own, empty phrase cache
    first = cluster_articles(items, analyzer=analyzer)
    assert labels._phrase_caches[analyzer], "phrases were cached"
    assert cluster_articles(items, analyzer=analyzer) == first  # from the cache
    monkeypatch.setattr(labels, "PHRASE_CACHE_SIZE", 2)  # cleared whenever full
    small = make_analyzer(load_settings(env={}))
    assert cluster_articles(items, analyzer=small) == first
    assert 0 < len(labels._phrase_caches[small]) <= 2
