"""What every feed format shares: ids, the HTML bodies of stories and articles, dates."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from zoneinfo import ZoneInfo

from aggregator.models import Story, StoryMember
from aggregator.text import clean_text, sanitize_html

PARIS = ZoneInfo("Europe/Paris")
# The date part of tag: URIs (RFC 4151) is fixed forever: changing it would change every id.
TAG_DATE = "2026"
# An empty feed still needs an <updated>; a constant keeps its bytes (and ETag) stable.
EMPTY_FEED_UPDATED = datetime(2026, 1, 1, tzinfo=UTC)
GENERATOR_URI = "https://github.com/aggregator-fr/aggregator"
# A "<" that would open a tag (a letter, "/", "!" or "?" follows). Stored titles have their
# complete tags stripped, but an unterminated one ("<svg onload=alert(1)//") survives as text.
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """Feed-level fields; every URL is absolute."""

    title: str
    self_url: str
    site_url: str
    feed_id: str
    updated: datetime
    tag_authority: str
    subtitle: str = ""
    hub_url: str = ""
    # RFC 5005 paging: the next (older) page, and the first page when this is not it.
    next_url: str = ""
    first_url: str = ""
    language: str = "fr"


@dataclass(frozen=True, slots=True)
class ArticleItem:
    """One article as the article-level feeds publish it: the article and its story."""

    member: StoryMember
    story: Story

    @property
    def related(self) -> tuple[StoryMember, ...]:
        """The other articles of the story, newest first."""
        others = [m for m in self.story.members if m.entry_id != self.member.entry_id]
        return tuple(sorted(others, key=lambda m: (m.published_at, m.entry_id), reverse=True))


def story_tag(authority: str, uid: str) -> str:
    """The permanent id of a story in every feed: ``tag:AUTHORITY,2026:story/UID``."""
    return f"tag:{authority},{TAG_DATE}:story/{uid}"


def article_tag(authority: str, entry_id: int) -> str:
    """The permanent id of an article in the article-level and per-story feeds."""
    return f"tag:{authority},{TAG_DATE}:article/{entry_id}"


def feed_tag(authority: str, name: str) -> str:
    return f"tag:{authority},{TAG_DATE}:feed/{name}"


def french_time(when: datetime) -> str:
    """'10/02/2025 à 14h05' in Paris time."""
    local = when.astimezone(PARIS)
    return f"{local:%d/%m/%Y} à {local:%H}h{local:%M}"


def rfc3339(when: datetime) -> str:
    """Atom and JSON Feed dates: RFC 3339 in UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc822(when: datetime) -> str:
    """RSS 2.0 dates: RFC 822 with a four-digit year, in GMT."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


def plain_text(value: str) -> str:
    """Text that stays inert even where a reader takes it for HTML (RSS titles: the RSS 2.0
    spec leaves their type open): a tag-opening "<" becomes "‹".
    """
    return _TAG_OPEN.sub("\u2039", clean_text(value))


def safe_href(url: str) -> str | None:
    """Only absolute http(s) links reach a reader."""
    url = clean_text(url)
    return url if url.lower().startswith(("http://", "https://")) else None


def stories_updated(stories: Sequence[Story]) -> datetime:
    """A feed's <updated>: its newest story activity (a constant when empty)."""
    return max((s.last_activity_at for s in stories), default=EMPTY_FEED_UPDATED)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n > 1 else ''}"


def _summary_html(member: StoryMember) -> str:
    if member.summary_html:
        # Not wrapped: stored summaries often carry their own <p>, which may not nest.
        return sanitize_html(member.summary_html)
    if member.summary_text:
        return f"<p>{escape(member.summary_text)}</p>"
    return ""


def _member_li(m: StoryMember) -> str:
    href = safe_href(m.link)
    headline = escape(m.title)
    linked = f'<a href="{escape(href)}">{headline}</a>' if href else headline
    return (
        f"<li><strong>{escape(m.outlet)}</strong> : {linked} "
        f"<small>({escape(french_time(m.published_at))})</small></li>"
    )


def story_content_html(story: Story) -> str:
    """The lead's summary, then 'Voir aussi': every member with outlet, headline, time, link."""
    parts = [_summary_html(story.lead)]
    parts.append(
        f"<p><small>{_plural(len(story.members), 'article')}, "
        f"{_plural(len(story.outlets), 'média')}</small></p>"
    )
    items = "".join(_member_li(m) for m in story.members)
    parts.append(f"<h3>Voir aussi</h3><ul>{items}</ul>")
    if story.topic is not None:
        parts.append(f"<p>Sujet : {escape(story.topic.label)}</p>")
    return _final("".join(parts))


def article_content_html(item: ArticleItem) -> str:
    """The article's summary, then its story and the other articles about it."""
    story = item.story
    parts = [_summary_html(item.member)]
    parts.append(
        f"<p><small>Histoire : {escape(story.label)} — "
        f"{_plural(len(story.members), 'article')}, "
        f"{_plural(len(story.outlets), 'média')}</small></p>"
    )
    if item.related:
        items = "".join(_member_li(m) for m in item.related)
        parts.append(f"<h3>Voir aussi</h3><ul>{items}</ul>")
    if story.topic is not None:
        parts.append(f"<p>Sujet : {escape(story.topic.label)}</p>")
    return _final("".join(parts))


def _final(fragment: str) -> str:
    """Sanitise the assembled body once more: the allowlist is the last word, whatever a
    part above may have let through.
    """
    return sanitize_html(fragment)
