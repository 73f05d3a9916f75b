"""Plain data shared by every layer: frozen dataclasses with UTC-aware datetimes.

Storage returns these, never ORM rows; the parser produces them; clustering and publishing
consume them. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One line of the feed list (``config/feeds.toml``)."""

    url: str
    outlet: str = ""
    section: str = ""


@dataclass(frozen=True, slots=True)
class Source:
    """A feed as the store knows it, with its fetch state."""

    id: int
    url: str
    outlet: str
    section: str
    title: str = ""
    origin: str = "config"
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    rejected_hash: str | None = None
    next_check_at: datetime | None = None
    last_fetched_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    error_count: int = 0
    failing: bool = False
    disabled: bool = False
    disabled_reason: str | None = None
    redirect_url: str | None = None
    redirect_count: int = 0
    entry_count: int = 0


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What the HTTP layer hands to the parser: bytes and the headers that matter."""

    url: str
    status: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    # (status, location) for each redirect hop followed, in order.
    redirects: tuple[tuple[int, str], ...] = ()
    elapsed: float = 0.0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One feed item, cleaned: plain-text title, sanitised summary, UTC dates."""

    key: str
    title: str
    link: str = ""
    guid: str = ""
    summary_html: str = ""
    summary_text: str = ""
    author: str = ""
    published: datetime | None = None
    published_raw: str = ""
    updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str = ""
    link: str = ""
    language: str = ""
    ttl_minutes: int | None = None
    entries: tuple[ParsedEntry, ...] = ()
    warning: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored article."""

    id: int
    outlet: str
    key: str
    title: str
    link: str
    summary_text: str
    summary_html: str
    published_at: datetime
    first_seen_at: datetime
    source_id: int | None = None
    author: str = ""


@dataclass(frozen=True, slots=True)
class Article:
    """What clustering sees of an article: no database, no clock."""

    id: str
    title: str
    summary: str = ""
    published: datetime | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class StoryCluster:
    """A story as clustering returns it: a stable id, its members, a French label."""

    id: str
    article_ids: tuple[str, ...]
    label: str
    lead_id: str
    terms: tuple[str, ...] = ()
    topic_id: str | None = None
    topic_label: str | None = None
    # (copy, original) article ids: near-identical republications of one dispatch.
    wire_of: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StoryMember:
    entry_id: int
    outlet: str
    title: str
    link: str
    published_at: datetime
    summary_text: str = ""
    summary_html: str = ""
    # The entry this one copies (same wire dispatch), if any.
    wire_of: int | None = None


@dataclass(frozen=True, slots=True)
class Topic:
    id: int
    uid: str
    slug: str
    label: str
    story_count: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Story:
    """A story as published: its label, members (lead first) and activity times."""

    id: int
    uid: str
    label: str
    first_published_at: datetime
    last_activity_at: datetime
    members: tuple[StoryMember, ...]
    lead_entry_id: int | None = None
    topic: Topic | None = None
    pinned: bool = False
    hidden: bool = False
    locked: bool = False
    updated_at: datetime | None = None

    @property
    def outlets(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for m in self.members:
            seen.setdefault(m.outlet, None)
        return tuple(seen)

    @property
    def independent_outlets(self) -> tuple[str, ...]:
        """Outlets that reported the story themselves: wire copies do not count."""
        seen: dict[str, None] = {}
        for m in self.members:
            if m.wire_of is None:
                seen.setdefault(m.outlet, None)
        return tuple(seen)

    @property
    def wire_outlets(self) -> tuple[str, ...]:
        """Outlets that republished a dispatch another member carried ("repris par N médias")."""
        seen: dict[str, None] = {}
        for m in self.members:
            if m.wire_of is not None:
                seen.setdefault(m.outlet, None)
        return tuple(seen)

    @property
    def lead(self) -> StoryMember:
        for m in self.members:
            if m.entry_id == self.lead_entry_id:
                return m
        return self.members[0]


# -- editors' desk (issue 6): accounts, decisions and the constraints they impose.


@dataclass(frozen=True, slots=True)
class User:
    """An editor's account (the password hash never leaves the store)."""

    id: int
    name: str
    disabled: bool = False
    created_at: datetime | None = None
    last_login_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeskSession:
    """A signed-in editor: whose session it is, and its per-session CSRF token."""

    user: User
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    """One editor's act on a story or topic, as the history shows it."""

    id: int
    action: str
    summary: str
    created_at: datetime
    user_name: str = ""
    story_uid: str | None = None
    topic_uid: str | None = None
    undone_at: datetime | None = None
    undone_by: str = ""
    # Every story uid the decision names (merged, split-off...), for links in the history.
    story_uids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EditorConstraint:
    """One active row of the constraints table, in decision order."""

    id: int
    decision_id: int
    kind: str
    entry_a: int | None = None
    entry_b: int | None = None
    story_uid: str | None = None
    topic_uid: str | None = None
    value: str | None = None


@dataclass(frozen=True, slots=True)
class StorySummary:
    """A line of the desk's story list: no members, every flag an editor needs to see."""

    uid: str
    label: str
    article_count: int
    outlet_count: int
    first_published_at: datetime
    last_activity_at: datetime
    label_fixed: bool = False
    pinned: bool = False
    hidden: bool = False
    locked: bool = False
    needs_review: bool = False
    topic: Topic | None = None
    terms: tuple[str, ...] = ()
    machine_changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TopicSummary:
    """A topic on the desk, with its live story count and whether an editor named it."""

    topic: Topic
    label_fixed: bool
    stories: int
    last_activity_at: datetime | None = None
