"""HTTP only: conditional GET with a whole-request deadline, a body cap and an SSRF guard.

Nothing here parses XML or touches the database. ``fetch_feed`` returns a ``FetchResult``
(a 304 is a result, not an error) or raises ``FetchError`` with the status and any
Retry-After the server sent, so the caller can reschedule politely.

The SSRF guard lives in the network backend under httpx (``GuardedBackend``): it resolves
the host itself, refuses it if any address is non-public, connects to a validated IP and
checks ``getpeername()`` again, so every redirect hop and any DNS rebinding go through
the same check. TLS SNI and the Host header still name the host (httpcore takes them
from the URL, not from the address connected to).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from aggregator.config import FetchSettings, parse_networks
from aggregator.errors import BlockedAddressError, FetchError
from aggregator.models import FetchResult

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Read in chunks of this size so a body cap or deadline is noticed promptly.
CHUNK_SIZE = 64 * 1024
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, application/feed+json;q=0.7, */*;q=0.1"
)
# Only codings we decompress ourselves, with a bound on the output (see _BoundedDecoder).
ACCEPT_ENCODING = "gzip, deflate"
# 100.64.0.0/10 (RFC 6598, carrier-grade NAT) is neither private nor global for
# ipaddress; listed so the rule reads as the issue states it.
CGNAT = ipaddress.ip_network("100.64.0.0/10")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Refused(Exception):
    """Raised inside httpcore by the guard; turned into ``BlockedAddressError`` by the fetcher."""


def refusal_reason(address: Address) -> str | None:
    """Why the SSRF guard refuses ``address`` (None: a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            inner = refusal_reason(mapped)
            return f"maps to {mapped}, {inner}" if inner else None
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_unspecified, "unspecified"),
        (address.version == 4 and address in CGNAT, "carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((why for bad, why in checks if bad), None)


class DeadlineClock(threading.local):
    """The current request's deadline, per thread (httpx.Client is shared by fetch threads)."""

    deadline: float | None = None

    def remaining(self, timeout: float | None, exc: type[Exception]) -> float | None:
        """Clip a per-operation timeout to what is left of the whole-request deadline."""
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise exc("whole-request deadline exceeded")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """Every read and write is bounded by the request deadline: a 1-byte-a-second drip
    (in the headers or the body) is cut when the deadline passes, not per read."""

    def __init__(self, inner: httpcore.NetworkStream, clock: DeadlineClock) -> None:
        self._inner = inner
        self._clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._clock.remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._clock.remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self._clock.remaining(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, timeout), self._clock
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore backend: resolve, validate every address, connect to a validated IP."""

    def __init__(self, settings: FetchSettings, clock: DeadlineClock) -> None:
        self.allow_private = settings.allow_private_networks
        self.allowed: tuple[Network, ...] = parse_networks(settings.allowed_networks)
        self.clock = clock
        self._inner = httpcore.SyncBackend()

    def check(self, host: str, address: Address) -> None:
        if self.allow_private or any(address in net for net in self.allowed):
            return
        why = refusal_reason(address)
        if why:
            raise _Refused(
                f"refused by the SSRF guard: {host} is {address} ({why}); "
                "set [fetch] allow_private_networks or allowed_networks to fetch it"
            )

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self.clock.remaining(timeout, httpcore.ConnectTimeout)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
        addresses = list(dict.fromkeys(_address(str(info[4][0])) for info in infos))
        for address in addresses:  # every address, not just the one we use
            self.check(host, address)
        error: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as e:
                error = e
                continue
            try:
                self.check(host, _address(stream.get_extra_info("socket").getpeername()[0]))
            except BaseException:
                stream.close()
                raise
            return _DeadlineStream(stream, self.clock)
        raise error or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise _Refused("unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id


class _BoundedDecoder:
    """Decompress gzip/deflate with a cap on the *output*, chunk by chunk.

    httpx decompresses each network chunk whole: 64 KiB of a gzip bomb becomes ~64 MB
    before any cap is checked. ``zlib``'s ``max_length`` keeps each step within the cap.
    """

    def __init__(self, content_encoding: str | None) -> None:
        codings = [
            c.strip().lower()
            for c in (content_encoding or "").split(",")
            if c.strip().lower() not in ("", "identity")
        ]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise ValueError(f"unsupported Content-Encoding {content_encoding!r}")
        self.coding = codings[0] if codings else ""
        # 32 + MAX_WBITS: accept a gzip or zlib header; raw deflate is tried on failure.
        self._z = zlib.decompressobj(32 + zlib.MAX_WBITS) if self.coding else None
        self._started = False

    def decode(self, data: bytes, room: int) -> bytes:
        """Up to ``room`` bytes of output (``room + 1`` means the cap is exceeded)."""
        if self._z is None:
            return data
        try:
            out = self._z.decompress(data, room)
        except zlib.error:
            if self._started or self.coding != "deflate":
                raise
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._z.decompress(data, room)
        self._started = True
        # A gzip body may hold several members (RFC 1952 §2.2): go on with the next one.
        while self._z.eof and self._z.unused_data and len(out) < room:
            rest = self._z.unused_data
            self._z = zlib.decompressobj(32 + zlib.MAX_WBITS)
            out += self._z.decompress(rest, room - len(out))
        return out

    def flush(self, room: int) -> bytes:
        return self._z.flush(room) if self._z is not None else b""


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """The verifying TLS context, built once per process: loading the CA bundle takes
    ~20 ms, which a cron pass of 304s would otherwise pay every time (contexts are
    thread-safe and shared by every client)."""
    return httpx.create_ssl_context(trust_env=False)


class Fetcher:
    """One HTTP client for a fetch pass; thread-safe (httpx.Client is)."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        self.clock = DeadlineClock()
        timeout = httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        ssl_context = _ssl_context()
        transport = httpx.HTTPTransport(verify=ssl_context, trust_env=False)
        # httpx has no option for a network backend: give its transport a pool that uses ours.
        transport._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max(4, settings.concurrency * 2),
            max_keepalive_connections=max(4, settings.concurrency * 2),
            network_backend=GuardedBackend(settings, self.clock),
        )
        self.client = httpx.Client(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers={
                "User-Agent": settings.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            trust_env=False,
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def fetch_feed(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET ``url`` conditionally, following at most ``max_redirects`` redirects."""
        started = time.monotonic()
        deadline = started + self.settings.timeout_seconds
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        hops: list[tuple[int, str]] = []
        current = url
        while True:
            if urlsplit(current).scheme not in ("http", "https"):
                raise FetchError(url, f"unsupported URL scheme in {current!r}")
            self.clock.deadline = deadline
            try:
                status, body, resp_headers = self._get(url, current, headers, deadline)
            finally:
                self.clock.deadline = None
            if status in REDIRECT_STATUSES:
                location = resp_headers.get("location")
                if not location:
                    raise FetchError(url, f"HTTP {status} without Location", status=status)
                if len(hops) >= self.settings.max_redirects:
                    raise FetchError(
                        url, f"too many redirects (more than {self.settings.max_redirects})"
                    )
                current = urljoin(current, location)
                hops.append((status, current))
                continue
            break
        elapsed = time.monotonic() - started
        if status == 304:
            return FetchResult(
                url=current, status=304, headers=resp_headers, redirects=tuple(hops),
                etag=etag, last_modified=last_modified, elapsed=elapsed,
            )  # fmt: skip
        if status >= 400:
            retry = parse_retry_after(resp_headers.get("retry-after"), datetime.now(UTC))
            reason = httpx.codes.get_reason_phrase(status) or "error"
            raise FetchError(url, f"HTTP {status} {reason}", status=status, retry_after=retry)
        return FetchResult(
            url=current,
            status=status,
            content=body,
            headers=resp_headers,
            etag=resp_headers.get("etag"),
            last_modified=resp_headers.get("last-modified"),
            redirects=tuple(hops),
            elapsed=elapsed,
        )

    def _get(
        self, url: str, current: str, headers: dict[str, str], deadline: float
    ) -> tuple[int, bytes, dict[str, str]]:
        try:
            with self.client.stream("GET", current, headers=headers) as response:
                resp_headers = {k.lower(): v for k, v in response.headers.items()}
                if response.status_code in REDIRECT_STATUSES or response.status_code == 304:
                    return response.status_code, b"", resp_headers
                return response.status_code, self._read_body(url, response), resp_headers
        except _Refused as e:
            raise BlockedAddressError(url, str(e)) from e
        except httpx.TimeoutException as e:
            if time.monotonic() >= deadline:
                raise FetchError(
                    url, f"deadline of {self.settings.timeout_seconds:g} s exceeded (cut off)"
                ) from e
            raise FetchError(url, f"timed out ({type(e).__name__})") from e
        except httpx.HTTPError as e:
            raise FetchError(url, f"{type(e).__name__}: {e}") from e

    def _read_body(self, url: str, response: httpx.Response) -> bytes:
        # The cap counts decompressed bytes (what the parser would get), so a gzip bomb is
        # cut off like any other oversized body, and never inflated past the cap.
        cap = self.settings.max_body_bytes
        try:
            decoder = _BoundedDecoder(response.headers.get("content-encoding"))
        except ValueError as e:
            raise FetchError(url, str(e)) from e
        chunks: list[bytes] = []
        size = 0
        try:
            for raw in response.iter_raw(CHUNK_SIZE):
                chunk = decoder.decode(raw, cap - size + 1)
                size += len(chunk)
                if size > cap:
                    raise FetchError(url, f"body larger than {cap} bytes (cut off)")
                chunks.append(chunk)
            tail = decoder.flush(cap - size + 1)
        except zlib.error as e:
            raise FetchError(url, f"corrupt {decoder.coding} body: {e}") from e
        if size + len(tail) > cap:
            raise FetchError(url, f"body larger than {cap} bytes (cut off)")
        chunks.append(tail)
        return b"".join(chunks)


def freshness_seconds(headers: dict[str, str] | None, now: datetime) -> float | None:
    """How long the server says the response stays fresh (Cache-Control max-age, Expires)."""
    if not headers:
        return None
    cache_control = headers.get("cache-control", "")
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() in ("max-age", "s-maxage") and value.strip().strip('"').isdigit():
            return float(value.strip().strip('"'))
    expires = headers.get("expires")
    if expires:
        try:
            when = parsedate_to_datetime(expires)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    return None
