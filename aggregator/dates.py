"""Dates as French outlets write them: French month and day names, day-first numbers,
``10h00``, zone names feedparser reads as UTC (CET, CEST...), and no zone at all.

``parse_date`` reads one raw string; ``resolve_date`` decides between it and what
feedparser made of the same string. Pure functions, no I/O (zoneinfo reads tzdata once).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

# Dates without a zone from French outlets are Paris wall-clock times.
DEFAULT_ZONE = ZoneInfo("Europe/Paris")

_MONTHS = {
    name: n
    for n, names in enumerate(
        (
            ("janvier", "janv", "jan", "january"),
            ("fevrier", "fevr", "fev", "feb", "february"),
            ("mars", "mar", "march"),
            ("avril", "avr", "apr", "april"),
            ("mai", "may"),
            ("juin", "jun", "june"),
            ("juillet", "juil", "jul", "july"),
            ("aout", "aou", "aug", "august"),
            ("septembre", "sept", "sep", "september"),
            ("octobre", "oct", "october"),
            ("novembre", "nov", "november"),
            ("decembre", "dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_WEEKDAYS = [
    "lundi",
    "lun",
    "mardi",
    "mar",
    "mercredi",
    "mer",
    "jeudi",
    "jeu",
    "vendredi",
    "ven",
    "samedi",
    "sam",
    "dimanche",
    "dim",
    "monday",
    "mon",
    "tuesday",
    "tue",
    "tues",
    "wednesday",
    "wed",
    "thursday",
    "thu",
    "thur",
    "thurs",
    "friday",
    "fri",
    "saturday",
    "sat",
    "sunday",
    "sun",
]
# Zone names and their UTC offsets in hours. feedparser knows UT/GMT/Z and the US names;
# it reads every other name (CET, CEST...) as UTC, which is an hour or two off in France.
_ZONE_HOURS = {
    "z": 0, "ut": 0, "utc": 0, "gmt": 0, "wet": 0, "west": 1, "bst": 1,
    "cet": 1, "cest": 2, "met": 1, "mest": 2, "hnec": 1, "hnee": 2, "eet": 2, "eest": 3,
    "msk": 3, "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6,
    "pst": -8, "pdt": -7, "ast": -4, "adt": -3,
}  # fmt: skip
# Names feedparser gets right: its result is kept for these (and numeric offsets).
_FEEDPARSER_ZONES = frozenset(
    {"z", "ut", "utc", "gmt", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt"}
    | {"ast", "adt", "met", "mest"}
)

_TIME = (
    r"(?P<h>\d{1,2})\s*(?:h|:)\s*(?P<mi>\d{2})?(?:\s*(?::|m(?:in)?)\s*(?P<s>\d{2})(?:[.,]\d+)?)?"
)
_ZONE = r"(?P<zone>[+-]\d{2}:?\d{2}|[+-]\d{1,2}|[a-z]{1,5}(?:\s*[+-]\s*\d{1,2}(?::?\d{2})?)?)"
_TAIL = rf"(?:\s*(?:a\s+)?(?:{_TIME}))?(?:\s*{_ZONE})?"
_PATTERNS = (
    # 2025-03-03T10:00:00+01:00, 2025-03-03 10:00
    re.compile(
        r"(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})"
        r"(?:(?:t|\s+)(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,]\d+)?)?)?"
        rf"(?:\s*{_ZONE})?"
    ),
    # 03/03/2025 10:00 (day first, as in France), 03.03.2025, 03-03-25
    re.compile(rf"(?P<d>\d{{1,2}})[/.-](?P<mo>\d{{1,2}})[/.-](?P<y>\d{{4}}|\d{{2}}){_TAIL}"),
    # 4 mars 2025 10h00, 1er avril 2025, Mon, 03 Mar 2025 10:00:00 CET
    re.compile(rf"(?P<d>\d{{1,2}})(?:er)?\s*(?P<mon>[a-z]+)\.?\s*(?P<y>\d{{4}}){_TAIL}"),
    # March 3, 2025 10:00
    re.compile(rf"(?P<mon>[a-z]+)\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}}){_TAIL}"),
)
_WEEKDAY = re.compile(rf"^(?:{'|'.join(sorted(_WEEKDAYS, key=len, reverse=True))})\b\.?,?\s*")
_OFFSET_AT_END = re.compile(r"(?:[+-]\d{2}:?\d{2}|\d[zZ]|\bGMT|\bUTC?)\s*$")


def _normalise(raw: str) -> str:
    decomposed = unicodedata.normalize("NFKD", raw.strip().lower())
    text = "".join(c for c in decomposed if not unicodedata.combining(c))
    text = re.sub(r"\s+", " ", text.replace(",", " ")).strip()
    text = re.sub(r"^le\s+", "", text)
    return _WEEKDAY.sub("", text).strip()


def _zone(value: str | None) -> tuple[tzinfo | None, bool]:
    """(tzinfo, feedparser handles it); (None, True) for an unknown name; no zone: DEFAULT."""
    if not value:
        return DEFAULT_ZONE, False
    value = value.replace(" ", "")
    match = re.fullmatch(r"([a-z]*)([+-])(\d{1,2}):?(\d{2})?", value)
    if match:
        name, sign, hours, minutes = match.groups()
        if name and name not in ("utc", "gmt", "ut"):
            return None, True
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta >= timedelta(hours=24):
            return None, True
        return timezone(-delta if sign == "-" else delta), not name
    if value in _ZONE_HOURS:
        return timezone(timedelta(hours=_ZONE_HOURS[value])), value in _FEEDPARSER_ZONES
    return None, True


def parse_date(raw: str) -> tuple[datetime, bool] | None:
    """``(UTC datetime, feedparser reads it right)`` for a raw feed date, or None.

    Times without a zone are Europe/Paris: in a spring-forward gap they take the offset
    before the change (02:30 becomes 03:30 CEST); in the autumn fold, the first (summer)
    occurrence.
    """
    text = _normalise(raw)
    if not text or len(text) > 80:
        return None
    for pattern in _PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            break
    else:
        return None
    parts = match.groupdict()
    if parts.get("mon") is not None:
        month = _MONTHS.get(parts["mon"])
        if month is None:
            return None
    else:
        month = int(parts["mo"])
    year = int(parts["y"])
    if year < 100:
        year += 2000
    zone, fp_ok = _zone(parts.get("zone"))
    if zone is None:
        return None
    try:
        local = datetime(
            year,
            month,
            int(parts["d"]),
            int(parts["h"] or 0),
            int(parts["mi"] or 0),
            int(parts["s"] or 0),
            tzinfo=zone,
        )
    except ValueError:
        return None
    return local.astimezone(UTC), fp_ok


def resolve_date(raw: str, from_feedparser: datetime | None) -> datetime | None:
    """The right UTC instant for ``raw``, checking feedparser's own reading of it.

    feedparser is kept for numeric offsets and the zone names it knows; it is recomputed
    when it failed, when the raw string has no zone (feedparser assumes UTC, French
    outlets mean Paris), or when the zone is a name feedparser reads as UTC (CET, CEST).
    """
    if not raw:
        return from_feedparser
    if from_feedparser is not None and _OFFSET_AT_END.search(raw):
        return from_feedparser  # the common case, cheaply: "+0100", "GMT", "Z"
    ours = parse_date(raw)
    if ours is None:
        return from_feedparser
    when, feedparser_ok = ours
    if from_feedparser is not None and feedparser_ok:
        return from_feedparser
    return when
