"""The desk in a real browser (Debian's chromium through Playwright), as an editor uses
it: sign in, rename, merge, split, move, pin, hide, undo, sign out; after each, reload
and check the page and the merged feed. Hostile feed text must never run a script.
Screenshots of the main screens go to test-artifacts/desk/ (look at them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from aggregator.pipeline import recluster
from tests.conftest import REPO, need
from tests.desk_support import PASSWORD, World, build_world, corpus, members

CHROMIUM = "/usr/bin/chromium"
# The machine's network is closed: no background fetches, updates or sync.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "desk"
LAPTOP = {"width": 1440, "height": 900}

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("desk-browser")]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need(Path(CHROMIUM).exists(), f"chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # Yesterday's news, clustered an hour ago: times read "il y a 3 h", all "à revoir".
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    w = build_world(tmp_path_factory.mktemp("desk-browser"), day=hour - timedelta(hours=24))
    yield w
    w.close()


def feed(world: World) -> Any:
    parsed = feedparser.parse(httpx.get(f"{world.url}/feed.atom").content)
    assert parsed.bozo == 0
    return parsed


def entry_for(parsed: Any, uid: str) -> Any:
    return next((e for e in parsed.entries if e.id.endswith(f"story/{uid}")), None)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, world: World, name: str = "alice") -> None:
    page.goto(f"{world.url}/desk")
    assert page.url.startswith(f"{world.url}/desk/login")
    page.fill("input[name=nom]", name)
    page.fill("input[name=mot_de_passe]", PASSWORD)
    page.click("button:has-text('Se connecter')")
    page.wait_for_url(f"{world.url}/desk")


def submit(page: Any, selector: str) -> None:
    """Click a form button and wait for the page it leads to (a 303 to a desk page)."""
    with page.expect_navigation():
        page.click(selector)
    assert page.locator(".flash").count() == 1, page.content()[:2000]


def test_an_editor_corrects_the_stories_and_the_feed_follows(browser: Any, world: World) -> None:
    context = browser.new_context(viewport=LAPTOP, locale="fr-FR")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(f"{world.url}/desk")
        shot(page, "01-connexion")
        sign_in(page, world)
        assert page.locator(".story-row").count() == 6
        assert page.locator(".story-row .badge-review").count() == 6
        shot(page, "02-histoires")
        page.select_option("select[name=medias]", "2")
        page.check("input[name=a_revoir]")
        with page.expect_navigation():
            page.click("button:has-text('Filtrer')")
        assert page.locator(".story-row").count() == 4

        # Rename.
        seisme, ids = world.uid("seisme-1"), world.ids
        page.goto(f"{world.url}/desk/stories/{seisme}")
        page.fill("input[name=nouveau_sujet]", "Séismes au Japon")
        submit(page, "button:has-text('Rattacher')")
        shot(page, "03-histoire")
        page.fill("textarea[name=titre]", "Séisme au Japon : l’alerte au tsunami levée")
        submit(page, "button:has-text('Renommer')")
        page.reload()
        assert page.inner_text("h1") == "Séisme au Japon : l’alerte au tsunami levée"
        assert page.locator(".story-head .badge-fixed").count() == 1
        assert page.locator(".story-head .badge-review").count() == 0  # an editor acted
        renamed = entry_for(feed(world), seisme)
        assert renamed.title == "Séisme au Japon : l’alerte au tsunami levée"
        assert renamed.tags[0].label == "Séismes au Japon"

        # Pin.
        psg = world.uid("psg-1")
        page.goto(f"{world.url}/desk/stories/{psg}")
        submit(page, "button:has-text('Épingler en tête')")
        page.reload()
        assert page.locator(".story-head .badge-pin").count() == 1
        assert feed(world).entries[0].id.endswith(f"story/{psg}")

        # Hide.
        gazole = world.uid("gazole-1")
        page.goto(f"{world.url}/desk/stories/{gazole}")
        submit(page, "button:has-text('Masquer des flux')")
        page.reload()
        assert page.locator(".story-head .badge-hidden").count() == 1
        assert entry_for(feed(world), gazole) is None

        # Merge (by id: these two stories have nothing in common, only an editor joins them).
        tempete, cannes = world.uid("tempete-1"), world.uid("cannes-1")
        page.goto(f"{world.url}/desk/stories/{tempete}")
        page.fill("input[name=autre][type=text]", cannes)
        submit(page, "form.inline-form button:has-text('Fusionner')")
        page.reload()
        assert page.locator(".article-row").count() == 3
        assert members(world.store, tempete) == {
            ids["tempete-1"],
            ids["tempete-2"],
            ids["cannes-1"],
        }
        merged = feed(world)
        assert entry_for(merged, cannes) is None
        assert "Festival de Cannes" in entry_for(merged, tempete).content[0].value

        # Split: tick one article, "Séparer".
        retraites = world.uid("retraites-1")
        page.goto(f"{world.url}/desk/stories/{retraites}")
        page.check(f"#article-{ids['retraites-3']} input[type=checkbox]")
        shot(page, "04-selection")
        submit(page, "button:has-text('Séparer la sélection')")
        page.reload()
        assert page.locator(".article-row").count() == 2
        split_off = world.uid("retraites-3")
        assert split_off != retraites
        assert entry_for(feed(world), split_off) is not None

        # Move an article to another story, then undo it from the confirmation.
        page.goto(f"{world.url}/desk/stories/{seisme}")
        row = page.locator(f"#article-{ids['seisme-3']}")
        row.locator("summary").click()
        row.locator("input[name=cible_id]").fill(psg)
        shot(page, "05-deplacer")
        submit(page, f"#article-{ids['seisme-3']} button:has-text('Déplacer')")
        assert world.uid("seisme-3") == psg
        page.reload()
        assert page.locator(f"#article-{ids['seisme-3']}").count() == 0
        moved_title = "le Japon lève"
        assert moved_title in entry_for(feed(world), psg).content[0].value
        submit(page, ".flash button:has-text('Annuler')")
        page.reload()
        assert page.locator(f"#article-{ids['seisme-3']}").count() == 1
        assert world.uid("seisme-3") == seisme
        undone = feed(world)
        assert moved_title in entry_for(undone, seisme).content[0].value
        assert moved_title not in entry_for(undone, psg).content[0].value

        # The machine runs again (incremental, then a full rebuild): every decision holds.
        recluster(world.settings, world.store, world.at, full=False)
        recluster(world.settings, world.store, world.at, full=True)
        after = feed(world)
        assert after.entries[0].id.endswith(f"story/{psg}")
        assert entry_for(after, seisme).title == "Séisme au Japon : l’alerte au tsunami levée"
        assert entry_for(after, gazole) is None and entry_for(after, cannes) is None
        assert world.uid("cannes-1") == tempete and world.uid("retraites-3") == split_off
        assert world.uid("seisme-3") == seisme
        page.goto(f"{world.url}/desk/stories/{seisme}")
        assert page.inner_text("h1") == "Séisme au Japon : l’alerte au tsunami levée"

        page.goto(f"{world.url}/desk/history")
        assert page.locator(".decision").count() == 7
        assert page.locator(".decision.is-undone").count() == 1
        shot(page, "06-historique")
        page.goto(f"{world.url}/desk?etat=epinglees")
        assert page.locator(".story-row").count() == 1
        page.goto(f"{world.url}/desk/topics")
        assert "Séismes au Japon" in page.inner_text("main")
        shot(page, "07-sujets")
        page.goto(f"{world.url}/desk?a_revoir=1&medias=2")
        assert page.locator(".story-row").count() == 0  # editors acted on each since

        # Sign out: the desk is closed again.
        with page.expect_navigation():
            page.click("button:has-text('Se déconnecter')")
        assert "Vous êtes déconnecté" in page.inner_text("body")
        page.goto(f"{world.url}/desk/stories/{seisme}")
        assert page.url.startswith(f"{world.url}/desk/login")
        assert "Séisme" not in page.inner_text("body")
        assert not problems, problems
    finally:
        context.close()


XSS_CHECK = """() => document.querySelectorAll(
  'script, iframe, object, embed, [onerror], [onload], [onmouseover], [srcdoc]').length"""


@pytest.mark.parametrize("csp", ["on", "bypassed"])
def test_hostile_feed_text_never_runs_in_the_desk(browser: Any, tmp_path: Path, csp: str) -> None:
    """With the CSP on, and with it bypassed: escaping alone must keep payloads inert."""
    payloads = corpus()["xss"]
    keys = [a["key"] for a in corpus()["articles"]]
    overrides = {
        key: {"title": payloads[i % len(payloads)] + " " + key,
              "summary": payloads[(i + 1) % len(payloads)],
              "link": "javascript:alert('xss-link')" if i % 2 else "https://news.example/x"}
        for i, key in enumerate(keys)
    }  # fmt: skip
    w = build_world(tmp_path, overrides=overrides)
    context = browser.new_context(viewport=LAPTOP, bypass_csp=csp == "bypassed")
    page = context.new_page()
    dialogs: list[str] = []
    messages: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: messages.append(m.text))
    page.on("pageerror", lambda e: messages.append(str(e)))
    try:
        sign_in(page, w)
        uid = w.uid(keys[0])
        # An editor may type a payload too: into a label and a topic name.
        page.goto(f"{w.url}/desk/stories/{uid}")
        page.fill("textarea[name=titre]", payloads[1])
        submit(page, "button:has-text('Renommer')")
        page.fill("input[name=nouveau_sujet]", payloads[0])
        submit(page, "button:has-text('Rattacher')")
        pages = ["/desk", "/desk/topics", "/desk/history", "/desk?q=%3Cscript%3E"]
        pages += [f"/desk/stories/{w.uid(k)}" for k in keys]
        for path in pages:
            page.goto(f"{w.url}{path}")
            page.mouse.move(400, 300)
            for link in page.locator("a").all()[:3]:
                link.hover()
            assert page.evaluate(XSS_CHECK) == 0, path
            assert page.evaluate("() => window.__xss === undefined")
        page.goto(f"{w.url}/desk/stories/{uid}")
        assert page.inner_text("h1") == payloads[1]  # shown as text
        assert page.locator("a[href^='javascript:']").count() == 0
        if csp == "on":
            shot(page, "08-xss-en-texte")
        assert not dialogs, dialogs
        assert not [m for m in messages if "xss" in m or "Refused" in m], messages
    finally:
        context.close()
        w.close()


def test_screenshots_are_kept_out_of_git() -> None:
    assert "test-artifacts/" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert shutil.which("git") is None or ARTIFACTS.is_relative_to(REPO)
