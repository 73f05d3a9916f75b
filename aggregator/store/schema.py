"""Table definitions (SQLAlchemy Core), shared by the store modules and checked against the
Alembic migrations by a test, so the two cannot drift apart.

The schema carries every aggregate the product needs: sources and their fetch state
(with a lease for several fetch workers), entries deduplicated per outlet and linked to
every section they appeared in, stories and topics with stable public ids, editors'
accounts, decisions and the constraints they impose on clustering, named locks, and a
fetch log for metrics and audits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# 64-bit ids on PostgreSQL; SQLite only autoincrements a column typed INTEGER.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive strings)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True, autoincrement=True)


def _now_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


sources = sa.Table(
    "sources",
    metadata,
    _id(),
    sa.Column("url", sa.Text(), nullable=False, unique=True),
    sa.Column("outlet", sa.Text(), nullable=False, server_default=""),
    sa.Column("section", sa.Text(), nullable=False, server_default=""),
    sa.Column("title", sa.Text(), nullable=False, server_default=""),
    # config (feeds file), cli (feeds add) or opml (feeds import-opml)
    sa.Column("origin", sa.String(16), nullable=False, server_default="config"),
    sa.Column("etag", sa.Text()),
    sa.Column("last_modified", sa.Text()),
    sa.Column("content_hash", sa.String(64)),
    # The last body the parser refused ("not a feed"): the same bytes again are refused
    # without parsing. Set only while that refusal is the feed's last outcome (last_error).
    sa.Column("rejected_hash", sa.String(64)),
    sa.Column("next_check_at", UTCDateTime(), index=True),
    sa.Column("last_fetched_at", UTCDateTime()),
    sa.Column("last_success_at", UTCDateTime()),
    sa.Column("last_status", sa.Integer()),
    sa.Column("last_error", sa.Text()),
    sa.Column("error_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("failing", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("disabled_reason", sa.Text()),
    # A permanent redirect target and how many consecutive fetches saw it.
    sa.Column("redirect_url", sa.Text()),
    sa.Column("redirect_count", sa.Integer(), nullable=False, server_default="0"),
    # Lease held by the fetch worker currently working on this feed.
    sa.Column("lease_owner", sa.Text()),
    sa.Column("lease_until", UTCDateTime()),
    # The URL's host (politeness is per host, across workers: see sources.claim_due) and
    # the worker that fetched the feed last.
    sa.Column("host", sa.Text(), nullable=False, server_default="", index=True),
    sa.Column("fetched_by", sa.Text()),
    *_now_columns(),
)

entries = sa.Table(
    "entries",
    metadata,
    _id(),
    # Deduplication scope: an article is stored once per outlet even when several of
    # the outlet's section feeds carry it (entry_sources records each section).
    sa.Column("outlet", sa.Text(), nullable=False),
    sa.Column("key", sa.Text(), nullable=False),
    sa.Column("guid", sa.Text(), nullable=False, server_default=""),
    sa.Column("link", sa.Text(), nullable=False, server_default=""),
    sa.Column("title", sa.Text(), nullable=False, server_default=""),
    sa.Column("summary_html", sa.Text(), nullable=False, server_default=""),
    sa.Column("summary_text", sa.Text(), nullable=False, server_default=""),
    sa.Column("author", sa.Text(), nullable=False, server_default=""),
    # For ordering: the feed's date clamped to the fetch time, or first-seen when missing.
    sa.Column("published_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("published_raw", sa.Text(), nullable=False, server_default=""),
    sa.Column("updated_at", UTCDateTime()),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False, server_default=""),
    sa.Column("source_id", ID, sa.ForeignKey("sources.id", ondelete="SET NULL"), index=True),
    sa.UniqueConstraint("outlet", "key"),
    # Rotating GUIDs are matched by link within the outlet (entries._known).
    sa.Index("ix_entries_outlet_link", "outlet", "link"),
)

entry_sources = sa.Table(
    "entry_sources",
    metadata,
    sa.Column("entry_id", ID, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "source_id",
        ID,
        sa.ForeignKey("sources.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    sa.Column("first_seen_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
)

topics = sa.Table(
    "topics",
    metadata,
    _id(),
    sa.Column("uid", sa.String(32), nullable=False, unique=True),
    sa.Column("slug", sa.String(120), nullable=False, unique=True),
    sa.Column("label", sa.Text(), nullable=False),
    sa.Column("label_fixed", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("terms", sa.Text(), nullable=False, server_default="[]"),
    sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("story_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_activity_at", UTCDateTime()),
    *_now_columns(),
)

stories = sa.Table(
    "stories",
    metadata,
    _id(),
    # Public, stable id: feeds build their tag: URIs from it.
    sa.Column("uid", sa.String(32), nullable=False, unique=True),
    sa.Column("label", sa.Text(), nullable=False),
    sa.Column("label_fixed", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("lead_entry_id", ID, sa.ForeignKey("entries.id", ondelete="SET NULL")),
    sa.Column("topic_id", ID, sa.ForeignKey("topics.id", ondelete="SET NULL"), index=True),
    sa.Column("first_published_at", UTCDateTime(), nullable=False),
    sa.Column("last_activity_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("article_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("outlet_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("terms", sa.Text(), nullable=False, server_default="[]"),
    sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false()),
    # When clustering last changed the membership or label ("needs review" on the desk).
    sa.Column("machine_changed_at", UTCDateTime()),
    *_now_columns(),
)

story_members = sa.Table(
    "story_members",
    metadata,
    # An entry belongs to at most one story.
    sa.Column("entry_id", ID, sa.ForeignKey("entries.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "story_id", ID, sa.ForeignKey("stories.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("added_at", UTCDateTime(), nullable=False),
    sa.Column("similarity", sa.Float()),
    # Near-identical copy (wire dispatch) of this entry, if any.
    sa.Column("wire_of", ID, sa.ForeignKey("entries.id", ondelete="SET NULL")),
)

users = sa.Table(
    "users",
    metadata,
    _id(),
    sa.Column("name", sa.String(80), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text(), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("last_login_at", UTCDateTime()),
    *_now_columns(),
)

sessions = sa.Table(
    "sessions",
    metadata,
    # SHA-256 of the cookie token: a stolen database does not yield live sessions.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "user_id", ID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
)

login_attempts = sa.Table(
    "login_attempts",
    metadata,
    _id(),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("client", sa.String(64), nullable=False, server_default=""),
    sa.Column("at", UTCDateTime(), nullable=False, index=True),
    sa.Column("success", sa.Boolean(), nullable=False),
)

decisions = sa.Table(
    "decisions",
    metadata,
    _id(),
    sa.Column("user_id", ID, sa.ForeignKey("users.id", ondelete="SET NULL")),
    # rename_story, merge, split, move, remove, attach_topic, detach_topic, pin, hide, lock...
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("story_uid", sa.String(32), index=True),
    sa.Column("topic_uid", sa.String(32)),
    sa.Column("payload", sa.Text(), nullable=False, server_default="{}"),
    sa.Column("summary", sa.Text(), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("undone_at", UTCDateTime()),
    sa.Column("undone_by", ID, sa.ForeignKey("users.id", ondelete="SET NULL")),
)

constraints = sa.Table(
    "constraints",
    metadata,
    _id(),
    # must_link, cannot_link (entry_a, entry_b); fixed_label, locked, pinned, hidden
    # (story_uid or topic_uid, value); topic_link (story_uid -> topic_uid, or none).
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("entry_a", ID, sa.ForeignKey("entries.id", ondelete="CASCADE")),
    sa.Column("entry_b", ID, sa.ForeignKey("entries.id", ondelete="CASCADE")),
    sa.Column("story_uid", sa.String(32), index=True),
    sa.Column("topic_uid", sa.String(32)),
    sa.Column("value", sa.Text()),
    sa.Column("decision_id", ID, sa.ForeignKey("decisions.id", ondelete="CASCADE"), index=True),
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

locks = sa.Table(
    "locks",
    metadata,
    # Named leases: "cluster" (one clustering process), "cron:fetch", ...
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.Text(), nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

fetch_log = sa.Table(
    "fetch_log",
    metadata,
    _id(),
    sa.Column(
        "source_id", ID, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    sa.Column("worker", sa.Text(), nullable=False, server_default=""),
    # The next_check_at the fetch was due for: (source_id, due_at) pairs are unique in a
    # healthy cluster of workers.
    sa.Column("due_at", UTCDateTime()),
    sa.Column("started_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    # ok, not_modified, unchanged, error
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("status", sa.Integer()),
    sa.Column("new_entries", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("error", sa.Text()),
)


def utcnow() -> datetime:
    return datetime.now(UTC)
