"""The contract with the machine, end to end as operators and editors meet it: the CLI
creates an account, fetches replayed feeds and clusters; an editor decides through the
desk of a running `aggregator serve`; `aggregator cluster` runs again (and again, over a
moved window); every decision still holds and the served feed reflects it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from aggregator.cli import cli, main
from aggregator.config import load_settings
from aggregator.store import Store
from tests.conftest import base_env, free_port, run_cli, wait_for_http
from tests.desk_support import AT, PASSWORD, Editor, articles, rss

pytestmark = pytest.mark.slow


def users_cmd(env: dict[str, str], *args: str, password: str | None = None) -> Any:
    """``aggregator users ...`` in a subprocess with no terminal (as from a script)."""
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "users", *args],
        env=env, input=password, capture_output=True, text=True, timeout=120,
        start_new_session=True,
    )  # fmt: skip


def users_here(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
    stdin: str = "",
) -> tuple[int, str, str]:  # fmt: skip
    """The same command in this process (quicker), with the environment already set."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        main(["users", *args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_kinds() -> list[str]:
    """`aggregator cluster` runs incrementally or as a full rebuild (`--full`); the
    contract is checked through each kind the command offers."""
    options = {
        opt
        for p in cli.commands["cluster"].params
        for opt in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]
    }
    kinds = [o for o in ("--incremental", "--full") if o in options]
    assert kinds, "aggregator cluster offers neither --incremental nor --full any more"
    return kinds


@pytest.fixture
def instance(tmp_path: Path, replay) -> Iterator[tuple[dict[str, str], str]]:  # type: ignore[no-untyped-def]
    feeds_dir = tmp_path / "feeds"
    feeds_dir.mkdir()
    items = articles()
    outlets = sorted({a["outlet"] for a in items})
    for i, outlet in enumerate(outlets):
        mine = [a for a in items if a["outlet"] == outlet]
        (feeds_dir / f"outlet{i}.xml").write_text(rss(outlet, mine), encoding="utf-8")
    server = replay(feeds_dir)
    lines = [
        f'[[feeds]]\nurl = "{server.url_for(feeds_dir / f"outlet{i}.xml")}"\noutlet = "{o}"\n'
        for i, o in enumerate(outlets)
    ]
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("\n".join(lines), encoding="utf-8")
    port = free_port()
    env = base_env(tmp_path, AGGREGATOR_FEEDS_FILE=str(feeds), AGGREGATOR_SERVER_PORT=str(port),
                   AGGREGATOR_PUBLISH_VERSION_CHECK_SECONDS="0")  # fmt: skip
    yield env, f"http://127.0.0.1:{port}"


def test_accounts_are_managed_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = base_env(tmp_path)
    added = users_cmd(env, "add", "camille", "--password-stdin", password=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "added user camille" in added.stdout and "/desk" in added.stdout
    prompted = users_cmd(env, "add", "eve", password=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.returncode == 0, prompted.stderr

    for key in [k for k in os.environ if k.startswith("AGGREGATOR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("AGGREGATOR_"):
            monkeypatch.setenv(key, value)
    code, _, err = users_here(monkeypatch, capsys, "add", "camille", "--password-stdin",
                              stdin=PASSWORD)  # fmt: skip
    assert code == 1 and "already exists" in err
    code, _, err = users_here(monkeypatch, capsys, "add", "dom", "--password-stdin", stdin="court")
    assert code == 1 and "at least 8 characters" in err
    code, _, err = users_here(monkeypatch, capsys, "add", "bad name", "--password-stdin",
                              stdin=PASSWORD)  # fmt: skip
    assert code == 1 and "invalid user name" in err
    assert users_here(monkeypatch, capsys, "disable", "camille")[0] == 0
    assert users_here(monkeypatch, capsys, "disable", "nobody")[0] == 1
    code, listed, _ = users_here(monkeypatch, capsys, "list")
    assert "camille\tdisabled" in listed and "eve\tactive\tlast sign-in: never" in listed
    code, out, _ = users_here(monkeypatch, capsys, "passwd", "eve", "--password-stdin",
                              stdin="une autre phrase\n")  # fmt: skip
    assert code == 0 and "sessions are closed" in out
    store = Store(load_settings(env=env).database.url)
    try:
        now = store.list_users()[0].created_at
        assert store.sign_in("eve", "une autre phrase", "t", now + timedelta(seconds=1)) is not None  # type: ignore[operator]
        assert store.sign_in("camille", PASSWORD, "t", now + timedelta(seconds=1)) is None  # type: ignore[operator]
        with store.engine.connect() as conn:
            hashes = [r[0] for r in conn.exec_driver_sql("SELECT password_hash FROM users")]
        assert all(h.startswith("$argon2id$") for h in hashes) and PASSWORD not in str(hashes)
    finally:
        store.close()


def test_decisions_survive_clustering_runs_and_shape_the_feed(instance) -> None:  # type: ignore[no-untyped-def]
    env, url = instance
    users_cmd(env, "add", "alice", "--password-stdin", password=PASSWORD + "\n")
    assert "0 errors" in run_cli("fetch", env=env).stdout
    at = AT.strftime("%Y-%m-%dT%H:%M")
    run_cli("cluster", "--at", at, env=env)
    store = Store(load_settings(env=env).database.url)
    serve = subprocess.Popen([sys.executable, "-m", "aggregator", "serve"], env=env,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    editor = None
    try:
        wait_for_http(f"{url}/healthz")
        entries = {e.key: e.id for e in store.entries_between(AT - timedelta(days=2), AT)}

        def uid(key: str) -> str:
            return store.story_assignments([entries[key]])[entries[key]]

        seisme, psg, gazole = uid("seisme-1"), uid("psg-1"), uid("gazole-1")
        tempete, cannes, retraites = uid("tempete-1"), uid("cannes-1"), uid("retraites-1")
        assert len({seisme, psg, gazole, tempete, cannes, retraites}) == 6
        editor = Editor.sign_in(url)
        editor.act(f"/desk/stories/{seisme}/rename", {"titre": "Le Japon frappé par un séisme"})
        editor.act(f"/desk/stories/{psg}/pin", {"valeur": "1"})
        editor.act(f"/desk/stories/{gazole}/hide", {"valeur": "1"})
        editor.act(f"/desk/stories/{tempete}/merge", {"autre": cannes})
        editor.act(f"/desk/stories/{retraites}/split", {"articles": str(entries["retraites-3"])})
        editor.act(f"/desk/stories/{seisme}/move",
                   {"article": str(entries["seisme-3"]), "cible_id": psg})  # fmt: skip
        editor.act(f"/desk/stories/{psg}/remove", {"article": str(entries["psg-2"])})
        editor.act(f"/desk/stories/{seisme}/topic", {"nouveau_sujet": "Séismes au Japon"})
        split_off, alone = uid("retraites-3"), uid("psg-2")

        def holds() -> None:
            assert uid("seisme-1") == uid("seisme-2") == seisme
            assert uid("seisme-3") == uid("psg-1") == psg
            assert uid("cannes-1") == uid("tempete-2") == tempete
            assert uid("retraites-1") == uid("retraites-2") == retraites != split_off
            assert uid("retraites-3") == split_off and uid("psg-2") == alone != psg
            d = feedparser.parse(httpx.get(f"{url}/feed.atom").content)
            assert d.bozo == 0
            by_id = {e.id.rsplit("/", 1)[1]: e for e in d.entries}
            assert d.entries[0].id.endswith(f"story/{psg}")  # pinned first
            assert by_id[seisme].title == "Le Japon frappé par un séisme"
            assert gazole not in by_id and cannes not in by_id  # hidden; merged away
            assert "Festival de Cannes" in by_id[tempete].content[0].value
            assert by_id[seisme].tags[0].label == "Séismes au Japon"
            # Hidden from every feed, not only the merged Atom one.
            for path in ("/feed.rss", "/feed.json", "/articles.atom", "/"):
                body = httpx.get(f"{url}{path}").text
                assert "gazole" not in body and "Le PSG se qualifie" in body, path
            assert httpx.get(f"{url}/stories/{gazole}.atom").status_code == 404
            assert httpx.get(f"{url}/stories/{psg}.atom").status_code == 200

        holds()
        run_cli("cluster", "--at", at, env=env)
        holds()
        later = (AT + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M")
        run_cli("cluster", "--at", later, env=env)
        holds()
        for option in run_kinds():
            run_cli("cluster", option, "--at", later, env=env)
            holds()

        # Undo the move: the machine may now keep the article with its first story.
        history = editor.client.get("/desk/history").text
        assert history.count("Annuler") >= 8
        moved = next(d for d in store.decisions(limit=50)[0] if d.action == "move")
        editor.act(f"/desk/decisions/{moved.id}/undo")
        run_cli("cluster", "--full", "--at", at, env=env)
        assert uid("seisme-3") == seisme
    finally:
        if editor is not None:
            editor.close()
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=15) == 0, serve.stderr.read() if serve.stderr else ""
        store.close()
