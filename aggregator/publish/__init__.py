"""Feed rendering: stories in, bytes out. No HTTP, no database."""

from aggregator.publish.atom import render_atom
from aggregator.publish.content import FeedMeta, story_content_html, story_tag

__all__ = ["FeedMeta", "render_atom", "story_content_html", "story_tag"]
