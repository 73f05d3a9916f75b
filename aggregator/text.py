"""French text: cleaning for storage and display, and analysis for clustering.

Parsing and clustering both need it, so it sits below them and imports nothing of ours
but errors. Pure functions and one analyser class; no I/O except reading a stop-word file.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from urllib.parse import urljoin

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
_APOSTROPHES = ("\u2019", "\u2018", "\u02bc", "`", "\u00b4")
# Elided articles and pronouns glued to the next word: l'armée, qu'il, jusqu'à.
_ELISION = re.compile(r"\b(?:l|d|qu|j|n|s|c|m|t|jusqu|lorsqu|puisqu|quoiqu)'", re.I)
_WORD = re.compile(r"[^\W_]+(?:[-.][^\W_]+)*", re.U)


def clean_text(value: str) -> str:
    """NFC, no XML-illegal characters, single spaces: safe to store and to serialise."""
    value = unicodedata.normalize("NFC", value)
    value = _XML_ILLEGAL.sub("", value)
    value = value.replace("\u00a0", " ").replace("\u202f", " ")
    return _SPACES.sub(" ", value).strip()


# Letters UTF-8 bytes turn into when read as Latin-1/cp1252 ("Ã©" for "é", "â€™" for "’"):
# ftfy only looks at texts that contain one (it is slow, and most texts are fine).
_MOJIBAKE_HINT = re.compile(
    "[ÃÂâÅÆÐÑ][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u203a\u20ac\u2122]"
)


def _fix_mojibake(value: str) -> str:
    if _MOJIBAKE_HINT.search(value):
        # Imported here: ftfy takes ~60 ms to import, paid by every parse worker at start
        # although few feeds need it.
        import ftfy

        # fix_encoding only: no quote uncurling or other "fixes" of correct French text.
        value = ftfy.fix_encoding(value)
    return value


def repair_text(value: str) -> str:
    """Mojibake repaired (a feed declared ISO-8859-1 sending UTF-8: "Ã‰lection"), NFC,
    no XML-illegal characters; spacing and correct text left exactly as they are."""
    return _XML_ILLEGAL.sub("", unicodedata.normalize("NFC", _fix_mojibake(value)))


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
    return clean_text(_fix_mojibake(fragment))  # clean_text: NFC, XML-legal


def fold_accents(value: str) -> str:
    """'Élysée' -> 'Elysee': for matching only, never for display."""
    if value.isascii():
        return value
    if len(value) <= _FOLD_CACHE_WORD_LENGTH:
        return _fold_word(value)
    return _fold(value)


def _fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Single words repeat endlessly in news: their folded form is cached.
_FOLD_CACHE_WORD_LENGTH = 40
_fold_word = lru_cache(maxsize=1 << 17)(_fold)


def load_stopwords(path: Path) -> frozenset[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read stop words {path}: {e.strerror}") from e
    words = (line.split("#", 1)[0].strip().lower() for line in lines)
    return frozenset(fold_accents(w) for w in words if w)


def load_aliases(path: Path) -> dict[str, str]:
    """Read ``canonical: alias, alias`` lines: words news use for the same referent."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read aliases {path}: {e.strerror}") from e
    aliases: dict[str, str] = {}
    for n, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        canonical, sep, rest = line.partition(":")
        if not sep or not canonical.strip():
            raise ConfigError(f"{path}:{n}: expected 'canonical: alias, alias'")
        target = fold_accents(canonical.strip().lower())
        for alias in rest.split(","):
            alias = fold_accents(alias.strip().lower())
            if alias and alias != target:
                aliases[alias] = target
    return aliases


@lru_cache(maxsize=4)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("french")


def ascii_apostrophes(value: str, chars: Iterable[str] = _APOSTROPHES) -> str:
    """``value`` with each of ``chars`` (typographic apostrophes) replaced by "'"."""
    # One str.replace per character: str.translate maps non-ASCII text character by
    # character in Python objects, many times slower, for the same result.
    for char in chars:
        value = value.replace(char, "'")
    return value


def normalise_for_analysis(value: str) -> str:
    """Lower case, ASCII apostrophes, elisions split off, NFC."""
    value = ascii_apostrophes(unicodedata.normalize("NFC", value)).lower()
    value = value.replace("\u00a0", " ").replace("\u202f", " ")
    # Every elision ends with an apostrophe: most words and many texts have none.
    return _ELISION.sub(" ", value) if "'" in value else value


# Headline segments: a kicker ("Guerre en Ukraine : ...") or a quote starts a new one, so
# its first word is capitalised by grammar, not because it names something.
_SEGMENT = re.compile(r"[:.!?«»\"“”—–|()\[\]]|\s-\s")
# Lower-case words allowed inside a proper-noun phrase: "Corée du Nord", "Côte d'Ivoire".
_NAME_LINKS = frozenset({"de", "du", "des", "la", "le", "d", "l", "les", "sur", "en"})
# Analysed texts kept per analyser: a daemon re-reads the same window every few minutes.
ANALYSIS_CACHE_SIZE = 200_000
# Stems kept per analyser, per word (the vocabulary of a window).
STEM_CACHE_SIZE = 500_000


class FrenchAnalyzer:
    """Text -> stemmed, accent-folded tokens without stop words (a scikit-learn analyzer)."""

    def __init__(
        self,
        stopwords: Iterable[str] = (),
        min_length: int = 2,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.stopwords = frozenset(stopwords)
        self.min_length = min_length
        self.aliases = dict(aliases or {})
        self._cache: dict[str, tuple[list[str], list[str]]] = {}
        self._stem_cache: dict[str, str] = {}

    def tokens(self, text: str) -> list[str]:
        """Words kept for analysis, lower-cased, accents kept (for readable key terms)."""
        stopwords, min_length = self.stopwords, self.min_length
        out = []
        for word in _WORD.findall(normalise_for_analysis(text)):
            if len(word) < min_length:
                continue
            if fold_accents(word) in stopwords:
                continue
            if word.isdigit() and len(word) < 4:  # small numbers say little; years do
                continue
            out.append(word)
        return out

    def stems(self, words: list[str]) -> list[str]:
        """Snowball French stems of ``words`` (aligned with them).

        Accents are folded before stemming: capitals often lose them in French ("Etat",
        "Elysee"), and both spellings must give the same stem. Aliases ("Kyiv" for
        "Ukraine") are replaced by their canonical word first.
        """
        cache = self._stem_cache
        if len(cache) >= STEM_CACHE_SIZE:
            cache.clear()
        missing = [w for w in dict.fromkeys(words) if w not in cache]
        if missing:
            folded = [self._fold_alias(w) for w in missing]
            cache.update(zip(missing, _stemmer().stemWords(folded), strict=True))
        return [cache[w] for w in words]

    def _fold_alias(self, word: str) -> str:
        folded = fold_accents(word)
        return self.aliases.get(folded, folded)

    def analyse(self, text: str) -> tuple[list[str], list[str]]:
        """``(tokens, stems)`` of ``text``, cached: re-clustering sees the same texts again."""
        found = self._cache.get(text)
        if found is None:
            words = self.tokens(text)
            found = (words, self.stems(words))
            if len(self._cache) >= ANALYSIS_CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = found
        return found

    def phrases(self, text: str) -> list[str]:
        """Proper-noun phrases of two words or more ("Corée du Nord"), as joined stems.

        A word names something when it is capitalised inside a segment, or is an acronym;
        a segment's first word counts only when the next word names something too.
        """
        text = ascii_apostrophes(unicodedata.normalize("NFC", text))
        out: list[str] = []
        for segment in _SEGMENT.split(text):
            words = [m.group() for m in _WORD.finditer(_ELISION.sub(" ", segment))]
            run: list[str] = []
            pending: list[str] = []
            for i, word in enumerate(words):
                named = word[:1].isupper() and (
                    i > 0 or word.isupper() or (i + 1 < len(words) and words[i + 1][:1].isupper())
                )
                if named and fold_accents(word.lower()) not in self.stopwords:
                    run.extend(pending)
                    pending = []
                    run.append(word)
                elif run and word.lower() in _NAME_LINKS:
                    pending.append(word)
                else:
                    self._close_phrase(run, out)
                    run, pending = [], []
            self._close_phrase(run, out)
        return out

    def _close_phrase(self, run: list[str], out: list[str]) -> None:
        stems = self.stems(self.tokens(" ".join(run)))
        if len(stems) >= 2:
            out.append("_".join(stems))

    def __call__(self, text: str) -> list[str]:
        return self.analyse(text)[1]


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


# An href/src/cite that is neither absolute (scheme:), protocol-relative, nor a fragment.
_RELATIVE_URL = re.compile(
    r"""\b(?:href|src|cite)\s*=\s*["']?(?![a-z][a-z0-9+.-]*:|//|#)""", re.IGNORECASE
)
_URL_ATTRIBUTES = frozenset({"href", "src", "cite"})


def sanitize_html(fragment: str, *, base_url: str = "") -> str:
    """Allowlist-sanitise an HTML fragment (nh3, the Rust ammonia library).

    With ``base_url``, relative links and images are made absolute against it: the
    fragment is republished under another URL, where they would point nowhere. The
    attribute filter (a Python call per attribute) runs only for fragments that have one.
    """
    resolve = None
    if base_url and _RELATIVE_URL.search(fragment):

        def resolve(_tag: str, attribute: str, value: str) -> str:
            if attribute not in _URL_ATTRIBUTES or value.startswith("#"):
                return value
            return urljoin(base_url, value)

    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=resolve,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
