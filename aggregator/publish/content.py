"""What every feed format shares: story ids, the story's HTML body, French dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from aggregator.models import Story
from aggregator.text import clean_text, sanitize_html

PARIS = ZoneInfo("Europe/Paris")
# The date part of tag: URIs (RFC 4151) is fixed forever: changing it would change every id.
TAG_DATE = "2026"


@dataclass(frozen=True, slots=True)
class FeedMeta:
    title: str
    self_url: str
    site_url: str
    feed_id: str
    updated: datetime
    tag_authority: str
    subtitle: str = ""
    hub_url: str = ""


def story_tag(authority: str, uid: str) -> str:
    """The permanent id of a story in every feed: ``tag:AUTHORITY,2026:story/UID``."""
    return f"tag:{authority},{TAG_DATE}:story/{uid}"


def feed_tag(authority: str, name: str) -> str:
    return f"tag:{authority},{TAG_DATE}:feed/{name}"


def french_time(when: datetime) -> str:
    """'10/02/2025 à 14h05' in Paris time."""
    local = when.astimezone(PARIS)
    return f"{local:%d/%m/%Y} à {local:%H}h{local:%M}"


def safe_href(url: str) -> str | None:
    """Only absolute http(s) links reach a reader."""
    url = clean_text(url)
    return url if url.lower().startswith(("http://", "https://")) else None


def story_content_html(story: Story) -> str:
    """The lead's summary, then 'Voir aussi': every member with outlet, headline, time, link."""
    lead = story.lead
    parts = []
    if lead.summary_html:
        parts.append(f"<p>{sanitize_html(lead.summary_html)}</p>")
    elif lead.summary_text:
        parts.append(f"<p>{escape(lead.summary_text)}</p>")
    outlets = story.outlets
    parts.append(
        f"<p><small>{len(story.members)} article{'s' if len(story.members) > 1 else ''}, "
        f"{len(outlets)} média{'s' if len(outlets) > 1 else ''}</small></p>"
    )
    items = []
    for m in story.members:
        href = safe_href(m.link)
        headline = escape(m.title)
        linked = f'<a href="{escape(href)}">{headline}</a>' if href else headline
        items.append(
            f"<li><strong>{escape(m.outlet)}</strong> : {linked} "
            f"<small>({escape(french_time(m.published_at))})</small></li>"
        )
    parts.append("<h3>Voir aussi</h3><ul>" + "".join(items) + "</ul>")
    if story.topic is not None:
        parts.append(f"<p>Sujet : {escape(story.topic.label)}</p>")
    return "".join(parts)
