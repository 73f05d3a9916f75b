"""The desk's actions (POST only): each applies one decision and redirects back (303)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from aggregator.models import DeskSession
from aggregator.store.desk.common import MAX_ENTRIES_PER_DECISION, MAX_LABEL_CHARS
from aggregator.web.desk.core import Desk
from aggregator.web.desk.forms import MAX_ID, Fields, Problem, _integer, check_uid
from aggregator.web.desk.security import now

# Raw form text may be longer than the cleaned label (spaces collapse); the store then
# gives the precise limit.
MAX_LABEL_FIELD = MAX_LABEL_CHARS * 4
FLAGS = {"pin": "pinned", "hide": "hidden", "lock": "locked"}


def _uid(request: Request) -> str:
    return check_uid(request.path_params["uid"], "histoire")


def _story_url(uid: str) -> str:
    return f"/desk/stories/{uid}"


def rename(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    uid = _uid(request)
    label = f.text("titre", max_chars=MAX_LABEL_FIELD)
    decision = desk.store.rename_story(session.user.id, uid, label, now())
    return desk.done(f.raw("suite"), _story_url(uid), decision)


def merge(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    uid = _uid(request)
    other = f.uid("autre")
    assert other is not None
    decision = desk.store.merge_stories(session.user.id, uid, other, now())
    survivor = desk.store.decision(decision)
    target = survivor.story_uid if survivor and survivor.story_uid else uid
    return desk.done(None, _story_url(target), decision)


def split(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    uid = _uid(request)
    entries = f.integers("articles", limit=MAX_ENTRIES_PER_DECISION)
    decision, _ = desk.store.split_story(session.user.id, uid, entries, now())
    return desk.done(f.raw("suite"), _story_url(uid), decision)


def move(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    uid = _uid(request)
    entry = f.integer("article")
    target = f.uid("cible_id", required=False) or f.uid("cible", required=False)
    if target is None:
        raise Problem(400, "Choisissez l’histoire où déplacer l’article.")
    decision = desk.store.move_entry(session.user.id, uid, entry, target, now())
    return desk.done(f.raw("suite"), _story_url(uid), decision)


def remove(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    uid = _uid(request)
    entry = f.integer("article")
    decision, _ = desk.store.remove_entry(session.user.id, uid, entry, now())
    return desk.done(f.raw("suite"), _story_url(uid), decision)


Action = Callable[[Desk, Request, DeskSession, Fields], Response]


def flag(name: str) -> Action:
    column = FLAGS[name]

    def handler(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
        uid = _uid(request)
        value = f.choice("valeur", {"0": False, "1": True}, "1") == "1"
        decision = desk.store.set_story_flag(session.user.id, uid, column, value, now())
        return desk.done(f.raw("suite"), _story_url(uid), decision)

    handler.__name__ = name
    return handler


def attach_topic(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    uid = _uid(request)
    new_label = f.text("nouveau_sujet", max_chars=MAX_LABEL_FIELD, required=False)
    topic = None if new_label else f.uid("sujet", required=False)
    if not new_label and topic is None:
        raise Problem(400, "Choisissez un sujet ou donnez le nom d’un nouveau sujet.")
    decision = desk.store.attach_topic(
        session.user.id, uid, now(), topic_uid=topic, new_label=new_label or None
    )
    return desk.done(f.raw("suite"), _story_url(uid), decision)


def detach_topic(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    uid = _uid(request)
    decision = desk.store.detach_topic(session.user.id, uid, now())
    return desk.done(f.raw("suite"), _story_url(uid), decision)


def review(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    uid = _uid(request)
    decision = desk.store.mark_reviewed(session.user.id, uid, now())
    return desk.done(f.raw("suite"), _story_url(uid), decision)


def rename_topic(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    topic = check_uid(request.path_params["uid"], "sujet")
    label = f.text("titre", max_chars=MAX_LABEL_FIELD)
    decision = desk.store.rename_topic(session.user.id, topic, label, now())
    return desk.done(f.raw("suite"), "/desk/topics", decision)


def undo(desk: Desk, request: Request, session: DeskSession, f: Fields) -> Response:
    decision = _integer("décision", request.path_params["decision"], 1, MAX_ID)
    desk.store.undo_decision(session.user.id, decision, now())
    return desk.done(f.raw("suite"), "/desk/history", decision)
