"""Hostile feeds in, nothing executable out.

Every payload of tests/data/xss-payloads.txt (public XSS lists, see its header) is put in
the title, the summary and the link of one item of a hostile RSS feed and one of a hostile
Atom feed, served on 127.0.0.1 and ingested through the real path (fetch -> parse ->
store). Each payload then gets its own story (two articles) and the first ones their own
topic named after the raw payload, so every finding can be traced to its payload. Stories
are saved with ``save_clusters`` directly: clustering would merge payloads that share
words ("alert") and blur that attribution, and it only picks labels among headlines.

A payload *survives* in a format when the output unit that carries it (a feed item, an
<article> or topic entry of the page) contains an executable construct as a browser
would parse it (tests/xss_scan.py): in HTML content, in titles and names read as HTML (a
pessimistic reader), in links (scheme must be http/https). Findings outside any unit fail
the test too.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
import pytest
from starlette.datastructures import URL

from aggregator.models import FeedSpec, StoryCluster
from aggregator.pipeline import refresh_due
from aggregator.store import Store
from tests.conftest import need
from tests.feedtools import add_topic
from tests.xss_scan import scan_document, scan_fragment, url_scheme_finding

DATA = Path(__file__).parent / "data"
T0 = datetime(2025, 2, 10, 8, 0, tzinfo=UTC)
NOW = datetime(2025, 2, 10, 23, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"
# Payloads that also name a topic of their own (raw, as a label derived from hostile text).
TOPIC_PAYLOADS = 40
CHROMIUM = "/usr/bin/chromium"


def load_payloads() -> list[str]:
    lines = (DATA / "xss-payloads.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def hostile_rss(payloads: list[str]) -> str:
    items = []
    for i, p in enumerate(payloads):
        when = format_datetime(T0 + timedelta(seconds=i), usegmt=True)
        items.append(
            f"<item><title>{escape(p)}</title><link>{escape(p)}</link>"
            f"<description>{escape(p)}</description>"
            f'<guid isPermaLink="false">hostile-rss-{i}</guid><pubDate>{when}</pubDate></item>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Hostile RSS</title><link>http://127.0.0.1/</link><description>x</description>"
        + "".join(items)
        + "</channel></rss>"
    )


def hostile_atom(payloads: list[str]) -> str:
    entries = []
    for i, p in enumerate(payloads):
        when = (T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        entries.append(
            f"<entry><id>urn:hostile:atom:{i}</id>"
            f'<title type="html">{escape(p)}</title><link href={quoteattr(p)}/>'
            f'<content type="html">{escape(p)}</content>'
            f"<updated>{when}</updated><published>{when}</published></entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<id>urn:hostile</id><title>Hostile Atom</title><updated>2025-02-10T08:00:00Z</updated>"
        + "".join(entries)
        + "</feed>"
    )


@pytest.fixture(scope="module")
def payloads() -> list[str]:
    found = load_payloads()
    assert len(found) >= 200
    return found


@pytest.fixture
def hostile_site(tmp_path, replay, serve_app, settings, payloads):  # type: ignore[no-untyped-def]
    root = tmp_path / "hostile"
    root.mkdir()
    (root / "hostile-rss.xml").write_text(hostile_rss(payloads), encoding="utf-8")
    (root / "hostile-atom.xml").write_text(hostile_atom(payloads), encoding="utf-8")
    feeds = replay(root)
    store = Store(settings.database.url)
    store.sync_sources(
        [
            FeedSpec(feeds.url_for(root / "hostile-rss.xml"), "Média RSS"),
            FeedSpec(feeds.url_for(root / "hostile-atom.xml"), "Média Atom"),
        ],
        NOW,
    )
    report = refresh_due(settings, store, all_sources=True, clock=lambda: NOW)
    assert not report.errors, report.errors
    assert report.new_entries == 2 * len(payloads)

    by_key = {e.key: e for e in store.entries_between(T0 - timedelta(days=1), NOW)}
    clusters, scope = [], []
    for i in range(len(payloads)):
        rss, atom = by_key[f"hostile-rss-{i}"], by_key[f"urn:hostile:atom:{i}"]
        clusters.append(
            StoryCluster(
                id=f"x{i:03d}",
                article_ids=(str(rss.id), str(atom.id)),
                label=rss.title,
                lead_id=str(rss.id),
            )
        )
        scope += [rss.id, atom.id]
    store.save_clusters(clusters, scope, NOW)
    for i in range(TOPIC_PAYLOADS):
        add_topic(store, f"sujet-{i}", payloads[i], [f"x{i:03d}"], NOW)
    entry_owner = {e.id: int(e.key.rsplit("-", 1)[-1].rsplit(":", 1)[-1]) for e in by_key.values()}  # fmt: skip
    server, _ = serve_app(store, publish_max_items="1000", publish_version_check_seconds="0")
    yield server, entry_owner
    store.close()


Findings = dict[int | None, list[str]]


def _add(found: Findings, owner: int | None, items: list[str]) -> None:
    if items:
        found.setdefault(owner, []).extend(items)


def _link(url: str | None) -> list[str]:
    if not url:
        return []
    bad = url_scheme_finding(url)
    if bad:
        return [bad]
    return [] if url.startswith(("http://", "https://")) else [f"relative link {url[:40]!r}"]


def _story_owner(item_id: str) -> int:
    return int(item_id.rsplit("/x", 1)[1])


def scan_atom(body: bytes, owner_of: Callable[[str], int]) -> tuple[Findings, set[int]]:
    root = ET.fromstring(body)
    found: Findings = {}
    seen: set[int] = set()

    def scan_element(el: ET.Element, owner: int | None) -> None:
        for child in el:
            tag = child.tag.removeprefix(ATOM)
            if tag == "entry":
                continue
            if tag == "content":
                assert child.get("type") == "html"
                _add(found, owner, scan_fragment(child.text or ""))
            elif tag in ("title", "subtitle"):
                assert child.get("type", "text") == "text"
                _add(found, owner, scan_fragment(child.text or ""))
            elif tag == "link":
                _add(found, owner, _link(child.get("href")))
                _add(found, owner, scan_fragment(child.get("title") or ""))
            elif tag == "category":
                _add(found, owner, scan_fragment(child.get("label") or ""))
            elif tag == "author":
                _add(found, owner, scan_fragment(child.findtext(f"{ATOM}name") or ""))

    scan_element(root, None)
    for entry in root.iter(f"{ATOM}entry"):
        owner = owner_of(entry.findtext(f"{ATOM}id") or "")
        seen.add(owner)
        scan_element(entry, owner)
    return found, seen


def scan_rss(body: bytes) -> tuple[Findings, set[int]]:
    channel = ET.fromstring(body).find("channel")
    assert channel is not None
    found: Findings = {}
    seen: set[int] = set()
    for el in channel:
        if el.tag in ("title", "description"):
            _add(found, None, scan_fragment(el.text or ""))
        elif el.tag == f"{ATOM}link" or el.tag == "link":
            _add(found, None, _link(el.get("href") or el.text))
    for item in channel.iter("item"):
        owner = _story_owner(item.findtext("guid") or "")
        seen.add(owner)
        for el in item:
            if el.tag in ("title", "description", "category", "{http://purl.org/dc/elements/1.1/}creator"):  # fmt: skip
                _add(found, owner, scan_fragment(el.text or ""))
            elif el.tag == "link":
                _add(found, owner, _link(el.text))
    return found, seen


def scan_json(body: bytes) -> tuple[Findings, set[int]]:
    doc: dict[str, Any] = json.loads(body)
    found: Findings = {}
    seen: set[int] = set()
    _add(found, None, scan_fragment(doc.get("title", "")) + scan_fragment(doc.get("description", "")))  # fmt: skip
    for key in ("home_page_url", "feed_url", "next_url"):
        _add(found, None, _link(doc.get(key)))
    for item in doc["items"]:
        owner = _story_owner(item["id"])
        seen.add(owner)
        _add(found, owner, scan_fragment(item.get("content_html", "")))
        for key in ("title", "summary"):
            _add(found, owner, scan_fragment(item.get(key, "")))
        for tag in item.get("tags", []):
            _add(found, owner, scan_fragment(tag))
        for author in item.get("authors", []):
            _add(found, owner, scan_fragment(author.get("name", "")) + _link(author.get("url")))
        for key in ("url", "external_url", "image"):
            _add(found, owner, _link(item.get(key)))
    return found, seen


def scan_index(body: bytes) -> tuple[Findings, set[int]]:
    seen: set[int] = set()

    def owner_of(element: Any) -> str | None:
        story = element.get("data-story")
        if story:
            seen.add(int(story[1:]))
            return story
        topic = element.get("data-topic")
        return f"t{topic.rsplit('-', 1)[1]}" if topic else None

    found: Findings = {}
    for owner, finding in scan_document(body.decode("utf-8"), owner_of):
        _add(found, int(owner[1:]) if owner else None, [finding])
    return found, seen


def test_no_payload_survives_in_any_format(hostile_site, payloads, capsys) -> None:  # type: ignore[no-untyped-def]
    server, entry_owner = hostile_site
    n = len(payloads)
    get = lambda path: httpx.get(server.url + path, headers={"Accept-Encoding": "identity"})  # noqa: E731
    results = {
        "Atom": scan_atom(get("/feed.atom").content, _story_owner),
        "RSS": scan_rss(get("/feed.rss").content),
        "JSON Feed": scan_json(get("/feed.json").content),
        "HTML index": scan_index(get("/").content),
        "Atom articles": scan_atom(
            get("/articles.atom").content, lambda i: entry_owner[int(i.rsplit("/", 1)[1])]
        ),
    }
    # The control: the same scanner on the raw payloads, as an unsafe site would serve them.
    control = sum(1 for p in payloads if scan_fragment(p))
    lines = []
    failures = []
    for name, (found, seen) in results.items():
        assert seen == set(range(n)), f"{name}: {n - len(seen)} payload items missing"
        survived = sorted(k for k in found if k is not None)
        lines.append(f"{name}: {n} payloads, {len(survived)} survived")
        for owner in survived[:5]:
            failures.append(f"{name} #{owner} {payloads[owner]!r}: {found[owner][:3]}")
        if None in found:
            failures.append(f"{name}: outside any item: {found[None][:5]}")
    lines.append(f"scanner control: {control} of {n} raw payloads flagged when served unsanitised")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not failures, "\n".join(failures)
    # The scanner is not blind: most raw payloads are executable as served by a naive site.
    assert control >= n * 0.6


def test_hostile_links_never_reach_a_reader(hostile_site, payloads) -> None:  # type: ignore[no-untyped-def]
    """Links of the served items are the payload-derived ones when http(s), else absent."""
    server, _ = hostile_site
    doc = httpx.get(f"{server.url}/feed.json").json()
    for item in doc["items"]:
        url = item.get("url")
        if url is not None:
            parsed = URL(url)
            assert parsed.scheme in ("http", "https") and parsed.netloc, url


@pytest.mark.browser
@pytest.mark.slow
def test_nothing_runs_in_a_real_browser(hostile_site, payloads, capsys) -> None:  # type: ignore[no-untyped-def]
    """Chromium loads the hostile index, and a page that renders every JSON Feed item the
    way a careless reader would (titles as HTML); no dialog may open. The control page
    shows each raw payload in its own frame: many do open one.
    """
    need(Path(CHROMIUM).exists(), f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import Page, Route, sync_playwright

    server, _ = hostile_site
    items = httpx.get(f"{server.url}/feed.json").json()["items"]
    reader_page = "<!doctype html><meta charset=utf-8><body>" + "".join(
        f"<article><h2>{i['title']}</h2>{i['content_html']}<p>{i.get('summary', '')}</p></article>"
        for i in items
    )
    control_page = "".join(f"<iframe srcdoc={quoteattr(p)}></iframe>" for p in payloads)

    def local_only(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])

        def dialogs(load: Callable[[Page], object]) -> list[str]:
            page = browser.new_page()
            opened: list[str] = []
            page.on("dialog", lambda d: (opened.append(d.message), d.dismiss()))
            page.route("**/*", local_only)
            load(page)
            page.wait_for_timeout(500)
            page.close()
            return opened

        index = dialogs(lambda p: p.goto(f"{server.url}/"))
        reader = dialogs(lambda p: p.set_content(reader_page))
        control = dialogs(lambda p: p.set_content(control_page))
        browser.close()
    with capsys.disabled():
        print(
            f"\nchromium: HTML index {len(index)} dialogs, reader page {len(reader)} dialogs; "
            f"control (raw payloads) {len(control)} dialogs"
        )
    assert index == [] and reader == []
    assert len(control) >= 20
