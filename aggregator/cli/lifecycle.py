"""Stopping cleanly on SIGTERM/SIGINT: stop taking work, let in-flight work finish for a
short grace, then abandon it.

Abandoning is safe: every feed's fetch is committed in one transaction (a feed cut off
mid-way keeps its old state and is still due), and a clustering run is saved in one
transaction too; the database rolls back whatever was not committed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

import click

log = logging.getLogger(__name__)

# In-flight fetches get this long to finish after SIGTERM (a slow server may hold one for
# [fetch] timeout_seconds); then they are abandoned and the process exits.
SHUTDOWN_GRACE_SECONDS = 2.0
# Exit status of a one-shot command stopped by a signal: 128 + its number (shell
# convention): 143 for SIGTERM, 130 for SIGINT.
EXIT_SIGNAL_BASE = 128


def abandon(message: str, code: int, cleanup: Callable[[], object] | None = None) -> None:
    """Exit now, leaving work threads behind (they hold no commit the database would keep).

    ``cleanup`` runs first, best effort: giving back the feeds this process had claimed,
    so that other workers need not wait for the leases to expire."""
    if cleanup is not None:
        try:
            cleanup()
        except Exception:  # exiting anyway: the leases expire on their own
            log.exception("cleanup before exit failed")
    log.warning("%s", message)
    click.echo(f"aggregator: {message}", err=True)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class OneShotStop:
    """SIGTERM/SIGINT set ``event``; work still running after the grace is abandoned."""

    def __init__(self, what: str, cleanup: Callable[[], object] | None = None) -> None:
        self.what = what
        self.cleanup = cleanup
        self.event = threading.Event()
        self.finished = threading.Event()
        self.exit_code = EXIT_SIGNAL_BASE + signal.SIGTERM

    def install(self) -> OneShotStop:
        signal.signal(signal.SIGTERM, self._handler)
        signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            return
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.exit_code = EXIT_SIGNAL_BASE + signum
        self.event.set()
        threading.Thread(target=self._watchdog, name="stop-watchdog", daemon=True).start()

    def _watchdog(self) -> None:
        if not self.finished.wait(SHUTDOWN_GRACE_SECONDS):
            abandon(f"{self.what} stopped: in-flight work abandoned", self.exit_code, self.cleanup)
