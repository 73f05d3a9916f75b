"""Shared fixtures: real SQLite files, a real replay HTTP server, the real CLI.

Material from ``../shared/data`` (licence-limited, never copied here) is found through
AGGREGATOR_SHARED_DATA or next to the checkout. Tests that need a missing tool or data set
skip locally; CI sets AGGREGATOR_REQUIRE_ALL=1 so that a skip there is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from pg_local import LocalPostgres, create_database, drop_database, pg_bin_dir  # noqa: E402
from replay_server import ReplayServer  # noqa: E402

from aggregator.config import Settings, load_settings  # noqa: E402
from aggregator.store import Store  # noqa: E402

REQUIRE_ALL = os.environ.get("AGGREGATOR_REQUIRE_ALL") == "1"


def need(condition: bool, why: str) -> None:
    """Skip (locally) or fail (CI) when a prerequisite is missing."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required for CI: {why}")
    pytest.skip(why)


def shared_data_dir() -> Path:
    env = os.environ.get("AGGREGATOR_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    need(path.is_dir(), f"shared data not found at {path} (set AGGREGATOR_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def multi_outlet(shared_data: Path) -> Path:
    return shared_data / "feeds" / "multi-outlet-2025-02-10"


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    """Environment for a test instance: its own data dir, no politeness delays, local feeds allowed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGGREGATOR_")}
    for key in ("AGGREGATOR_SHARED_DATA", "AGGREGATOR_REQUIRE_ALL"):
        if key in os.environ:
            env[key] = os.environ[key]
    # Never the bundled list of real outlets: tests fetch nothing but 127.0.0.0/8. A test
    # that wants feeds passes its own AGGREGATOR_FEEDS_FILE.
    no_feeds = tmp / "no-feeds.toml"
    if not no_feeds.exists():
        tmp.mkdir(parents=True, exist_ok=True)
        no_feeds.write_text("# no feeds\n", encoding="utf-8")
    env.update(
        {
            "AGGREGATOR_FEEDS_FILE": str(no_feeds),
            "AGGREGATOR_DATA_DIR": str(tmp / "data"),
            "AGGREGATOR_FETCH_PER_HOST_INTERVAL_SECONDS": "0",
            "AGGREGATOR_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
            "AGGREGATOR_LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL server: AGGREGATOR_TEST_POSTGRES_URL (CI), else one started here.

    Yields an URL through which test databases are created; skips locally (fails in CI)
    when there is neither.
    """
    url = os.environ.get("AGGREGATOR_TEST_POSTGRES_URL")
    server = None
    if not url:
        bin_dir = pg_bin_dir()
        need(bin_dir is not None, "PostgreSQL not installed (no /usr/lib/postgresql/*/bin)")
        assert bin_dir is not None
        server = LocalPostgres(bin_dir).start()
        url = server.url
    yield url
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str, worker_id: str) -> Iterator[str]:
    """A migrated database (per xdist worker) that each test's database is copied from."""
    import sqlalchemy as sa

    name = f"tmpl_{worker_id}_{os.getpid()}"
    url = create_database(postgres_admin_url, name)
    Store(url).close()  # Alembic migrations, on PostgreSQL
    sa.create_engine(url).dispose()
    yield name
    drop_database(postgres_admin_url, name)


@pytest.fixture
def postgres_url(postgres_admin_url: str, postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test (a copy of the migrated template)."""
    import sqlalchemy as sa

    url = create_database(postgres_admin_url, template=postgres_template)
    yield url
    drop_database(postgres_admin_url, sa.make_url(url).database or "")


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def any_db_url(request: pytest.FixtureRequest) -> str | None:
    """Both backends: None (the settings' own SQLite file) or a fresh PostgreSQL database.

    A test module runs on both by overriding ``db_url``: ``def db_url(any_db_url): ...``.
    """
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db_url() -> str | None:
    """The database of ``settings``/``store``: None is the SQLite file in the data dir."""
    return None


@pytest.fixture
def make_settings(tmp_path: Path, db_url: str | None) -> Callable[..., Settings]:
    """Settings for a test: defaults + a private data dir; keyword args are env overrides."""

    def make(**overrides: str) -> Settings:
        env = base_env(tmp_path)
        if db_url is not None:
            env["AGGREGATOR_DATABASE_URL"] = db_url
        env.update({f"AGGREGATOR_{k.upper()}": str(v) for k, v in overrides.items()})
        return load_settings(env=env)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.database.url)
    yield s
    s.close()


@pytest.fixture
def replay() -> Iterator[Callable[[Path], ReplayServer]]:
    """Start replay servers over folders of saved feeds; all are stopped after the test."""
    servers: list[ReplayServer] = []

    def start(root: Path, **kwargs: object) -> ReplayServer:
        server = ReplayServer(root, **kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(
    *args: str, env: dict[str, str], check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``aggregator ARGS`` as a user would, in a subprocess."""
    proc = subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"aggregator {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def wait_for_http(url: str, timeout: float = 20.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"server at {url} did not start within {timeout} s")


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, in a background thread."""

    def __init__(self, app: object, port: int | None = None) -> None:
        import threading

        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live_app(settings: Settings, store: Store) -> Iterator[LiveServer]:
    from aggregator.web import create_app

    server = LiveServer(create_app(settings, store)).start()
    yield server
    server.stop()


@pytest.fixture
def serve_app(
    make_settings: Callable[..., Settings],
) -> Iterator[Callable[..., tuple[LiveServer, Settings]]]:
    """Start the real app under uvicorn on a free port, with settings whose public URL is
    that port (feeds' self and next links work) plus ``overrides``; stopped after the test.
    """
    from aggregator.web import create_app

    servers: list[LiveServer] = []

    def start(store: Store, **overrides: str) -> tuple[LiveServer, Settings]:
        port = free_port()
        settings = make_settings(server_port=str(port), **overrides)
        server = LiveServer(create_app(settings, store), port=port).start()
        servers.append(server)
        return server, settings

    yield start
    for server in servers:
        server.stop()
