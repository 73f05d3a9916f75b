"""JSON Feed 1.1 (jsonfeed.org/version/1.1): the same stories as the Atom feed.

Titles, summaries and tags are plain text (no tag can start in them: some readers render
them as HTML); HTML appears only in ``content_html``, which is sanitised. ``next_url``
carries paging, ``hubs`` the WebSub hub.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aggregator.models import Story
from aggregator.publish.content import (
    FeedMeta,
    plain_text,
    rfc3339,
    safe_href,
    story_content_html,
    story_tag,
)
from aggregator.text import clean_text

VERSION = "https://jsonfeed.org/version/1.1"
# A plain-text teaser for timelines ("a sentence or two" in the spec).
SUMMARY_CHARS = 300


def _summary(text: str) -> str:
    text = plain_text(text)
    if len(text) <= SUMMARY_CHARS:
        return text
    return text[: SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"


def render_json_feed(stories: Sequence[Story], meta: FeedMeta) -> bytes:
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": plain_text(meta.title),
        "home_page_url": meta.site_url,
        "feed_url": meta.self_url,
        "language": meta.language,
        "authors": [{"name": "aggregator"}],
    }
    if meta.subtitle:
        feed["description"] = plain_text(meta.subtitle)
    if meta.next_url:
        feed["next_url"] = meta.next_url
    if meta.hub_url:
        feed["hubs"] = [{"type": "WebSub", "url": meta.hub_url}]
    feed["items"] = [_item(story, meta) for story in stories]
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _item(story: Story, meta: FeedMeta) -> dict[str, Any]:
    lead = story.lead
    item: dict[str, Any] = {
        "id": story_tag(meta.tag_authority, story.uid),
        "title": plain_text(story.label),
        "content_html": clean_text(story_content_html(story)),
        "date_published": rfc3339(story.first_published_at),
        "date_modified": rfc3339(story.last_activity_at),
    }
    if clean_text(lead.outlet):
        item["authors"] = [{"name": plain_text(lead.outlet)}]
    href = safe_href(lead.link)
    if href:
        item["url"] = href
    summary = _summary(lead.summary_text)
    if summary:
        item["summary"] = summary
    if story.topic is not None:
        item["tags"] = [plain_text(story.topic.label)]
    return item
