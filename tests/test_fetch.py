"""HTTP fetching against a real local server (pytest-httpserver)."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer

from aggregator.config import Settings
from aggregator.errors import FetchError
from aggregator.fetch import Fetcher, freshness_seconds, parse_retry_after

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


def test_conditional_get_sends_validators_and_gets_304(
    httpserver: HTTPServer, settings: Settings
) -> None:
    httpserver.expect_request(
        "/feed",
        headers={"If-None-Match": '"v1"', "If-Modified-Since": "Mon, 10 Feb 2025 10:00:00 GMT"},
    ).respond_with_data("", status=304)
    httpserver.expect_request("/feed").respond_with_data(
        FEED, headers={"ETag": '"v1"', "Last-Modified": "Mon, 10 Feb 2025 10:00:00 GMT"}
    )
    with Fetcher(settings.fetch) as f:
        first = f.fetch_feed(httpserver.url_for("/feed"))
        assert first.status == 200 and first.content == FEED
        assert first.etag == '"v1"'
        second = f.fetch_feed(
            httpserver.url_for("/feed"), etag=first.etag, last_modified=first.last_modified
        )
        assert second.not_modified and second.content == b""


def test_user_agent_names_the_project_and_a_contact(
    httpserver: HTTPServer, settings: Settings
) -> None:
    httpserver.expect_request("/ua").respond_with_data(FEED)
    with Fetcher(settings.fetch) as f:
        f.fetch_feed(httpserver.url_for("/ua"))
    ua = httpserver.log[0][0].headers["User-Agent"]
    assert ua.startswith("aggregator/") and "+http" in ua


def test_redirects_are_followed_and_recorded(httpserver: HTTPServer, settings: Settings) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/mid"}
    )
    httpserver.expect_request("/mid").respond_with_data(
        "", status=302, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data(FEED)
    with Fetcher(settings.fetch) as f:
        result = f.fetch_feed(httpserver.url_for("/old"))
    assert result.url == httpserver.url_for("/new")
    assert [s for s, _ in result.redirects] == [301, 302]


def test_redirect_loop_is_cut_after_max_redirects(httpserver: HTTPServer, make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(fetch_max_redirects="5")
    for i in range(10):
        httpserver.expect_request(f"/r{i}").respond_with_data(
            "", status=302, headers={"Location": f"/r{i + 1}"}
        )
    with Fetcher(settings.fetch) as f, pytest.raises(FetchError, match="too many redirects"):
        f.fetch_feed(httpserver.url_for("/r0"))
    assert len(httpserver.log) == 6


def test_http_errors_carry_status_and_retry_after(
    httpserver: HTTPServer, settings: Settings
) -> None:
    httpserver.expect_request("/busy").respond_with_data(
        "slow down", status=503, headers={"Retry-After": "120"}
    )
    with Fetcher(settings.fetch) as f, pytest.raises(FetchError) as info:
        f.fetch_feed(httpserver.url_for("/busy"))
    assert info.value.status == 503
    assert info.value.retry_after == 120


def test_body_cap_counts_bytes(httpserver: HTTPServer, make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(fetch_max_body_bytes="1000")
    httpserver.expect_request("/big").respond_with_data(b"x" * 5000)
    with Fetcher(settings.fetch) as f, pytest.raises(FetchError, match="larger than 1000"):
        f.fetch_feed(httpserver.url_for("/big"))


def test_unreachable_host_is_a_fetch_error(settings: Settings) -> None:
    from tests.conftest import free_port

    with Fetcher(settings.fetch) as f, pytest.raises(FetchError):
        f.fetch_feed(f"http://127.0.0.1:{free_port()}/feed")


def test_retry_after_and_freshness_parsing() -> None:
    now = datetime(2025, 2, 10, 10, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Mon, 10 Feb 2025 10:05:00 GMT", now) == 300
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert freshness_seconds({"cache-control": "public, max-age=900"}, now) == 900
    assert freshness_seconds({"expires": "Mon, 10 Feb 2025 11:00:00 GMT"}, now) == 3600
    assert freshness_seconds({"expires": "garbage"}, now) is None


def test_https_certificates_are_verified(settings: Settings) -> None:
    """A server whose certificate no public CA signed is refused, by every client of the
    process (they share one TLS context, built once)."""
    import trustme  # test dependency

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    with HTTPServer(host="127.0.0.1", ssl_context=server_context) as server:
        server.expect_request("/feed").respond_with_data(FEED)
        url = server.url_for("/feed")
        assert url.startswith("https://")
        for _ in range(2):
            with Fetcher(settings.fetch) as f, pytest.raises(FetchError, match="CERTIFICATE"):
                f.fetch_feed(url)
        assert len(server.log) == 0  # no request got through the handshake
