"""Retention on a real SQLite file, through the CLI: old stories and entries go, what the
desk pinned or locked stays with its articles, and so do articles a feed still carries.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.store import Store
from tests.conftest import base_env, run_cli

# The saved feeds were collected around 2025-02-10: far older than 90 days today.
AT = "2025-02-10T23:00"


@pytest.mark.slow
def test_prune_keeps_pinned_and_locked_stories_and_what_feeds_still_carry(
    tmp_path: Path, multi_outlet: Path, replay
) -> None:  # type: ignore[no-untyped-def]
    server = replay(multi_outlet)
    feeds = tmp_path / "feeds.toml"
    server.write_feeds(feeds)
    env = base_env(tmp_path, AGGREGATOR_FEEDS_FILE=str(feeds))
    run_cli("fetch", env=env)
    run_cli("cluster", "--at", AT, env=env)
    path = tmp_path / "data" / "aggregator.sqlite3"
    conn = sqlite3.connect(path)
    # Two multi-article stories for the desk, and one feed whose articles are still online.
    pinned, locked = [
        uid for (uid,) in conn.execute(
            "SELECT uid FROM stories WHERE article_count >= 2 ORDER BY article_count DESC LIMIT 2")
    ]  # fmt: skip
    store = Store(f"sqlite:///{path}")
    editor = store.add_user("camille", "motdepasse-solide", datetime.now(UTC))
    store.set_story_flag(editor.id, pinned, "pinned", True, datetime.now(UTC))
    store.set_story_flag(editor.id, locked, "locked", True, datetime.now(UTC))
    store.close()
    live_source = conn.execute("SELECT min(source_id) FROM entry_sources").fetchone()[0]
    conn.execute("UPDATE entry_sources SET last_seen_at = '2025-02-11 00:00:00.000000' "
                 "WHERE source_id != ?", (live_source,))  # fmt: skip
    conn.commit()

    def ids(sql: str) -> set[int]:
        return {r[0] for r in conn.execute(sql)}

    kept_members = ids(
        "SELECT m.entry_id FROM story_members m JOIN stories s ON s.id = m.story_id "
        "WHERE s.pinned OR s.locked"
    )
    still_online = ids(f"SELECT entry_id FROM entry_sources WHERE source_id = {live_source}")
    entries_before = ids("SELECT id FROM entries")
    stories_before = conn.execute("SELECT count(*) FROM stories").fetchone()[0]
    assert len(kept_members) >= 4 and still_online and stories_before > 100

    dry = run_cli("prune", "--dry-run", env=env).stdout
    assert dry.startswith("would prune") and ids("SELECT id FROM entries") == entries_before
    out = run_cli("prune", env=env).stdout
    entries_after = ids("SELECT id FROM entries")
    stories_after = {
        uid: (p, lk) for uid, p, lk in conn.execute("SELECT uid, pinned, locked FROM stories")
    }
    assert set(stories_after) == {pinned, locked}
    assert entries_after == kept_members | still_online
    gone = len(entries_before) - len(entries_after)
    assert f"pruned {stories_before - 2} stories, {gone} entries" in out, out
    assert dry.startswith(f"would prune {stories_before - 2} stories, {gone} entries")
    # Nothing points at deleted rows, and the fetch log of today stays.
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM fetch_log").fetchone()[0] == 71
    assert run_cli("prune", env=env).stdout.startswith("pruned 0 stories, 0 entries")
    off = run_cli("prune", env={**env, "AGGREGATOR_RETENTION_MAX_AGE_DAYS": "0"}).stdout
    assert "retention is off" in off
    # The pruned database still clusters and serves the kept stories.
    run_cli("cluster", "--at", AT, env=env)
    assert {pinned, locked} <= {r[0] for r in conn.execute("SELECT uid FROM stories")}
    conn.close()
    print(f"prune: {stories_before} stories -> 2 (pinned, locked), {len(entries_before)} entries "
          f"-> {len(entries_after)} (their {len(kept_members)} articles + {len(still_online)} "
          "still in a feed)")  # fmt: skip
