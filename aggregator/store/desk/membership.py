"""Decisions that move articles between stories: merge, split, move, remove.

Each is applied to the stored stories at once, records every article it moved (so undo
can move them back) and leaves must-link / cannot-link constraints that keep the result
through later clustering runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from aggregator.errors import DecisionError
from aggregator.store.desk.common import (
    MAX_ENTRIES_PER_DECISION,
    create_story,
    entry_title,
    keep_apart,
    link_together,
    member_ids,
    move_entries,
    new_story_uid,
    quote,
    record,
    refresh_story,
    snapshot,
    story_row,
)


def merge(conn: Connection, user_id: int, uid: str, other_uid: str, now: datetime) -> int:
    """One story from two: the larger keeps its id (``uid``'s on a tie), label and flags."""
    if uid == other_uid:
        raise DecisionError("Impossible de fusionner une histoire avec elle-même.",
                            reason="conflict")  # fmt: skip
    a, b = story_row(conn, uid), story_row(conn, other_uid)
    a_members, b_members = member_ids(conn, a.id), member_ids(conn, b.id)
    if len(a_members) + len(b_members) > MAX_ENTRIES_PER_DECISION:
        raise DecisionError(
            f"Histoires trop grandes pour être fusionnées ({MAX_ENTRIES_PER_DECISION} articles "
            "au plus)."
        )
    survivor, absorbed = (b, a) if len(b_members) > len(a_members) else (a, b)
    moved = a_members if absorbed is a else b_members
    kept = b_members if absorbed is a else a_members
    decision = record(
        conn, user_id, "merge",
        f"Fusion de {quote(absorbed.label)} ({len(moved)} art.) dans {quote(survivor.label)}",
        now, story_uid=survivor.uid,
        payload={"survivor": survivor.uid, "absorbed": absorbed.uid,
                 "moves": [[e, absorbed.uid, survivor.uid] for e in moved],
                 "snapshots": {absorbed.uid: snapshot(conn, absorbed)},
                 "members": kept + moved},
    )  # fmt: skip
    link_together(conn, decision, kept + moved, now)
    move_entries(conn, moved, survivor.id, now)
    refresh_story(conn, absorbed.id, now)
    refresh_story(conn, survivor.id, now)
    return decision


def split(
    conn: Connection, user_id: int, uid: str, entry_ids: Sequence[int], now: datetime
) -> tuple[int, str]:
    """Selected articles become a new story: together, and never with the rest."""
    row = story_row(conn, uid)
    members = member_ids(conn, row.id)
    selected = sorted(set(entry_ids))
    if not selected:
        raise DecisionError("Sélectionnez au moins un article à séparer.")
    if len(selected) > MAX_ENTRIES_PER_DECISION:
        raise DecisionError(f"Sélection trop grande ({MAX_ENTRIES_PER_DECISION} articles au plus).")
    strangers = [e for e in selected if e not in members]
    if strangers:
        raise DecisionError(f"L’article {strangers[0]} n’appartient pas à cette histoire.",
                            reason="not_found")  # fmt: skip
    rest = [e for e in members if e not in selected]
    if not rest:
        raise DecisionError("Laissez au moins un article dans l’histoire d’origine.",
                            reason="conflict")  # fmt: skip
    new_uid = new_story_uid(conn)
    first = min(selected, key=members.index)
    label = entry_title(conn, first) or row.label
    decision = record(
        conn, user_id, "split",
        f"{len(selected)} article{'s' if len(selected) > 1 else ''} séparé"
        f"{'s' if len(selected) > 1 else ''} dans une nouvelle histoire {quote(label)}",
        now, story_uid=uid,
        payload={"source": uid, "created": new_uid, "selection": selected, "rest": rest,
                 "moves": [[e, uid, new_uid] for e in selected], "members": members},
    )  # fmt: skip
    link_together(conn, decision, selected, now)
    keep_apart(conn, decision, selected, rest, now)
    new_id = create_story(conn, new_uid, label, now, topic_id=row.topic_id)
    move_entries(conn, selected, new_id, now)
    refresh_story(conn, new_id, now)
    refresh_story(conn, row.id, now)
    return decision, new_uid


def _member_of(conn: Connection, uid: str, entry_id: int) -> tuple[Any, list[int]]:
    row = story_row(conn, uid)
    members = member_ids(conn, row.id)
    if entry_id not in members:
        raise DecisionError(f"L’article {entry_id} n’appartient pas à cette histoire.",
                            reason="not_found")  # fmt: skip
    return row, members


def move(
    conn: Connection, user_id: int, uid: str, entry_id: int, target_uid: str, now: datetime
) -> int:
    """An article changes story: never again with its old companions, always with its new."""
    if uid == target_uid:
        raise DecisionError("L’article est déjà dans cette histoire.", reason="conflict")
    row, members = _member_of(conn, uid, entry_id)
    target = story_row(conn, target_uid)
    target_members = member_ids(conn, target.id)
    if len(members) + len(target_members) > MAX_ENTRIES_PER_DECISION:
        raise DecisionError(
            f"Histoires trop grandes ({MAX_ENTRIES_PER_DECISION} articles au plus)."
        )
    others = [e for e in members if e != entry_id]
    title = entry_title(conn, entry_id)
    decision = record(
        conn, user_id, "move", f"Article {quote(title)} déplacé vers {quote(target.label)}", now,
        story_uid=uid,
        payload={"target": target_uid, "entry": entry_id, "moves": [[entry_id, uid, target_uid]],
                 "snapshots": {} if others else {uid: snapshot(conn, row)},
                 "members": members, "target_members": target_members},
    )  # fmt: skip
    keep_apart(conn, decision, [entry_id], others, now)
    link_together(conn, decision, [entry_id, *target_members], now)
    move_entries(conn, [entry_id], target.id, now)
    refresh_story(conn, row.id, now)
    refresh_story(conn, target.id, now)
    return decision


def remove(
    conn: Connection, user_id: int, uid: str, entry_id: int, now: datetime
) -> tuple[int, str]:
    """ "Never with this one": the article leaves for a story of its own, and never comes back."""
    row, members = _member_of(conn, uid, entry_id)
    others = [e for e in members if e != entry_id]
    if not others:
        raise DecisionError("C’est le seul article de l’histoire : rien à retirer.",
                            reason="conflict")  # fmt: skip
    new_uid = new_story_uid(conn)
    title = entry_title(conn, entry_id)
    decision = record(
        conn, user_id, "remove",
        f"Article {quote(title)} retiré (plus jamais avec cette histoire)", now,
        story_uid=uid,
        payload={"entry": entry_id, "created": new_uid, "moves": [[entry_id, uid, new_uid]],
                 "members": members},
    )  # fmt: skip
    keep_apart(conn, decision, [entry_id], others, now)
    new_id = create_story(conn, new_uid, title or row.label, now)
    move_entries(conn, [entry_id], new_id, now)
    refresh_story(conn, new_id, now)
    refresh_story(conn, row.id, now)
    return decision, new_uid
