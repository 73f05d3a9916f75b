"""Readable French labels: a story's most central headline, its key words, and a topic's
recurring key phrase with the accents and capitals of the headlines it came from."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence

from aggregator.cluster.features import Doc, Vector
from aggregator.text import FrenchAnalyzer, fold_accents

KEY_TERMS = 6
# Topic labels are phrases of one to this many words.
MAX_PHRASE_WORDS = 4
# Headline segments: kickers ("Guerre en Ukraine : ..."), quotes, clauses.
_SEGMENT = re.compile(r"[:.!?«»\"“”—–|()\[\],;]|\s-\s")
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.U)
_APOSTROPHE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def lead_of(docs: Sequence[Doc], members: Sequence[int]) -> int:
    """The most central headline: the member sharing most words with the others.

    Computed from the members alone (not from window-wide weights), so a story's label
    moves only when its members change; ties go to the earliest.
    """
    counts: Counter[str] = Counter()
    for i in members:
        counts.update(set(docs[i].plain))

    def centrality(i: int) -> float:
        words = set(docs[i].plain)
        return sum(counts[w] for w in words) / math.sqrt(len(words)) if words else 0.0

    return max(members, key=lambda i: (round(centrality(i), 6), -i))


def key_terms(total: Vector, docs: Sequence[Doc], members: Sequence[int]) -> tuple[str, ...]:
    """The story's heaviest terms, each shown as the word its articles use most."""
    words: dict[str, Counter[str]] = defaultdict(Counter)
    for i in members:
        for stem, word in docs[i].surface:
            words[stem][word] += 1
    ranked = sorted(total.items(), key=lambda tw: (-tw[1], tw[0]))
    out = []
    for stem, _ in ranked:
        if stem in words:
            out.append(min(words[stem].items(), key=lambda wc: (-wc[1], wc[0]))[0])
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
    spellings: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for n, titles in enumerate(story_titles):
        summaries = story_summaries[n] if n < len(story_summaries) else ()
        found: dict[tuple[str, ...], float] = {}
        for texts, w in ((summaries, 0.5), (titles, 1.0)):
            for text in texts:
                for key, spelling in _phrases(text, analyzer):
                    if w < 1.0 and len(key) > 1:
                        continue  # summaries ramble: only their words count
                    spellings[key][spelling] += 1
                    found[key] = w
        weight.update(found)
        stories_with.update(found.keys())
    if not weight:
        return ""

    def score(key: tuple[str, ...]) -> tuple[bool, float, int, int, str]:
        return (
            stories_with[key] >= 2,
            weight[key] * (1.0 + 0.5 * (len(key) - 1)),
            len(key),
            sum(spellings[key].values()),
            "|".join(key),
        )

    best = max(weight, key=score)
    text = min(spellings[best].items(), key=lambda tc: (_shouting(tc[0]), -tc[1], tc[0]))[0]
    return text[:1].upper() + text[1:]


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) > 3 and all(c.isupper() for c in letters)


def _phrases(title: str, analyzer: FrenchAnalyzer) -> list[tuple[tuple[str, ...], str]]:
    text = unicodedata.normalize("NFC", title).translate(_APOSTROPHE)
    out = []
    for segment in _SEGMENT.split(text):
        words = [m.group() for m in _WORD.finditer(segment)]
        stems = []
        for word in words:
            kept = analyzer.tokens(word)
            stems.append(analyzer.stems(kept)[0] if len(kept) == 1 else "")
        for start in range(len(words)):
            if not stems[start]:
                continue
            for end in range(start, min(start + MAX_PHRASE_WORDS, len(words))):
                if not stems[end]:
                    continue
                key = tuple(s for s in stems[start : end + 1] if s)
                if all(fold_accents(k).isdigit() for k in key):
                    continue
                out.append((key, " ".join(words[start : end + 1])))
    return out
