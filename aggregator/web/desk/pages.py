"""The desk's pages (GET only, never a write): stories, one story, topics, history."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from aggregator.cluster import story_similarities
from aggregator.models import Article, DeskSession, Story
from aggregator.pipeline import cluster_params
from aggregator.store import StoryFilter
from aggregator.web.desk.chart import articles_per_hour
from aggregator.web.desk.core import Desk
from aggregator.web.desk.forms import Problem, check_uid, query_fields
from aggregator.web.desk.security import now

PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 50
# Nearest stories are looked for among this many stories active around the same time:
# enough to cover a busy news day (about 300 stories in 24 h on 11 outlets, rssTrends).
NEIGHBOUR_CANDIDATES = 300
NEIGHBOURS_SHOWN = 8
PERIODS: dict[str, tuple[str, timedelta | None]] = {
    "tout": ("Toute période", None),
    "6h": ("6 dernières heures", timedelta(hours=6)),
    "24h": ("24 dernières heures", timedelta(hours=24)),
    "3j": ("3 derniers jours", timedelta(days=3)),
    "7j": ("7 derniers jours", timedelta(days=7)),
    "30j": ("30 derniers jours", timedelta(days=30)),
}
STATES = {
    "": ("Tous les états", None),
    "epinglees": ("Épinglées", "pinned"),
    "masquees": ("Masquées", "hidden"),
    "verrouillees": ("Verrouillées", "locked"),
    "renommees": ("Titre fixé", "fixed"),
}
OUTLET_CHOICES = (1, 2, 3, 4, 5)


def _articles(story: Story) -> list[Article]:
    return [
        Article(
            id=str(m.entry_id),
            title=m.title,
            summary=m.summary_text,
            published=m.published_at,
            source=m.outlet,
        )
        for m in story.members
    ]


def neighbours(desk: Desk, story: Story) -> list[tuple[Story, float]]:
    """The stories nearest to this one by content, among those active around its time."""
    candidates = desk.store.neighbour_candidates(
        story.last_activity_at,
        desk.settings.cluster.window_hours,
        NEIGHBOUR_CANDIDATES,
        story.uid,
    )
    by_uid = {c.uid: c for c in candidates}
    ranked = story_similarities(
        _articles(story),
        {uid: _articles(c) for uid, c in by_uid.items()},
        analyzer=desk.analyzer,
        params=cluster_params(desk.settings),
        limit=NEIGHBOURS_SHOWN,
    )
    return [(by_uid[uid], score) for uid, score in ranked]


def story_list(desk: Desk, request: Request, session: DeskSession) -> Response:
    q = query_fields(request)
    topic = q.uid("sujet", required=False)
    period = q.choice("periode", PERIODS, "tout")
    outlets = q.optional_integer("medias", low=1, high=100) or 1
    review = q.flag("a_revoir")
    state = q.choice("etat", STATES, "")
    text = q.text("q", max_chars=200, required=False).strip()
    page = q.optional_integer("page", low=1, high=100_000) or 1
    span = PERIODS[period][1]
    at = now()
    filters = StoryFilter(
        topic_uid=topic,
        since=at - span if span else None,
        min_outlets=outlets,
        needs_review=review,
        state=STATES[state][1],
        text=text,
    )
    stories, total = desk.store.desk_stories(
        filters, now=at, review=desk.review_window, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    kept = [(k, v) for k, v in q.pairs if k not in ("page", "fait") and v]
    pages = max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        return "/desk?" + urlencode([*kept, ("page", str(n))])

    topic_choice = desk.store.topic_by_uid(topic) if topic else None
    return desk.render(
        request, "stories.html", session,
        section="stories", stories=stories, total=total, page=page, pages=pages,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
        topics=desk.store.desk_topics(), periods=PERIODS, states=STATES,
        outlet_choices=OUTLET_CHOICES,
        chosen={"sujet": topic or "", "periode": period, "medias": outlets, "a_revoir": review,
                "etat": state, "q": text},
        topic_choice=topic_choice, now=at,
    )  # fmt: skip


def story_page(desk: Desk, request: Request, session: DeskSession) -> Response:
    uid = check_uid(request.path_params["uid"], "histoire")
    found = desk.store.desk_story(uid, now=now(), review=desk.review_window)
    if found is None:
        raise Problem(404, f"Aucune histoire ne porte l’identifiant {uid}.")
    story, summary = found
    history, _ = desk.store.decisions(story_uid=uid, limit=30)
    near = neighbours(desk, story)
    members = sorted(story.members, key=lambda m: (m.published_at, m.entry_id))
    return desk.render(
        request, "story.html", session,
        section="stories", story=story, summary=summary, members=members,
        lead_id=story.lead.entry_id,
        chart=articles_per_hour([m.published_at for m in story.members]),
        neighbours=near, history=history, topics=desk.store.desk_topics(), now=now(),
    )  # fmt: skip


def topic_list(desk: Desk, request: Request, session: DeskSession) -> Response:
    return desk.render(
        request, "topics.html", session, section="topics", topics=desk.store.desk_topics()
    )


def history_page(desk: Desk, request: Request, session: DeskSession) -> Response:
    q = query_fields(request)
    page = q.optional_integer("page", low=1, high=100_000) or 1
    decisions, total = desk.store.decisions(
        limit=HISTORY_PAGE_SIZE, offset=(page - 1) * HISTORY_PAGE_SIZE
    )
    pages = max(1, -(-total // HISTORY_PAGE_SIZE))
    uids = sorted({u for d in decisions for u in d.story_uids})
    return desk.render(
        request, "history.html", session,
        section="history", decisions=decisions, total=total, page=page, pages=pages,
        labels=desk.store.story_labels(uids),
        prev_url=f"/desk/history?page={page - 1}" if page > 1 else None,
        next_url=f"/desk/history?page={page + 1}" if page < pages else None,
    )  # fmt: skip
