"""The desk's safety on a real server: every mutating route (taken from the app's own
route table, so a new one cannot escape) refuses a missing token and a foreign origin;
no desk route gives data without a session; malformed input is a clear 4xx that changes
nothing; sign-in is throttled; cookies and headers are strict."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from pytest_httpserver import HTTPServer
from starlette.routing import Route

from aggregator.web import create_app
from tests.desk_support import PASSWORD, Editor, World, build_world, corpus

LABELS = ("Séisme", "Réforme des retraites", "Ligue des champions", "Tempête", "Ishikawa")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(tmp_path_factory.mktemp("desk-security"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def editor(world: World) -> Iterator[Editor]:
    e = Editor.sign_in(world.url)
    yield e
    e.close()


def desk_routes(world: World) -> list[tuple[str, set[str]]]:
    app = create_app(world.settings, world.store)
    return [
        (r.path, set(r.methods or ()))
        for r in app.routes
        if isinstance(r, Route) and r.path.startswith("/desk")
    ]


def concrete(path: str, world: World, decision: int) -> str:
    """Fill a route's parameters with ids that exist, so only the checks can refuse."""
    topics = world.store.desk_topics()
    topic = topics[0].topic.uid if topics else "tnone"
    path = path.replace("/desk/topics/{uid}", f"/desk/topics/{topic}")
    return path.replace("{uid}", world.uid("seisme-1")).replace("{decision}", str(decision))


def state(world: World) -> tuple[object, ...]:
    stories, _ = world.store.decisions(limit=1000)
    labels = sorted((s.uid, s.label, s.pinned, s.hidden) for s in world.store.recent_stories(
        limit=100, include_hidden=True))  # fmt: skip
    return len(stories), tuple(labels)


def test_every_mutating_route_refuses_missing_token_and_foreign_origin(
    world: World, editor: Editor
) -> None:
    routes = desk_routes(world)
    mutating = [path for path, methods in routes if methods - {"GET", "HEAD"}]
    assert {"/desk/login", "/desk/logout", "/desk/stories/{uid}/rename",
            "/desk/stories/{uid}/merge", "/desk/stories/{uid}/split", "/desk/stories/{uid}/move",
            "/desk/stories/{uid}/pin", "/desk/stories/{uid}/hide",
            "/desk/decisions/{decision}/undo"} <= set(mutating)  # fmt: skip
    assert all(methods <= {"GET", "HEAD"} or methods == {"POST"} for _, methods in routes)
    decision = editor.act(f"/desk/stories/{world.uid('psg-1')}/review")
    before = state(world)
    good = {"csrf": editor.csrf, "titre": "Piraté", "autre": world.uid("psg-1"),
            "articles": str(world.ids["seisme-3"]), "article": str(world.ids["seisme-3"]),
            "cible": world.uid("psg-1"), "valeur": "1", "nom": "alice",
            "mot_de_passe": PASSWORD}  # fmt: skip
    attempts = {
        "no token": ({k: v for k, v in good.items() if k != "csrf"}, {"origin": world.url}),
        "wrong token": ({**good, "csrf": "x" * 43}, {"origin": world.url}),
        "foreign origin": (good, {"origin": "https://evil.example"}),
        "null origin": (good, {"origin": "null"}),
        "foreign referer": (good, {"referer": "https://evil.example/desk"}),
        "no origin nor referer": (good, {}),
    }
    checked = 0
    for path in mutating:
        url = concrete(path, world, decision)
        for why, (data, headers) in attempts.items():
            r = editor.client.post(url, data=data, headers=headers)
            assert r.status_code == 403, (path, why, r.status_code)
            assert "Séisme" not in r.text
            checked += 1
        assert editor.client.get(url).status_code in (200, 303, 405), path  # GET never acts
    assert checked == len(mutating) * len(attempts) >= 6 * 12
    assert state(world) == before


def test_a_token_is_bound_to_its_session(world: World, editor: Editor) -> None:
    other = Editor.sign_in(world.url, "bruno")
    try:
        r = other.post(f"/desk/stories/{world.uid('psg-1')}/pin", {"csrf": editor.csrf})
        assert r.status_code == 403
    finally:
        other.close()


def test_no_desk_route_gives_data_without_a_session(world: World, editor: Editor) -> None:
    decision = editor.act(f"/desk/stories/{world.uid('gazole-1')}/review")
    anonymous = httpx.Client(base_url=world.url, timeout=30)
    stale = httpx.Client(base_url=world.url, timeout=30,
                         cookies={"aggregator_desk": "forged-or-expired"})  # fmt: skip
    try:
        for path, methods in desk_routes(world):
            url = concrete(path, world, decision)
            for client in (anonymous, stale):
                for method in sorted(methods - {"HEAD"}):
                    extra = {"origin": world.url} if method == "POST" else {}
                    html = client.request(method, url, headers={"accept": "text/html", **extra})
                    plain = client.request(method, url, headers={"accept": "*/*", **extra})
                    texts = html.text + plain.text
                    assert not any(label in texts for label in LABELS), (method, path)
                    if path == "/desk/login":
                        assert html.status_code == 200 or 400 <= html.status_code < 500
                        continue
                    assert plain.status_code in (401, 403), (method, path, plain.status_code)
                    assert html.status_code in (303, 403), (method, path, html.status_code)
                    if html.status_code == 303:
                        assert html.headers["location"].startswith("/desk/login")
        # The public feeds stay public.
        assert anonymous.get("/feed.atom").status_code == 200
        assert "Ishikawa" in anonymous.get("/feed.atom").text
    finally:
        anonymous.close()
        stale.close()


def test_cookies_headers_and_sign_out(world: World) -> None:
    e = Editor.sign_in(world.url, "bruno")
    try:
        page = e.client.get("/desk")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text
        login_page = httpx.get(f"{world.url}/desk/login")
        assert "default-src 'none'" in login_page.headers["content-security-policy"]
        # The session cookie as the server set it.
        token = re.search(r'name="csrf" value="([^"]+)"', login_page.text).group(1)  # type: ignore[union-attr]
        r = httpx.post(f"{world.url}/desk/login",
                       data={"csrf": token, "nom": "bruno", "mot_de_passe": PASSWORD},
                       headers={"origin": world.url}, cookies=login_page.cookies)  # fmt: skip
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie"
                      and v.startswith("aggregator_desk="))  # fmt: skip
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/desk" in cookie
        assert "Secure" not in cookie  # plain HTTP, no proxy trusted
        assert e.client.get("/desk/logout").status_code == 405  # sign-out is POST only
        out = e.post("/desk/logout")
        assert out.status_code == 303 and out.headers["location"] == "/desk/login?sortie=1"
        assert e.client.get("/desk").status_code == 303
    finally:
        e.close()


@pytest.mark.parametrize("trusted", [False, True])
def test_secure_cookie_behind_a_trusted_https_proxy(tmp_path: Path, trusted: bool) -> None:
    """X-Forwarded-Proto counts only when configured (uvicorn's own proxy handling off, as
    for a proxy on another machine that uvicorn does not trust)."""
    w = build_world(tmp_path, proxy_headers=False,
                    desk_trust_forwarded_proto="true" if trusted else "false")  # fmt: skip
    try:
        client = httpx.Client(base_url=w.url, headers={"x-forwarded-proto": "https"})
        page = client.get("/desk/login")
        assert ("Secure" in page.headers["set-cookie"]) is trusted
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        form = {"csrf": token, "nom": "alice", "mot_de_passe": PASSWORD}
        # The proxy speaks HTTPS to the browser, so the browser sends the Secure cookie back.
        cookie = {"cookie": f"aggregator_desk_login={token}"}
        # Behind the proxy the browser saw https://host: then an http:// Origin is foreign.
        host = w.url.removeprefix("http://")
        plain = client.post("/desk/login", data=form, headers={"origin": w.url, **cookie})
        secure = client.post(
            "/desk/login", data=form, headers={"origin": f"https://{host}", **cookie}
        )
        accepted, refused = (secure, plain) if trusted else (plain, secure)
        assert refused.status_code == 403
        assert accepted.status_code == 303
        assert ("Secure" in accepted.headers["set-cookie"]) is trusted
    finally:
        w.close()


def test_sign_in_is_throttled_with_one_message_for_every_failure(world: World) -> None:
    client = httpx.Client(base_url=world.url, headers={"accept": "text/html"}, timeout=30)
    world.store.add_user("chloe", PASSWORD, world.store.list_users()[0].created_at)  # type: ignore[arg-type]

    def attempt(name: str, password: str) -> httpx.Response:
        page = client.get("/desk/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        return client.post("/desk/login", data={"csrf": token, "nom": name,
                           "mot_de_passe": password}, headers={"origin": world.url})  # fmt: skip

    try:
        unknown = attempt("nobody", "whatever-long")
        assert unknown.status_code == 401 and "Nom ou mot de passe incorrect." in unknown.text
        for i in range(5):
            r = attempt("chloe", f"wrong password {i}")
            assert r.status_code == 401 and "Nom ou mot de passe incorrect." in r.text
        blocked = attempt("chloe", PASSWORD)
        assert blocked.status_code == 429 and "Trop de tentatives" in blocked.text
        assert attempt("alice", PASSWORD).status_code == 303  # other accounts unaffected
    finally:
        client.close()


MALFORMED = [
    # (path template, form, status, message fragment)
    ("/desk/stories/snope0000000000/rename", {"titre": "x"}, 404, "Histoire inconnue"),
    ("/desk/stories/<script>/rename", {"titre": "x"}, 400, "Identifiant invalide"),
    ("/desk/stories/{seisme}/rename", {"titre": "x" * 5000}, 400, "trop long"),
    ("/desk/stories/{seisme}/rename", {"titre": "   "}, 400, "obligatoire"),
    ("/desk/stories/{seisme}/rename", {}, 400, "obligatoire"),
    ("/desk/stories/{seisme}/rename", [("titre", "a"), ("titre", "b")], 400, "plusieurs fois"),
    ("/desk/stories/{seisme}/merge", {"autre": "{seisme}"}, 409, "elle-même"),
    ("/desk/stories/{seisme}/merge", {"autre": "s" + "f" * 15}, 404, "Histoire inconnue"),
    ("/desk/stories/{seisme}/merge", {"autre": "../../etc"}, 400, "Identifiant invalide"),
    ("/desk/stories/{seisme}/split", {}, 400, "au moins un article"),
    ("/desk/stories/{seisme}/split", {"articles": "abc"}, 400, "nombre entier"),
    ("/desk/stories/{seisme}/split", {"articles": "-3"}, 400, "nombre entier"),
    ("/desk/stories/{seisme}/split", {"articles": "9" * 25}, 400, "nombre entier"),
    ("/desk/stories/{seisme}/split", {"articles": "99999999"}, 404, "n’appartient pas"),
    (
        "/desk/stories/{seisme}/split",
        [("articles", str(i)) for i in range(1, 600)],
        400,
        "Trop de valeurs",
    ),
    ("/desk/stories/{seisme}/split", "ALL", 409, "Laissez au moins un article"),
    (
        "/desk/stories/{seisme}/move",
        {"article": "{psg1}", "cible": "{psg}"},
        404,
        "n’appartient pas",
    ),
    ("/desk/stories/{seisme}/move", {"article": "{seisme1}"}, 400, "Choisissez"),
    ("/desk/stories/{seisme}/move", {"article": "{seisme1}", "cible": "{seisme}"}, 409, "déjà"),
    ("/desk/stories/{seisme}/remove", {"article": "1.5"}, 400, "nombre entier"),
    ("/desk/stories/{gazole}/remove", {"article": "{gazole1}"}, 409, "seul article"),
    ("/desk/stories/{seisme}/pin", {"valeur": "2"}, 400, "Valeur inconnue"),
    ("/desk/stories/{seisme}/pin", {"valeur": "0"}, 409, "déjà"),
    ("/desk/stories/{seisme}/topic", {}, 400, "Choisissez un sujet"),
    ("/desk/stories/{seisme}/topic", {"sujet": "tnope"}, 404, "Sujet inconnu"),
    ("/desk/stories/{seisme}/untopic", {}, 409, "aucun sujet"),
    ("/desk/topics/tnope/rename", {"titre": "x"}, 404, "Sujet inconnu"),
    ("/desk/decisions/abc/undo", {}, 400, "nombre entier"),
    ("/desk/decisions/99999999999999999999/undo", {}, 400, "nombre entier"),
    ("/desk/decisions/424242/undo", {}, 404, "Décision inconnue"),
]


@pytest.mark.parametrize(("path", "form", "status", "message"), MALFORMED)
def test_malformed_input_is_a_clear_4xx_and_changes_nothing(
    world: World, editor: Editor, path: str, form: object, status: int, message: str
) -> None:
    names = {"seisme": world.uid("seisme-1"), "psg": world.uid("psg-1"),
             "gazole": world.uid("gazole-1")}  # fmt: skip
    names.update({k.replace("-", ""): str(v) for k, v in world.ids.items()})

    def fill(text: str) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: names[m.group(1)], text)

    if form == "ALL":
        story = world.store.story_by_uid(names["seisme"])
        pairs = [("articles", str(m.entry_id)) for m in story.members]  # type: ignore[union-attr]
    elif isinstance(form, dict):
        pairs = [(k, fill(v)) for k, v in form.items()]
    else:
        pairs = list(form)  # type: ignore[call-overload]
    before = state(world)
    body = urlencode([("csrf", editor.csrf), *pairs])
    r = editor.client.post(fill(path), content=body, headers={"origin": world.url,
                           "content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == status, (r.status_code, r.text[:400])
    assert message in r.text
    assert "<script>" not in r.text
    assert state(world) == before


def test_bodies_and_query_strings_out_of_bounds(world: World, editor: Editor) -> None:
    url = f"/desk/stories/{world.uid('seisme-1')}/rename"
    before = state(world)
    huge = editor.client.post(url, content=b"csrf=" + editor.csrf.encode() + b"&titre=" +
                              b"a" * 200_000, headers={"origin": world.url,
                              "content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert huge.status_code == 413
    as_json = editor.client.post(url, json={"csrf": editor.csrf, "titre": "x"},
                                 headers={"origin": world.url})  # fmt: skip
    assert as_json.status_code == 415
    bad_utf8 = editor.client.post(url, content=b"csrf=" + editor.csrf.encode() + b"&titre=%ff%fe",
                                  headers={"origin": world.url,
                                  "content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert bad_utf8.status_code == 400
    assert state(world) == before
    for query, fragment in [("medias=abc", "nombre entier"), ("medias=0", "compris entre"),
                            ("periode=hier", "Valeur inconnue"), ("page=-1", "nombre entier"),
                            ("sujet=%3Cscript%3E", "Identifiant invalide"),
                            ("q=" + "x" * 300, "trop long"), ("etat=x&etat=y", "plusieurs")]:  # fmt: skip
        r = editor.client.get(f"/desk?{query}")
        assert r.status_code == 400 and fragment in r.text, (query, r.status_code)
    assert editor.client.get("/desk/stories/" + "s" * 40).status_code == 400
    assert editor.client.get("/desk/stories/snope0000000000").status_code == 404
    assert editor.client.get("/desk/history?page=abc").status_code == 400
    # A redirect target from a form never leaves the desk.
    r = editor.post(f"/desk/stories/{world.uid('psg-1')}/review", {"suite": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"].startswith("/desk/stories/")


def test_story_page_marks_wire_copies(tmp_path: Path) -> None:
    """A near-identical republication is shown as such and not counted as another outlet."""
    first = next(a for a in corpus()["articles"] if a["key"] == "tempete-1")
    w = build_world(tmp_path, overrides={"tempete-2": {"title": first["title"],
                                                       "summary": first["summary"]}})  # fmt: skip
    e = Editor.sign_in(w.url)
    try:
        page = e.client.get(f"/desk/stories/{w.uid('tempete-1')}").text
        assert page.count('class="badge badge-wire"') == 1
        assert "1 média (+ 1 en reprise)" in page
    finally:
        e.close()
        w.close()


def test_a_decision_pings_the_websub_hub(tmp_path: Path, httpserver: HTTPServer) -> None:
    """Subscribers pushed by a hub learn of a rename or a hide as of a clustering change."""
    httpserver.expect_request("/hub", method="POST").respond_with_data("", status=204)
    w = build_world(tmp_path, publish_websub_hub=httpserver.url_for("/hub"))
    httpserver.clear_log()  # the first clustering run's own ping
    e = Editor.sign_in(w.url)
    try:
        e.act(f"/desk/stories/{w.uid('gazole-1')}/hide", {"valeur": "1"})
        deadline = time.monotonic() + 10
        while not httpserver.log and time.monotonic() < deadline:
            time.sleep(0.05)
        [(request, _)] = httpserver.log
        form = parse_qs(request.get_data(as_text=True))
        assert form["hub.mode"] == ["publish"]
        assert any(url.endswith("/feed.atom") for url in form["hub.url"])
    finally:
        e.close()
        w.close()
