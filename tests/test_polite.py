"""Politeness to publishers, audited bullet by bullet: real local HTTP servers, real SQLite."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from aggregator.config import Settings
from aggregator.models import FeedSpec, ParsedFeed
from aggregator.pipeline import ParsePool, refresh_due
from aggregator.store import Store
from aggregator.store.schema import entries, entry_sources
from tests.conftest import base_env, run_cli

TTL_RSS = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>
{ttl}<item><title>Un</title><link>https://ex.fr/1</link><guid>g1</guid>
<pubDate>Mon, 10 Feb 2025 10:00:00 +0100</pubDate></item></channel></rss>"""
MINUTE = 60.0
IPS = ("127.0.0.1", "127.0.0.2")


def status(tmp_path: Path) -> str:
    """``aggregator status`` on the test database, with an empty feed list (never the
    default list of real outlets: nothing but 127.0.0.1 is ever fetched)."""
    feeds = tmp_path / "no-feeds.toml"
    feeds.write_text("", encoding="utf-8")
    return run_cli("status", env=base_env(tmp_path, AGGREGATOR_FEEDS_FILE=str(feeds))).stdout


def add(store: Store, url: str, outlet: str = "O") -> None:
    store.add_source(FeedSpec(url, outlet), datetime.now(UTC))


def in_seconds(delta: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=delta), usegmt=True)


@pytest.mark.parametrize(
    ("name", "ttl", "headers", "expected"),
    [
        ("interval", "", {}, 30 * MINUTE),
        ("ttl", "<ttl>120</ttl>", {}, 120 * MINUTE),
        ("ttl shorter than interval", "<ttl>5</ttl>", {}, 30 * MINUTE),
        ("max-age", "", {"Cache-Control": "public, max-age=7200"}, 7200),
        ("expires", "", {"Expires": 3 * 3600}, 3 * 3600),
        ("expires in the past", "", {"Expires": -3600}, 30 * MINUTE),
        ("retry-after seconds", "", {"Retry-After": "5400"}, 5400),
        ("retry-after date", "", {"Retry-After": 4 * 3600}, 4 * 3600),
        ("retry-after garbage", "", {"Retry-After": "bientôt"}, 30 * MINUTE),
        ("expires garbage", "", {"Expires": "-1"}, 30 * MINUTE),
        ("largest hint wins", "<ttl>90</ttl>", {"Cache-Control": "max-age=3600"}, 90 * MINUTE),
        ("capped at 24 h", "<ttl>10000</ttl>", {"Cache-Control": "max-age=999999"}, 24 * 3600),
    ],
)
def test_next_check_at_follows_the_feed_and_the_server(
    httpserver: HTTPServer,
    settings: Settings,
    store: Store,
    name: str,
    ttl: str,
    headers: dict[str, str | int],
    expected: float,
) -> None:
    # A number stands for an HTTP date that many seconds from now (made at run time).
    sent = {k: in_seconds(v) if isinstance(v, int) else v for k, v in headers.items()}
    httpserver.expect_request("/f.xml").respond_with_data(
        TTL_RSS.format(ttl=ttl), headers=sent, content_type="application/rss+xml"
    )
    add(store, httpserver.url_for("/f.xml"))
    before = datetime.now(UTC)
    [outcome] = refresh_due(settings, store).outcomes
    assert outcome.outcome == "ok", outcome
    [source] = store.list_sources()
    delay = (source.next_check_at - before).total_seconds()  # type: ignore[operator]
    assert expected - 5 <= delay <= expected + 60, (name, delay)
    # Not due again before then, due after.
    assert store.due_sources(datetime.now(UTC) + timedelta(seconds=expected - 60)) == []
    assert len(store.due_sources(before + timedelta(seconds=expected + 61))) == 1


def test_errors_back_off_exponentially_with_jitter_then_fail_and_status_says_why(
    httpserver: HTTPServer, make_settings: Callable[..., Settings], store: Store, tmp_path: Path
) -> None:
    settings = make_settings(fetch_failing_after="3")
    for name in ("a", "b"):
        httpserver.expect_request(f"/{name}.xml").respond_with_data("panne", status=503)
        add(store, httpserver.url_for(f"/{name}.xml"), name.upper())
    delays: dict[str, list[float]] = {"a": [], "b": []}
    failing = []
    for _ in range(5):
        before = datetime.now(UTC)
        refresh_due(settings, store, all_sources=True)
        for s in store.list_sources():
            key = s.url.rsplit("/", 1)[1][0]
            delays[key].append((s.next_check_at - before).total_seconds())  # type: ignore[operator]
            if key == "a":
                failing.append(s.failing)
    base = settings.fetch.interval_minutes * MINUTE
    for key, got in delays.items():
        for n, delay in enumerate(got):
            nominal = base * 2**n
            assert nominal * 0.79 <= delay <= nominal * 1.21 + 5, (key, n, delay)
    assert failing == [False, False, True, True, True]  # after 3 consecutive failures
    # Jitter: two feeds failing together do not come back together.
    assert all(abs(a - b) > 0.1 for a, b in zip(delays["a"], delays["b"], strict=True))
    # Still retried (rarely): due once its backoff has passed, never more than 24 h away.
    assert max(max(v) for v in delays.values()) <= 24 * 3600 * 1.21
    assert len(store.due_sources(datetime.now(UTC) + timedelta(hours=30))) == 2
    out = status(tmp_path)
    assert "FAILING (5x): HTTP 503 Service Unavailable" in out, out
    # One success clears the failure.
    httpserver.clear()
    httpserver.expect_request("/a.xml").respond_with_data(TTL_RSS.format(ttl=""))
    httpserver.expect_request("/b.xml").respond_with_data(TTL_RSS.format(ttl=""))
    refresh_due(settings, store, all_sources=True)
    assert all(not s.failing and s.error_count == 0 for s in store.list_sources())


def snapshot(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        return [
            conn.execute(sa.select(entries).order_by(entries.c.id)).all(),
            conn.execute(sa.select(entry_sources).order_by(entry_sources.c.entry_id)).all(),
        ]


@pytest.mark.parametrize("validators", [True, False], ids=["304", "same-body"])
def test_unchanged_feed_costs_no_parsing_and_no_entry_writes(
    httpserver: HTTPServer, settings: Settings, store: Store, validators: bool
) -> None:
    body = TTL_RSS.format(ttl="")
    if validators:
        headers = {"ETag": '"v1"', "Last-Modified": "Mon, 10 Feb 2025 09:00:00 GMT"}
        httpserver.expect_request("/c.xml", headers={"If-None-Match": '"v1"'}).respond_with_data(
            "", status=304
        )
        httpserver.expect_request("/c.xml").respond_with_data(body, headers=headers)
    else:  # a server without validators: the body hash decides
        httpserver.expect_request("/c.xml").respond_with_data(body)
    add(store, httpserver.url_for("/c.xml"))
    assert refresh_due(settings, store).new_entries == 1
    before = snapshot(store)
    [first] = store.list_sources()
    for _ in range(3):
        [outcome] = refresh_due(settings, store, all_sources=True).outcomes
        assert outcome.outcome == ("not_modified" if validators else "unchanged")
        assert outcome.new_entries == 0
    assert snapshot(store) == before  # entries and their links untouched (not even last_seen)
    [source] = store.list_sources()
    assert source.content_hash == first.content_hash and source.etag == first.etag
    # Conditional GET on every refetch.
    requests = [r for r, _ in httpserver.log]
    if validators:
        assert all(r.headers.get("If-None-Match") == '"v1"' for r in requests[1:])
        assert all(r.headers.get("If-Modified-Since") for r in requests[1:])
        assert len(requests) == 4


class CountingPool(ParsePool):
    """A real worker pool that counts the feeds it was asked to parse."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parsed = 0

    def parse(self, *args: Any, **kwargs: Any) -> ParsedFeed:
        self.parsed += 1
        return super().parse(*args, **kwargs)


HTML_PAGE = "<!DOCTYPE html><html><head><title>Flux RSS</title></head><body>Nos flux</body></html>"


@pytest.mark.parametrize(
    ("body", "parses", "error"),
    [
        (HTML_PAGE, 1, "not a feed: got an HTML page"),
        # No verdict on the bytes (the worker crashed): parsed again every time.
        (TTL_RSS.format(ttl="<!-- crash:exit -->"), 3, "parser worker crashed (exit status 7)"),
    ],
    ids=["refused", "crashed"],
)
def test_a_refused_body_is_not_parsed_again_until_it_changes(
    httpserver: HTTPServer,
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    parses: int,
    error: str,
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    httpserver.expect_request("/page.xml").respond_with_data(body)
    add(store, httpserver.url_for("/page.xml"))
    with CountingPool(settings.fetch, target="tests.hostile_support:parse_or_crash") as pool:
        for n in range(1, 4):
            [outcome] = refresh_due(settings, store, all_sources=True, parser=pool).outcomes
            assert (outcome.outcome, outcome.error) == ("error", error)
            [source] = store.list_sources()
            assert source.error_count == n and source.last_error == error
        assert pool.parsed == parses, "an identical refused body is refused without parsing"
        # The publisher fixes the feed: parsed at once, the refusal forgotten.
        httpserver.clear()
        httpserver.expect_request("/page.xml").respond_with_data(TTL_RSS.format(ttl=""))
        [outcome] = refresh_due(settings, store, all_sources=True, parser=pool).outcomes
        assert (outcome.outcome, outcome.new_entries) == ("ok", 1)
        assert pool.parsed == parses + 1
    [source] = store.list_sources()
    assert source.error_count == 0 and source.rejected_hash is None and source.last_error is None
    print(f"{body[:20]!r}...: 3 fetches, {parses} parsed, then fixed: parsed and stored")


class _Recorder:
    """Requests seen by the servers: (host, start, end), and the peak in flight per host."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, float, float]] = []
        self.in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_total = 0

    def handler(self) -> type[BaseHTTPRequestHandler]:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                host = self.server.server_address[0]  # type: ignore[index]
                start = time.monotonic()
                with rec.lock:
                    rec.in_flight[host] = rec.in_flight.get(host, 0) + 1
                    rec.peak[host] = max(rec.peak.get(host, 0), rec.in_flight[host])
                    rec.peak_total = max(rec.peak_total, sum(rec.in_flight.values()))
                time.sleep(0.15)
                body = TTL_RSS.replace("g1", self.path).format(ttl="").encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with rec.lock:
                    rec.in_flight[host] -= 1
                    rec.calls.append((host, start, time.monotonic()))

        return Handler


@contextmanager
def serving(ips: Sequence[str]) -> Iterator[tuple[_Recorder, list[str]]]:
    """One recording feed server per loopback address; yields their base URLs."""
    rec = _Recorder()
    servers = [ThreadingHTTPServer((ip, 0), rec.handler()) for ip in ips]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        yield rec, [f"http://{ip}:{servers[n].server_port}" for n, ip in enumerate(ips)]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


@pytest.fixture
def two_hosts() -> Iterator[tuple[_Recorder, list[str]]]:
    with serving(IPS) as served:
        yield served


def test_one_request_at_a_time_per_host_spaced_hosts_in_parallel(
    two_hosts: tuple[_Recorder, list[str]], make_settings: Callable[..., Settings], store: Store
) -> None:
    rec, bases = two_hosts
    spacing = 0.4
    settings = make_settings(fetch_per_host_interval_seconds=str(spacing))  # the env variable
    assert settings.fetch.per_host_interval_seconds == spacing
    for base in bases:
        for i in range(4):
            add(store, f"{base}/feed{i}.xml", base)
    started = time.monotonic()
    report = refresh_due(settings, store)
    elapsed = time.monotonic() - started
    assert len(report.outcomes) == 8 and not report.errors
    assert rec.peak == {"127.0.0.1": 1, "127.0.0.2": 1}  # never two at once on one host
    assert rec.peak_total == 2  # the two hosts are fetched in parallel
    for host in rec.peak:
        calls = sorted((s, e) for h, s, e in rec.calls if h == host)
        gaps = [b[0] - a[1] for a, b in itertools.pairwise(calls)]
        assert len(gaps) == 3 and min(gaps) >= spacing - 0.05, gaps
    print(f"8 feeds on 2 hosts, spacing {spacing}s: {elapsed:.2f}s, peak per host 1")
    # 0 disables the spacing (as local tests and replays need).
    rec.calls.clear()
    refresh_due(make_settings(fetch_per_host_interval_seconds="0"), store, all_sources=True)
    calls = sorted((s, e) for h, s, e in rec.calls if h == "127.0.0.1")
    assert max(b[0] - a[1] for a, b in itertools.pairwise(calls)) < spacing - 0.05


def test_a_host_with_many_feeds_does_not_hold_back_the_others(
    two_hosts: tuple[_Recorder, list[str]], make_settings: Callable[..., Settings], store: Store
) -> None:
    """A feed list grouped by outlet (a hundred sections of one paper, then the others):
    while the big host's feeds wait for their spacing, idle fetch threads claim further
    and fetch the other hosts in parallel, instead of waiting for the big host's turn."""
    rec, (big, small) = two_hosts
    spacing = 0.3
    for i in range(16):
        add(store, f"{big}/section{i}.xml", "Big")
    for i in range(2):
        add(store, f"{small}/feed{i}.xml", "Small")
    settings = make_settings(fetch_per_host_interval_seconds=str(spacing), fetch_concurrency="2")
    report = refresh_due(settings, store)
    assert len(report.outcomes) == 18 and not report.errors
    starts = {h: sorted(s for host, s, _ in rec.calls if host == h) for h in IPS}
    big_ip, small_ip = IPS
    assert rec.peak[big_ip] == 1  # still one request at a time on the big host
    # The small host's feeds were done while the big host had most of its own left.
    assert starts[small_ip][-1] < starts[big_ip][4], (starts[small_ip], starts[big_ip][:5])
    print(
        f"16 feeds on one host then 2 on another, concurrency 2: the other host's last "
        f"feed started {starts[small_ip][-1] - starts[big_ip][0]:.2f} s into the pass "
        f"(the big host needs {15 * spacing:.1f} s of spacing alone)"
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_share_a_host_one_request_at_a_time_spaced(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], backend: str
) -> None:
    """Two fetch workers on one database: each host still sees one request at a time,
    spaced by the per-host interval, whichever worker sends it."""
    overrides = {"fetch_per_host_interval_seconds": "0.3", "fetch_concurrency": "2"}
    if backend == "postgresql":
        overrides["database_url"] = request.getfixturevalue("postgres_url")
    settings = make_settings(**overrides)
    store = Store(settings.database.url)
    with serving(IPS) as (rec, bases):
        for base in bases:
            for i in range(5):
                add(store, f"{base}/feed{i}.xml")
        with ThreadPoolExecutor(2) as pool:
            passes = list(pool.map(lambda w: refresh_due(settings, store, worker=w), ["wA", "wB"]))
    store.close()
    fetched = sorted(o.url for p in passes for o in p.outcomes)
    assert len(fetched) == 10 and len(set(fetched)) == 10
    gaps = []
    for ip in IPS:
        calls = sorted((s, e) for h, s, e in rec.calls if h == ip)
        gaps += [b[0] - a[1] for a, b in itertools.pairwise(calls)]
    shares = sorted(len(p.outcomes) for p in passes)
    print(
        f"{backend}: 2 workers fetched {shares} of 10 feeds on 2 hosts; peak in flight per "
        f"host {rec.peak}, shortest gap between requests {min(gaps):.2f} s (interval 0.3 s)"
    )
    assert max(rec.peak.values()) == 1
    assert min(gaps) >= 0.25


def test_the_spacing_holds_from_one_pass_to_the_next(
    two_hosts: tuple[_Recorder, list[str]], make_settings: Callable[..., Settings], store: Store
) -> None:
    """A daemon's next tick is a new pass by the same worker: its first request to a host
    still waits for the interval since the last tick's last request there."""
    rec, (base, _) = two_hosts
    add(store, f"{base}/feed.xml")
    settings = make_settings(fetch_per_host_interval_seconds="0.5")
    for _ in range(2):
        refresh_due(settings, store, all_sources=True, worker="daemon")
    (_, first_end), (second_start, _) = sorted((s, e) for _, s, e in rec.calls)
    print(f"two passes in a row: {second_start - first_end:.2f} s between the requests")
    assert second_start - first_end >= 0.45


def test_hosts_are_served_in_the_order_their_feeds_were_claimed(
    make_settings: Callable[..., Settings], store: Store
) -> None:
    """A host whose name sorts late ("127.0.0.9" after "127.0.0.10") is not left for the
    end of the pass: while a backlog of claimed feeds waits for a free fetch thread, hosts
    are served first claimed, first served."""
    ips = [f"127.0.0.{n}" for n in range(9, 21)]  # .9 sorts after .10 to .20 by name
    with serving(ips) as (rec, bases):
        for round_ in range(2):
            for base in bases:
                add(store, f"{base}/feed{round_}.xml")  # ids: every host once, then again
        settings = make_settings(fetch_per_host_interval_seconds="0", fetch_concurrency="2")
        report = refresh_due(settings, store)
    assert len(report.outcomes) == 2 * len(ips) and not report.errors
    first_start = {}
    for host, start, _ in sorted(rec.calls, key=lambda c: c[1]):
        first_start.setdefault(host, start)
    order = sorted(first_start, key=first_start.__getitem__)
    rank = order.index("127.0.0.9")
    print(f"the first-claimed host, last by name, was the #{rank + 1} of {len(ips)} hosts served")
    assert rank < 2, order  # two fetch threads: it is among the first two


def chain(httpserver: HTTPServer, prefix: str, status: int, hops: int) -> str:
    for i in range(hops):
        httpserver.expect_request(f"/{prefix}{i}").respond_with_data(
            "", status=status, headers={"Location": f"/{prefix}{i + 1}"}
        )
    httpserver.expect_request(f"/{prefix}{hops}").respond_with_data(TTL_RSS.format(ttl=""))
    return httpserver.url_for(f"/{prefix}0")


def test_redirects_at_most_five_hops(
    httpserver: HTTPServer, settings: Settings, store: Store
) -> None:
    add(store, chain(httpserver, "five", 302, 5), "five")
    add(store, chain(httpserver, "six", 302, 6), "six")
    outcomes = {o.url.rsplit("/", 1)[1]: o for o in refresh_due(settings, store).outcomes}
    assert outcomes["five0"].outcome == "ok"
    assert outcomes["six0"].outcome == "error" and "too many redirects" in outcomes["six0"].error  # type: ignore[operator]


@pytest.mark.parametrize(
    ("status", "moves"), [(301, True), (308, True), (302, False), (307, False)]
)
def test_only_repeated_permanent_redirects_update_the_url(
    httpserver: HTTPServer, settings: Settings, store: Store, status: int, moves: bool
) -> None:
    httpserver.expect_request("/old.xml").respond_with_data(
        "", status=status, headers={"Location": "/new.xml"}
    )
    httpserver.expect_request("/new.xml").respond_with_data(TTL_RSS.format(ttl=""))
    add(store, httpserver.url_for("/old.xml"))
    urls = []
    for _ in range(3):
        refresh_due(settings, store, all_sources=True)
        urls.append(store.list_sources()[0].url.rsplit("/", 1)[1])
    # Two sightings are not enough; the third consecutive one moves the feed.
    assert urls == (["old.xml", "old.xml", "new.xml"] if moves else ["old.xml"] * 3)


def test_an_interrupted_permanent_redirect_starts_counting_again(
    httpserver: HTTPServer, settings: Settings, store: Store
) -> None:
    add(store, httpserver.url_for("/old.xml"))
    httpserver.expect_request("/new.xml").respond_with_data(TTL_RSS.format(ttl=""))
    plan = [301, 301, 200, 301, 301]
    for status in plan:
        httpserver.clear()
        httpserver.expect_request("/new.xml").respond_with_data(TTL_RSS.format(ttl=""))
        if status == 301:
            httpserver.expect_request("/old.xml").respond_with_data(
                "", status=301, headers={"Location": "/new.xml"}
            )
        else:
            httpserver.expect_request("/old.xml").respond_with_data(TTL_RSS.format(ttl=""))
        refresh_due(settings, store, all_sources=True)
    [source] = store.list_sources()
    assert source.url.endswith("/old.xml") and source.redirect_count == 2


def test_gone_feed_is_disabled_and_never_fetched_again(
    httpserver: HTTPServer, settings: Settings, store: Store, tmp_path: Path
) -> None:
    httpserver.expect_request("/gone.xml").respond_with_data("", status=410)
    add(store, httpserver.url_for("/gone.xml"))
    refresh_due(settings, store)
    refresh_due(settings, store, all_sources=True)
    assert len(httpserver.log) == 1
    assert "disabled: the server says the feed is gone (HTTP 410)" in status(tmp_path)


def test_user_agent_is_configurable_and_names_a_contact(
    httpserver: HTTPServer, make_settings: Callable[..., Settings], store: Store
) -> None:
    settings = make_settings(fetch_contact_url="https://exemple.fr/contact")
    httpserver.expect_request("/ua.xml").respond_with_data(TTL_RSS.format(ttl=""))
    add(store, httpserver.url_for("/ua.xml"))
    refresh_due(settings, store)
    ua = httpserver.log[0][0].headers["User-Agent"]
    assert ua.startswith("aggregator/") and "(+https://exemple.fr/contact)" in ua
    custom = make_settings(fetch_user_agent="MonAgrégateur/1 (+{contact_url})")
    assert custom.fetch.user_agent.endswith("(+https://github.com/aggregator-fr/aggregator)")
