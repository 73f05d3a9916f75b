"""The editors' desk half of the ``Store`` facade: each call one transaction around one
of the desk modules (accounts, marks, membership, state, queries)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from aggregator.models import (
    Decision,
    DeskSession,
    EditorConstraint,
    Story,
    StorySummary,
    Topic,
    TopicSummary,
    User,
)
from aggregator.store.desk import accounts as _accounts
from aggregator.store.desk import marks as _marks
from aggregator.store.desk import membership as _membership
from aggregator.store.desk import queries as _desk_queries
from aggregator.store.desk import state as _desk_state
from aggregator.store.desk.queries import StoryFilter
from aggregator.store.engine import read_transaction, write_transaction


class DeskStore:
    """Accounts and sessions, decisions, their constraints for clustering, desk reads."""

    engine: Engine

    # -- editors' desk (issue 6): accounts and sessions
    def add_user(self, name: str, password: str, now: datetime) -> User:
        with write_transaction(self.engine) as conn:
            return _accounts.add_user(conn, name, password, now)

    def set_user_password(self, name: str, password: str, now: datetime) -> None:
        with write_transaction(self.engine) as conn:
            _accounts.set_password(conn, name, password, now)

    def set_user_disabled(self, name: str, disabled: bool, now: datetime) -> None:
        with write_transaction(self.engine) as conn:
            _accounts.set_disabled(conn, name, disabled, now)

    def list_users(self) -> list[User]:
        with read_transaction(self.engine) as conn:
            return _accounts.list_users(conn)

    def sign_in(self, name: str, password: str, client: str, now: datetime) -> User | None:
        """Check a password (raises ``LoginBlocked`` when throttled) and record the attempt.

        The slow argon2 check runs between two short transactions, never holding a lock.
        """
        with read_transaction(self.engine) as conn:
            row = _accounts.credentials(conn, name, client, now)
        ok = _accounts.verify_password(row, password)
        with write_transaction(self.engine) as conn:
            return _accounts.record_sign_in(conn, row, name, password, client, ok, now)

    def create_session(
        self, user_id: int, now: datetime, lifetime: timedelta
    ) -> tuple[str, DeskSession]:
        with write_transaction(self.engine) as conn:
            return _accounts.create_session(conn, user_id, now, lifetime)

    def session_by_token(self, token: str, now: datetime) -> DeskSession | None:
        with read_transaction(self.engine) as conn:
            return _accounts.session_by_token(conn, token, now)

    def delete_session(self, token: str) -> None:
        with write_transaction(self.engine) as conn:
            _accounts.delete_session(conn, token)

    # -- editors' desk: decisions (each applied at once and recorded as constraints)
    def rename_story(self, user_id: int, uid: str, label: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.rename_story(conn, user_id, uid, label, now)

    def rename_topic(self, user_id: int, topic_uid: str, label: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.rename_topic(conn, user_id, topic_uid, label, now)

    def set_story_flag(self, user_id: int, uid: str, flag: str, value: bool, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.set_flag(conn, user_id, uid, flag, value, now)

    def attach_topic(
        self,
        user_id: int,
        uid: str,
        now: datetime,
        *,
        topic_uid: str | None = None,
        new_label: str | None = None,
    ) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.attach_topic(
                conn, user_id, uid, now, topic_uid=topic_uid, new_label=new_label
            )

    def detach_topic(self, user_id: int, uid: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.detach_topic(conn, user_id, uid, now)

    def mark_reviewed(self, user_id: int, uid: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _marks.review(conn, user_id, uid, now)

    def merge_stories(self, user_id: int, uid: str, other_uid: str, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _membership.merge(conn, user_id, uid, other_uid, now)

    def split_story(
        self, user_id: int, uid: str, entry_ids: Sequence[int], now: datetime
    ) -> tuple[int, str]:
        with write_transaction(self.engine) as conn:
            return _membership.split(conn, user_id, uid, entry_ids, now)

    def move_entry(
        self, user_id: int, uid: str, entry_id: int, target_uid: str, now: datetime
    ) -> int:
        with write_transaction(self.engine) as conn:
            return _membership.move(conn, user_id, uid, entry_id, target_uid, now)

    def remove_entry(self, user_id: int, uid: str, entry_id: int, now: datetime) -> tuple[int, str]:
        with write_transaction(self.engine) as conn:
            return _membership.remove(conn, user_id, uid, entry_id, now)

    def undo_decision(self, user_id: int, decision_id: int, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            return _desk_state.undo(conn, user_id, decision_id, now)

    # -- editors' desk: the contract with clustering
    def editor_constraints(self) -> tuple[list[EditorConstraint], dict[str, list[int]]]:
        """Active constraints (oldest decision first) and locked stories' members."""
        with read_transaction(self.engine) as conn:
            return _desk_state.active_constraints(conn), _desk_state.locked_members(conn)

    def reapply_editor_state(self, now: datetime, since: datetime | None = None) -> int:
        with write_transaction(self.engine) as conn:
            return _desk_state.reapply(conn, now, since)

    # -- editors' desk: reading
    def desk_stories(
        self,
        filters: StoryFilter,
        *,
        now: datetime,
        review: timedelta,
        limit: int,
        offset: int = 0,
    ) -> tuple[list[StorySummary], int]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.desk_stories(
                conn, filters, now=now, review=review, limit=limit, offset=offset
            )

    def desk_story(
        self, uid: str, *, now: datetime, review: timedelta
    ) -> tuple[Story, StorySummary] | None:
        with read_transaction(self.engine) as conn:
            return _desk_queries.desk_story(conn, uid, now=now, review=review)

    def neighbour_candidates(
        self, around: datetime, hours: float, limit: int, exclude: str
    ) -> list[Story]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.neighbour_candidates(conn, around, hours, limit, exclude)

    def story_labels(self, uids: list[str]) -> dict[str, str]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.story_labels(conn, uids)

    def desk_topics(self) -> list[TopicSummary]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.desk_topics(conn)

    def topic_by_uid(self, uid: str) -> Topic | None:
        with read_transaction(self.engine) as conn:
            return _desk_queries.topic_by_uid(conn, uid)

    def decisions(
        self, *, story_uid: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[Decision], int]:
        with read_transaction(self.engine) as conn:
            return _desk_queries.history(conn, story_uid=story_uid, limit=limit, offset=offset)

    def decision(self, decision_id: int) -> Decision | None:
        with read_transaction(self.engine) as conn:
            return _desk_queries.decision_by_id(conn, decision_id)
