"""RSS 2.0 (rssboard.org/rss-specification): the same stories as the Atom feed.

Titles are plain text made inert even for readers that take RSS titles for HTML. The
guid is the story's tag: URI (isPermaLink="false"). RSS has a single date per item:
``pubDate`` carries the story's last new article, so readers that order by date bring a
story back up when it grows. Self, hub and paging links use atom:link, as the RSS
Advisory Board recommends.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from aggregator.models import Story
from aggregator.publish.content import (
    GENERATOR_URI,
    FeedMeta,
    plain_text,
    rfc822,
    safe_href,
    story_content_html,
    story_tag,
)
from aggregator.text import clean_text

RSS_SPEC = "https://www.rssboard.org/rss-specification"


def _x(value: str) -> str:
    return escape(clean_text(value))


def _a(value: str) -> str:
    return quoteattr(clean_text(value))


def _t(value: str) -> str:
    """Plain text in an element whose type RSS leaves open (title, category, creator)."""
    return escape(plain_text(value))


def render_rss(stories: Sequence[Story], meta: FeedMeta) -> bytes:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n',
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">\n',
        "<channel>\n",
        f"  <title>{_t(meta.title)}</title>\n",
        f"  <link>{_x(meta.site_url)}</link>\n",
        f"  <description>{_t(meta.subtitle or meta.title)}</description>\n",
        f"  <language>{_x(meta.language)}</language>\n",
        f"  <lastBuildDate>{rfc822(meta.updated)}</lastBuildDate>\n",
        f"  <generator>aggregator ({_x(GENERATOR_URI)})</generator>\n",
        f"  <docs>{RSS_SPEC}</docs>\n",
        f'  <atom:link rel="self" type="application/rss+xml" href={_a(meta.self_url)}/>\n',
    ]
    if meta.first_url:
        out.append(f'  <atom:link rel="first" href={_a(meta.first_url)}/>\n')
    if meta.next_url:
        out.append(f'  <atom:link rel="next" href={_a(meta.next_url)}/>\n')
    if meta.hub_url:
        out.append(f'  <atom:link rel="hub" href={_a(meta.hub_url)}/>\n')
    out.extend(_item(story, meta) for story in stories)
    out.append("</channel>\n</rss>\n")
    return "".join(out).encode("utf-8")


def _item(story: Story, meta: FeedMeta) -> str:
    lead = story.lead
    href = safe_href(lead.link)
    lines = ["  <item>\n", f"    <title>{_t(story.label)}</title>\n"]
    if href:
        lines.append(f"    <link>{_x(href)}</link>\n")
    lines += [
        f'    <guid isPermaLink="false">{_x(story_tag(meta.tag_authority, story.uid))}</guid>\n',
        f"    <pubDate>{rfc822(story.last_activity_at)}</pubDate>\n",
        f"    <dc:creator>{_t(lead.outlet)}</dc:creator>\n",
    ]
    if story.topic is not None:
        lines.append(f"    <category>{_t(story.topic.label)}</category>\n")
    lines.append(f"    <description>{_x(story_content_html(story))}</description>\n")
    lines.append("  </item>\n")
    return "".join(lines)
