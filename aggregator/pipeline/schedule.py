"""When to check a feed next: politeness rules as pure functions of the fetch outcome."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta

from aggregator.config import FetchSettings
from aggregator.fetch import freshness_seconds, parse_retry_after

# Backoff after errors doubles from the normal interval; jitter spreads retries so
# feeds that failed together (a host outage) do not come back together.
JITTER = 0.2


def next_check_after_success(
    now: datetime,
    settings: FetchSettings,
    headers: Mapping[str, str] | None,
    ttl_minutes: int | None,
) -> datetime:
    """The configured interval, lengthened by <ttl>, Cache-Control, Expires, Retry-After."""
    interval = settings.interval_minutes * 60.0
    hints = [
        ttl_minutes * 60.0 if ttl_minutes else None,
        freshness_seconds(dict(headers or {}), now),
        parse_retry_after((headers or {}).get("retry-after"), now),
    ]
    for hint in hints:
        if hint is not None:
            interval = max(interval, hint)
    interval = min(interval, settings.max_interval_hours * 3600.0)
    return now + timedelta(seconds=interval)


def next_check_after_error(
    now: datetime,
    settings: FetchSettings,
    error_count: int,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> datetime:
    """Exponential backoff with jitter, capped; a longer Retry-After wins."""
    rng = rng or random.Random()
    base = settings.interval_minutes * 60.0
    delay = base * (2 ** max(0, min(error_count - 1, 16)))
    delay = min(delay, settings.max_interval_hours * 3600.0)
    delay *= 1.0 + rng.uniform(-JITTER, JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.max_interval_hours * 3600.0))
    return now + timedelta(seconds=delay)
