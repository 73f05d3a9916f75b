"""Engine creation and migrations: the only place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from aggregator.errors import StorageError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Writers wait this long for SQLite's write lock before failing (several processes may
# write: a daemon plus a cron `cluster`, the desk...).
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The lock each SQLite engine's writing threads queue on (see write_transaction).
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
# Arbitrary constant key of the PostgreSQL advisory lock that serialises migrations.
PG_MIGRATION_LOCK = 0x6167_6772


def create_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine; for SQLite: WAL, busy timeout, foreign keys, BEGIN IMMEDIATE on writes."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as e:
        raise StorageError(f"invalid database URL {url!r}") from e
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        # No server-side prepared statements: psycopg prepares a query after 5 runs, and
        # PostgreSQL then settles on a generic plan costed when a table was small. For
        # "outlet = $1 AND key IN (...)" that plan scanned every entry of the outlet
        # (2.9 ms a feed in bench_scale, growing with the archive; 0.1 ms planned per
        # call). Prepared statements also break behind pgbouncer's transaction pooling.
        connect_args["prepare_threshold"] = None
    try:
        return sa.create_engine(
            parsed, echo=echo, pool_pre_ping=True, future=True, connect_args=connect_args
        )
    except (sa.exc.ArgumentError, ImportError) as e:
        raise StorageError(f"cannot use database {parsed.render_as_string()}: {e}") from e


def _sqlite_engine(url: sa.URL, echo: bool) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the data directory for {database}: {e}") from e
    engine = sa.create_engine(
        url,
        echo=echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )
    _WRITE_LOCKS[engine] = threading.RLock()

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see "begin").
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front, so it never fails half-way
        # with SQLITE_BUSY on lock upgrade; readers stay deferred and never block.
        if conn.get_execution_options().get("write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: BEGIN IMMEDIATE on SQLite, plain BEGIN elsewhere.

    On SQLite the threads of one process also queue on a lock of the engine's first:
    SQLite admits one writer, and a thread refused by it sleeps in its busy handler
    (1, 2, 5, 10 ... 100 ms steps) instead of being woken when the writer commits, which
    made two storing threads wait ~7 ms per feed for a 1 ms transaction. Other processes
    still meet the busy timeout.
    """
    writers = _WRITE_LOCKS.get(engine)
    with (
        writers if writers is not None else nullcontext(),
        engine.connect().execution_options(write=True) as conn,
        conn.begin(),
    ):
        yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when several processes start at once."""
    head = head_revision()
    try:
        if current_revision(engine) == head:
            return
        cfg = _alembic_config()
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except sa.exc.OperationalError as e:
        raise StorageError(f"cannot migrate the database: {e.orig}") from e
