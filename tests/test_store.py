"""Storage on a real SQLite file: migrations, deduplication, atomic fetch state, stories."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from aggregator.models import FeedSpec, ParsedEntry, StoryCluster
from aggregator.store import Store
from aggregator.store.engine import current_revision, head_revision
from aggregator.store.schema import metadata

NOW = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def db_url(any_db_url: str | None) -> str | None:
    """Every test here runs on SQLite and on PostgreSQL."""
    return any_db_url


def entry(key: str, title: str = "Titre", minutes: int = 0) -> ParsedEntry:
    return ParsedEntry(
        key=key,
        title=title,
        link=f"https://ex.fr/{key}",
        published=NOW - timedelta(minutes=minutes),
    )


def two_sections(store: Store) -> tuple:
    store.sync_sources(
        [
            FeedSpec("https://ex.fr/une.xml", "Ex", "Une"),
            FeedSpec("https://ex.fr/monde.xml", "Ex", "Monde"),
        ],
        NOW,
    )
    a, b = store.list_sources()
    return a, b


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": False}), metadata
        )
    assert diff == []


def test_migrating_an_older_database_gives_existing_feeds_their_host(store: Store) -> None:
    from alembic import command

    from aggregator.store.engine import _alembic_config, migrate

    cfg = _alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0002")
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sources (url, outlet, created_at, updated_at) "
                "VALUES ('https://WWW.LeMonde.fr/une/rss.xml', 'Le Monde', :t, :t)"
            ),
            {"t": NOW},
        )
    migrate(store.engine)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT host FROM sources")).scalar_one() == "www.lemonde.fr"


def test_sqlite_runs_in_wal_with_foreign_keys(store: Store) -> None:
    if store.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_reopening_an_existing_database_keeps_data(settings, store: Store) -> None:  # type: ignore[no-untyped-def]
    a, _ = two_sections(store)
    store.save_fetch(a, [entry("k1")], NOW)
    store.close()
    again = Store(settings.database.url)
    assert again.count_entries() == 1


def test_upsert_is_idempotent_and_dedupes_across_sections(store: Store) -> None:
    une, monde = two_sections(store)
    first = store.save_fetch(une, [entry("k1"), entry("k2"), entry("k1")], NOW)
    assert len(first.new_ids) == 2
    assert store.save_fetch(une, [entry("k1"), entry("k2")], NOW).new_ids == ()
    # The same article in another section of the same outlet: stored once, linked twice.
    assert store.save_fetch(monde, [entry("k2"), entry("k3")], NOW).new_ids != ()
    assert store.count_entries() == 3
    counts = {s.section: s.entry_count for s in store.list_sources()}
    assert counts == {"Une": 2, "Monde": 2}


def test_changed_entry_is_updated_in_place(store: Store) -> None:
    une, _ = two_sections(store)
    store.save_fetch(une, [entry("k1", "Ancien titre")], NOW)
    report = store.save_fetch(une, [entry("k1", "Nouveau titre")], NOW)
    assert report.updated == 1 and report.new_ids == ()
    [e] = store.entries_between(NOW - timedelta(days=1), NOW)
    assert e.title == "Nouveau titre"


def test_future_dates_are_clamped_and_missing_dates_get_first_seen(store: Store) -> None:
    une, _ = two_sections(store)
    future = ParsedEntry(key="f", title="Futur", published=NOW + timedelta(days=3))
    undated = ParsedEntry(key="u", title="Sans date")
    store.save_fetch(une, [future, undated], NOW)
    got = {e.key: e.published_at for e in store.entries_between(NOW - timedelta(days=1), NOW)}
    assert got == {"f": NOW, "u": NOW}


def test_entries_and_fetch_state_commit_together(store: Store) -> None:
    une, _ = two_sections(store)

    bad = ParsedEntry(key="x", title="x", published=NOW)
    # An invalid state column makes the transaction fail after the entries were written.
    with pytest.raises(ValueError, match="not a fetch-state column"):
        store.save_fetch(une, [bad], NOW, etag='"v2"', no_such_column=1)
    assert store.count_entries() == 0
    assert store.get_source(une.id).etag is None  # type: ignore[union-attr]


def test_sync_sources_retires_removed_feeds_and_brings_them_back(store: Store) -> None:
    two_sections(store)
    counts = store.sync_sources([FeedSpec("https://ex.fr/une.xml", "Ex", "Une")], NOW)
    assert counts["retired"] == 1
    assert [s.section for s in store.due_sources(NOW)] == ["Une"]
    store.sync_sources(
        [
            FeedSpec("https://ex.fr/une.xml", "Ex", "Une"),
            FeedSpec("https://ex.fr/monde.xml", "Ex", "Monde"),
        ],
        NOW,
    )
    assert len(store.due_sources(NOW)) == 2


def test_due_sources_follow_next_check_at(store: Store) -> None:
    une, monde = two_sections(store)
    store.update_source(une.id, NOW, next_check_at=NOW + timedelta(minutes=30))
    assert [s.id for s in store.due_sources(NOW)] == [monde.id]
    assert len(store.due_sources(NOW, all_sources=True)) == 2
    assert len(store.due_sources(NOW + timedelta(hours=1))) == 2


def test_save_clusters_keeps_ids_and_counts_outlets(store: Store) -> None:
    store.sync_sources([FeedSpec("https://a.fr/rss", "A"), FeedSpec("https://b.fr/rss", "B")], NOW)
    a, b = store.list_sources()
    ids_a = store.save_fetch(a, [entry("a1", minutes=30), entry("a2", minutes=20)], NOW).new_ids
    ids_b = store.save_fetch(b, [entry("b1", minutes=10)], NOW).new_ids
    scope = [*ids_a, *ids_b]
    story = StoryCluster(
        id="s1", article_ids=tuple(map(str, scope)), label="Une histoire", lead_id=str(ids_a[0])
    )
    counts = store.save_clusters([story], scope, NOW)
    assert counts["created"] == 1
    [saved] = store.recent_stories(limit=10)
    assert (saved.uid, saved.label, len(saved.members), saved.outlets) == (
        "s1",
        "Une histoire",
        3,
        ("A", "B"),
    )
    assert saved.lead.entry_id == ids_a[0]
    assert store.story_assignments(scope) == {i: "s1" for i in scope}
    version = store.stories_version()
    # Saving the same result again changes nothing a feed reader would see.
    store.save_clusters([story], scope, NOW + timedelta(minutes=5))
    assert store.stories_version() == version
    # Splitting one article off: the story keeps its id, a new one appears.
    store.save_clusters(
        [
            StoryCluster(
                id="s1",
                article_ids=tuple(map(str, ids_a)),
                label="Une histoire",
                lead_id=str(ids_a[0]),
            ),
            StoryCluster(
                id="s2", article_ids=(str(ids_b[0]),), label="Autre", lead_id=str(ids_b[0])
            ),
        ],
        scope,
        NOW,
    )
    assert {s.uid: len(s.members) for s in store.recent_stories(limit=10)} == {"s1": 2, "s2": 1}
    assert store.count_stories(min_outlets=2) == 0
    # A story left without members disappears.
    store.save_clusters(
        [
            StoryCluster(
                id="s2", article_ids=tuple(map(str, scope)), label="Tout", lead_id=str(ids_b[0])
            )
        ],
        scope,
        NOW,
    )
    assert [s.uid for s in store.recent_stories(limit=10)] == ["s2"]


def test_store_rejects_naive_datetimes(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError):
        store.due_sources(datetime(2025, 1, 1))


def test_topics_are_listed_by_activity_and_found_by_slug(store: Store) -> None:
    from aggregator.store.schema import topics

    with store.engine.begin() as conn:
        for i, (slug, label) in enumerate(
            [("ukraine", "Guerre en Ukraine"), ("retraites", "Réforme des retraites")]
        ):
            conn.execute(
                topics.insert().values(
                    uid=f"t{i}", slug=slug, label=label, created_at=NOW, updated_at=NOW,
                    last_activity_at=NOW + timedelta(hours=i),
                )
            )  # fmt: skip
    assert [t.slug for t in store.list_topics()] == ["retraites", "ukraine"]
    found = store.topic_by_slug("ukraine")
    assert found is not None and found.label == "Guerre en Ukraine"
    assert store.topic_by_slug("nope") is None


def test_claims_lease_due_feeds_to_one_worker_until_the_result_or_expiry(store: Store) -> None:
    une, monde = two_sections(store)
    first = store.claim_due(NOW, "w1", 60, 10)
    assert sorted(s.id for s in first) == sorted([une.id, monde.id])
    assert store.claim_due(NOW, "w2", 60, 10) == []  # leased: nobody else gets them
    # The result of a fetch (next_check_at written) ends the lease.
    store.update_source(une.id, NOW, next_check_at=NOW + timedelta(minutes=30))
    assert store.claim_due(NOW, "w2", 60, 10) == []  # not due yet; monde still leased
    # w1 dies: once its lease expires, monde goes to w2, and w1 can no longer renew it.
    later = NOW + timedelta(seconds=61)
    assert [s.id for s in store.claim_due(later, "w2", 60, 10)] == [monde.id]
    assert not store.renew_lease(monde.id, "w1", later, 60)
    assert store.renew_lease(monde.id, "w2", later, 60)
    assert store.release_leases("w2") == 1
    assert [s.id for s in store.claim_due(later, "w3", 60, 10)] == [monde.id]


def test_a_host_belongs_to_one_worker_at_a_time_and_is_spaced_across_workers(
    store: Store,
) -> None:
    """Politeness across workers: while w1 holds a lease on a Le Monde section, w2 gets
    no other Le Monde section; once w1's result is in, w2 waits for the per-host spacing
    since w1's fetch. A worker's own leases and fetches do not hold it back."""
    store.sync_sources(
        [FeedSpec(f"https://www.lemonde.fr/s{n}/rss.xml", "Le Monde", f"s{n}") for n in range(3)]
        + [FeedSpec("https://www.liberation.fr/rss.xml", "Libération")],
        NOW,
    )
    by_url = {s.url: s for s in store.list_sources()}
    monde = [by_url[f"https://www.lemonde.fr/s{n}/rss.xml"] for n in range(3)]
    libe = by_url["https://www.liberation.fr/rss.xml"]
    assert [s.id for s in store.claim_due(NOW, "w1", 60, 1, host_spacing=2)] == [monde[0].id]
    # w2 skips the host w1 is on; w1 itself may queue more of it.
    assert [s.id for s in store.claim_due(NOW, "w2", 60, 10, host_spacing=2)] == [libe.id]
    assert [s.id for s in store.claim_due(NOW, "w1", 60, 1, host_spacing=2)] == [monde[1].id]
    # Without host_spacing (a fetcher alone on its database), hosts are not checked.
    assert [s.id for s in store.claim_due(NOW, "w3", 60, 10)] == [monde[2].id]
    store.release_leases("w3")
    # w1's results are in: its leases end, but its last request was just now.
    for source in monde[:2]:
        store.update_source(
            source.id, NOW, next_check_at=NOW + timedelta(hours=1), last_fetched_at=NOW,
            fetched_by="w1",
        )  # fmt: skip
    soon, later = NOW + timedelta(seconds=1), NOW + timedelta(seconds=3)
    assert store.claim_due(soon, "w2", 60, 10, host_spacing=2) == []
    assert [s.id for s in store.claim_due(soon, "w1", 60, 10, host_spacing=2)] == [monde[2].id]
    store.release_leases("w1")
    assert [s.id for s in store.claim_due(later, "w2", 60, 10, host_spacing=2)] == [monde[2].id]


def test_concurrent_claims_never_give_two_workers_one_host(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store.sync_sources(
        [FeedSpec(f"https://ex{n % 10}.fr/{n}.xml", f"Ex {n % 10}") for n in range(60)], NOW
    )
    start = threading.Barrier(4)

    def worker(name: str) -> set[str]:
        start.wait()
        hosts: set[str] = set()
        for _ in range(5):
            hosts |= {
                s.url.split("/")[2] for s in store.claim_due(NOW, name, 60, 2, host_spacing=0)
            }
        return hosts

    with ThreadPoolExecutor(4) as pool:
        held = list(pool.map(worker, ["a", "b", "c", "d"]))
    shared = [h for h in {h for part in held for h in part} if sum(h in p for p in held) > 1]
    print(f"4 workers claiming at once hold {sorted(len(p) for p in held)} hosts; shared: {shared}")
    assert shared == []


def test_concurrent_claims_never_hand_out_a_feed_twice(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store.sync_sources([FeedSpec(f"https://ex{n}.fr/rss", f"Ex {n}") for n in range(60)], NOW)

    def worker(name: str) -> list[int]:
        got: list[int] = []
        while batch := store.claim_due(NOW, name, 60, 3):
            got += [s.id for s in batch]
        return got

    with ThreadPoolExecutor(4) as pool:
        claimed = list(pool.map(worker, ["a", "b", "c", "d"]))
    ids = [i for part in claimed for i in part]
    print(f"4 threads claimed {len(ids)} feeds of 60, {len(ids) - len(set(ids))} twice")
    assert sorted(ids) == sorted(s.id for s in store.list_sources())


def test_named_lock_has_one_holder_and_frees_itself_when_not_renewed(store: Store) -> None:
    assert store.acquire_lock("cluster", "p1", NOW, 30)
    assert not store.acquire_lock("cluster", "p2", NOW + timedelta(seconds=10), 30)
    assert store.acquire_lock("cluster", "p1", NOW + timedelta(seconds=20), 30)  # renewal
    assert not store.acquire_lock("cluster", "p2", NOW + timedelta(seconds=45), 30)
    assert store.acquire_lock("cluster", "p2", NOW + timedelta(seconds=51), 30)  # p1 died
    assert store.lock_holder("cluster") == "p2"
    store.release_lock("cluster", "p1")  # not the holder: no effect
    assert store.lock_holder("cluster") == "p2"
    with store.holding_lock("cluster", "p3", 30, clock=lambda: NOW + timedelta(hours=1)) as held:
        assert held and store.lock_holder("cluster") == "p3"
    assert store.lock_holder("cluster") is None


def test_two_sections_storing_one_article_at_once_store_it_once(store: Store) -> None:
    """Two workers store overlapping sections of one outlet in overlapping transactions
    (on PostgreSQL the second waits on the first's uncommitted rows, then finds them
    taken): each article is stored once, counted new once, and linked to both sections."""
    import threading

    from aggregator.store import entries as store_entries

    une, monde = two_sections(store)
    first_wrote, second_started = threading.Event(), threading.Event()
    reports = {}

    def first() -> None:
        with store.writing() as conn:  # type: ignore[attr-defined]
            reports["une"] = store_entries.upsert_entries(
                conn, une, [entry("k1"), entry("k2"), entry("k3")], NOW
            )
            first_wrote.set()
            second_started.wait(10)
            time.sleep(0.3)  # the second transaction is now waiting (or queued) on ours

    def second() -> None:
        first_wrote.wait(10)
        second_started.set()
        with store.writing() as conn:  # type: ignore[attr-defined]
            reports["monde"] = store_entries.upsert_entries(
                conn, monde, [entry("k2"), entry("k3"), entry("k4")], NOW
            )

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(reports["une"].new_ids) == 3
    assert len(reports["monde"].new_ids) == 1  # k4 only: k2 and k3 were the first's
    assert store.count_entries() == 4
    counts = {s.section: s.entry_count for s in store.list_sources()}
    assert counts == {"Une": 3, "Monde": 3}


def test_postgresql_statements_are_planned_for_their_values(store: Store) -> None:
    """No server-side prepared statements on PostgreSQL: a generic plan made while a
    table was small would keep scanning an outlet's every entry (and prepared statements
    break behind pgbouncer). After many identical upserts, nothing is prepared."""
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL only")
    une, _ = two_sections(store)
    for n in range(12):
        store.save_fetch(une, [entry(f"k{n}-{j}") for j in range(5)], NOW)
    with store.engine.connect() as conn:
        prepared = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar()
        assert prepared == 0
