"""Refreshing one feed: fetch it, then parse, store and reschedule it in one transaction.

Every failure becomes the feed's recorded outcome (its error, backoff and status), never an
exception: a hostile feed costs that feed only. ``refresh`` runs many of these at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from aggregator import metrics
from aggregator.config import Settings
from aggregator.errors import FeedError, FetchError, ParseError
from aggregator.fetch import Fetcher
from aggregator.models import FetchResult, ParsedEntry, Source
from aggregator.pipeline.parsing import ParsePool
from aggregator.pipeline.schedule import next_check_after_error, next_check_after_success
from aggregator.store import Store

log = logging.getLogger(__name__)

# A permanent redirect (301/308) must be seen on this many consecutive fetches before the
# stored URL changes: one misconfigured response should not lose a feed.
PERMANENT_REDIRECT_CONFIRMATIONS = 3
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    source_id: int
    url: str
    # ok, not_modified, unchanged, error
    outcome: str
    new_entries: int = 0
    error: str | None = None
    status: int | None = None


def refresh_source(
    settings: Settings,
    store: Store,
    fetcher: Fetcher,
    source: Source,
    clock: Clock = utcnow,
    parser: ParsePool | None = None,
    *,
    worker: str = "",
) -> FeedOutcome:
    """Fetch one feed and store what is new; every failure is recorded, never raised.

    ``parser`` is the pass's worker pool; without one, a pool is started for this feed.
    """
    started = clock()
    fetched = fetch_source(fetcher, source)
    with nullcontext(parser) if parser is not None else ParsePool(settings.fetch) as pool:
        return finish_source(settings, store, source, fetched, started, pool, clock, worker=worker)


def fetch_source(fetcher: Fetcher, source: Source) -> FetchResult | FeedError:
    """The network half of a refresh: the response, or the error that is the feed's outcome."""
    try:
        return fetcher.fetch_feed(source.url, etag=source.etag, last_modified=source.last_modified)
    except FeedError as e:
        return e
    except Exception as e:  # a hostile server must cost that feed, never the daemon
        log.exception("unexpected error fetching %s", source.url)
        return FeedError(source.url, f"internal error: {type(e).__name__}: {e}")


def finish_source(
    settings: Settings,
    store: Store,
    source: Source,
    fetched: FetchResult | FeedError,
    started: datetime,
    parser: ParsePool,
    clock: Clock = utcnow,
    *,
    worker: str = "",
) -> FeedOutcome:
    """The local half: parse if needed, then one transaction for the entries, the feed's
    new state and its fetch-log row. Failures are recorded as the feed's error."""
    now = clock()
    log_row: dict[str, object] = {
        "source_id": source.id,
        "worker": worker,
        "due_at": source.next_check_at,
        "started_at": started,
    }
    try:
        if isinstance(fetched, FeedError):
            raise fetched
        outcome, state, parsed = _plan_result(settings, store, source, fetched, now, parser)
        log_row.update(finished_at=clock(), outcome=outcome.outcome, status=outcome.status)
        report = store.finish_fetch(source, now, state, log_row, parsed)
        if report is not None:
            outcome = replace(outcome, new_entries=len(report.new_ids))
    except Exception as e:  # a hostile feed must cost that feed, never the daemon
        error = e if isinstance(e, FeedError) else None
        if error is None:
            log.exception("unexpected error refreshing %s", source.url)
            error = FeedError(source.url, f"internal error: {type(e).__name__}: {e}")
        outcome, state = _error_result(settings, source, error, now)
        log_row.update(
            finished_at=clock(), outcome="error", status=outcome.status, error=outcome.error
        )
        store.finish_fetch(source, now, state, log_row)
    metrics.record_fetch(outcome.outcome, outcome.new_entries)
    return outcome


def _redirect_state(store: Store, source: Source, result: FetchResult) -> dict[str, object]:
    """Track permanent redirects; adopt the new URL once confirmed on consecutive fetches.

    302/307 (temporary) never change the stored URL.
    """
    permanent = bool(result.redirects) and all(s in (301, 308) for s, _ in result.redirects)
    if not permanent or result.url == source.url:
        return {"redirect_url": None, "redirect_count": 0}
    count = source.redirect_count + 1 if source.redirect_url == result.url else 1
    if count >= PERMANENT_REDIRECT_CONFIRMATIONS and store.source_by_url(result.url) is None:
        log.info("%s moved permanently to %s: URL updated", source.url, result.url)
        return {"url": result.url, "redirect_url": None, "redirect_count": 0}
    return {"redirect_url": result.url, "redirect_count": count}


class _Rejected(ParseError):
    """The parser's verdict on a body, with the body's hash (``sources.rejected_hash``)."""

    def __init__(self, url: str, message: str, digest: str) -> None:
        super().__init__(url, message)
        self.digest = digest


def _plan_result(
    settings: Settings,
    store: Store,
    source: Source,
    result: FetchResult,
    now: datetime,
    parser: ParsePool,
) -> tuple[FeedOutcome, dict[str, object], Sequence[ParsedEntry] | None]:
    """What a response means: (outcome, the feed's new state, entries to store or None).

    A 304 or a body identical to the last one (hash) costs no parsing and stores nothing;
    neither does a body identical to the last one the parser refused: it is refused again
    (the same error, counted and backed off as any error).
    """
    state: dict[str, object] = {
        "last_fetched_at": now,
        "last_status": result.status,
        "last_error": None,
        "error_count": 0,
        "failing": False,
        "rejected_hash": None,
        **_redirect_state(store, source, result),
    }
    if result.not_modified:
        state["next_check_at"] = next_check_after_success(now, settings.fetch, result.headers, None)
        state["last_success_at"] = now
        return FeedOutcome(source.id, source.url, "not_modified", status=304), state, None
    digest = hashlib.sha256(result.content).hexdigest()
    state.update(etag=result.etag, last_modified=result.last_modified, last_success_at=now)
    if digest == source.content_hash:
        state["next_check_at"] = next_check_after_success(now, settings.fetch, result.headers, None)
        return FeedOutcome(source.id, source.url, "unchanged", status=result.status), state, None
    if digest == source.rejected_hash and source.last_error:
        raise _Rejected(result.url, source.last_error, digest)
    try:
        with metrics.PARSE_SECONDS.time():
            parsed = parser.parse(
                result.content,
                url=result.url,
                headers=result.headers,
                max_entries=settings.fetch.max_entries_per_feed,
            )
    except ParseError as e:
        if e.transient:  # no verdict on these bytes: parse them again next time
            raise
        raise _Rejected(e.url, e.message, digest) from e
    state.update(
        content_hash=digest,
        next_check_at=next_check_after_success(
            now, settings.fetch, result.headers, parsed.ttl_minutes
        ),
    )
    if parsed.title:
        state["title"] = parsed.title
    if parsed.warning:
        log.info("%s: %s", source.url, parsed.warning)
    return FeedOutcome(source.id, source.url, "ok", status=result.status), state, parsed.entries


def _error_result(
    settings: Settings, source: Source, error: FeedError, now: datetime
) -> tuple[FeedOutcome, dict[str, object]]:
    count = source.error_count + 1
    status = error.status if isinstance(error, FetchError) else None
    retry_after = error.retry_after if isinstance(error, FetchError) else None
    state: dict[str, object] = {
        "last_fetched_at": now,
        "last_status": status,
        "last_error": error.message,
        "error_count": count,
        "failing": count >= settings.fetch.failing_after,
        "next_check_at": next_check_after_error(now, settings.fetch, count, retry_after),
        # Only while the refusal is the feed's last outcome: any other error clears it.
        "rejected_hash": error.digest if isinstance(error, _Rejected) else None,
    }
    if status == 410:
        state.update(disabled=True, disabled_reason="the server says the feed is gone (HTTP 410)")
    metrics.record_feed_error(error)
    log.warning("feed error: %s", error)
    outcome = FeedOutcome(source.id, source.url, "error", error=error.message, status=status)
    return outcome, state
