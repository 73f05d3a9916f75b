"""Reclustering the window into stories, and the same path for a JSONL file."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from aggregator.cluster import ClusterParams, Constraints, cluster_articles
from aggregator.config import Settings
from aggregator.errors import InputError
from aggregator.models import Article, StoryCluster
from aggregator.pipeline import websub
from aggregator.pipeline.editorial import load_editorial
from aggregator.store import Store
from aggregator.text import FrenchAnalyzer, load_aliases, load_stopwords

log = logging.getLogger(__name__)
# Dates without a zone in French news are Paris time.
PARIS = ZoneInfo("Europe/Paris")


def make_analyzer(settings: Settings) -> FrenchAnalyzer:
    return FrenchAnalyzer(
        load_stopwords(settings.cluster.stopwords_file),
        aliases=load_aliases(settings.cluster.aliases_file),
    )


def cluster_params(settings: Settings) -> ClusterParams:
    """The clustering parameters for these settings: the daemon and cluster-file share them."""
    return ClusterParams(
        window_hours=settings.cluster.window_hours,
        topic_window_hours=settings.cluster.topic_window_hours,
    )


# meta key: when the last full rebuild of the story window ran (ISO 8601, UTC).
LAST_REBUILD_KEY = "cluster.last_full_rebuild"
# The clustering role: one process at a time (daemon tick or `aggregator cluster`) holds
# this leased row of the locks table, renewed while a run lasts; a killed holder loses it
# after CLUSTER_LOCK_SECONDS.
CLUSTER_LOCK = "cluster"
CLUSTER_LOCK_SECONDS = 120.0


@contextmanager
def clustering_role(store: Store, owner: str) -> Iterator[bool]:
    """Hold the clustering role for the block; yields False (and logs who has it) when
    another process holds it, and the block must then do nothing."""
    with store.holding_lock(CLUSTER_LOCK, owner, CLUSTER_LOCK_SECONDS) as held:
        if not held:
            log.info(
                "clustering skipped: %s holds the cluster role", store.lock_holder(CLUSTER_LOCK)
            )
        yield held


@dataclass(frozen=True, slots=True)
class ReclusterReport:
    articles: int
    stories: int
    created: int
    changed: int
    deleted: int
    full: bool = True
    topics: int = 0


class _TakenUids:
    """Story (or topic) ids already in the database, checked lazily (only for new ones)."""

    def __init__(self, exists: Callable[[str], bool]) -> None:
        self.exists = exists

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, str) and self.exists(uid)


def rebuild_due(settings: Settings, store: Store, now: datetime) -> bool:
    """A full rebuild is due when none ran within [cluster] rebuild_interval_hours."""
    last = store.get_meta(LAST_REBUILD_KEY)
    if last is None:
        return True
    try:
        when = datetime.fromisoformat(last)
    except ValueError:
        return True
    return now - when >= timedelta(hours=settings.cluster.rebuild_interval_hours)


def recluster(
    settings: Settings,
    store: Store,
    now: datetime,
    analyzer: FrenchAnalyzer | None = None,
    *,
    full: bool | None = None,
    constraints: Constraints | None = None,
) -> ReclusterReport:
    """Place new articles into stories and topics; every so often regroup the whole window.

    Incremental runs keep stored assignments and only place new articles; a full run
    (``full=True``, or when [cluster] rebuild_interval_hours has passed since the last)
    regroups every open story, ids following the majority of members. Articles of the
    topic window are loaded so that new stories can join ongoing topics.
    """
    if full is None:
        full = rebuild_due(settings, store, now)
    span = max(settings.cluster.window_hours, settings.cluster.topic_window_hours)
    window = store.entries_between(now - timedelta(hours=span), now)
    articles = [
        Article(
            id=str(e.id),
            title=e.title,
            summary=e.summary_text,
            published=e.published_at,
            source=e.outlet,
        )
        for e in window
    ]
    ids = [e.id for e in window]
    # Editors' decisions from the store, unless the caller gives its own constraints.
    editorial = load_editorial(store, window) if constraints is None else None
    previous = {str(k): v for k, v in store.story_assignments(ids).items()}
    previous_topics = store.story_topics(sorted(set(previous.values())))
    clusters = cluster_articles(
        articles,
        analyzer=analyzer or make_analyzer(settings),
        params=cluster_params(settings),
        now=now,
        previous=previous,
        constraints=editorial.constraints if editorial is not None else constraints,
        taken_ids=_TakenUids(store.story_uid_exists),
        incremental=not full,
        previous_topics=previous_topics,
        taken_topic_ids=_TakenUids(store.topic_uid_exists),
    )
    counts = store.save_clusters(clusters, ids, now)
    if editorial is not None:
        editorial.reapply(store, now)
    if full:
        store.set_meta(LAST_REBUILD_KEY, now.isoformat())
    websub.announce_changes(settings, store, counts)
    report = ReclusterReport(
        articles=len(articles),
        stories=len(clusters),
        created=counts["created"],
        changed=counts["changed"],
        deleted=counts["deleted"],
        full=full,
        topics=len({c.topic_id for c in clusters if c.topic_id}),
    )
    log.info(
        "%s: %d articles in %d stories, %d topics",
        "rebuilt" if full else "placed new articles",
        report.articles,
        report.stories,
        report.topics,
    )
    return report


def _parse_published(value: Any, line_no: int) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"line {line_no}: 'published' must be an ISO 8601 string")
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise InputError(f"line {line_no}: 'published' is not ISO 8601: {value!r}") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=PARIS)
    return when.astimezone(UTC)


def read_articles(lines: Iterable[str]) -> Iterator[Article]:
    """Parse cluster-file input: a JSON object a line (id, title, summary?, published?, source?)."""
    seen: set[str] = set()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"line {line_no}: invalid JSON: {e.msg}") from e
        if not isinstance(obj, dict):
            raise InputError(f"line {line_no}: expected a JSON object")
        raw_id = obj.get("id")
        if raw_id is None or isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            raise InputError(f"line {line_no}: 'id' (string or integer) is required")
        article_id = str(raw_id)
        if article_id in seen:
            raise InputError(f"line {line_no}: duplicate id {article_id!r}")
        seen.add(article_id)
        title = obj.get("title")
        if not isinstance(title, str):
            raise InputError(f"line {line_no}: 'title' (string) is required")
        summary = obj.get("summary") or ""
        source = obj.get("source") or ""
        if not isinstance(summary, str) or not isinstance(source, str):
            raise InputError(f"line {line_no}: 'summary' and 'source' must be strings")
        yield Article(
            id=article_id,
            title=title,
            summary=summary,
            published=_parse_published(obj.get("published"), line_no),
            source=source,
        )


def cluster_file(settings: Settings, infile: IO[str], outfile: IO[str]) -> list[StoryCluster]:
    """Cluster a JSONL file with the daemon's code and defaults; write one line per article."""
    articles = list(read_articles(infile))
    clusters = cluster_articles(
        articles, analyzer=make_analyzer(settings), params=cluster_params(settings)
    )
    story_of = {a: c for c in clusters for a in c.article_ids}
    for article in articles:
        c = story_of[article.id]
        line = {
            "id": article.id,
            "story": c.id,
            "story_label": c.label,
            "topic": c.topic_id,
            "topic_label": c.topic_label,
        }
        outfile.write(json.dumps(line, ensure_ascii=False) + "\n")
    return clusters


def open_output(path: str) -> IO[str]:
    return Path(path).open("w", encoding="utf-8")
