"""Helpers shared by the desk tests: the fixture corpus, seeding a store, and an HTTP
client that signs in and posts forms the way the desk's own pages do."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any

import httpx

from aggregator.models import FeedSpec, ParsedEntry
from aggregator.store import Store

CORPUS = Path(__file__).resolve().parent / "data" / "desk" / "corpus.json"
DAY = datetime(2025, 3, 10, tzinfo=UTC)
# Cluster as of that evening: every article is in the 72-hour window.
AT = DAY + timedelta(hours=23)
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def corpus() -> dict[str, Any]:
    return json.loads(CORPUS.read_text(encoding="utf-8"))


Overrides = dict[str, dict[str, str]]


def articles(day: datetime = DAY, overrides: Overrides | None = None) -> list[dict[str, Any]]:
    """The corpus articles with absolute times and links; ``overrides`` replaces fields
    (title, summary, link) of some articles, by key."""
    out = []
    for a in corpus()["articles"]:
        item = dict(a)
        item["published"] = day + timedelta(hours=a["hour"])
        item["link"] = f"https://news.example/{a['key']}"
        item.update((overrides or {}).get(a["key"], {}))
        out.append(item)
    return out


def seed(store: Store, day: datetime = DAY, overrides: Overrides | None = None) -> dict[str, int]:
    """Store the corpus (one feed per outlet); returns entry ids by corpus key."""
    items = articles(day, overrides)
    outlets = sorted({a["outlet"] for a in items})
    specs = [FeedSpec(f"https://{i}.example/rss", outlet) for i, outlet in enumerate(outlets)]
    store.sync_sources(specs, day)
    ids: dict[str, int] = {}
    for source in store.list_sources():
        mine = [a for a in items if a["outlet"] == source.outlet]
        parsed = [
            ParsedEntry(
                key=a["key"], title=a["title"], link=a["link"],
                summary_text=a["summary"], summary_html=escape(a["summary"]),
                published=a["published"],
            )
            for a in mine
        ]  # fmt: skip
        store.save_fetch(source, parsed, day + timedelta(hours=23))
    for e in store.entries_between(day - timedelta(days=1), day + timedelta(days=2)):
        ids[e.key] = e.id
    return ids


def rss(outlet: str, items: list[dict[str, Any]]) -> str:
    """An RSS 2.0 feed of corpus items (for the end-to-end tests' replay server)."""
    body = "".join(
        f"<item><title>{escape(a['title'])}</title><link>https://news.example/{a['key']}</link>"
        f"<guid>{a['key']}</guid><description>{escape(a['summary'])}</description>"
        f"<pubDate>{format_datetime(a['published'])}</pubDate></item>"
        for a in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(outlet)}</title><link>https://news.example/</link>{body}</channel></rss>"
    )


def story_of(store: Store, entry_id: int) -> str:
    return store.story_assignments([entry_id])[entry_id]


def members(store: Store, uid: str) -> set[int]:
    story = store.story_by_uid(uid)
    assert story is not None, uid
    return {m.entry_id for m in story.members}


@dataclass
class Editor:
    """An httpx client signed in to the desk, posting like the desk's forms do."""

    base: str
    client: httpx.Client
    csrf: str = ""

    @classmethod
    def sign_in(cls, base: str, name: str = "alice", password: str = PASSWORD) -> Editor:
        client = httpx.Client(base_url=base, headers={"accept": "text/html"}, timeout=30)
        page = client.get("/desk/login")
        token = _CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        r = client.post(
            "/desk/login",
            data={"csrf": token, "nom": name, "mot_de_passe": password},
            headers={"origin": base},
        )
        assert r.status_code == 303, (r.status_code, r.text[:300])
        editor = cls(base, client)
        editor.refresh_token()
        return editor

    def refresh_token(self) -> None:
        page = self.client.get("/desk")
        assert page.status_code == 200, page.status_code
        self.csrf = _CSRF.search(page.text).group(1)  # type: ignore[union-attr]

    def post(self, path: str, data: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        form = {"csrf": self.csrf, **(data or {})}
        return self.client.post(path, data=form, headers={"origin": self.base, **headers})

    def act(self, path: str, data: dict[str, Any] | None = None) -> int:
        """Post a decision, expect the redirect, return the decision id it names."""
        r = self.post(path, data)
        assert r.status_code == 303, (path, r.status_code, r.text[:500])
        found = re.search(r"fait=(\d+)", r.headers["location"])
        assert found, r.headers["location"]
        return int(found.group(1))

    def close(self) -> None:
        self.client.close()


@dataclass
class World:
    """A desk on a real uvicorn server over a clustered corpus, with two editors."""

    settings: Any
    store: Store
    ids: dict[str, int]
    server: Any
    day: datetime = DAY

    @property
    def at(self) -> datetime:
        return self.day + timedelta(hours=23)

    @property
    def url(self) -> str:
        return str(self.server.url)

    def uid(self, key: str) -> str:
        return story_of(self.store, self.ids[key])

    def close(self) -> None:
        self.server.stop()
        self.store.close()


def build_world(
    tmp: Path,
    overrides: Overrides | None = None,
    day: datetime = DAY,
    proxy_headers: bool = True,
    **env: str,
) -> World:
    """``day``: the corpus day; clustering runs that evening (23:00), so a day that ended
    an hour ago gives a desk whose stories the machine just changed ("à revoir").
    ``proxy_headers``: uvicorn's own X-Forwarded-* handling (on by default for 127.0.0.1)."""
    from aggregator.config import load_settings
    from aggregator.pipeline import recluster
    from aggregator.web import create_app
    from tests.conftest import LiveServer, base_env

    environment = base_env(tmp)
    # Feeds re-check the stories at every request, so a decision shows at once.
    env = {"publish_version_check_seconds": "0", **env}
    environment.update({f"AGGREGATOR_{k.upper()}": v for k, v in env.items()})
    settings = load_settings(env=environment)
    store = Store(settings.database.url)
    ids = seed(store, day, overrides=overrides)
    recluster(settings, store, day + timedelta(hours=23))
    store.add_user("alice", PASSWORD, DAY)
    store.add_user("bruno", PASSWORD, DAY)
    server = LiveServer(create_app(settings, store))
    server.server.config.proxy_headers = proxy_headers
    server.start()
    return World(settings, store, ids, server, day)
