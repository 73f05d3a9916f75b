"""What every command needs, built lazily so ``--help`` works without a database."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aggregator.config import Settings, load_settings
from aggregator.store import Store


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "apscheduler.executors.default", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@dataclass
class AppContext:
    config_file: Path | None
    log_level: str | None = None
    _settings: Settings | None = None
    _store: Store | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file)
            configure_logging(self.log_level or self._settings.log.level, self._settings.log.format)
        return self._settings

    @property
    def store(self) -> Store:
        """The database, migrated, with the feeds file's list applied to it."""
        if self._store is None:
            from aggregator.pipeline.refresh import sync_feed_list

            self._store = Store(self.settings.database.url)
            sync_feed_list(self.settings, self._store)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
