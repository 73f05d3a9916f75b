"""Clustering parameters and editors' constraints (plain data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ClusterParams:
    """Clustering knobs. Defaults are the product's defaults; see each comment for why."""

    # Articles further apart than this never share a story (cluster.window_hours).
    window_hours: float = 72.0
    # Cosine similarity to a story's centroid needed to join it, for articles published
    # close together. Provisional: a compromise between the development set (headlines
    # only: best near 0.6) and saved multi-outlet feeds (with summaries: 0.4 groups well);
    # the clustering issue replaces it with a principled choice.
    threshold: float = 0.50
    # The similarity needed grows with the gap to the story's latest article: joining a
    # story idle for `time_scale_hours` needs `time_penalty` more similarity.
    time_scale_hours: float = 24.0
    time_penalty: float = 0.10
    # Title tokens count this many times the summary's (titles say what the event is).
    title_weight: int = 2
    # Terms in more than this share of the window's articles carry no event signal.
    max_df: float = 0.5


@dataclass(frozen=True, slots=True)
class Constraints:
    """Editors' decisions, as every clustering run (incremental or full rebuild) must honour them.

    Story level:
    - ``locked``: story id -> its member ids; the machine changes neither.
    - ``fixed_labels``: story id -> label chosen by an editor.
    - ``must_link`` / ``cannot_link``: pairs of article ids that must share a story / never do.
    Topic level:
    - ``topic_links``: story id -> topic id it must belong to, or None (never in a topic).
    - ``fixed_topic_labels``: topic id -> label chosen by an editor.
    """

    locked: Mapping[str, Sequence[str]] = field(default_factory=dict)
    fixed_labels: Mapping[str, str] = field(default_factory=dict)
    must_link: Sequence[tuple[str, str]] = ()
    cannot_link: Sequence[tuple[str, str]] = ()
    topic_links: Mapping[str, str | None] = field(default_factory=dict)
    fixed_topic_labels: Mapping[str, str] = field(default_factory=dict)
