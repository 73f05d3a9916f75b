"""OPML 2.0 subscription lists: read feeds from one, write the feed list as one."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from xml.sax.saxutils import quoteattr

from aggregator.errors import InputError
from aggregator.models import FeedSpec

# A DOCTYPE with an internal subset can declare entity bombs; OPML never needs one.
_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[", re.I)


def read_opml(data: bytes, *, source: str = "OPML") -> list[FeedSpec]:
    """Feeds (outlines with an xmlUrl) of an OPML document; the parent outline names the outlet."""
    if _DOCTYPE_SUBSET.search(data[:4096]):
        raise InputError(f"{source}: DOCTYPE with internal subset refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise InputError(f"{source}: not valid OPML: {e}") from e
    if root.tag != "opml":
        raise InputError(f"{source}: not an OPML document (root element <{root.tag}>)")
    body = root.find("body")
    if body is None:
        raise InputError(f"{source}: OPML without <body>")
    feeds: list[FeedSpec] = []
    seen: set[str] = set()

    def walk(node: ET.Element, group: str) -> None:
        for outline in node.findall("outline"):
            url = (outline.get("xmlUrl") or "").strip()
            name = (outline.get("text") or outline.get("title") or "").strip()
            if url:
                if url.startswith(("http://", "https://")) and url not in seen:
                    seen.add(url)
                    outlet = outline.get("outlet") or group or name
                    section = outline.get("section") or (name if group else "")
                    feeds.append(FeedSpec(url=url, outlet=outlet, section=section))
            else:
                walk(outline, name or group)

    walk(body, "")
    return feeds


def write_opml(feeds: Sequence[FeedSpec], *, title: str) -> str:
    """Feeds grouped by outlet, each outline carrying outlet and section attributes."""
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{_text(title)}</title></head>",
        "  <body>",
    ]
    by_outlet: dict[str, list[FeedSpec]] = {}
    for feed in feeds:
        by_outlet.setdefault(feed.outlet, []).append(feed)
    for outlet, group in by_outlet.items():
        lines.append(f"    <outline text={quoteattr(outlet)}>")
        for feed in group:
            text = feed.section or feed.outlet
            lines.append(
                f'      <outline type="rss" text={quoteattr(text)} xmlUrl={quoteattr(feed.url)}'
                f" outlet={quoteattr(feed.outlet)} section={quoteattr(feed.section)}/>"
            )
        lines.append("    </outline>")
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
