"""Operational routes: /healthz (JSON, 503 when unhealthy) and /metrics (Prometheus text).

Figures about the shared state come from the database at request time, so any process can
answer; whether a scheduler is alive is only known to the process running it, which hands
the app a ``probe`` (``aggregator run``). ``aggregator serve`` has none and does not judge
the fetching, which may happen in cron.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from aggregator import metrics
from aggregator.store import OpsFigures
from aggregator.web.app import WebContext

log = logging.getLogger(__name__)

SchedulerProbe = Callable[[], Mapping[str, Any]]
# A fetching process whose newest successful fetch is older than this many fetch intervals
# (and at least STALE_FETCH_MIN_SECONDS) is unhealthy: every feed failing, or fetching stuck.
STALE_FETCH_INTERVALS = 3
STALE_FETCH_MIN_SECONDS = 3600


def _figures(ctx: WebContext) -> tuple[OpsFigures | None, str]:
    try:
        ctx.store.ping()
        return ctx.store.ops_figures(datetime.now(UTC)), "ok"
    except Exception as e:  # the answer must be a 503 with a reason, not a 500
        log.warning("health check: database unreachable: %s", e)
        return None, f"unreachable: {type(e).__name__}"


def health(ctx: WebContext, probe: SchedulerProbe | None) -> tuple[bool, dict[str, Any]]:
    figures, database = _figures(ctx)
    problems = [] if figures is not None else ["database unreachable"]
    scheduler = dict(probe()) if probe is not None else None
    if scheduler is not None and not scheduler.get("alive"):
        problems.append("scheduler not alive")
    body: dict[str, Any] = {"database": database, "scheduler": scheduler}
    if figures is not None:
        body.update(
            last_success_age_seconds=figures.last_success_age,
            queue_lag_seconds=figures.queue_lag,
            feeds=figures.feeds,
        )
        fetching = scheduler is not None and "fetch" in scheduler.get("jobs", {})
        limit = max(
            STALE_FETCH_INTERVALS * ctx.settings.fetch.interval_minutes * 60,
            STALE_FETCH_MIN_SECONDS,
        )
        started = datetime.fromisoformat(scheduler["started_at"]) if scheduler else None
        up_long_enough = started is not None and (figures.now - started).total_seconds() > limit
        enabled = figures.feeds["ok"] + figures.feeds["error"] + figures.feeds["failing"]
        age = figures.last_success_age
        if fetching and up_long_enough and enabled and (age is None or age > limit):
            problems.append(f"no successful fetch for more than {limit:g} s")
    body = {"status": "unhealthy" if problems else "ok", "problems": problems, **body}
    return not problems, body


def metric_gauges(
    figures: OpsFigures | None, scheduler: Mapping[str, Any] | None
) -> list[metrics.Gauge]:
    up = 1.0 if figures is not None else 0.0
    gauges = [metrics.Gauge("aggregator_database_up", "1 when the database answers.", {(): up})]
    if scheduler is not None:
        alive = 1.0 if scheduler.get("alive") else 0.0
        gauges.append(
            metrics.Gauge(
                "aggregator_scheduler_up", "1 when this process's scheduler is alive.", {(): alive}
            )
        )
    if figures is None:
        return gauges
    gauges += [
        metrics.Gauge("aggregator_stories", "Stories in the database.", {(): figures.stories}),
        metrics.Gauge("aggregator_entries", "Entries in the database.", {(): figures.entries}),
        metrics.Gauge(
            "aggregator_feeds", "Feeds by state (ok, error, failing, disabled).",
            {(k,): v for k, v in figures.feeds.items()}, labels=("state",),
        ),
        metrics.Gauge(
            "aggregator_queue_lag_seconds", "How long the most overdue feed has waited.",
            {(): figures.queue_lag},
        ),
        metrics.Gauge(
            "aggregator_recent_fetches", "Fetches in the last hour by outcome, all processes.",
            {(k,): v for k, v in figures.recent_fetches.items()}, labels=("outcome",),
        ),
    ]  # fmt: skip
    if figures.last_success_age is not None:
        gauges.append(
            metrics.Gauge(
                "aggregator_last_success_age_seconds",
                "Age of the newest successful fetch, any feed, any process.",
                {(): figures.last_success_age},
            )
        )
    return gauges


def routes(ctx: WebContext, probe: SchedulerProbe | None = None) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        ok, body = await run_in_threadpool(health, ctx, probe)
        return JSONResponse(
            body, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"}
        )

    async def metrics_route(request: Request) -> Response:
        def scrape() -> bytes:
            figures, _ = _figures(ctx)
            scheduler = probe() if probe is not None else None
            return metrics.render(metric_gauges(figures, scheduler))

        body = await run_in_threadpool(scrape)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_route, methods=["GET"]),
    ]
