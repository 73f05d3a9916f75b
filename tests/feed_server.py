"""A tiny local feed server for operations tests: N generated RSS feeds (and a 404), an
optional delay before each answer, and a count of requests as they *arrive* (a slow answer
is counted before it is sent, so a test can act while the fetch is in flight).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def rss(feed: int, items: int = 3) -> bytes:
    now = formatdate(time.time(), usegmt=True)
    body = "".join(
        f"<item><title>Titre {feed}-{i} : la réforme des retraites au Sénat</title>"
        f"<link>http://127.0.0.1/article/{feed}/{i}</link><guid>urn:test:{feed}:{i}</guid>"
        f"<pubDate>{now}</pubDate><description>Résumé {feed} {i}.</description></item>"
        for i in range(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Flux {feed}</title><link>http://127.0.0.1/</link>{body}</channel></rss>"
    ).encode()


class FeedServer:
    def __init__(self, feeds: int, delay: float = 0.0, missing: int = 0) -> None:
        self.feeds = feeds
        self.missing = missing
        self.delay = delay
        self.arrivals: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def paths(self) -> list[str]:
        ok = [f"/feed/{n}.xml" for n in range(self.feeds)]
        return ok + [f"/missing/{n}.xml" for n in range(self.missing)]

    def write_feeds(self, out: Path) -> Path:
        lines = []
        for n, path in enumerate(self.paths()):
            lines += ["[[feeds]]", f'url = "{self.base_url}{path}"', f'outlet = "Outlet {n}"', ""]
        out.write_text("\n".join(lines), encoding="utf-8")
        return out

    def total(self) -> int:
        with self.lock:
            return sum(self.arrivals.values())

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    server.arrivals[self.path] += 1
                if server.delay:
                    time.sleep(server.delay)
                if self.path.startswith("/feed/"):
                    body, status = rss(int(self.path.split("/")[2].split(".")[0])), 200
                else:
                    body, status = b"not found\n", 404
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (a fetch abandoned on SIGTERM)

        return Handler
