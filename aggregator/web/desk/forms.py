"""Reading the desk's forms and query strings strictly: bounded sizes, expected types,
French messages for editors. Anything unexpected is a ``Problem`` (a 4xx), never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from starlette.requests import Request

from aggregator.errors import DecisionError
from aggregator.text import clean_text

# The largest form the desk sends is a split selection: 500 ids of up to 12 digits with
# their field names fit in 16 KiB; 64 KiB leaves room and stops abuse early.
MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 1_000
# Story and topic ids: "s" or "t" and 15 hex digits today; allow what clustering may
# produce later (letters, digits, - and _, up to the column's 32 characters).
_UID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# Entry and decision ids are database integers (64-bit on PostgreSQL).
MAX_ID = 2**63 - 1
_STATUS_OF_REASON = {"invalid": 400, "not_found": 404, "conflict": 409}


class Problem(Exception):
    """A request the desk refuses, with the status and the French message to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @classmethod
    def from_decision(cls, error: DecisionError) -> Problem:
        return cls(_STATUS_OF_REASON.get(error.reason, 400), str(error))


class Fields:
    """Decoded form or query fields with typed, bounded getters."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def raw(self, name: str) -> str | None:
        values = self.all(name)
        if len(values) > 1:
            raise Problem(400, f"Le champ « {name} » est donné plusieurs fois.")
        return values[0] if values else None

    def text(self, name: str, *, max_chars: int, required: bool = True) -> str:
        value = self.raw(name)
        if value is None or not clean_text(value):
            if required:
                raise Problem(400, f"Le champ « {name} » est obligatoire.")
            return ""
        if len(value) > max_chars:
            raise Problem(
                400, f"Le champ « {name} » est trop long ({max_chars} caractères au plus)."
            )
        return value

    def integer(self, name: str, *, low: int = 1, high: int = MAX_ID) -> int:
        return _integer(name, self.raw(name), low, high)

    def optional_integer(self, name: str, *, low: int, high: int) -> int | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        return _integer(name, value, low, high)

    def integers(self, name: str, *, limit: int) -> list[int]:
        values = self.all(name)
        if len(values) > limit:
            raise Problem(400, f"Trop de valeurs pour « {name} » ({limit} au plus).")
        return [_integer(name, v, 1, MAX_ID) for v in values]

    def uid(self, name: str, *, required: bool = True) -> str | None:
        value = (self.raw(name) or "").strip()
        if not value:
            if required:
                raise Problem(400, f"Le champ « {name} » est obligatoire.")
            return None
        return check_uid(value, name)

    def choice(self, name: str, options: Mapping[str, object], default: str) -> str:
        value = self.raw(name)
        if value is None or value == "":
            return default
        if value not in options:
            raise Problem(400, f"Valeur inconnue pour « {name} » : {value[:40]}")
        return value

    def flag(self, name: str) -> bool:
        return self.choice(name, {"0": False, "1": True}, "0") == "1"


def _integer(name: str, value: str | None, low: int, high: int) -> int:
    if value is None or not value.strip():
        raise Problem(400, f"Le champ « {name} » est obligatoire.")
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise Problem(400, f"« {name} » doit être un nombre entier, pas « {text[:40]} ».")
    number = int(text)
    if not low <= number <= high:
        raise Problem(400, f"« {name} » doit être compris entre {low} et {high}.")
    return number


def check_uid(value: str, name: str = "identifiant") -> str:
    if not _UID.match(value):
        raise Problem(400, f"Identifiant invalide pour « {name} » : {value[:40]}")
    return value


def query_fields(request: Request) -> Fields:
    raw = request.url.query
    if len(raw) > MAX_FORM_BYTES:
        raise Problem(414, "Adresse trop longue.")
    return _parse(raw)


async def form_fields(request: Request) -> Fields:
    """The URL-encoded body of a POST, at most MAX_FORM_BYTES, read before anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Problem(415, "Formulaire attendu (application/x-www-form-urlencoded).")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise Problem(413, "Formulaire trop volumineux.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise Problem(413, "Formulaire trop volumineux.")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as e:
        raise Problem(400, "Formulaire illisible : encodage UTF-8 attendu.") from e
    return _parse(text)


def _parse(text: str) -> Fields:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (ValueError, UnicodeDecodeError) as e:
        raise Problem(400, "Formulaire illisible.") from e
    return Fields(pairs)
