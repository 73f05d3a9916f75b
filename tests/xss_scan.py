"""Finds executable constructs in HTML the way a browser would parse it (html5lib, the
WHATWG parsing algorithm), independently of the sanitiser under test.

"Executable" means: an element that runs or loads active content or hijacks the page
(script, iframe, object, embed, base, meta, link, style, form controls with actions,
svg/math, ...), an event-handler attribute (on*), ``srcdoc``, a URL attribute whose
scheme is not http/https/mailto once normalised as a browser does (javascript:,
vbscript:, data:, ...), and CSS that can run code or fetch (expression,
behavior, -moz-binding, @import, url()).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import html5lib

ACTIVE_ELEMENTS = frozenset(
    {
        "script", "iframe", "frame", "frameset", "object", "embed", "applet", "portal",
        "base", "meta", "link", "style", "form", "button", "input", "isindex", "keygen",
        "textarea", "select", "svg", "math", "xml", "bgsound", "layer", "ilayer", "import",
        "template", "noscript", "xmp", "plaintext", "listing", "param",
    }
)  # fmt: skip
URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "action", "formaction", "data", "codebase", "background", "lowsrc",
        "dynsrc", "poster", "cite", "longdesc", "usemap", "xlink:href", "srcset", "profile",
        "manifest", "icon", "ping", "to", "from", "values", "by", "archive", "classid",
    }
)  # fmt: skip
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?")
_CSS_DANGER = re.compile(r"expression|javascript:|vbscript:|behavior|binding|@import|url\s*\(")


def normalise_url(value: str) -> str:
    """What a browser's URL parser sees: C0 controls and spaces trimmed, tabs and
    newlines removed anywhere, lower-cased.
    """
    value = value.strip("".join(chr(c) for c in range(0x21)))
    return re.sub(r"[\t\n\r]", "", value).lower()


def url_scheme_finding(value: str) -> str | None:
    match = _SCHEME.match(normalise_url(value))
    if match and match.group(1) not in SAFE_SCHEMES:
        return f"URL scheme {match.group(1)}:"
    return None


def _css_finding(value: str) -> str | None:
    decoded = _CSS_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value).replace("\\", "")
    decoded = re.sub(r"/\*.*?\*/", "", decoded, flags=re.S).lower()
    found = _CSS_DANGER.search(decoded)
    return f"CSS {found.group(0)}" if found else None


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def element_findings(tag: str, attrs: dict[str, str]) -> list[str]:
    """What is executable about one element and its attributes."""
    found = []
    if tag in ACTIVE_ELEMENTS:
        found.append(f"element <{tag}>")
    for raw_name, value in attrs.items():
        name = _local(raw_name) if raw_name.startswith("{") else raw_name.lower()
        if raw_name.startswith("{http://www.w3.org/1999/xlink}"):
            name = "xlink:" + name
        if name.startswith("on"):
            found.append(f"event handler {name}")
        elif name == "srcdoc":
            found.append("srcdoc")
        elif name == "style":
            css = _css_finding(value)
            if css:
                found.append(css)
        elif name in URL_ATTRIBUTES:
            urls = (
                [c.strip().split(" ")[0] for c in value.split(",")] if name == "srcset" else [value]
            )
            for url in urls:
                scheme = url_scheme_finding(url)
                if scheme:
                    found.append(f"{scheme} in {name}")
    return found


def _walk(element: Any, owner: str | None, key: Callable[[Any], str | None]) -> Iterator[tuple[str | None, str]]:  # fmt: skip
    tag = _local(element.tag)
    if not tag:  # comments, processing instructions: inert
        return
    owner = key(element) or owner
    for finding in element_findings(tag, dict(element.attrib)):
        yield owner, finding
    for child in element:
        yield from _walk(child, owner, key)


# Whatever follows a fragment in the page that shows it: an unterminated tag in the
# fragment ("<svg onload=alert(1)//") is completed by the next markup, as in a reader.
_TRAILER = '\n<p title="end">end</p>'


def scan_fragment(fragment: str) -> list[str]:
    """Findings in an HTML fragment (a feed's content, or a title read as HTML), parsed
    inside a page body: a stray <body onload> lands on the page's body, as in a browser.
    """
    if "<" not in fragment:  # no tag can start: text only (entities decode to text)
        return []
    page = f"<!DOCTYPE html><html><head></head><body><div>{fragment}{_TRAILER}</div></body></html>"
    root = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
    return [finding for _, finding in _walk(root, None, lambda e: None)]


def scan_document(page: str, owner_of: Callable[[Any], str | None]) -> list[tuple[str | None, str]]:  # fmt: skip
    """Findings in a whole page, each with its owner (``owner_of`` names the element that
    carries one item, e.g. data-story). The page's own head (charset, viewport, feed
    autodiscovery links, one stylesheet) is allowed exactly as the templates write it.
    """
    root = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
    out: list[tuple[str | None, str]] = []
    head = root.find("head")
    body = root.find("body")
    if head is not None:
        for child in head:
            tag = _local(child.tag)
            attrs = {k.lower(): v for k, v in child.attrib.items()}
            if tag == "title" and not list(child):
                continue
            if tag == "meta" and (set(attrs) == {"charset"} or attrs.get("name") == "viewport"):
                continue
            if (
                tag == "link"
                and attrs.get("rel") == "alternate"
                and set(attrs) <= {"rel", "type", "title", "href"}
                and attrs.get("href", "").startswith(("http://", "https://"))
                and url_scheme_finding(attrs["href"]) is None
            ):
                continue
            if tag == "style" and not attrs and head.findall("style")[0] is child:
                continue
            out.extend(_walk(child, None, owner_of))
    if body is not None:
        out.extend(_walk(body, None, owner_of))
    return out
