"""OPML 2.0 list of the feeds we publish (merged, articles, one per topic): one-click
subscription to all of them in any reader that imports OPML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape, quoteattr

from aggregator.publish.content import rfc822
from aggregator.text import clean_text


@dataclass(frozen=True, slots=True)
class FeedLink:
    """One feed to subscribe to: its name, its URL and the HTML page it describes."""

    text: str
    xml_url: str
    html_url: str = ""
    # OPML 2.0 says type="rss" for every syndication feed, whatever its format.
    type: str = "rss"


def render_opml(
    title: str, groups: Sequence[tuple[str, Sequence[FeedLink]]], *, created: datetime
) -> bytes:
    """Outlines grouped under a parent outline each (an empty group name: top level)."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<opml version="2.0">',
        "  <head>",
        f"    <title>{escape(clean_text(title))}</title>",
        f"    <dateCreated>{rfc822(created)}</dateCreated>",
        "  </head>",
        "  <body>",
    ]
    for name, feeds in groups:
        indent = "    "
        if name:
            lines.append(f"    <outline text={quoteattr(clean_text(name))}>")
            indent = "      "
        for feed in feeds:
            attrs = (
                f"type={quoteattr(feed.type)} text={quoteattr(clean_text(feed.text))} "
                f"title={quoteattr(clean_text(feed.text))} xmlUrl={quoteattr(feed.xml_url)}"
            )
            if feed.html_url:
                attrs += f" htmlUrl={quoteattr(feed.html_url)}"
            lines.append(f"{indent}<outline {attrs}/>")
        if name:
            lines.append("    </outline>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")
