"""Entries: stored once per outlet, linked to every section feed that carried them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from aggregator.models import Entry, ParsedEntry, Source
from aggregator.store.schema import entries, entry_sources

# SQLite's default limit on bound parameters is 32766 (3.32+); stay far below it.
CHUNK = 500

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignore(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on the unique ``keys``, for SQLite and PostgreSQL."""
    if not rows:
        return
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, rows)


def content_hash(entry: ParsedEntry) -> str:
    digest = hashlib.sha256()
    for part in (entry.title, entry.link, entry.summary_text):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class UpsertReport:
    new_ids: tuple[int, ...]
    updated: int
    seen: int


def upsert_entries(
    conn: Connection, source: Source, parsed: Iterable[ParsedEntry], now: datetime
) -> UpsertReport:
    """Store a feed's entries: new ones inserted, changed ones updated, all linked to ``source``.

    Idempotent: the same batch twice stores nothing new. Safe against a concurrent writer
    inserting the same article (the unique (outlet, key) index arbitrates; ``new_ids``
    are the rows this call inserted). Three statements for a batch of new articles: what
    is known, the insert, the links.
    """
    batch: dict[str, ParsedEntry] = {}
    for item in parsed:
        batch.setdefault(item.key, item)  # duplicate GUIDs inside one fetch: first wins
    if not batch:
        return UpsertReport((), 0, 0)
    outlet = source.outlet
    known = _known(conn, outlet, batch)

    new_rows = []
    updated = 0
    for key, item in batch.items():
        digest = content_hash(item)
        if key in known:
            entry_id, old_digest = known[key]
            if old_digest != digest:
                conn.execute(
                    entries.update()
                    .where(entries.c.id == entry_id)
                    .values(
                        title=item.title,
                        link=item.link,
                        summary_html=item.summary_html,
                        summary_text=item.summary_text,
                        author=item.author,
                        updated_at=item.updated or now,
                        content_hash=digest,
                    )
                )
                updated += 1
            continue
        published = item.published if item.published is not None else now
        new_rows.append(
            {
                "outlet": outlet,
                "key": key,
                "guid": item.guid,
                "link": item.link,
                "title": item.title,
                "summary_html": item.summary_html,
                "summary_text": item.summary_text,
                "author": item.author,
                # Future dates (clock skew, scheduled posts) would pin an item to the top.
                "published_at": min(published, now),
                "published_raw": item.published_raw,
                "updated_at": item.updated,
                "first_seen_at": now,
                "content_hash": digest,
                "source_id": source.id,
            }
        )
    inserted = _insert_new(conn, new_rows)
    ids = {key: entry_id for key, (entry_id, _) in known.items()}
    ids.update(inserted)
    raced = [str(r["key"]) for r in new_rows if r["key"] not in inserted]
    if raced:  # another writer stored them first: link them all the same
        ids.update((key, entry_id) for key, (entry_id, _) in _existing(conn, outlet, raced).items())
    new_ids = tuple(inserted[r["key"]] for r in new_rows if r["key"] in inserted)
    _link_sources(conn, source.id, sorted(set(ids.values())), now)
    return UpsertReport(new_ids=new_ids, updated=updated, seen=len(batch))


_KNOWN = sa.select(entries.c.id, entries.c.key, entries.c.link, entries.c.content_hash)


def _known(
    conn: Connection, outlet: str, batch: dict[str, ParsedEntry]
) -> dict[str, tuple[int, str]]:
    """Keys of ``batch`` already stored: ``key -> (id, hash)``, in one query.

    Stored under the key itself, or under another GUID: some feeds change every GUID on
    every fetch, so a new key whose link is stored for the outlet, under a key absent
    from this fetch, is that article again (the oldest such row). A link that several
    items of the fetch share (a home page) identifies nothing and is not used.
    """
    links: dict[str, list[str]] = {}
    for key, item in batch.items():
        if item.link:
            links.setdefault(item.link, []).append(key)
    single = [link for link, keys in links.items() if len(keys) == 1]
    keys = list(batch)
    rows: dict[int, Any] = {}
    for n in range(0, max(len(keys), len(single)), CHUNK):
        key_part, link_part = keys[n : n + CHUNK], single[n : n + CHUNK]
        # Two index searches in one statement (an OR would make SQLite read the outlet).
        parts = [
            _KNOWN.where(entries.c.outlet == outlet, column.in_(values))
            for column, values in ((entries.c.key, key_part), (entries.c.link, link_part))
            if values
        ]
        for row in conn.execute(sa.union_all(*parts) if len(parts) > 1 else parts[0]):
            rows[row.id] = row
    found = {row.key: (row.id, row.content_hash) for row in rows.values() if row.key in batch}
    wanted = {link: links[link][0] for link in single if links[link][0] not in found}
    moved: dict[str, tuple[int, str]] = {}
    for entry_id in sorted(rows):
        row = rows[entry_id]
        wanted_key = wanted.get(row.link)
        if wanted_key is not None and row.key not in batch and wanted_key not in moved:
            moved[wanted_key] = (row.id, row.content_hash)
    found.update(moved)
    return found


def _insert_new(conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert ``rows`` unless their key is taken; ``key -> id`` of the rows inserted.

    One INSERT ... ON CONFLICT DO NOTHING ... RETURNING per batch (SQLAlchemy's
    "insertmanyvalues"), instead of a statement per row and a query for the ids.
    """
    if not rows:
        return {}
    # Rows in key order: concurrent writers then take the unique index's locks in one
    # order (no deadlock between two sections of one outlet stored at once).
    ordered = sorted(rows, key=lambda r: r["key"])
    if conn.dialect.name == "sqlite":
        return {row.key: row.id for row in conn.execute(_NEW_ENTRIES_SQLITE, ordered)}
    # PostgreSQL: one array per column, unnested. The statement stays short whatever the
    # batch size; a multi-row VALUES of a 10-item feed passes 4 KiB, the size above which
    # psycopg re-parses a query's placeholders on every call (13% of a worker's time).
    columns = tuple(ordered[0])
    arrays = {name: [r[name] for r in ordered] for name in columns}
    return {row.key: row.id for row in conn.execute(_new_entries_pg(columns), arrays)}


def _existing(conn: Connection, outlet: str, keys: list[str]) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for part in chunks(keys):
        query = sa.select(entries.c.key, entries.c.id, entries.c.content_hash).where(
            entries.c.outlet == outlet, entries.c.key.in_(part)
        )
        for row in conn.execute(query):
            found[row.key] = (row.id, row.content_hash)
    return found


def _link_sources(conn: Connection, source_id: int, entry_ids: list[int], now: datetime) -> None:
    """Link entries to the section feed that carried them (first and last seen): one
    upsert statement, compiled once, executed for every row in one call."""
    if not entry_ids:
        return
    stmt = _LINK_UPSERT[conn.dialect.name == "sqlite"]
    rows = [
        {"entry_id": e, "source_id": source_id, "first_seen_at": now, "last_seen_at": now}
        for e in entry_ids
    ]
    conn.execute(stmt, rows)


def _link_upsert(dialect: Any) -> Any:
    stmt = dialect.insert(entry_sources)
    return stmt.on_conflict_do_update(
        index_elements=["entry_id", "source_id"],
        set_={"last_seen_at": stmt.excluded.last_seen_at},
    )


# Built once (by dialect: is it SQLite?): building and cache-keying a statement per
# call was a measurable share of a fetch pass.
_LINK_UPSERT = {True: _link_upsert(sqlite), False: _link_upsert(postgresql)}
_NEW_ENTRIES_SQLITE = (
    sqlite.insert(entries)
    .on_conflict_do_nothing(index_elements=["outlet", "key"])
    .returning(entries.c.key, entries.c.id)
)


@lru_cache(maxsize=4)
def _new_entries_pg(columns: tuple[str, ...]) -> Any:
    """INSERT ... SELECT unnest(:column array), ... for ``columns`` (the rows' keys)."""
    arrays = (
        sa.func.unnest(sa.bindparam(name, type_=postgresql.ARRAY(entries.c[name].type)))
        for name in columns
    )
    return (
        postgresql.insert(entries)
        .from_select(list(columns), sa.select(*arrays))
        .on_conflict_do_nothing(index_elements=["outlet", "key"])
        .returning(entries.c.key, entries.c.id)
    )


def _to_entry(row: Any) -> Entry:
    return Entry(
        id=row.id,
        outlet=row.outlet,
        key=row.key,
        title=row.title,
        link=row.link,
        summary_text=row.summary_text,
        summary_html=row.summary_html,
        published_at=row.published_at,
        first_seen_at=row.first_seen_at,
        source_id=row.source_id,
        author=row.author,
    )


def entries_between(conn: Connection, since: datetime, until: datetime) -> list[Entry]:
    """Entries published in [since, until], oldest first (the order clustering sees them)."""
    query = (
        sa.select(entries)
        .where(entries.c.published_at >= since, entries.c.published_at <= until)
        .order_by(entries.c.published_at, entries.c.id)
    )
    return [_to_entry(r) for r in conn.execute(query)]


def get_entries(conn: Connection, ids: Sequence[int]) -> list[Entry]:
    out: list[Entry] = []
    for part in chunks(list(ids)):
        out.extend(
            _to_entry(r) for r in conn.execute(sa.select(entries).where(entries.c.id.in_(part)))
        )
    return out


def count_entries(conn: Connection) -> int:
    return int(conn.scalar(sa.select(sa.func.count()).select_from(entries)) or 0)
