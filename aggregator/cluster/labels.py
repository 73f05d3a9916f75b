"""Readable French labels: a story's most central headline, its key words, and a topic's
recurring key phrase with the accents and capitals of the headlines it came from."""

from __future__ import annotations

import math
import re
import unicodedata
import weakref
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import chain

from aggregator.cluster.features import Doc, Vector
from aggregator.text import FrenchAnalyzer, ascii_apostrophes, fold_accents

KEY_TERMS = 6
# Topic labels are phrases of one to this many words.
MAX_PHRASE_WORDS = 4
# Headline segments: kickers ("Guerre en Ukraine : ..."), quotes, clauses.
_SEGMENT = re.compile(r"[:.!?«»\"“”—–|()\[\],;]|\s-\s")
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.U)
# Typographic apostrophes, replaced by "'" (backquotes and acute accents are kept here).
_APOSTROPHES = ("\u2019", "\u2018", "\u02bc")
# Each analyser's phrases per (text, max_words): a daemon labels the topics of the same
# window every few minutes, and finding phrases is most of a topic label's cost (a warm
# 10k-article run: 1.8 s -> 1.5 s). About 3 KB per text (9,600 texts: +28 MB), so the
# cache is bounded at ~150 MB; two weeks of topic stories fit.
PHRASE_CACHE_SIZE = 50_000
Phrases = tuple[tuple[tuple[str, ...], str], ...]
_phrase_caches: weakref.WeakKeyDictionary[FrenchAnalyzer, dict[tuple[str, int], Phrases]] = (
    weakref.WeakKeyDictionary()
)


def lead_of(docs: Sequence[Doc], members: Sequence[int]) -> int:
    """The most central headline: the member sharing most words with the others.

    Computed from the members alone (not from window-wide weights), so a story's label
    moves only when its members change; ties go to the earliest.
    """
    if len(members) == 1:
        return members[0]
    counts: Counter[str] = Counter()
    for i in members:
        counts.update(set(docs[i].plain))

    def centrality(i: int) -> float:
        words = set(docs[i].plain)
        return sum(counts[w] for w in words) / math.sqrt(len(words)) if words else 0.0

    return max(members, key=lambda i: (round(centrality(i), 6), -i))


def key_terms(total: Vector, docs: Sequence[Doc], members: Sequence[int]) -> tuple[str, ...]:
    """The story's heaviest terms, each shown as the word its articles use most."""
    # (stem, word) occurrences, then each stem of ``total``'s words with their counts.
    pairs = Counter(chain.from_iterable(docs[i].surface for i in members))
    words: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (stem, word), n in pairs.items():
        if stem in total:
            words[stem].append((word, n))
    # Heaviest first, ties by stem: (-weight, stem) tuples sort so as they are.
    ranked = sorted((-w, stem) for stem, w in total.items())
    out = []
    for _, stem in ranked:
        if stem in words:
            out.append(min(words[stem], key=lambda wc: (-wc[1], wc[0]))[0])
        if len(out) == KEY_TERMS:
            break
    return tuple(out)


def topic_label(
    story_titles: Sequence[Sequence[str]],
    analyzer: FrenchAnalyzer,
    story_summaries: Sequence[Sequence[str]] = (),
) -> str:
    """The phrase that recurs in the most stories, longer phrases winning ties.

    Candidates are runs of one to four words inside a headline segment that neither
    start nor end with a stop word, and single words of summaries. They are counted
    once per story (a headline counts 1, a summary alone 0.5), compared by
    their stems (so "guerre en Ukraine" and "Guerre en Ukraine" are one), and shown in
    the spelling used most, first letter capitalised. A phrase of one story never beats
    one that recurs: the label is what the topic's stories have in common.
    """
    weight: Counter[tuple[str, ...]] = Counter()
    stories_with: Counter[tuple[str, ...]] = Counter()
    occurrences: Counter[tuple[str, ...]] = Counter()
    # Every text's phrases, in order, to find the spellings of the winner afterwards.
    found_phrases: list[Phrases] = []
    for n, titles in enumerate(story_titles):
        summaries = story_summaries[n] if n < len(story_summaries) else ()
        found: dict[tuple[str, ...], float] = {}
        # Summaries ramble: only their words count (one-word phrases).
        for texts, w, max_words in ((summaries, 0.5, 1), (titles, 1.0, MAX_PHRASE_WORDS)):
            for text in texts:
                phrases = _phrases(text, analyzer, max_words)
                found_phrases.append(phrases)
                keys = [key for key, _ in phrases]
                occurrences.update(keys)
                found.update(dict.fromkeys(keys, w))
        weight.update(found)
        stories_with.update(found.keys())
    if not weight:
        return ""

    def score(key: tuple[str, ...]) -> tuple[bool, float, int, int, str]:
        return (
            stories_with[key] >= 2,
            weight[key] * (1.0 + 0.5 * (len(key) - 1)),
            len(key),
            occurrences[key],
            "|".join(key),
        )

    # A phrase that recurs beats every phrase that does not (``score``'s first item):
    # when there is one, only those compete.
    recurring = [key for key in weight if stories_with[key] >= 2]
    best = max(recurring or weight, key=score)
    spellings = Counter(
        spelling for phrases in found_phrases for key, spelling in phrases if key == best
    )
    text = min(spellings.items(), key=lambda tc: (_shouting(tc[0]), -tc[1], tc[0]))[0]
    return text[:1].upper() + text[1:]


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) > 3 and all(c.isupper() for c in letters)


def _phrases(title: str, analyzer: FrenchAnalyzer, max_words: int = MAX_PHRASE_WORDS) -> Phrases:
    """``(stems, spelling)`` of every candidate phrase of one to ``max_words`` words, in
    order of their first word, then of their length (cached per analyser)."""
    cache = _phrase_caches.get(analyzer)
    if cache is None:
        cache = _phrase_caches.setdefault(analyzer, {})
    found = cache.get((title, max_words))
    if found is None:
        if len(cache) >= PHRASE_CACHE_SIZE:
            cache.clear()
        found = cache[(title, max_words)] = _find_phrases(title, analyzer, max_words)
    return found


def _find_phrases(title: str, analyzer: FrenchAnalyzer, max_words: int) -> Phrases:
    text = ascii_apostrophes(unicodedata.normalize("NFC", title), _APOSTROPHES)
    analyse = analyzer.analyse
    out = []
    for segment in _SEGMENT.split(text):
        words = _WORD.findall(segment)
        # Positions and stems of the words that analyse (alone, cached) to one stem;
        # phrases start and end on those, and their stems make the key.
        at: list[int] = []
        stems: list[str] = []
        for j, word in enumerate(words):
            kept, kept_stems = analyse(word)
            if len(kept) == 1 and kept_stems[0]:
                at.append(j)
                stems.append(kept_stems[0])
        digits = [fold_accents(s).isdigit() for s in stems]
        n = len(at)
        for a in range(n):
            limit = at[a] + max_words
            all_digits = True
            for b in range(a, n):
                if at[b] >= limit:
                    break
                all_digits = all_digits and digits[b]
                if all_digits:
                    continue
                out.append((tuple(stems[a : b + 1]), " ".join(words[at[a] : at[b] + 1])))
    return tuple(out)
