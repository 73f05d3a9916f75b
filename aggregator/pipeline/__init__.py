"""The one orchestrator: refresh feeds (fetch -> parse -> store -> reschedule) and
recluster the window. Scheduler, web app and CLI call these; nothing else chains layers.
"""

from aggregator.pipeline.feed import FeedOutcome, refresh_source
from aggregator.pipeline.parsing import ParsePool
from aggregator.pipeline.recluster import (
    CLUSTER_LOCK,
    cluster_file,
    cluster_params,
    clustering_role,
    make_analyzer,
    recluster,
)
from aggregator.pipeline.refresh import RefreshReport, refresh_due, sync_feed_list, worker_id
from aggregator.pipeline.retention import prune

__all__ = [
    "CLUSTER_LOCK",
    "FeedOutcome",
    "ParsePool",
    "RefreshReport",
    "cluster_file",
    "cluster_params",
    "clustering_role",
    "make_analyzer",
    "prune",
    "recluster",
    "refresh_due",
    "refresh_source",
    "sync_feed_list",
    "worker_id",
]
