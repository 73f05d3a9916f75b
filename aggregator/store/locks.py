"""Named leases in the ``locks`` table: one holder at a time, lost if not renewed.

A row (name, owner, expires_at) is the lock. Leases, not session advisory locks: they work
the same on SQLite and PostgreSQL, behind pgbouncer (transaction pooling), and across
machines; a holder that dies stops renewing and the lock is free once it expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.store.entries import insert_ignore
from aggregator.store.schema import locks


def acquire(conn: Connection, name: str, owner: str, now: datetime, ttl_seconds: float) -> bool:
    """Take or renew the lock ``name`` for ``owner``; False when someone else holds it."""
    expires = now + timedelta(seconds=ttl_seconds)
    row = conn.execute(sa.select(locks).where(locks.c.name == name).with_for_update()).first()
    if row is None:
        # Two first takers at once: the primary key lets one insert win; the other sees
        # the winner's row below.
        insert_ignore(
            conn,
            locks,
            [{"name": name, "owner": owner, "acquired_at": now, "expires_at": expires}],
            ["name"],
        )
        return holder(conn, name) == owner
    if row.owner != owner and row.expires_at > now:
        return False
    values: dict[str, object] = {"owner": owner, "expires_at": expires}
    if row.owner != owner:
        values["acquired_at"] = now
    conn.execute(locks.update().where(locks.c.name == name).values(**values))
    return True


def release(conn: Connection, name: str, owner: str) -> None:
    conn.execute(locks.delete().where(locks.c.name == name, locks.c.owner == owner))


def holder(conn: Connection, name: str) -> str | None:
    return conn.scalar(sa.select(locks.c.owner).where(locks.c.name == name))
