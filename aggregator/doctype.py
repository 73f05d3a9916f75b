"""Drop a DOCTYPE's internal subset before any XML parser sees the bytes.

feedparser's strict parser (expat) refuses entity bombs, but its fallback loose parser then
expands them: a 78 KiB quadratic blow-up becomes 1.2 GB (../shared/data/README.md). Feeds
never need entity declarations, so ``<!DOCTYPE rss [ ... ]>`` becomes ``<!DOCTYPE rss>``:
references to the removed entities stay unexpanded, and external entities declared there
are never fetched. Only the prolog is examined (what precedes the first element, the part
feedparser's own ``replace_doctype`` reads declarations from); the body is never edited.
"""

from __future__ import annotations

import re

# The prolog ends at the first element start, as in feedparser.sanitizer.replace_doctype;
# a "<!DOCTYPE" after it is body text (CDATA, escaped HTML) and is left alone.
_ELEMENT = re.compile(rb"<\w")
# UTF-16/32 documents are checked on a decoded prefix of this many bytes.
WIDE_PREFIX_BYTES = 64 * 1024
# How far an internal subset may run: defusedxml's quadratic.xml declares a 100 KiB
# entity; an unterminated or longer subset is refused rather than searched without end.
MAX_SUBSET_BYTES = 4 * 1024 * 1024

# Possessive quantifiers: no backtracking, so a hostile subset costs one linear scan.
_DOCTYPE = re.compile(
    rb"""<!DOCTYPE(?P<head>(?:[^\[>"']++|"[^"]*+"|'[^']*+')*+)"""
    rb"""(?P<subset>\[(?:[^\]"']++|"[^"]*+"|'[^']*+')*+\])?\s*+>""",
    re.IGNORECASE,
)
_START = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


class UnsafeDoctype(ValueError):
    """The DOCTYPE cannot be made safe (unterminated, too long, or in UTF-16/32)."""


def strip_internal_subset(content: bytes) -> bytes:
    """Return ``content`` with the internal subset of any prolog DOCTYPE removed."""
    prefix = content[:WIDE_PREFIX_BYTES]
    if prefix.startswith(_UTF16_32_BOMS) or b"\x00" in prefix[:4]:
        # The byte patterns below do not see UTF-16/32 text; refuse what they cannot check.
        text = prefix.decode("utf-32" if b"\x00\x00" in prefix[:4] else "utf-16", "ignore")
        if "<!doctype" in text.lower():
            raise UnsafeDoctype("DOCTYPE in a UTF-16/UTF-32 document (refused)")
        return content
    out: list[bytes] = []
    pos = 0
    while True:
        element = _ELEMENT.search(content, pos)
        start = _START.search(content, pos, element.start() if element else len(content))
        if start is None:
            break
        window = content[start.start() : start.start() + MAX_SUBSET_BYTES]
        match = _DOCTYPE.match(window)
        if match is None:
            raise UnsafeDoctype("unterminated or oversized DOCTYPE (refused)")
        out.append(content[pos : start.start()])
        if match.group("subset"):
            out.append(b"<!DOCTYPE" + match.group("head").rstrip() + b">")
        else:
            out.append(match.group(0))
        pos = start.start() + match.end()
    if not out:
        return content
    out.append(content[pos:])
    return b"".join(out)
