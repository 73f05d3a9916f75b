"""Reclustering the window into stories, and the same path for a JSONL file."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from aggregator.cluster import ClusterParams, cluster_articles
from aggregator.config import Settings
from aggregator.errors import InputError
from aggregator.models import Article, StoryCluster
from aggregator.pipeline import websub
from aggregator.store import Store
from aggregator.text import FrenchAnalyzer, load_stopwords

log = logging.getLogger(__name__)
# Dates without a zone in French news are Paris time.
PARIS = ZoneInfo("Europe/Paris")


def make_analyzer(settings: Settings) -> FrenchAnalyzer:
    return FrenchAnalyzer(load_stopwords(settings.cluster.stopwords_file))


def cluster_params(settings: Settings) -> ClusterParams:
    """The clustering parameters for these settings: the daemon and cluster-file share them."""
    return ClusterParams(window_hours=settings.cluster.window_hours)


@dataclass(frozen=True, slots=True)
class ReclusterReport:
    articles: int
    stories: int
    created: int
    changed: int
    deleted: int


class _TakenUids:
    """Story ids already in the database, checked lazily (only for new stories)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, str) and self.store.story_uid_exists(uid)


def recluster(
    settings: Settings, store: Store, now: datetime, analyzer: FrenchAnalyzer | None = None
) -> ReclusterReport:
    """Regroup the window's entries; stories keep their ids as they grow."""
    since = now - timedelta(hours=settings.cluster.window_hours)
    window = store.entries_between(since, now)
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
    previous = {str(k): v for k, v in store.story_assignments(ids).items()}
    clusters = cluster_articles(
        articles,
        analyzer=analyzer or make_analyzer(settings),
        params=cluster_params(settings),
        now=now,
        previous=previous,
        taken_ids=_TakenUids(store),
    )
    counts = store.save_clusters(clusters, ids, now)
    websub.announce_changes(settings, store, counts)
    report = ReclusterReport(
        articles=len(articles),
        stories=len(clusters),
        created=counts["created"],
        changed=counts["changed"],
        deleted=counts["deleted"],
    )
    log.info("reclustered %d articles into %d stories", report.articles, report.stories)
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
        outfile.write(
            json.dumps(
                {"id": article.id, "story": c.id, "story_label": c.label}, ensure_ascii=False
            )
            + "\n"
        )
    return clusters


def open_output(path: str) -> IO[str]:
    return Path(path).open("w", encoding="utf-8")
