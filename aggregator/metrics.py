"""Prometheus metrics: prometheus_client only.

Counters and histograms count what *this process* did (the pipeline records into them), so
they are exact when the web server runs in the fetching process (``aggregator run``, role
all). Gauges that describe the shared state (stories, feeds by state, queue lag, the last
successful fetch) are computed from the database at scrape time by the caller and passed
to ``render``, so they are right whichever process serves ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from aggregator.errors import BlockedAddressError, FeedError, FetchError, ParseError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REGISTRY = CollectorRegistry(auto_describe=True)

FETCHES = Counter(
    "aggregator_fetches",
    "Feed fetches by outcome (ok, not_modified, unchanged, error).",
    ["outcome"],
    registry=REGISTRY,
)
FEED_ERRORS = Counter(
    "aggregator_feed_errors",
    "Failed feed fetches by kind (http_4xx, http_5xx, network, blocked, parse, internal).",
    ["kind"],
    registry=REGISTRY,
)
ENTRIES_INGESTED = Counter("aggregator_entries_ingested", "New entries stored.", registry=REGISTRY)
PARSE_SECONDS = Histogram(
    "aggregator_parse_seconds",
    "Time to parse one feed body.",
    # feedparser takes ~1 ms per entry (shared/data/README.md): 10-500 entries a feed.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
    registry=REGISTRY,
)
CLUSTER_SECONDS = Histogram(
    "aggregator_cluster_run_seconds",
    "Time of one clustering run, by kind (full, incremental).",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)


def error_kind(error: FeedError) -> str:
    """A small, bounded label set for feed errors (the message itself is in the log)."""
    if isinstance(error, ParseError):
        return "parse"
    if isinstance(error, BlockedAddressError):
        return "blocked"
    if isinstance(error, FetchError):
        if error.status is None:
            return "network"
        return "http_5xx" if error.status >= 500 else "http_4xx"
    return "internal"


def record_fetch(outcome: str, new_entries: int) -> None:
    FETCHES.labels(outcome).inc()
    if new_entries:
        ENTRIES_INGESTED.inc(new_entries)


def record_feed_error(error: FeedError) -> None:
    FEED_ERRORS.labels(error_kind(error)).inc()


@dataclass(frozen=True, slots=True)
class Gauge:
    """One gauge family computed at scrape time: name, help, {labels tuple: value}."""

    name: str
    help: str
    samples: Mapping[tuple[str, ...], float]
    labels: tuple[str, ...] = ()


class _Snapshot(Collector):
    def __init__(self, gauges: Iterable[Gauge]) -> None:
        self.gauges = list(gauges)

    def collect(self) -> Iterator[Metric]:
        for g in self.gauges:
            family = GaugeMetricFamily(g.name, g.help, labels=list(g.labels))
            for labels, value in g.samples.items():
                family.add_metric(list(labels), value)
            yield family


def render(gauges: Iterable[Gauge] = ()) -> bytes:
    """The Prometheus text exposition: this process's counters, then the given gauges."""
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_Snapshot(list(gauges)))
    return generate_latest(REGISTRY) + generate_latest(snapshot)
