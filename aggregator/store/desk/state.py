"""A story's editorial state follows its active constraints: after an undo, and after
every clustering run (which may have changed story ids by majority).

The rule everywhere: for each kind (label, pinned, hidden, locked, topic) the most recent
active constraint wins; with none, the machine's value applies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.errors import DecisionError
from aggregator.models import EditorConstraint
from aggregator.store.desk.common import (
    FIXED_LABEL,
    FIXED_TOPIC_LABEL,
    FLAGS,
    LOCKED,
    MEMBERSHIP_ACTIONS,
    STORY_KINDS,
    TOPIC_LINK,
    create_story,
    entry_title,
    maybe_story,
    move_entries,
    refresh_story,
    refresh_topics,
    story_of_entry,
    story_row,
    touch_stories,
)
from aggregator.store.entries import chunks
from aggregator.store.schema import constraints, decisions, stories, story_members, topics


def _latest_active(conn: Connection, kinds: Sequence[str], **where: Any) -> dict[str, Any]:
    """The most recent active constraint of each kind matching ``where``."""
    query = sa.select(constraints).where(
        constraints.c.kind.in_(list(kinds)), constraints.c.active.is_(True)
    )
    for column, value in where.items():
        query = query.where(constraints.c[column] == value)
    latest: dict[str, Any] = {}
    for row in conn.execute(query.order_by(constraints.c.id)):
        latest[row.kind] = row
    return latest


def sync_story(
    conn: Connection, uid: str, now: datetime, *, undone: dict[str, Any] | None = None
) -> None:
    """Make a story's label, flags and topic match its active constraints.

    ``undone`` is the payload of a decision just undone: where no constraint remains, it
    says what the machine had (label, topic) before editors intervened.
    """
    row = maybe_story(conn, uid)
    if row is None:
        return
    active = _latest_active(conn, STORY_KINDS, story_uid=uid)
    want: dict[str, Any] = {}
    if FIXED_LABEL in active:
        want.update(label=active[FIXED_LABEL].value, label_fixed=True)
    elif row.label_fixed:
        want["label_fixed"] = False
        if undone and "machine_label" in undone:
            want["label"] = undone["machine_label"]
    for flag in FLAGS:
        want[flag] = flag in active and active[flag].value == "1"
    if TOPIC_LINK in active:
        topic = active[TOPIC_LINK].topic_uid
        want["topic_id"] = (
            conn.scalar(sa.select(topics.c.id).where(topics.c.uid == topic)) if topic else None
        )
    elif undone and "machine_topic" in undone:
        topic = undone["machine_topic"]
        want["topic_id"] = (
            conn.scalar(sa.select(topics.c.id).where(topics.c.uid == topic)) if topic else None
        )
    changes = {k: v for k, v in want.items() if getattr(row, k) != v}
    if changes:
        changes["updated_at"] = now
        conn.execute(stories.update().where(stories.c.id == row.id).values(**changes))
        if "topic_id" in changes:
            refresh_topics(conn, [row.topic_id, changes["topic_id"]], now)


def sync_topic(
    conn: Connection, topic_uid: str, now: datetime, *, undone: dict[str, Any] | None = None
) -> None:
    row = conn.execute(sa.select(topics).where(topics.c.uid == topic_uid)).first()
    if row is None:
        return
    active = _latest_active(conn, (FIXED_TOPIC_LABEL,), topic_uid=topic_uid)
    if FIXED_TOPIC_LABEL in active:
        want = {"label": active[FIXED_TOPIC_LABEL].value, "label_fixed": True}
    else:
        want = {"label_fixed": False}
        if undone and "machine_label" in undone:
            want["label"] = undone["machine_label"]
    changes = {k: v for k, v in want.items() if getattr(row, k) != v}
    if changes:
        conn.execute(topics.update().where(topics.c.id == row.id).values(updated_at=now, **changes))
        touch_stories(conn, stories.c.topic_id == row.id, now)


def undo(conn: Connection, user_id: int, decision_id: int, now: datetime) -> int:
    """Deactivate a decision's constraints and put back what it changed, where still possible.

    Articles it moved go back only if they are still where it put them (a later decision
    that moved them again wins); stories it deleted are recreated with their old id.
    """
    row = conn.execute(sa.select(decisions).where(decisions.c.id == decision_id)).first()
    if row is None:
        raise DecisionError(f"Décision inconnue : {decision_id}", reason="not_found")
    if row.undone_at is not None:
        raise DecisionError("Cette décision est déjà annulée.", reason="conflict")
    conn.execute(
        decisions.update()
        .where(decisions.c.id == decision_id)
        .values(undone_at=now, undone_by=user_id)
    )
    conn.execute(
        constraints.update().where(constraints.c.decision_id == decision_id).values(active=False)
    )
    payload: dict[str, Any] = json.loads(row.payload or "{}")
    if row.action in MEMBERSHIP_ACTIONS:
        _move_back(conn, payload, now)
    if row.story_uid:
        sync_story(conn, row.story_uid, now, undone=payload)
    if row.topic_uid:
        sync_topic(conn, row.topic_uid, now, undone=payload)
    created = payload.get("created_topic")
    if created:
        topic_id = conn.scalar(sa.select(topics.c.id).where(topics.c.uid == created))
        in_use = conn.scalar(sa.select(stories.c.id).where(stories.c.topic_id == topic_id).limit(1))
        if topic_id is not None and in_use is None:
            conn.execute(topics.delete().where(topics.c.id == topic_id))
    return decision_id


def _move_back(conn: Connection, payload: dict[str, Any], now: datetime) -> None:
    snapshots: dict[str, Any] = payload.get("snapshots", {})
    touched: set[int] = set()
    for entry_id, origin, destination in payload.get("moves", []):
        if story_of_entry(conn, entry_id) != destination:
            continue
        back = maybe_story(conn, origin)
        if back is None:
            like = snapshots.get(origin)
            label = like["label"] if like else entry_title(conn, entry_id)
            back_id = create_story(conn, origin, label, now, like=like)
        else:
            back_id = back.id
        current = story_row(conn, destination)
        move_entries(conn, [entry_id], back_id, now)
        touched.update({back_id, current.id})
    for story_id in sorted(touched):
        refresh_story(conn, story_id, now)
    for uid in {u for _, o, d in payload.get("moves", []) for u in (o, d)}:
        sync_story(conn, uid, now)


def active_constraints(conn: Connection) -> list[EditorConstraint]:
    """Every active constraint, oldest decision first."""
    query = (
        sa.select(constraints)
        .where(constraints.c.active.is_(True))
        .order_by(constraints.c.decision_id, constraints.c.id)
    )
    return [
        EditorConstraint(
            id=r.id,
            decision_id=r.decision_id,
            kind=r.kind,
            entry_a=r.entry_a,
            entry_b=r.entry_b,
            story_uid=r.story_uid,
            topic_uid=r.topic_uid,
            value=r.value,
        )
        for r in conn.execute(query)
    ]


def locked_members(conn: Connection) -> dict[str, list[int]]:
    """Locked stories and their members as stored (editors may change them; the machine not)."""
    latest: dict[str, Any] = {}
    query = (
        sa.select(constraints)
        .where(constraints.c.kind == LOCKED, constraints.c.active.is_(True))
        .order_by(constraints.c.id)
    )
    for row in conn.execute(query):
        latest[row.story_uid] = row
    out: dict[str, list[int]] = {}
    for uid, row in sorted(latest.items()):
        if row.value != "1":
            continue
        story_id = conn.scalar(sa.select(stories.c.id).where(stories.c.uid == uid))
        if story_id is None:
            continue
        out[uid] = [
            int(e)
            for e in conn.scalars(
                sa.select(story_members.c.entry_id)
                .where(story_members.c.story_id == story_id)
                .order_by(story_members.c.entry_id)
            )
        ]
    return out


def _redo_moves(conn: Connection, payload: dict[str, Any], now: datetime) -> None:
    """Put a decision's articles where it put them (after a run that did not know it)."""
    touched: set[int] = set()
    for entry_id, _origin, destination in payload.get("moves", []):
        current = story_of_entry(conn, entry_id)
        if current == destination or current is None:
            continue
        target = maybe_story(conn, destination)
        if target is None:
            like = payload.get("snapshots", {}).get(destination)
            label = like["label"] if like else entry_title(conn, entry_id)
            target_id = create_story(conn, destination, label, now, like=like)
        else:
            target_id = target.id
        touched.update({story_row(conn, current).id, target_id})
        move_entries(conn, [entry_id], target_id, now)
    for story_id in sorted(touched):
        refresh_story(conn, story_id, now)


def replay_since(conn: Connection, since: datetime, now: datetime) -> int:
    """Redo the membership decisions taken, and undone, while a clustering run computed.

    The run read the constraints before they existed, so saving its result may have put
    articles back where editors had just moved them; the next run would fix it, but the
    editor would see the change vanish meanwhile.
    """
    events: list[tuple[datetime, int, bool, Any]] = []
    for row in conn.execute(
        sa.select(decisions).where(
            decisions.c.action.in_(MEMBERSHIP_ACTIONS),
            sa.or_(decisions.c.created_at >= since, decisions.c.undone_at >= since),
        )
    ):
        if row.created_at >= since:
            events.append((row.created_at, row.id, False, row))
        if row.undone_at is not None and row.undone_at >= since:
            events.append((row.undone_at, row.id, True, row))
    for _, _, undoing, row in sorted(events, key=lambda e: e[:3]):
        payload = json.loads(row.payload or "{}")
        if undoing:
            _move_back(conn, payload, now)
        else:
            _redo_moves(conn, payload, now)
    return len(events)


def reapply(conn: Connection, now: datetime, since: datetime | None = None) -> int:
    """After a clustering run: labels, flags and topics back on the stories they belong to.

    A story id that disappeared because clustering regrouped its articles under another
    id passes its constraints to the story now holding most of the articles they were
    given for, so pins, hides and labels cannot be lost to an id change. Ids that an
    editor's merge retired are left alone (undoing the merge brings them back).
    ``since``: when the run loaded the constraints; decisions taken after are redone.
    """
    if since is not None:
        replay_since(conn, since, now)
    uids: dict[str, None] = {}
    decisions_of: dict[str, set[int]] = {}
    for row in conn.execute(
        sa.select(constraints.c.story_uid, constraints.c.decision_id)
        .where(constraints.c.kind.in_(STORY_KINDS), constraints.c.active.is_(True))
        .order_by(constraints.c.id)
    ):
        uids.setdefault(row.story_uid, None)
        decisions_of.setdefault(row.story_uid, set()).add(row.decision_id)
    retired = {
        json.loads(p).get("absorbed")
        for p in conn.scalars(
            sa.select(decisions.c.payload).where(
                decisions.c.action == "merge", decisions.c.undone_at.is_(None)
            )
        )
    }
    moved = 0
    for uid in uids:
        if maybe_story(conn, uid) is not None:
            sync_story(conn, uid, now)
            continue
        if uid in retired:
            continue
        heir = _heir(conn, decisions_of[uid])
        if heir is None:
            continue
        conn.execute(
            constraints.update()
            .where(
                constraints.c.story_uid == uid,
                constraints.c.kind.in_(STORY_KINDS),
                constraints.c.active.is_(True),
            )
            .values(story_uid=heir)
        )
        sync_story(conn, heir, now)
        moved += 1
    for topic_uid in set(
        conn.scalars(
            sa.select(constraints.c.topic_uid).where(
                constraints.c.kind == FIXED_TOPIC_LABEL, constraints.c.active.is_(True)
            )
        )
    ):
        sync_topic(conn, topic_uid, now)
    return moved


def _heir(conn: Connection, decision_ids: set[int]) -> str | None:
    """The story holding most of the articles these decisions were taken on."""
    members: set[int] = set()
    for raw in conn.scalars(sa.select(decisions.c.payload).where(decisions.c.id.in_(decision_ids))):
        members.update(int(e) for e in json.loads(raw).get("members", []))
    if not members:
        return None
    votes: dict[str, int] = {}
    for part in chunks(sorted(members)):
        for row in conn.execute(
            sa.select(stories.c.uid, sa.func.count().label("n"))
            .join(story_members, story_members.c.story_id == stories.c.id)
            .where(story_members.c.entry_id.in_(part))
            .group_by(stories.c.uid)
        ):
            votes[row.uid] = votes.get(row.uid, 0) + row.n
    if not votes:
        return None
    return min(votes, key=lambda u: (-votes[u], u))
