"""French text: cleaning for storage and display, and analysis for clustering.

Parsing and clustering both need it, so it sits below them and imports nothing of ours
but errors. Pure functions and one analyser class; no I/O except reading a stop-word file.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import nh3
import Stemmer

from aggregator.errors import ConfigError

# Characters XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_TAG = re.compile(r"<[^>]*>")
_BLOCK_TAG = re.compile(r"</?(?:p|br|div|li|ul|ol|h[1-6]|blockquote|tr|table)\b[^>]*>", re.I)
_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_SPACES = re.compile(r"\s+")
# Typographic apostrophes and quotes folded to ASCII for analysis.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
# Elided articles and pronouns glued to the next word: l'armée, qu'il, jusqu'à.
_ELISION = re.compile(r"\b(?:l|d|qu|j|n|s|c|m|t|jusqu|lorsqu|puisqu|quoiqu)'", re.I)
_WORD = re.compile(r"[^\W_]+(?:[-.][^\W_]+)*", re.U)


def clean_text(value: str) -> str:
    """NFC, no XML-illegal characters, single spaces: safe to store and to serialise."""
    value = unicodedata.normalize("NFC", value)
    value = _XML_ILLEGAL.sub("", value)
    value = value.replace("\u00a0", " ").replace("\u202f", " ")
    return _SPACES.sub(" ", value).strip()


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment: tags dropped, entities decoded, spaces collapsed."""
    if "<" in fragment:
        fragment = _SCRIPT_STYLE.sub(" ", fragment)
        fragment = _BLOCK_TAG.sub(" ", fragment)
        fragment = _TAG.sub("", fragment)
    # Feeds double-escape often ("&amp;eacute;"): decode until stable, twice at most.
    for _ in range(2):
        decoded = html.unescape(fragment)
        if decoded == fragment:
            break
        fragment = decoded
    # Decoding may reveal tags that were escaped in the source ("&lt;b&gt;"): drop them too.
    if "<" in fragment:
        fragment = _TAG.sub("", fragment)
    return clean_text(fragment)


def fold_accents(value: str) -> str:
    """'Élysée' -> 'Elysee': for matching only, never for display."""
    decomposed = unicodedata.normalize("NFD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def load_stopwords(path: Path) -> frozenset[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read stop words {path}: {e.strerror}") from e
    words = (line.split("#", 1)[0].strip().lower() for line in lines)
    return frozenset(fold_accents(w) for w in words if w)


@lru_cache(maxsize=4)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("french")


def normalise_for_analysis(value: str) -> str:
    """Lower case, ASCII apostrophes, elisions split off, NFC."""
    value = unicodedata.normalize("NFC", value).translate(_APOSTROPHES).lower()
    value = value.replace("\u00a0", " ").replace("\u202f", " ")
    return _ELISION.sub(" ", value)


class FrenchAnalyzer:
    """Text -> stemmed, accent-folded tokens without stop words (a scikit-learn analyzer)."""

    def __init__(self, stopwords: Iterable[str] = (), min_length: int = 2) -> None:
        self.stopwords = frozenset(stopwords)
        self.min_length = min_length

    def tokens(self, text: str) -> list[str]:
        """Words kept for analysis, lower-cased, accents kept (for readable key terms)."""
        out = []
        for match in _WORD.finditer(normalise_for_analysis(text)):
            word = match.group()
            if len(word) < self.min_length or fold_accents(word) in self.stopwords:
                continue
            if word.isdigit() and len(word) < 4:  # small numbers say little; years do
                continue
            out.append(word)
        return out

    def stems(self, words: list[str]) -> list[str]:
        """Snowball French stems of ``words`` (aligned with them).

        Accents are folded before stemming: capitals often lose them in French ("Etat",
        "Elysee"), and both spellings must give the same stem.
        """
        return _stemmer().stemWords([fold_accents(w) for w in words])

    def __call__(self, text: str) -> list[str]:
        return self.stems(self.tokens(text))


# Tags and attributes kept in stored and published summaries. Everything else (scripts,
# styles, iframes, event handlers, forms) goes; URLs are limited to http(s) and mailto.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "cite", "code", "em", "figcaption", "figure",
        "h2", "h3", "h4", "i", "img", "li", "ol", "p", "pre", "q", "s", "small", "strong",
        "sub", "sup", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "q": {"cite"},
    "blockquote": {"cite"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


def sanitize_html(fragment: str) -> str:
    """Allowlist-sanitise an HTML fragment (nh3, the Rust ammonia library)."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
