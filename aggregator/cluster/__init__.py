"""Pure clustering: articles in, stories out. No database, no clock (``now`` is given).

``cluster_articles`` is the single entry point used both by the daemon (through the
pipeline) and by ``aggregator cluster-file``, so evaluation measures what users get.
"""

from aggregator.cluster.api import cluster_articles
from aggregator.cluster.params import ClusterParams, Constraints
from aggregator.cluster.similar import story_similarities

__all__ = ["ClusterParams", "Constraints", "cluster_articles", "story_similarities"]
