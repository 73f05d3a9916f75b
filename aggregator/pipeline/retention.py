"""Retention: the database does not grow without bound ([retention] max_age_days)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from aggregator.config import Settings
from aggregator.store import PruneReport, Store

log = logging.getLogger(__name__)


def prune(
    settings: Settings,
    store: Store,
    now: datetime,
    *,
    max_age_days: float | None = None,
    dry_run: bool = False,
) -> PruneReport | None:
    """Delete what is older than ``max_age_days`` (default: the setting); None when 0 (keep all).

    Pinned and locked stories, and their articles, are kept whatever their age.
    """
    days = settings.retention.max_age_days if max_age_days is None else max_age_days
    if days <= 0:
        return None
    report = store.prune(now - timedelta(days=days), dry_run=dry_run)
    if not dry_run and (report.stories or report.entries):
        log.info(
            "pruned %d stories, %d entries, %d topics older than %g days",
            report.stories,
            report.entries,
            report.topics,
            days,
        )
    return report
