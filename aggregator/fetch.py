"""HTTP only: conditional GET with a whole-request deadline and a body cap.

Nothing here parses XML or touches the database. ``fetch_feed`` returns a ``FetchResult``
(a 304 is a result, not an error) or raises ``FetchError`` with the status and any
Retry-After the server sent, so the caller can reschedule politely.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import httpx

from aggregator.config import FetchSettings
from aggregator.errors import FetchError
from aggregator.models import FetchResult

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Read in chunks of this size so a body cap or deadline is noticed promptly.
CHUNK_SIZE = 64 * 1024
ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, application/feed+json;q=0.7, */*;q=0.1"
)


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


class Fetcher:
    """One HTTP client for a fetch pass; thread-safe (httpx.Client is)."""

    def __init__(self, settings: FetchSettings) -> None:
        self.settings = settings
        timeout = httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds)
        self.client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
            limits=httpx.Limits(max_connections=max(4, settings.concurrency * 2)),
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
            status, body, resp_headers = self._get(url, current, headers, deadline)
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
        cap = self.settings.max_body_bytes
        try:
            with self.client.stream("GET", current, headers=headers) as response:
                resp_headers = {k.lower(): v for k, v in response.headers.items()}
                if response.status_code in REDIRECT_STATUSES or response.status_code == 304:
                    return response.status_code, b"", resp_headers
                chunks: list[bytes] = []
                size = 0
                # iter_bytes() decompresses: the cap counts what we would hand the parser,
                # so a gzip bomb is cut off like any other oversized body.
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    size += len(chunk)
                    if size > cap:
                        raise FetchError(url, f"body larger than {cap} bytes (cut off)")
                    if time.monotonic() > deadline:
                        raise FetchError(
                            url, f"deadline of {self.settings.timeout_seconds:g} s exceeded"
                        )
                    chunks.append(chunk)
                return response.status_code, b"".join(chunks), resp_headers
        except httpx.TimeoutException as e:
            raise FetchError(url, f"timed out ({type(e).__name__})") from e
        except httpx.HTTPError as e:
            raise FetchError(url, f"{type(e).__name__}: {e}") from e


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
