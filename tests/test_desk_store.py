"""The desk's storage on a real SQLite file: accounts and sessions, each decision applied
and undone, and the contract with clustering (decision -> recluster -> still holds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aggregator.cluster import cluster_articles
from aggregator.config import Settings
from aggregator.errors import DecisionError, InputError
from aggregator.models import Article, StoryCluster
from aggregator.pipeline import cluster_params, make_analyzer, recluster
from aggregator.pipeline.editorial import load_editorial
from aggregator.store import Store, StoryFilter
from aggregator.store.desk import LoginBlocked
from aggregator.store.desk.accounts import MAX_FAILURES_PER_NAME
from tests.desk_support import AT, DAY, PASSWORD, members, seed, story_of


@pytest.fixture
def db_url(any_db_url: str | None) -> str | None:
    """Every test here runs on SQLite and on PostgreSQL."""
    return any_db_url


REVIEW = timedelta(hours=24)


# Later runs of each test are incremental (new articles placed, stored stories kept) or
# full rebuilds of the window: decisions must hold through both.
MODE = {"full": True}


@pytest.fixture(params=["incremental", "full"])
def world(request: pytest.FixtureRequest, settings: Settings, store: Store):  # type: ignore[no-untyped-def]
    """The corpus stored and clustered once (a full run), and an editor."""
    MODE["full"] = request.param == "full"
    ids = seed(store)
    recluster(settings, store, AT, full=True)
    user = store.add_user("alice", PASSWORD, DAY)
    return ids, user.id


def again(settings: Settings, store: Store, hours: float = 0) -> None:
    """Another clustering run, of the test's kind."""
    recluster(settings, store, AT + timedelta(hours=hours), full=MODE["full"])


# -- accounts


def test_accounts_sessions_and_throttled_sign_in(store: Store) -> None:
    store.add_user("alice", PASSWORD, DAY)
    with pytest.raises(InputError, match="already exists"):
        store.add_user("alice", PASSWORD, DAY)
    with pytest.raises(InputError, match="at least 8"):
        store.add_user("bob", "court", DAY)
    with pytest.raises(InputError, match="invalid user name"):
        store.add_user("bob smith", PASSWORD, DAY)
    user = store.sign_in("alice", PASSWORD, "10.0.0.1", DAY)
    assert user is not None and user.last_login_at == DAY
    token, session = store.create_session(user.id, DAY, timedelta(hours=1))
    assert store.session_by_token(token, DAY + timedelta(minutes=59)) == session
    assert store.session_by_token(token, DAY + timedelta(minutes=61)) is None
    assert store.session_by_token("forged", DAY) is None
    with store.engine.connect() as conn:  # only the token's hash is stored
        assert token not in str(conn.exec_driver_sql("SELECT * FROM sessions").fetchall())

    for i in range(MAX_FAILURES_PER_NAME):
        assert store.sign_in("alice", f"wrong {i}", "10.0.0.2", DAY) is None
    with pytest.raises(LoginBlocked):
        store.sign_in("alice", PASSWORD, "10.0.0.3", DAY + timedelta(minutes=5))
    assert store.sign_in("alice", PASSWORD, "10.0.0.3", DAY + timedelta(minutes=16)) is not None

    store.set_user_disabled("alice", True, DAY)
    assert store.session_by_token(token, DAY) is None
    assert store.sign_in("alice", PASSWORD, "10.0.0.4", DAY + timedelta(hours=1)) is None
    store.set_user_disabled("alice", False, DAY)
    store.set_user_password("alice", "a new passphrase", DAY)
    later = DAY + timedelta(hours=2)
    assert store.sign_in("alice", PASSWORD, "10.0.0.5", later) is None
    assert store.sign_in("alice", "a new passphrase", "10.0.0.5", later) is not None
    assert [u.name for u in store.list_users()] == ["alice"]


# -- each decision, applied, kept through reclustering, and undone


def test_rename_holds_through_reclustering_and_undo_restores_the_machine_label(
    settings: Settings, store: Store, world
) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    uid = story_of(store, ids["seisme-1"])
    machine = store.story_by_uid(uid).label  # type: ignore[union-attr]
    first = store.rename_story(editor, uid, "  Séisme   au Japon  ", DAY)
    store.rename_story(editor, uid, "Le Japon frappé par un séisme", DAY)
    again(settings, store)
    assert store.story_by_uid(uid).label == "Le Japon frappé par un séisme"  # type: ignore[union-attr]
    store.undo_decision(editor, first, DAY)  # the newer rename still stands
    assert store.story_by_uid(uid).label == "Le Japon frappé par un séisme"  # type: ignore[union-attr]
    latest = store.decisions(story_uid=uid)[0][0]
    store.undo_decision(editor, latest.id, DAY)
    assert store.story_by_uid(uid).label == machine  # type: ignore[union-attr]
    with pytest.raises(DecisionError, match="déjà annulée"):
        store.undo_decision(editor, latest.id, DAY)
    with pytest.raises(DecisionError, match="trop long"):
        store.rename_story(editor, uid, "x" * 301, DAY)
    with pytest.raises(DecisionError, match="vide"):
        store.rename_story(editor, uid, " \x00 ", DAY)


def test_merge_holds_survivor_keeps_its_id_and_undo_splits_back(
    settings: Settings, store: Store, world
) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    seisme, psg = story_of(store, ids["seisme-1"]), story_of(store, ids["psg-1"])
    before = members(store, psg)
    decision = store.merge_stories(editor, psg, seisme, DAY)  # seisme is larger: it survives
    assert store.story_by_uid(psg) is None
    assert members(store, seisme) >= before | {ids["seisme-1"]}
    again(settings, store)
    again(settings, store, hours=1)
    assert story_of(store, ids["psg-1"]) == seisme == story_of(store, ids["seisme-3"])
    store.undo_decision(editor, decision, DAY)
    assert members(store, psg) == before
    again(settings, store)
    assert story_of(store, ids["psg-2"]) == psg != story_of(store, ids["seisme-1"])
    with pytest.raises(DecisionError, match="elle-même"):
        store.merge_stories(editor, seisme, seisme, DAY)
    with pytest.raises(DecisionError) as unknown:
        store.merge_stories(editor, seisme, "snope", DAY)
    assert unknown.value.reason == "not_found"


def test_split_holds_and_undo_joins_back(settings: Settings, store: Store, world) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    uid = story_of(store, ids["retraites-1"])
    chosen = [ids["retraites-3"]]
    decision, new_uid = store.split_story(editor, uid, chosen, DAY)
    assert members(store, new_uid) == set(chosen)
    again(settings, store)
    assert story_of(store, ids["retraites-3"]) != story_of(store, ids["retraites-1"])
    assert story_of(store, ids["retraites-1"]) == uid == story_of(store, ids["retraites-2"])
    store.undo_decision(editor, decision, DAY)
    assert story_of(store, ids["retraites-3"]) == uid and store.story_by_uid(new_uid) is None
    with pytest.raises(DecisionError, match="au moins un article"):
        store.split_story(editor, uid, list(members(store, uid)), DAY)
    with pytest.raises(DecisionError, match="n’appartient pas"):
        store.split_story(editor, uid, [ids["psg-1"]], DAY)


def test_move_and_remove_hold_and_undo(settings: Settings, store: Store, world) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    seisme, tempete = story_of(store, ids["seisme-1"]), story_of(store, ids["tempete-1"])
    moved = store.move_entry(editor, seisme, ids["seisme-3"], tempete, DAY)
    assert story_of(store, ids["seisme-3"]) == tempete
    _, alone = store.remove_entry(editor, tempete, ids["tempete-2"], DAY)
    assert members(store, alone) == {ids["tempete-2"]}
    again(settings, store)
    assert story_of(store, ids["seisme-3"]) == tempete == story_of(store, ids["tempete-1"])
    assert story_of(store, ids["tempete-2"]) not in (tempete,)
    store.undo_decision(editor, moved, DAY)
    assert story_of(store, ids["seisme-3"]) == seisme
    again(settings, store)
    assert story_of(store, ids["seisme-3"]) == seisme
    with pytest.raises(DecisionError, match="seul article"):
        store.remove_entry(editor, alone, ids["tempete-2"], DAY)


def test_flags_hold_follow_an_id_change_and_undo(settings: Settings, store: Store, world) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    uid = story_of(store, ids["psg-1"])
    store.set_story_flag(editor, uid, "pinned", True, DAY)
    hide = store.set_story_flag(editor, story_of(store, ids["gazole-1"]), "hidden", True, DAY)
    again(settings, store)
    feed = store.recent_stories(limit=20)
    assert feed[0].uid == uid and feed[0].pinned
    assert all(s.uid != story_of(store, ids["gazole-1"]) for s in feed)

    # Clustering gives the pinned story's articles a new id (as a majority change would):
    # the pin follows its articles.
    entry_ids = [ids["psg-1"], ids["psg-2"]]
    store.save_clusters(
        [StoryCluster(id="snewid", article_ids=tuple(map(str, entry_ids)), label="PSG",
                      lead_id=str(entry_ids[0]))],
        entry_ids, DAY,
    )  # fmt: skip
    assert store.story_by_uid(uid) is None and not store.story_by_uid("snewid").pinned  # type: ignore[union-attr]
    store.reapply_editor_state(DAY)
    assert store.story_by_uid("snewid").pinned  # type: ignore[union-attr]
    assert store.recent_stories(limit=1)[0].uid == "snewid"

    store.undo_decision(editor, hide, DAY)
    assert not store.story_by_uid(story_of(store, ids["gazole-1"])).hidden  # type: ignore[union-attr]
    with pytest.raises(DecisionError, match="déjà"):
        store.set_story_flag(editor, "snewid", "pinned", True, DAY)


def test_lock_freezes_membership_against_the_machine(
    settings: Settings, store: Store, world
) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    seisme, retraites = story_of(store, ids["seisme-1"]), story_of(store, ids["retraites-1"])
    store.split_story(editor, seisme, [ids["seisme-3"]], DAY)  # seisme-3 alone for now
    store.set_story_flag(editor, retraites, "locked", True, DAY)
    lone = story_of(store, ids["seisme-3"])
    undo_split = store.decisions(story_uid=seisme)[0][0].id
    store.undo_decision(editor, undo_split, DAY)
    assert story_of(store, ids["seisme-3"]) == seisme and store.story_by_uid(lone) is None
    store.move_entry(editor, retraites, ids["retraites-3"], seisme, DAY)  # editors still may
    again(settings, store)
    assert members(store, retraites) == {ids["retraites-1"], ids["retraites-2"]}
    assert store.story_by_uid(retraites).locked  # type: ignore[union-attr]


def test_topics_attach_new_rename_detach_and_undo(settings: Settings, store: Store, world) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    uid = story_of(store, ids["retraites-1"])
    created = store.attach_topic(editor, uid, DAY, new_label="Réforme des retraites")
    story = store.story_by_uid(uid)
    assert story.topic is not None and story.topic.slug == "reforme-des-retraites"  # type: ignore[union-attr]
    topic_uid = story.topic.uid  # type: ignore[union-attr]
    other = story_of(store, ids["tempete-1"])
    store.attach_topic(editor, other, DAY, topic_uid=topic_uid)
    store.rename_topic(editor, topic_uid, "Retraites : la réforme", DAY)
    again(settings, store)
    assert store.story_by_uid(uid).topic.label == "Retraites : la réforme"  # type: ignore[union-attr]
    assert [s.uid for s in store.recent_stories(limit=10, topic_slug="reforme-des-retraites")]
    detach = store.detach_topic(editor, other, DAY)
    assert store.story_by_uid(other).topic is None  # type: ignore[union-attr]
    again(settings, store)
    assert store.story_by_uid(other).topic is None  # type: ignore[union-attr]
    store.undo_decision(editor, detach, DAY)
    assert store.story_by_uid(other).topic.uid == topic_uid  # type: ignore[union-attr]
    with pytest.raises(DecisionError, match="pas les deux"):
        store.attach_topic(editor, uid, DAY, topic_uid=topic_uid, new_label="x")
    with pytest.raises(DecisionError, match="déjà dans le sujet"):
        store.attach_topic(editor, uid, DAY, topic_uid=topic_uid)
    assert created in {d.id for d in store.decisions(story_uid=uid)[0]}


def test_history_names_who_and_what_and_needs_review_clears(
    settings: Settings, store: Store, world
) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    uid = story_of(store, ids["seisme-1"])
    now = AT + timedelta(hours=1)
    listed, total = store.desk_stories(StoryFilter(needs_review=True), now=now, review=REVIEW,
                                       limit=50)  # fmt: skip
    assert uid in {s.uid for s in listed} and total == len(listed) == 6
    decision = store.mark_reviewed(editor, uid, now)
    listed, _ = store.desk_stories(StoryFilter(needs_review=True), now=now, review=REVIEW, limit=50)
    assert uid not in {s.uid for s in listed}
    store.undo_decision(editor, decision, now)
    history, count = store.decisions()
    assert count == 1 and history[0].user_name == "alice" and history[0].undone_by == "alice"
    assert history[0].summary == "Vérifiée" and history[0].undone_at is not None
    three, _ = store.desk_stories(StoryFilter(min_outlets=3), now=now, review=REVIEW, limit=50)
    assert len(three) == 2
    found, _ = store.desk_stories(StoryFilter(text="PSG"), now=now, review=REVIEW, limit=50)
    assert [s.uid for s in found] == [story_of(store, ids["psg-1"])]
    pct, _ = store.desk_stories(StoryFilter(text="%"), now=now, review=REVIEW, limit=50)
    assert pct == []


def test_a_decision_taken_while_clustering_runs_is_not_undone_by_its_result(
    settings: Settings, store: Store, world
) -> None:  # type: ignore[no-untyped-def]
    ids, editor = world
    seisme, tempete = story_of(store, ids["seisme-1"]), story_of(store, ids["tempete-1"])
    retraites = story_of(store, ids["retraites-1"])
    undone = store.move_entry(editor, seisme, ids["seisme-2"], tempete, DAY)
    # A run starts: it loads the window, the constraints and the current stories...
    window = store.entries_between(AT - timedelta(hours=72), AT)
    editorial = load_editorial(store, window)
    previous = {str(k): v for k, v in store.story_assignments([e.id for e in window]).items()}
    articles = [Article(id=str(e.id), title=e.title, summary=e.summary_text,
                        published=e.published_at, source=e.outlet) for e in window]  # fmt: skip
    clusters = cluster_articles(articles, analyzer=make_analyzer(settings),
                                params=cluster_params(settings), previous=previous,
                                constraints=editorial.constraints)  # fmt: skip
    # ...while it computes, an editor moves an article, splits a story, undoes a move...
    meanwhile = datetime.now(UTC)  # the desk stamps decisions with the wall clock
    store.move_entry(editor, seisme, ids["seisme-3"], tempete, meanwhile)
    _, split_off = store.split_story(editor, retraites, [ids["retraites-3"]], meanwhile)
    store.undo_decision(editor, undone, meanwhile)
    # ...and the run saves what it computed before: the editor's work is gone for now,
    store.save_clusters(clusters, [e.id for e in window], AT)
    assert story_of(store, ids["seisme-3"]) == seisme
    assert story_of(store, ids["seisme-2"]) == tempete
    # until the run re-applies what was decided meanwhile.
    editorial.reapply(store, AT)
    assert story_of(store, ids["seisme-3"]) == tempete
    assert story_of(store, ids["retraites-3"]) == split_off
    assert story_of(store, ids["seisme-2"]) == seisme
    again(settings, store)
    assert story_of(store, ids["seisme-3"]) == tempete
    assert story_of(store, ids["retraites-3"]) == split_off != retraites
