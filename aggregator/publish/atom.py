"""Atom 1.0 (RFC 4287): one entry per story (or per article), ids that never change.

Written by hand: every text goes through ``clean_text`` (no XML-illegal characters) and
XML escaping, titles and names through ``plain_text`` (no tag can start in them, even for
a reader that renders them as HTML); every link is absolute http(s). Paging links follow RFC 5005.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from aggregator.models import Story
from aggregator.publish.content import (
    GENERATOR_URI,
    ArticleItem,
    FeedMeta,
    article_content_html,
    article_tag,
    plain_text,
    rfc3339,
    safe_href,
    story_content_html,
    story_tag,
)
from aggregator.text import clean_text

# Re-exported: older callers import the date formatter from here.
__all__ = ["render_articles_atom", "render_atom", "rfc3339"]


def _x(value: str) -> str:
    """Escape text for XML after removing characters XML 1.0 forbids."""
    return escape(clean_text(value))


def _a(value: str) -> str:
    return quoteattr(clean_text(value))


def _t(value: str) -> str:
    """A title or name: plain text, inert even for a reader that ignores type="text"."""
    return escape(plain_text(value))


def _head(meta: FeedMeta) -> list[str]:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang={_a(meta.language)}>\n',
        f"  <id>{_x(meta.feed_id)}</id>\n",
        f'  <title type="text">{_t(meta.title)}</title>\n',
    ]
    if meta.subtitle:
        out.append(f'  <subtitle type="text">{_t(meta.subtitle)}</subtitle>\n')
    out += [
        f"  <updated>{rfc3339(meta.updated)}</updated>\n",
        f'  <link rel="self" type="application/atom+xml" href={_a(meta.self_url)}/>\n',
        f'  <link rel="alternate" type="text/html" href={_a(meta.site_url)}/>\n',
    ]
    if meta.first_url:
        out.append(f'  <link rel="first" type="application/atom+xml" href={_a(meta.first_url)}/>\n')
    if meta.next_url:
        out.append(f'  <link rel="next" type="application/atom+xml" href={_a(meta.next_url)}/>\n')
    if meta.hub_url:
        out.append(f'  <link rel="hub" href={_a(meta.hub_url)}/>\n')
    out += [
        "  <author><name>aggregator</name></author>\n",
        f"  <generator uri={_a(GENERATOR_URI)}>aggregator</generator>\n",
    ]
    return out


def render_atom(stories: Sequence[Story], meta: FeedMeta) -> bytes:
    """One entry per story: updated = its last new article, published = its first."""
    out = _head(meta)
    out.extend(_story_entry(story, meta) for story in stories)
    out.append("</feed>\n")
    return "".join(out).encode("utf-8")


def render_articles_atom(items: Sequence[ArticleItem], meta: FeedMeta) -> bytes:
    """One entry per article, each linking the other articles of its story (rel=related)."""
    out = _head(meta)
    out.extend(_article_entry(item, meta) for item in items)
    out.append("</feed>\n")
    return "".join(out).encode("utf-8")


def _related(href: str, outlet: str) -> str:
    return f'    <link rel="related" href={_a(href)} title={quoteattr(plain_text(outlet))}/>\n'


def _category(story: Story) -> str:
    if story.topic is None:
        return ""
    label = quoteattr(plain_text(story.topic.label))
    return f"    <category term={_a(story.topic.slug)} label={label}/>\n"


def _story_entry(story: Story, meta: FeedMeta) -> str:
    lead = story.lead
    href = safe_href(lead.link)
    lines = [
        "  <entry>\n",
        f"    <id>{_x(story_tag(meta.tag_authority, story.uid))}</id>\n",
        f'    <title type="text">{_t(story.label)}</title>\n',
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
            lines.append(_related(related, m.outlet))
    lines.append(f"    <author><name>{_t(lead.outlet)}</name></author>\n")
    lines.append(_category(story))
    lines.append(f'    <content type="html">{_x(story_content_html(story))}</content>\n')
    lines.append("  </entry>\n")
    return "".join(lines)


def _article_entry(item: ArticleItem, meta: FeedMeta) -> str:
    m = item.member
    href = safe_href(m.link)
    lines = [
        "  <entry>\n",
        f"    <id>{_x(article_tag(meta.tag_authority, m.entry_id))}</id>\n",
        f'    <title type="text">{_t(m.title)}</title>\n',
        f"    <updated>{rfc3339(m.published_at)}</updated>\n",
        f"    <published>{rfc3339(m.published_at)}</published>\n",
    ]
    if href:
        lines.append(f'    <link rel="alternate" type="text/html" href={_a(href)}/>\n')
    seen = {href}
    for other in item.related:
        related = safe_href(other.link)
        if related and related not in seen:
            seen.add(related)
            lines.append(_related(related, other.outlet))
    lines.append(f"    <author><name>{_t(m.outlet)}</name></author>\n")
    lines.append(_category(item.story))
    lines.append(f'    <content type="html">{_x(article_content_html(item))}</content>\n')
    lines.append("  </entry>\n")
    return "".join(lines)
