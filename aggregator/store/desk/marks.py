"""Decisions that mark a story or topic without moving articles: labels, flags, topics,
"reviewed". Each is applied at once and recorded as a constraint that later clustering
runs honour.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.errors import DecisionError
from aggregator.store.desk.common import (
    FIXED_LABEL,
    FIXED_TOPIC_LABEL,
    HIDDEN,
    LOCKED,
    PINNED,
    TOPIC_LINK,
    clean_label,
    constrain,
    member_ids,
    quote,
    record,
    refresh_topics,
    story_row,
    topic_row,
    topic_uid_of,
    touch_stories,
)
from aggregator.store.schema import constraints, decisions, stories, topics
from aggregator.store.topics import free_slug, slugify

# action (and its opposite) for each flag, and what the history says.
FLAG_ACTIONS: dict[str, tuple[str, str, str, str]] = {
    PINNED: ("pin", "unpin", "Épinglée en tête du flux", "Désépinglée"),
    HIDDEN: ("hide", "unhide", "Masquée de tous les flux", "De nouveau visible dans les flux"),
    LOCKED: ("lock", "unlock", "Verrouillée (composition figée)", "Déverrouillée"),
}


def _latest_payload(conn: Connection, uid: str, actions: tuple[str, ...]) -> dict[str, Any]:
    raw = conn.scalar(
        sa.select(decisions.c.payload)
        .where(decisions.c.story_uid == uid, decisions.c.action.in_(actions))
        .order_by(decisions.c.id.desc())
        .limit(1)
    )
    return json.loads(raw) if raw else {}


def _has_active(conn: Connection, kind: str, *, story_uid: str) -> bool:
    query = sa.select(constraints.c.id).where(
        constraints.c.kind == kind,
        constraints.c.story_uid == story_uid,
        constraints.c.active.is_(True),
    )
    return conn.scalar(query.limit(1)) is not None


def rename_story(conn: Connection, user_id: int, uid: str, label: str, now: datetime) -> int:
    row = story_row(conn, uid)
    label = clean_label(label)
    if row.label_fixed and row.label == label:
        raise DecisionError(f"Le titre est déjà {quote(label)}.", reason="conflict")
    # The label the machine would give, kept so that undoing every rename restores it.
    machine = (
        _latest_payload(conn, uid, ("rename_story",)).get("machine_label", row.label)
        if row.label_fixed
        else row.label
    )
    decision = record(
        conn, user_id, "rename_story", f"Titre : {quote(row.label)} → {quote(label)}", now,
        story_uid=uid,
        payload={"before": row.label, "label": label, "machine_label": machine,
                 "members": member_ids(conn, row.id)},
    )  # fmt: skip
    constrain(conn, decision, FIXED_LABEL, now, story_uid=uid, value=label)
    conn.execute(
        stories.update()
        .where(stories.c.id == row.id)
        .values(label=label, label_fixed=True, updated_at=now)
    )
    return decision


def rename_topic(conn: Connection, user_id: int, topic_uid: str, label: str, now: datetime) -> int:
    row = topic_row(conn, topic_uid)
    label = clean_label(label)
    if row.label_fixed and row.label == label:
        raise DecisionError(f"Le sujet s’appelle déjà {quote(label)}.", reason="conflict")
    machine = row.label
    if row.label_fixed:
        raw = conn.scalar(
            sa.select(decisions.c.payload)
            .where(decisions.c.topic_uid == topic_uid, decisions.c.action == "rename_topic")
            .order_by(decisions.c.id.desc())
            .limit(1)
        )
        machine = json.loads(raw).get("machine_label", row.label) if raw else row.label
    decision = record(
        conn, user_id, "rename_topic", f"Sujet : {quote(row.label)} → {quote(label)}", now,
        topic_uid=topic_uid,
        payload={"before": row.label, "label": label, "machine_label": machine},
    )  # fmt: skip
    constrain(conn, decision, FIXED_TOPIC_LABEL, now, topic_uid=topic_uid, value=label)
    conn.execute(
        topics.update()
        .where(topics.c.id == row.id)
        .values(label=label, label_fixed=True, updated_at=now)
    )
    touch_stories(conn, stories.c.topic_id == row.id, now)
    return decision


def set_flag(
    conn: Connection, user_id: int, uid: str, flag: str, value: bool, now: datetime
) -> int:
    if flag not in FLAG_ACTIONS:
        raise DecisionError(f"Marque inconnue : {flag[:40]}")
    row = story_row(conn, uid)
    on, off, said_on, said_off = FLAG_ACTIONS[flag]
    if bool(getattr(row, flag)) == value:
        state = said_on if value else said_off
        raise DecisionError(f"Rien à faire : l’histoire est déjà dans cet état ({state}).",
                            reason="conflict")  # fmt: skip
    decision = record(
        conn, user_id, on if value else off, said_on if value else said_off, now,
        story_uid=uid,
        payload={"before": bool(getattr(row, flag)), "members": member_ids(conn, row.id)},
    )  # fmt: skip
    constrain(conn, decision, flag, now, story_uid=uid, value="1" if value else "0")
    conn.execute(
        stories.update().where(stories.c.id == row.id).values({flag: value, "updated_at": now})
    )
    return decision


def create_topic(conn: Connection, label: str, now: datetime) -> Any:
    """A topic named by an editor: its slug (and so its feed URL) never changes after."""
    label = clean_label(label)
    slug = free_slug(conn, slugify(label))
    uid = "t" + secrets.token_hex(8)[:15]
    while conn.scalar(sa.select(topics.c.id).where(topics.c.uid == uid)) is not None:
        uid = "t" + secrets.token_hex(8)[:15]
    conn.execute(
        topics.insert().values(
            uid=uid, slug=slug, label=label, label_fixed=True, created_at=now, updated_at=now
        )
    )
    return topic_row(conn, uid)


def attach_topic(
    conn: Connection,
    user_id: int,
    uid: str,
    now: datetime,
    *,
    topic_uid: str | None = None,
    new_label: str | None = None,
) -> int:
    """Put a story in an existing topic, or in a new one named by the editor."""
    row = story_row(conn, uid)
    if (topic_uid is None) == (new_label is None):
        raise DecisionError("Choisissez un sujet existant ou nommez-en un nouveau, pas les deux.")
    created = None
    if new_label is not None:
        topic = create_topic(conn, new_label, now)
        created = topic.uid
    else:
        assert topic_uid is not None
        topic = topic_row(conn, topic_uid)
    if row.topic_id == topic.id:
        raise DecisionError(f"L’histoire est déjà dans le sujet {quote(topic.label)}.",
                            reason="conflict")  # fmt: skip
    before = topic_uid_of(conn, row.topic_id)
    decision = record(
        conn, user_id, "attach_topic", f"Rattachée au sujet {quote(topic.label)}", now,
        story_uid=uid, topic_uid=topic.uid,
        payload={"before": before, "machine_topic": _machine_topic(conn, uid, before),
                 "created_topic": created, "members": member_ids(conn, row.id)},
    )  # fmt: skip
    constrain(conn, decision, TOPIC_LINK, now, story_uid=uid, topic_uid=topic.uid)
    if created is not None:
        constrain(conn, decision, FIXED_TOPIC_LABEL, now, topic_uid=created, value=topic.label)
    conn.execute(
        stories.update().where(stories.c.id == row.id).values(topic_id=topic.id, updated_at=now)
    )
    refresh_topics(conn, [row.topic_id, topic.id], now)
    return decision


def detach_topic(conn: Connection, user_id: int, uid: str, now: datetime) -> int:
    row = story_row(conn, uid)
    if row.topic_id is None:
        raise DecisionError("L’histoire n’appartient à aucun sujet.", reason="conflict")
    before = topic_uid_of(conn, row.topic_id)
    label = conn.scalar(sa.select(topics.c.label).where(topics.c.id == row.topic_id)) or ""
    decision = record(
        conn, user_id, "detach_topic", f"Détachée du sujet {quote(label)}", now,
        story_uid=uid, topic_uid=before,
        payload={"before": before, "machine_topic": _machine_topic(conn, uid, before),
                 "members": member_ids(conn, row.id)},
    )  # fmt: skip
    constrain(conn, decision, TOPIC_LINK, now, story_uid=uid, topic_uid=None)
    conn.execute(
        stories.update().where(stories.c.id == row.id).values(topic_id=None, updated_at=now)
    )
    refresh_topics(conn, [row.topic_id], now)
    return decision


def _machine_topic(conn: Connection, uid: str, current: str | None) -> str | None:
    """The topic clustering gave the story before editors first chose one."""
    if not _has_active(conn, TOPIC_LINK, story_uid=uid):
        return current
    machine: str | None = _latest_payload(conn, uid, ("attach_topic", "detach_topic")).get(
        "machine_topic", current
    )
    return machine


def review(conn: Connection, user_id: int, uid: str, now: datetime) -> int:
    """An editor checked the story: it leaves "à revoir" until the machine changes it again."""
    row = story_row(conn, uid)
    return record(
        conn, user_id, "review", "Vérifiée", now, story_uid=uid,
        payload={"members": member_ids(conn, row.id)},
    )  # fmt: skip
