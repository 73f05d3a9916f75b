"""The SSRF guard against real sockets: refused addresses never see a connection."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

import pytest

from aggregator.config import Settings
from aggregator.errors import BlockedAddressError, ConfigError, FetchError
from aggregator.fetch import Fetcher, refusal_reason
from tests.hostile_support import Canary, HostileServer, redirect, respond, rss


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


@pytest.fixture
def server() -> Iterator[HostileServer]:
    s = HostileServer()
    yield s
    s.close()


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoints
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "maps to 127.0.0.1, loopback"),
        ("::ffff:10.0.0.1", "maps to 10.0.0.1, private"),
        ("2002:a00:1::", "maps to 10.0.0.1, private"),  # 6to4
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", ["8.8.8.8", "193.0.6.139", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_feed_is_refused_by_default_without_connecting(
    make_settings: Callable[..., Settings], canary: Canary, host: str
) -> None:
    settings = make_settings(fetch_allow_private_networks="false")
    with Fetcher(settings.fetch) as f, pytest.raises(BlockedAddressError, match="SSRF guard"):
        f.fetch_feed(f"http://{host}:{canary.port}/feed.xml")
    assert canary.accepted == 0


def test_allow_private_networks_lets_local_feeds_through(
    make_settings: Callable[..., Settings], canary: Canary
) -> None:
    settings = make_settings(fetch_allow_private_networks="true")
    with Fetcher(settings.fetch) as f:
        result = f.fetch_feed(f"http://localhost:{canary.port}/feed.xml")
    assert b"canary" in result.content and canary.accepted == 1


def test_redirect_from_an_allowed_host_to_loopback_never_reaches_it(
    make_settings: Callable[..., Settings], canary: Canary, server: HostileServer
) -> None:
    settings = make_settings(
        fetch_allow_private_networks="false", fetch_allowed_networks="127.0.0.2/31"
    )
    ok = server.add("ok", respond(200, rss("ok", 2)))  # 127.0.0.2: allowed
    hop = server.add("hop", redirect(f"http://127.0.0.1:{canary.port}/feed.xml"))  # 127.0.0.3
    with Fetcher(settings.fetch) as f:
        assert b"ok 1" in f.fetch_feed(ok).content
        with pytest.raises(BlockedAddressError, match=r"127\.0\.0\.1 \(loopback\)"):
            f.fetch_feed(hop)
    assert server.requests == {"ok": 1, "hop": 1} and canary.accepted == 0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.2/feed", "gopher://x/"])
def test_only_http_and_https_are_fetched(settings: Settings, url: str) -> None:
    with Fetcher(settings.fetch) as f, pytest.raises(FetchError, match="unsupported URL scheme"):
        f.fetch_feed(url)


def test_redirect_to_a_file_url_is_refused(settings: Settings, server: HostileServer) -> None:
    hop = server.add("hop", redirect("file:///etc/passwd"))
    with Fetcher(settings.fetch) as f, pytest.raises(FetchError, match="unsupported URL scheme"):
        f.fetch_feed(hop)


def test_allowed_networks_must_be_cidr_ranges(make_settings: Callable[..., Settings]) -> None:
    assert make_settings(fetch_allowed_networks="10.0.0.0/8, fd00::/8").fetch.allowed_networks
    with pytest.raises(ConfigError, match="allowed_networks"):
        make_settings(fetch_allowed_networks="10.0.0.0/8, intranet")
