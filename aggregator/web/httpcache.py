"""Rendered bytes kept until the stories change, and HTTP validators answered from them.

A 304 costs a dictionary lookup and a string comparison: no database query (beyond one
version check per ``version_check_seconds``) and no rendering.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

# Below this size gzip saves too little to pay for the Content-Encoding round trip.
GZIP_MIN_BYTES = 1024
# Level 6 is gzip's default trade-off; the result is cached, so it is paid once.
GZIP_LEVEL = 6
# Distinct URLs (formats x filters x pages) whose bytes are kept; oldest dropped first.
MAX_ENTRIES = 512

Render = Callable[[], tuple[bytes, datetime]]


class Rendered:
    """One representation: its bytes, validators and the response headers, built once."""

    __slots__ = (
        "_gzip", "body", "etag", "etag_gzip", "last_modified", "media_type", "raw_200",
        "raw_200_gzip", "raw_304", "raw_304_gzip",
    )  # fmt: skip

    def __init__(
        self, body: bytes, media_type: str, last_modified: datetime, extra: dict[str, str]
    ) -> None:
        self.body = body
        self.media_type = media_type
        digest = hashlib.sha256(body).hexdigest()[:32]
        self.etag = f'"{digest}"'
        self.etag_gzip = f'"{digest}-gz"'
        self.last_modified = last_modified
        common = [
            (b"last-modified", format_datetime(last_modified, usegmt=True).encode("latin-1")),
            (b"vary", b"Accept-Encoding"),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()),
        ]
        # RFC 9110 15.4.5: a 304 carries the validators and caching headers of the 200.
        self.raw_304 = [*common, (b"etag", self.etag.encode())]
        self.raw_304_gzip = [*common, (b"etag", self.etag_gzip.encode())]
        self.raw_200 = [
            *self.raw_304,
            (b"content-type", media_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
        ]
        self.raw_200_gzip: list[tuple[bytes, bytes]] | None = None
        self._gzip: bytes | None = None

    def gzipped(self) -> bytes | None:
        """The gzip body (computed once), or None when the body is too small to bother."""
        if len(self.body) < GZIP_MIN_BYTES:
            return None
        if self._gzip is None:
            compressed = gzip.compress(self.body, compresslevel=GZIP_LEVEL, mtime=0)
            self.raw_200_gzip = [
                *self.raw_304_gzip,
                (b"content-type", self.media_type.encode("latin-1")),
                (b"content-encoding", b"gzip"),
                (b"content-length", str(len(compressed)).encode()),
            ]
            self._gzip = compressed
        return self._gzip


class Prepared(Response):
    """A response whose status, headers and body were built in advance (cached feeds)."""

    def __init__(
        self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        self.status_code = status_code
        # A copy: ASGI middleware may edit the header list of the message in place.
        self.raw_headers = list(raw_headers)
        self.body = body
        self.background = None


class RenderCache:
    """Rendered bytes per key, all dropped when ``version()`` changes.

    The version is asked at most every ``check_seconds``. Last-Modified only moves
    forward per key, even when a change makes the newest story older (a hidden story).
    """

    def __init__(
        self,
        version: Callable[[], str],
        check_seconds: float,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._version_of = version
        self.check_seconds = check_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._fill_locks: dict[str, threading.Lock] = {}
        self._items: dict[str, Rendered] = {}
        self._history: dict[str, tuple[str, datetime]] = {}
        self._version: str | None = None
        self._generation = 0
        self._next_check = float("-inf")
        self.renders = 0

    def _refresh(self) -> None:
        if self._clock() < self._next_check:
            return
        with self._lock:
            if self._clock() < self._next_check:
                return
            version = self._version_of()
            self._next_check = self._clock() + self.check_seconds
            if version != self._version:
                self._version = version
                self._generation += 1
                self._items = {}

    def current(self, key: str) -> Rendered | None:
        """The cached representation for ``key`` if the stories have not changed since."""
        self._refresh()
        return self._items.get(key)

    def fill(self, key: str, media_type: str, render: Render, extra: dict[str, str]) -> Rendered:
        """Render ``key`` once (concurrent callers wait for the first) and keep it."""
        with self._lock:
            key_lock = self._fill_locks.setdefault(key, threading.Lock())
            if len(self._fill_locks) > self.max_entries * 4:
                self._fill_locks = {key: key_lock}
        with key_lock:
            self._refresh()
            hit = self._items.get(key)
            if hit is not None:
                return hit
            generation = self._generation
            body, content_time = render()
            self.renders += 1
            rendered = Rendered(
                body, media_type, self._last_modified(key, body, content_time), extra
            )
            with self._lock:
                self._history[key] = (rendered.etag, rendered.last_modified)
                if len(self._history) > self.max_entries * 4:
                    self._history = {key: self._history[key]}
                # Rendered from data older than a version change seen meanwhile: serve it
                # this once, but do not keep it.
                if generation == self._generation:
                    if len(self._items) >= self.max_entries:
                        self._items.pop(next(iter(self._items)))
                    self._items[key] = rendered
            return rendered

    def _last_modified(self, key: str, body: bytes, content_time: datetime) -> datetime:
        now = datetime.now(UTC).replace(microsecond=0)
        when = min(content_time.astimezone(UTC).replace(microsecond=0), now)
        previous = self._history.get(key)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if previous is not None and previous[0] != etag and when <= previous[1]:
            when = max(now, previous[1] + timedelta(seconds=1))
        return when


def accepts_gzip(value: str | None) -> bool:
    """Whether an Accept-Encoding header value allows gzip (q > 0)."""
    if not value or "gzip" not in value:
        return False
    for part in value.split(","):
        name, _, params = part.partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip"):
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def _etag_matches(header: str, rendered: Rendered) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2); either encoding matches."""
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/")
        if tag in (rendered.etag, rendered.etag_gzip, "*"):
            return True
    return False


def _not_modified_since(header: str, rendered: Rendered) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return rendered.last_modified <= since


def choose(
    rendered: Rendered,
    accept_encoding: str | None,
    if_none_match: str | None,
    if_modified_since: str | None,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body answering a request's validators from ``rendered``."""
    use_gzip = accepts_gzip(accept_encoding) and rendered.gzipped() is not None
    if if_none_match is not None:
        not_modified = _etag_matches(if_none_match, rendered)
    else:
        not_modified = if_modified_since is not None and _not_modified_since(
            if_modified_since, rendered
        )
    if not_modified:
        return 304, rendered.raw_304_gzip if use_gzip else rendered.raw_304, b""
    if use_gzip:
        return 200, rendered.raw_200_gzip or [], rendered.gzipped() or b""
    return 200, rendered.raw_200, rendered.body


def respond(request: Request, rendered: Rendered) -> Response:
    """200 (gzip when asked) or 304 from the validators; HEAD gets the headers only."""
    headers = request.headers
    status, raw, body = choose(
        rendered,
        headers.get("accept-encoding"),
        headers.get("if-none-match"),
        headers.get("if-modified-since"),
    )
    return Prepared(status, raw, body)


_VALIDATOR_HEADERS = (b"accept-encoding", b"if-none-match", b"if-modified-since")


class CachedFastPath:
    """Pure ASGI middleware: answers cached plain feed URLs before any routing.

    Feed readers poll ``/feed.atom`` and friends with validators; most polls are 304s.
    When the URL (no query string) is in ``keys`` and its representation is in the render
    cache, the answer is sent from the prepared headers without building a Request or
    walking the routes. Anything else (a miss, a query string, another method or path)
    goes to the application unchanged, so behaviour is the same either way.
    """

    def __init__(self, app: ASGIApp, cache: RenderCache, keys: Mapping[str, str]) -> None:
        self.app = app
        self.cache = cache
        self.keys = dict(keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not scope.get("query_string")
            and scope["method"] in ("GET", "HEAD")
        ):
            key = self.keys.get(scope["path"])
            if key is not None:
                rendered = self.cache.current(key)
                if rendered is not None:
                    found: dict[bytes, str] = {}
                    for name, value in scope["headers"]:
                        if name in _VALIDATOR_HEADERS:
                            found[name] = value.decode("latin-1")
                    status, raw, body = choose(
                        rendered,
                        found.get(b"accept-encoding"),
                        found.get(b"if-none-match"),
                        found.get(b"if-modified-since"),
                    )
                    # A copy: servers and middleware may edit the header list in place.
                    await send(
                        {"type": "http.response.start", "status": status, "headers": list(raw)}
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)
