"""Hostile feed servers for tests: real sockets on 127.0.0.x, never the internet.

``HostileServer`` answers each route from its own loopback address (127.0.0.2,
127.0.0.3, ...) so a refresh pass fetches them in parallel (one request at a time per
host) and the SSRF guard can allow them with ``[fetch] allowed_networks`` while it refuses
``Canary`` on 127.0.0.1, which counts every connection it receives.

``parse_or_crash`` is a parse-worker target (``ParsePool(target=...)``): real parsing,
except that a marker comment makes the worker segfault, exit or exhaust its memory, the
crashes that the pool must turn into one feed error.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

Writer = Callable[[socket.socket], None]


def rss(title: str, items: int, *, extra: str = "") -> bytes:
    """A small valid RSS 2.0 feed with ``items`` unique items."""
    body = "".join(
        f"<item><title>{title} {n}</title><link>http://127.0.0.2/{title}/{n}</link>"
        f"<guid>{title}-{n}</guid><pubDate>Mon, 10 Feb 2025 10:{n:02d}:00 +0000</pubDate>"
        "</item>"
        for n in range(items)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{extra}<rss version="2.0"><channel>'
        f"<title>{title}</title><link>http://127.0.0.2/</link>{body}</channel></rss>"
    ).encode()


def quadratic_blowup(size: int) -> bytes:
    """A DOCTYPE declaring one entity of ~size/2 bytes, referenced ~size/2 / 3 times:
    expanded, it is ~size**2/12 bytes (78 KiB -> ~500 MB, 1 MiB -> ~90 GB)."""
    half = size // 2
    refs = "&a;" * (half // 3)
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "{"B" * half}">]>'
        f'<rss version="2.0"><channel><title>bomb</title><item><title>x</title>'
        f"<description>{refs}</description></item></channel></rss>"
    ).encode()


def redos_author(size: int = 64 * 1024) -> bytes:
    """feedparser #562: its e-mail regex is quadratic, ~5.5 s on a 32 KiB ``<author>`` and
    ~22 s on 64 KiB here: far beyond the tests' parse budgets even on a faster machine."""
    return rss("redos", 1).replace(
        b"</title><link>", f"</title><author>{'a' * size}</author><link>".encode(), 1
    )


def gzip_bomb(megabytes: int) -> bytes:
    """``megabytes`` MiB of zeros, gzip-compressed (~1,000:1)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    return b"".join([c.compress(zeros) for _ in range(megabytes)] + [c.flush()])


def respond(status: int, body: bytes, headers: dict[str, str] | None = None) -> Writer:
    def write(conn: socket.socket) -> None:
        head = {"Content-Type": "application/rss+xml", "Content-Length": str(len(body))}
        head.update(headers or {})
        lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
        conn.sendall(f"HTTP/1.1 {status} X\r\n{lines}Connection: close\r\n\r\n".encode() + body)

    return write


def redirect(location: str) -> Writer:
    return respond(302, b"", {"Location": location})


def drip_headers(conn: socket.socket) -> None:
    """A status line, then one header byte a second, forever."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while True:
        time.sleep(1)
        conn.sendall(b"a")


def drip_body(conn: socket.socket) -> None:
    """Complete headers, then one body byte a second."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n<"
    )
    while True:
        time.sleep(1)
        conn.sendall(b" ")


def endless_stream(total: int) -> Writer:
    """A ``total``-byte body generated on the fly (never held in memory or on disk)."""

    def write(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
            + f"Content-Length: {total}\r\n\r\n".encode()
            + b'<?xml version="1.0"?><rss version="2.0"><channel><title>'
        )
        chunk = b"A" * (256 * 1024)
        sent = 0
        while sent < total:
            conn.sendall(chunk)
            sent += len(chunk)

    return write


class _Listener:
    """Accept connections on (host, port) in a thread and hand each to ``handle``."""

    def __init__(self, host: str, handle: Callable[[socket.socket], None]) -> None:
        self.sock = socket.create_server((host, 0))
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        # OSError: the client cut us off, which is the point of most routes.
        with conn, contextlib.suppress(OSError):
            self.handle(conn)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


class Canary(_Listener):
    """Counts connections on 127.0.0.1; answers with a feed so a leak would be stored."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1", self._answer)

    def _answer(self, conn: socket.socket) -> None:
        conn.recv(65536)
        respond(200, rss("canary", 1))(conn)


class HostileServer:
    """One route per loopback address: ``add(path_name, writer)`` returns its URL."""

    def __init__(self, first_host: int = 2) -> None:
        self._next = first_host
        self.listeners: list[_Listener] = []
        self.requests: dict[str, int] = {}

    def add(self, name: str, writer: Writer) -> str:
        host = f"127.0.0.{self._next}"
        self._next += 1
        self.requests[name] = 0

        def handle(conn: socket.socket) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    return
                data += piece
            self.requests[name] += 1
            writer(conn)

        listener = _Listener(host, handle)
        self.listeners.append(listener)
        return f"http://{host}:{listener.port}/{name}"

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()


def parse_or_crash(content: bytes, **kwargs: Any) -> Any:
    """Parse-worker target for tests: ``aggregator.parse.parse_feed`` unless a marker says
    to die like a parser bug in C would (segfault), exit, or exhaust memory."""
    from aggregator.parse import parse_feed

    if b"<!-- crash:segfault -->" in content:
        ctypes.string_at(0)
    if b"<!-- crash:exit -->" in content:
        os._exit(7)
    if b"<!-- crash:memory -->" in content:
        hog = []
        while True:  # grows until RLIMIT_AS says no: MemoryError
            hog.append(bytearray(16 << 20))
    return parse_feed(content, **kwargs)
