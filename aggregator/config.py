"""Settings: the bundled TOML defaults, overlaid by the user's file, then by the environment.

The bundled ``config/aggregator.toml`` is the single source of defaults (it documents every
key). A user file only lists what it changes; ``AGGREGATOR_<SECTION>_<KEY>`` variables win
over both. The result is a frozen ``Settings`` validated once and passed explicitly.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator import __version__
from aggregator.errors import ConfigError
from aggregator.models import FeedSpec

ENV_PREFIX = "AGGREGATOR_"
CONFIG_ENV = "AGGREGATOR_CONFIG"


def defaults_dir() -> Path:
    """Where the bundled config lives: inside the wheel, or ``config/`` in a checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "_defaults"
    if (packaged / "aggregator.toml").is_file():
        return packaged
    return here.parent / "config"


@dataclass(frozen=True, slots=True)
class DataSettings:
    dir: Path


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str
    port: int
    public_url: str

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class FeedsSettings:
    file: Path


@dataclass(frozen=True, slots=True)
class FetchSettings:
    interval_minutes: float
    tick_seconds: float
    max_interval_hours: float
    timeout_seconds: float
    connect_timeout_seconds: float
    max_body_bytes: int
    max_entries_per_feed: int
    concurrency: int
    per_host_interval_seconds: float
    max_redirects: int
    failing_after: int
    user_agent: str
    contact_url: str
    allow_private_networks: bool
    allowed_networks: str
    parse_workers: int
    parse_memory_mb: int
    parse_timeout_seconds: float
    lease_seconds: float


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    window_hours: float
    topic_window_hours: float
    interval_minutes: float
    stopwords_file: Path
    aliases_file: Path
    rebuild_interval_hours: float


@dataclass(frozen=True, slots=True)
class PublishSettings:
    title: str
    max_items: int
    tag_authority: str
    websub_hub: str
    version_check_seconds: float
    max_age_seconds: int


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    max_age_days: float
    interval_hours: float


@dataclass(frozen=True, slots=True)
class DeskSettings:
    session_hours: float
    review_hours: float
    trust_forwarded_proto: bool


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str
    format: str


@dataclass(frozen=True, slots=True)
class Settings:
    data: DataSettings
    database: DatabaseSettings
    server: ServerSettings
    feeds: FeedsSettings
    fetch: FetchSettings
    cluster: ClusterSettings
    publish: PublishSettings
    retention: RetentionSettings
    log: LogSettings
    desk: DeskSettings
    # The user file that was read, if any (for messages).
    config_file: Path | None = None

    def replace(self, **sections: Any) -> Settings:
        """Return a copy with some keys changed: ``replace(fetch={"concurrency": 2})``."""
        changed = {
            name: dataclasses.replace(getattr(self, name), **values)
            for name, values in sections.items()
        }
        return dataclasses.replace(self, **changed)


_SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Settings)[f.name]
    for f in dataclasses.fields(Settings)
    if f.name != "config_file"
}


def _field_types(section_cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def _coerce(where: str, kind: type, value: Any, base_dir: Path) -> Any:
    """Convert a TOML or environment value to the declared type, or fail naming the key."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    elif kind is Path and isinstance(value, str) and value:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base_dir / path)
    raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")


def _overlay(
    merged: dict[str, dict[str, Any]], doc: Mapping[str, Any], origin: str, base_dir: Path
) -> None:
    for section, table in doc.items():
        if section not in _SECTIONS:
            raise ConfigError(f"{origin}: unknown section [{section}]")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{origin}: [{section}] must be a table")
        types = _field_types(_SECTIONS[section])
        for key, value in table.items():
            if key not in types:
                raise ConfigError(f"{origin}: unknown key '{key}' in [{section}]")
            merged[section][key] = _coerce(
                f"{origin}: {section}.{key}", types[key], value, base_dir
            )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e


def _env_overrides(merged: dict[str, dict[str, Any]], env: Mapping[str, str]) -> None:
    """Apply AGGREGATOR_<SECTION>_<KEY>; a known section with an unknown key is an error."""
    cwd = Path.cwd()
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section = next((s for s in _SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            continue  # AGGREGATOR_CONFIG, AGGREGATOR_SHARED_DATA and friends
        key = rest[len(section) + 1 :]
        types = _field_types(_SECTIONS[section])
        if key not in types:
            raise ConfigError(
                f"environment: unknown setting {name} (no key '{key}' in [{section}])"
            )
        merged[section][key] = _coerce(f"environment: {name}", types[key], value, cwd)


def parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``"10.0.0.0/8, fd00::/8"`` -> networks; raise ValueError on a malformed range."""
    return tuple(ipaddress.ip_network(part.strip()) for part in value.split(",") if part.strip())


def _networks_ok(value: str) -> bool:
    try:
        parse_networks(value)
    except ValueError:
        return False
    return True


def _validate(s: Settings) -> None:
    checks = [
        (1 <= s.server.port <= 65535, "server.port must be between 1 and 65535"),
        (s.fetch.interval_minutes > 0, "fetch.interval_minutes must be positive"),
        (s.fetch.tick_seconds > 0, "fetch.tick_seconds must be positive"),
        (s.fetch.timeout_seconds > 0, "fetch.timeout_seconds must be positive"),
        (s.fetch.connect_timeout_seconds > 0, "fetch.connect_timeout_seconds must be positive"),
        (s.fetch.max_body_bytes > 0, "fetch.max_body_bytes must be positive"),
        (s.fetch.max_entries_per_feed > 0, "fetch.max_entries_per_feed must be positive"),
        (s.fetch.concurrency >= 1, "fetch.concurrency must be at least 1"),
        (s.fetch.per_host_interval_seconds >= 0, "fetch.per_host_interval_seconds must be >= 0"),
        (0 <= s.fetch.max_redirects <= 20, "fetch.max_redirects must be between 0 and 20"),
        (s.fetch.failing_after >= 1, "fetch.failing_after must be at least 1"),
        (s.fetch.parse_workers >= 1, "fetch.parse_workers must be at least 1"),
        (s.fetch.parse_memory_mb >= 64, "fetch.parse_memory_mb must be at least 64"),
        (s.fetch.parse_timeout_seconds > 0, "fetch.parse_timeout_seconds must be positive"),
        (_networks_ok(s.fetch.allowed_networks), "fetch.allowed_networks must list CIDR ranges"),
        (s.fetch.lease_seconds > 0, "fetch.lease_seconds must be positive"),
        (s.cluster.window_hours > 0, "cluster.window_hours must be positive"),
        (s.cluster.topic_window_hours > 0, "cluster.topic_window_hours must be positive"),
        (s.cluster.interval_minutes > 0, "cluster.interval_minutes must be positive"),
        (s.cluster.rebuild_interval_hours >= 0, "cluster.rebuild_interval_hours must be >= 0"),
        (s.publish.max_items >= 1, "publish.max_items must be at least 1"),
        (s.publish.version_check_seconds >= 0, "publish.version_check_seconds must be >= 0"),
        (s.publish.max_age_seconds >= 0, "publish.max_age_seconds must be >= 0"),
        (s.retention.max_age_days >= 0, "retention.max_age_days must be >= 0"),
        (s.retention.interval_hours > 0, "retention.interval_hours must be positive"),
        (s.desk.session_hours > 0, "desk.session_hours must be positive"),
        (s.desk.review_hours > 0, "desk.review_hours must be positive"),
        (s.log.format in {"text", "json"}, "log.format must be 'text' or 'json'"),
        (
            s.log.level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"},
            "log.level must be DEBUG, INFO, WARNING, ERROR or CRITICAL",
        ),
        ("://" in s.database.url, "database.url must be a SQLAlchemy URL"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def load_settings(
    config_file: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from the bundled defaults, ``config_file`` and ``env``."""
    env = os.environ if env is None else env
    if config_file is None and env.get(CONFIG_ENV):
        config_file = env[CONFIG_ENV]
    merged: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    bundled = defaults_dir() / "aggregator.toml"
    _overlay(merged, _read_toml(bundled), str(bundled), bundled.parent)
    user_path: Path | None = None
    if config_file:
        user_path = Path(config_file).expanduser().resolve()
        _overlay(merged, _read_toml(user_path), str(user_path), user_path.parent)
    _env_overrides(merged, env)

    data_dir = merged["data"]["dir"]
    merged["database"]["url"] = merged["database"]["url"].replace("{data_dir}", str(data_dir))
    merged["fetch"]["user_agent"] = (
        merged["fetch"]["user_agent"]
        .replace("{version}", __version__)
        .replace("{contact_url}", merged["fetch"]["contact_url"])
    )
    try:
        sections = {name: cls(**merged[name]) for name, cls in _SECTIONS.items()}
    except TypeError as e:  # a key missing from the bundled defaults: a packaging bug
        raise ConfigError(f"incomplete configuration: {e}") from e
    settings = Settings(**sections, config_file=user_path)
    _validate(settings)
    return settings


def load_feed_list(path: Path) -> list[FeedSpec]:
    """Read ``[[feeds]]`` tables (url, outlet, section); duplicates and bad URLs are errors."""
    doc = _read_toml(path)
    unknown = set(doc) - {"feeds"}
    if unknown:
        raise ConfigError(f"{path}: unknown key '{sorted(unknown)[0]}' (expected [[feeds]] tables)")
    feeds: list[FeedSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(doc.get("feeds", []), start=1):
        where = f"{path}: feed #{i}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: must be a table")
        extra = set(item) - {"url", "outlet", "section"}
        if extra:
            raise ConfigError(f"{where}: unknown key '{sorted(extra)[0]}'")
        url = item.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: 'url' must be an http(s) URL, got {url!r}")
        outlet = item.get("outlet", "")
        section = item.get("section", "")
        if not isinstance(outlet, str) or not isinstance(section, str):
            raise ConfigError(f"{where}: 'outlet' and 'section' must be strings")
        if url in seen:
            raise ConfigError(f"{where}: duplicate url {url}")
        seen.add(url)
        feeds.append(FeedSpec(url=url, outlet=outlet, section=section))
    return feeds
