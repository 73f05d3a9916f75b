"""Refreshing feeds: every due feed, hosts in parallel, each host politely, one request at
a time; several workers share the feeds through leases. One feed's refresh is ``feed``'s.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from aggregator.config import Settings, load_feed_list
from aggregator.errors import FeedError
from aggregator.fetch import Fetcher
from aggregator.models import FetchResult, Source
from aggregator.pipeline.feed import Clock, FeedOutcome, fetch_source, finish_source, utcnow
from aggregator.pipeline.parsing import ParsePool
from aggregator.store import Store
from aggregator.store.sources import host_of

# When each worker last heard back from each host (time.monotonic()), kept across passes:
# a daemon's next tick must space its first request to a host after the last tick's
# requests too. Keyed by worker, so workers simulated in one process keep their own.
_last_request: dict[tuple[str, str], float] = {}
_last_request_lock = threading.Lock()


@dataclass(slots=True)
class RefreshReport:
    outcomes: list[FeedOutcome] = field(default_factory=list)

    @property
    def new_entries(self) -> int:
        return sum(o.new_entries for o in self.outcomes)

    @property
    def errors(self) -> list[FeedOutcome]:
        return [o for o in self.outcomes if o.outcome == "error"]


def sync_feed_list(settings: Settings, store: Store, now: datetime | None = None) -> dict[str, int]:
    """Bring the sources table in line with the feeds file ([feeds] file)."""
    return store.sync_sources(load_feed_list(settings.feeds.file), now or utcnow())


def worker_id() -> str:
    """This process's name in leases and the fetch log: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# Feeds a pass may hold claimed but waiting for their host, per fetch thread, while it
# claims further to find work for idle threads (leases are renewed before fetching).
QUEUED_PER_THREAD = 16


def claim_batch_size(settings: Settings) -> int:
    """Feeds claimed at once: enough to keep every fetch thread busy, few enough that a
    feed rarely waits in this worker while another one idles."""
    return max(4, settings.fetch.concurrency * 2)


def refresh_due(
    settings: Settings,
    store: Store,
    *,
    all_sources: bool = False,
    clock: Clock = utcnow,
    stop: threading.Event | None = None,
    sources: Sequence[Source] | None = None,
    progress: Callable[[int, FeedOutcome], None] | None = None,
    parser: ParsePool | None = None,
    worker: str | None = None,
    only_fetcher: bool = False,
) -> RefreshReport:
    """Refresh every due feed: hosts in parallel, one request at a time per host, spaced.

    Due feeds are claimed from the database in small batches with a lease (see
    ``Store.claim_due``), so several workers, on one machine or several, share the feeds
    without fetching one twice; the pass ends when no due feed is left that it has not
    fetched. ``sources`` fetches exactly those feeds instead, without claims.
    ``progress(done, outcome)`` is called after each feed (progress bars, heartbeats).
    Feeds are parsed by ``parser`` (the daemon keeps one across ticks) or by a worker pool
    started for this pass, on the first feed that needs parsing. ``only_fetcher``: the caller
    knows no other fetcher runs on this database (it holds the SQLite fetch lock), so any
    lease left is stale (a killed fetcher's) and is cleared first: those feeds are fetched
    now rather than when their lease runs out.
    """
    owner = worker or worker_id()
    if only_fetcher and sources is None:
        store.release_leases(None)
    lease = settings.fetch.lease_seconds
    started = clock()
    report = RefreshReport()
    given = list(sources) if sources is not None else None
    exhausted = False
    # For progress bars: the feeds due when the pass starts (other workers may take some).
    total = 0
    if progress is not None:
        total = (
            len(given)
            if given is not None
            else len(store.due_sources(started, all_sources=all_sources))
        )
    spacing = settings.fetch.per_host_interval_seconds
    lock = threading.Lock()
    with _last_request_lock:  # forget what no longer delays anything
        horizon = time.monotonic() - spacing
        for key in [k for k, t in _last_request.items() if t < horizon]:
            del _last_request[key]
    # When this worker last claimed or renewed each feed's lease.
    leased_at: dict[int, datetime] = {}
    threads = max(1, settings.fetch.concurrency)
    storers = 2 * settings.fetch.parse_workers  # see ``finishing`` below
    # Responses fetched but not yet stored: bounded, so a fast host cannot pile up bodies.
    in_flight = threading.BoundedSemaphore(threads + storers)
    stored: list[Future[None]] = []
    failures: list[BaseException] = []  # storage failures: the pass stops taking work

    def claim() -> list[Source]:
        nonlocal given, exhausted
        if given is not None:
            batch, given, exhausted = given, [], True
            return batch
        now = clock()
        batch = store.claim_due(
            now,
            owner,
            lease,
            claim_batch_size(settings),
            all_sources=all_sources,
            fetched_before=started,
            # Alone on the database (the SQLite fetch lock), there is no other worker to
            # share hosts with; a past run's fetches are this run's own spacing's business.
            host_spacing=None if only_fetcher else spacing,
        )
        leased_at.update((source.id, now) for source in batch)
        exhausted = not batch
        return batch

    def still_ours(source: Source) -> bool:
        """Renew the lease once a third of it has gone; False when it was lost (a feed that
        waited past its lease may have been taken by another worker)."""
        if given is not None:
            return True
        now = clock()
        if (now - leased_at.get(source.id, started)).total_seconds() < lease / 3:
            return True
        if not store.renew_lease(source.id, owner, now, lease):
            return False
        leased_at[source.id] = now
        return True

    def finish(source: Source, fetched: FetchResult | FeedError, fetch_started: datetime) -> None:
        try:
            outcome = finish_source(
                settings, store, source, fetched, fetch_started, parsers, clock, worker=owner
            )
        except BaseException as e:
            failures.append(e)
            raise
        finally:
            in_flight.release()
        with lock:
            report.outcomes.append(outcome)
            if progress is not None:
                progress(max(total, len(report.outcomes)), outcome)

    def work_host(host: str, queue: list[Source]) -> None:
        # Politeness is about requests: the host's next request waits for this response
        # (and the spacing), not for parsing and storing it, which run on ``finishing``.
        for source in queue:
            if failures or (stop is not None and stop.is_set()):
                return
            with _last_request_lock:
                last = _last_request.get((owner, host))
                wait = 0.0 if last is None else last + spacing - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not still_ours(source):
                continue
            in_flight.acquire()
            try:
                fetch_started = clock()
                fetched = fetch_source(fetcher, source)
                with _last_request_lock:
                    _last_request[(owner, host)] = time.monotonic()
                future = finishing.submit(finish, source, fetched, fetch_started)
            except BaseException:
                in_flight.release()
                raise
            with lock:
                stored.append(future)

    # Host queues run on a pool of ``concurrency`` threads; a host already being fetched
    # gets its newly claimed feeds queued behind, so it is never hit twice at once.
    # Responses are parsed and stored by two threads per parse worker, so every parse
    # worker is kept busy even when most feeds are on one host, and while one thread
    # stores what its worker parsed the worker already parses the next feed (one thread
    # per worker left it idle during every store: 80% of two cores used, 87% now).
    pending: dict[str, list[Source]] = defaultdict(list)
    running: dict[Future[None], str] = {}
    try:
        with (
            nullcontext(parser) if parser is not None else ParsePool(settings.fetch) as parsers,
            ThreadPoolExecutor(max_workers=storers, thread_name_prefix="store") as finishing,
            Fetcher(settings.fetch) as fetcher,
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch") as pool,
        ):
            while True:
                stopping = bool(failures) or (stop is not None and stop.is_set())
                while True:
                    busy = set(running.values())
                    # First claimed, first served: ``pending`` keeps insertion order and a
                    # host re-queued after a run goes to the back. (Sorted by name, hosts
                    # late in the alphabet starved while claims kept coming.)
                    for host in [h for h in pending if h not in busy]:
                        if len(running) >= threads or stopping:
                            break
                        running[pool.submit(work_host, host, pending.pop(host))] = host
                        busy.add(host)
                    if stopping or exhausted:
                        break
                    queued = sum(len(q) for q in pending.values())
                    # A thread is idle and every waiting feed is on a host being fetched
                    # (a feed list grouped by outlet): claim further, for other hosts.
                    starved = len(running) < threads and queued < QUEUED_PER_THREAD * threads
                    if len(running) + queued >= 2 * threads and not starved:
                        break
                    for source in claim():
                        pending[host_of(source.url)].append(source)
                if not running:
                    if stopping or (exhausted and not pending):
                        break
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    running.pop(future)
                    future.result()
        for future in stored:
            future.result()  # a storage failure (the database gone) is the pass's failure
    finally:
        if given is None:
            store.release_leases(owner)
    return report
