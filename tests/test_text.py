"""French text cleaning and analysis: tiny inline corpora, invariants."""

from __future__ import annotations

from aggregator.config import load_settings
from aggregator.text import (
    FrenchAnalyzer,
    clean_text,
    fold_accents,
    html_to_text,
    load_stopwords,
    sanitize_html,
)


def analyzer() -> FrenchAnalyzer:
    return FrenchAnalyzer(load_stopwords(load_settings(env={}).cluster.stopwords_file))


def test_clean_text_removes_xml_illegal_characters_and_normalises() -> None:
    assert clean_text("  E\u0301lection\x00\x0b  à\u00a0Paris ") == "Élection à Paris"


def test_html_to_text_strips_tags_and_decodes_entities_even_double_escaped() -> None:
    assert html_to_text("<p>Le <b>président</b>&nbsp;parle</p>") == "Le président parle"
    assert html_to_text("&lt;img src=x onerror=alert(1)&gt;Titre") == "Titre"
    assert html_to_text("Caf&amp;eacute; cr&#232;me") == "Café crème"
    assert html_to_text("<script>alert(1)</script>Texte") == "Texte"


def test_analyzer_splits_elisions_drops_stop_words_and_stems() -> None:
    a = analyzer()
    tokens = a("L’armée d’Ukraine jusqu’à Kyiv : qu'il parte")
    assert "arme" in tokens or "armee" in tokens
    assert "ukrain" in tokens
    assert "kyiv" in tokens
    assert not {"l", "d", "jusqu", "qu", "il", "a"} & set(tokens)


def test_analyzer_folds_accents_for_matching_only() -> None:
    a = analyzer()
    assert a("Élysée élections") == a("Elysee elections")
    assert fold_accents("Élysée") == "Elysee"


def test_analyzer_is_deterministic_and_skips_small_numbers_but_keeps_years() -> None:
    a = analyzer()
    text = "Les 3 mines livrées en 2024 à Kyiv"
    assert a(text) == a(text)
    assert "2024" in a(text)
    assert "3" not in a(text)


def test_sanitize_html_keeps_text_and_links_but_no_script() -> None:
    dirty = (
        '<p onclick="x()">Bonjour <a href="javascript:alert(1)">a</a>'
        '<a href="https://ok.fr/">b</a><script>alert(1)</script>'
        '<iframe srcdoc="<script>x</script>"></iframe><img src=x onerror=alert(1)></p>'
    )
    clean = sanitize_html(dirty)
    for bad in ("onclick", "javascript:", "<script", "iframe", "onerror", "srcdoc"):
        assert bad not in clean
    assert 'href="https://ok.fr/"' in clean
    assert "Bonjour" in clean


def test_mojibake_is_repaired_and_correct_french_is_untouched(shared_data) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from aggregator.errors import ParseError
    from aggregator.parse import parse_feed
    from aggregator.text import repair_text

    assert (
        repair_text("Ã‰lection prÃ©sidentielle : lâ€™Ã©tat") == "Élection présidentielle : l’état"
    )
    assert repair_text("Â« Bonjour Â»") == "« Bonjour »"
    correct = "Élection présidentielle : l’État, château, âge, Ça, « guillemets », Œuvre"
    assert repair_text(correct) == correct
    assert repair_text("e\u0301te\u0301\x0b") == "été"  # NFC, XML-illegal removed
    # A feed declared ISO-8859-1 that sends UTF-8 bytes: feedparser raises nothing.
    body = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel><title>T</title>'
        "<item><title>Élection à l’Élysée</title><description>&lt;p&gt;Déjà vu&lt;/p&gt;"
        "</description><guid>g</guid></item></channel></rss>"
    ).encode()
    [entry] = parse_feed(body).entries
    assert entry.title == "Élection à l’Élysée"
    assert entry.summary_text == "Déjà vu" and "Déjà vu" in entry.summary_html
    # Real French feeds (correct UTF-8): not one title or summary is changed.
    seen = changed = 0
    for path in sorted(Path(shared_data, "feeds").rglob("*.xml")):
        try:
            parsed = parse_feed(path.read_bytes())
        except ParseError:  # the saved HTML pages
            continue
        for e in parsed.entries:
            for text in (e.title, e.summary_text):
                seen += 1
                changed += repair_text(text) != text
    print(f"{seen} real titles and summaries, {changed} changed by mojibake repair")
    assert seen > 5000 and changed == 0
