"""Atom 1.0 (RFC 4287): one entry per story, its id a tag: URI that never changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from aggregator.models import Story
from aggregator.publish.content import FeedMeta, safe_href, story_content_html, story_tag
from aggregator.text import clean_text


def _x(value: str) -> str:
    """Escape text for XML after removing characters XML 1.0 forbids."""
    return escape(clean_text(value))


def _a(value: str) -> str:
    return quoteattr(clean_text(value))


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_atom(stories: Sequence[Story], meta: FeedMeta) -> bytes:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n',
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr">\n',
        f"  <id>{_x(meta.feed_id)}</id>\n",
        f"  <title>{_x(meta.title)}</title>\n",
    ]
    if meta.subtitle:
        out.append(f"  <subtitle>{_x(meta.subtitle)}</subtitle>\n")
    out += [
        f"  <updated>{rfc3339(meta.updated)}</updated>\n",
        f'  <link rel="self" type="application/atom+xml" href={_a(meta.self_url)}/>\n',
        f'  <link rel="alternate" type="text/html" href={_a(meta.site_url)}/>\n',
    ]
    if meta.hub_url:
        out.append(f'  <link rel="hub" href={_a(meta.hub_url)}/>\n')
    out += [
        "  <author><name>aggregator</name></author>\n",
        '  <generator uri="https://github.com/aggregator-fr/aggregator">aggregator</generator>\n',
    ]
    for story in stories:
        out.append(_entry(story, meta))
    out.append("</feed>\n")
    return "".join(out).encode("utf-8")


def _entry(story: Story, meta: FeedMeta) -> str:
    lead = story.lead
    href = safe_href(lead.link)
    lines = [
        "  <entry>\n",
        f"    <id>{_x(story_tag(meta.tag_authority, story.uid))}</id>\n",
        f'    <title type="text">{_x(story.label)}</title>\n',
        f"    <updated>{rfc3339(story.last_activity_at)}</updated>\n",
        f"    <published>{rfc3339(story.first_published_at)}</published>\n",
    ]
    if href:
        lines.append(f'    <link rel="alternate" type="text/html" href={_a(href)}/>\n')
    seen = {href}
    for m in story.members:
        related = safe_href(m.link)
        if related and related not in seen:
            seen.add(related)
            lines.append(f'    <link rel="related" href={_a(related)} title={_a(m.outlet)}/>\n')
    lines.append(f"    <author><name>{_x(lead.outlet)}</name></author>\n")
    if story.topic is not None:
        lines.append(f"    <category term={_a(story.topic.slug)} label={_a(story.topic.label)}/>\n")
    lines.append(f'    <content type="html">{_x(story_content_html(story))}</content>\n')
    lines.append("  </entry>\n")
    return "".join(lines)
