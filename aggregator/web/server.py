"""Running the app under uvicorn with a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from aggregator.errors import AggregatorError

log = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before starting so 'address already in use' is a clear error, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise AggregatorError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set ``stop``; uvicorn re-raises the signal after its own shutdown."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def serve(
    app: Starlette, host: str, port: int, stop: threading.Event, log_level: str = "info"
) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` set by someone else)."""
    sock = bind_socket(host, port)
    config = uvicorn.Config(
        app, log_level=log_level.lower(), access_log=False, lifespan="off",
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    watcher = _watch(stop, lambda: setattr(server, "should_exit", True))
    install_stop_handlers(stop)
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        watcher.join(timeout=2)
        sock.close()


def wait_for_stop(stop: threading.Event) -> None:
    """Block the main thread until SIGINT/SIGTERM when there is no HTTP server."""
    install_stop_handlers(stop)
    while not stop.wait(0.5):
        pass


def _watch(stop: threading.Event, action: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        stop.wait()
        action()

    thread = threading.Thread(target=run, name="stop-watcher", daemon=True)
    thread.start()
    return thread
