"""HTTP only: conditional GET with a whole-request deadline, a body cap and an SSRF guard.

Nothing here parses XML or touches the database. ``fetch_feed`` returns a ``FetchResult``
(a 304 is a result, not an error) or raises ``FetchError`` with the status and any
Retry-After the server sent, so the caller can reschedule politely.

The SSRF guard and the deadline live in the network backend under httpx
(``aggregator.fetch.guard``), so every redirect hop and any DNS rebinding are checked.
"""

from __future__ import annotations

import ssl
import time
import zlib
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from aggregator.config import FetchSettings
from aggregator.errors import BlockedAddressError, FetchError
from aggregator.fetch.guard import DeadlineClock, GuardedBackend, Refused, refusal_reason
from aggregator.models import FetchResult

__all__ = ["Fetcher", "freshness_seconds", "parse_retry_after", "refusal_reason"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Read in chunks of this size so a body cap or deadline is noticed promptly.
CHUNK_SIZE = 64 * 1024
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, application/feed+json;q=0.7, */*;q=0.1"
)
# Only codings we decompress ourselves, with a bound on the output (see _BoundedDecoder).
ACCEPT_ENCODING = "gzip, deflate"


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
        except Refused as e:
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
