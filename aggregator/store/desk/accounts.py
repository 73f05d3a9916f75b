"""Editors' accounts, sessions and sign-in attempts.

Passwords are hashed with argon2id (argon2-cffi's defaults follow RFC 9106's second
recommended profile); only hashes are stored and they never leave this module. Session
cookies carry a random token whose SHA-256 is stored, so a copy of the database yields no
live session.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection

from aggregator.errors import AggregatorError, InputError
from aggregator.models import DeskSession, User
from aggregator.store.schema import login_attempts, sessions, users

_HASHER = PasswordHasher()
# Compared against when the name is unknown, so that a wrong name costs as much time as a
# wrong password and timing does not reveal which accounts exist.
_DUMMY_HASH = _HASHER.hash("aggregator: no such user")
# NIST SP 800-63B 5.1.1.2: memorised secrets of at least 8 characters; we refuse less.
MIN_PASSWORD_CHARS = 8
# argon2 hashes any length, but a megabyte of "password" is an abuse, not a secret.
MAX_PASSWORD_CHARS = 1024
# Letters, digits and . _ @ - (a login, not a display name); the column is 80 wide.
_NAME = re.compile(r"^[\w.@-]{1,80}$")
# Sign-in throttling, after OWASP's Authentication Cheat Sheet ("account lockout"): at
# most this many failures per name, and per client address, within the window.
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_NAME = 5
MAX_FAILURES_PER_CLIENT = 20
# Attempts older than this are deleted (they only matter within LOGIN_WINDOW).
ATTEMPTS_KEPT = timedelta(days=1)
TOKEN_BYTES = 32


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InputError(
            f"invalid user name {name!r}: 1 to 80 letters, digits, '.', '_', '@' or '-'"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InputError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")
    return password


def _to_user(row: Any) -> User:
    return User(
        id=row.id,
        name=row.name,
        disabled=row.disabled,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


def add_user(conn: Connection, name: str, password: str, now: datetime) -> User:
    check_name(name)
    hashed = _HASHER.hash(check_password(password))
    if conn.scalar(sa.select(users.c.id).where(users.c.name == name)) is not None:
        raise InputError(f"user {name!r} already exists")
    conn.execute(
        users.insert().values(name=name, password_hash=hashed, created_at=now, updated_at=now)
    )
    return _to_user(conn.execute(sa.select(users).where(users.c.name == name)).one())


def _require(conn: Connection, name: str) -> Any:
    row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None:
        raise InputError(f"no user named {name!r}")
    return row


def set_password(conn: Connection, name: str, password: str, now: datetime) -> None:
    """Change a password and end the user's sessions (a reset is often a response to a leak)."""
    row = _require(conn, name)
    hashed = _HASHER.hash(check_password(password))
    conn.execute(
        users.update().where(users.c.id == row.id).values(password_hash=hashed, updated_at=now)
    )
    conn.execute(sessions.delete().where(sessions.c.user_id == row.id))


def set_disabled(conn: Connection, name: str, disabled: bool, now: datetime) -> None:
    row = _require(conn, name)
    conn.execute(
        users.update().where(users.c.id == row.id).values(disabled=disabled, updated_at=now)
    )
    if disabled:
        conn.execute(sessions.delete().where(sessions.c.user_id == row.id))


def list_users(conn: Connection) -> list[User]:
    return [_to_user(r) for r in conn.execute(sa.select(users).order_by(users.c.name))]


def login_blocked(conn: Connection, name: str, client: str, now: datetime) -> bool:
    """Too many recent failures for this name or from this client: refuse without checking."""
    since = now - LOGIN_WINDOW
    failures = sa.select(sa.func.count()).where(
        login_attempts.c.at >= since, login_attempts.c.success.is_(False)
    )
    by_name = conn.scalar(failures.where(login_attempts.c.name == name[:80])) or 0
    by_client = conn.scalar(failures.where(login_attempts.c.client == client[:64])) or 0
    return by_name >= MAX_FAILURES_PER_NAME or by_client >= MAX_FAILURES_PER_CLIENT


class LoginBlocked(AggregatorError):
    """Too many recent failed sign-ins for this name or client."""


def credentials(conn: Connection, name: str, client: str, now: datetime) -> Any:
    """The account row to check a password against (None if unknown), unless throttled."""
    if login_blocked(conn, name, client, now):
        raise LoginBlocked(f"too many failed sign-ins for {name!r} or from {client!r}")
    return conn.execute(sa.select(users).where(users.c.name == name[:80])).first()


def verify_password(row: Any, password: str) -> bool:
    """Slow on purpose (argon2), so it runs outside any transaction."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        _HASHER.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return row is not None and not row.disabled


def record_sign_in(
    conn: Connection, row: Any, name: str, password: str, client: str, ok: bool, now: datetime
) -> User | None:
    """Record the attempt; on success stamp the login and rehash if argon2's parameters moved."""
    conn.execute(
        login_attempts.insert().values(name=name[:80], client=client[:64], at=now, success=ok)
    )
    conn.execute(login_attempts.delete().where(login_attempts.c.at < now - ATTEMPTS_KEPT))
    if not ok or row is None:
        return None
    values: dict[str, Any] = {"last_login_at": now}
    if _HASHER.check_needs_rehash(row.password_hash):
        values["password_hash"] = _HASHER.hash(password)
    conn.execute(users.update().where(users.c.id == row.id).values(**values))
    return _to_user(conn.execute(sa.select(users).where(users.c.id == row.id)).one())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_session(
    conn: Connection, user_id: int, now: datetime, lifetime: timedelta
) -> tuple[str, DeskSession]:
    """A new session; returns the cookie token (only its hash is stored)."""
    conn.execute(sessions.delete().where(sessions.c.expires_at < now))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    csrf = secrets.token_urlsafe(TOKEN_BYTES)
    conn.execute(
        sessions.insert().values(
            token_hash=token_hash(token),
            user_id=user_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    found = session_by_token(conn, token, now)
    assert found is not None
    return token, found


def session_by_token(conn: Connection, token: str, now: datetime) -> DeskSession | None:
    """The live session for a cookie token, if its user is still enabled."""
    if not token or len(token) > 128:
        return None
    row = conn.execute(
        sa.select(sessions.c.csrf_token, sessions.c.expires_at, users)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.token_hash == token_hash(token), sessions.c.expires_at > now)
    ).first()
    if row is None or row.disabled:
        return None
    return DeskSession(user=_to_user(row), csrf_token=row.csrf_token, expires_at=row.expires_at)


def delete_session(conn: Connection, token: str) -> None:
    conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash(token)))
