"""Feed rendering: stories in, bytes out. No HTTP, no database."""

from aggregator.publish.atom import render_articles_atom, render_atom
from aggregator.publish.content import (
    ArticleItem,
    FeedMeta,
    article_tag,
    feed_tag,
    stories_updated,
    story_content_html,
    story_tag,
)
from aggregator.publish.jsonfeed import render_json_feed
from aggregator.publish.opml import FeedLink, render_opml
from aggregator.publish.rss import render_rss

__all__ = [
    "ArticleItem",
    "FeedLink",
    "FeedMeta",
    "article_tag",
    "feed_tag",
    "render_articles_atom",
    "render_atom",
    "render_json_feed",
    "render_opml",
    "render_rss",
    "stories_updated",
    "story_content_html",
    "story_tag",
]
