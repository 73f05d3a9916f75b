"""A parse worker process: ``python -m aggregator.parseworker --memory-mb N``.

Started and fed by ``aggregator.pipeline.parsing.ParsePool``, never imported by it: it reads
jobs (feed bytes) on stdin and writes results on stdout as ``aggregator.frames``. It limits
its own address space first (RLIMIT_AS), so a parser blow-up ends in MemoryError (reported,
then the worker exits) instead of swapping the host. Only ``aggregator.parse`` is loaded
(~26 MB, 0.1 s), not the clustering stack.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import signal
import sys
from collections.abc import Callable
from typing import Any

from aggregator import frames
from aggregator.errors import ParseError

# What the parent may send: plain tuples, bytes, str, dicts and None only.
JOB_CLASSES: frozenset[tuple[str, str]] = frozenset()
# Exit status after a MemoryError (replied as "fatal": the parent must not reuse us; the
# heap may be fragmented, so a fresh worker takes the next feed).
EXIT_OUT_OF_MEMORY = 3


def limit_memory(megabytes: int) -> None:
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def load_target(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def serve(target: Callable[..., Any], memory_mb: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the daemon, which closes our stdin
    jobs = sys.stdin.buffer
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print() must not corrupt the frames
    frames.write_frame(replies, ("ready", None, peak_rss_bytes()))
    while True:
        parsed: Any = None
        try:
            content, url, headers, max_entries = frames.read_frame(jobs, JOB_CLASSES)
        except EOFError:
            return 0
        try:
            parsed = target(content, url=url, headers=headers, max_entries=max_entries)
            reply: tuple[Any, ...] = ("ok", parsed, peak_rss_bytes())
        except ParseError as e:
            reply = ("error", e.message, peak_rss_bytes())
        except MemoryError:
            parsed = content = None  # free what we can before replying
            message = f"parsing needed more than {memory_mb} MB (fetch.parse_memory_mb)"
            frames.write_frame(replies, ("fatal", message, peak_rss_bytes()))
            return EXIT_OUT_OF_MEMORY
        except Exception as e:  # the parser's bug costs this feed, reported as such
            reply = ("error", f"parser failed: {type(e).__name__}: {e}", peak_rss_bytes())
        frames.write_frame(replies, reply)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aggregator.parseworker")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--target", default="aggregator.parse:parse_feed")
    args = parser.parse_args(argv)
    target = load_target(args.target)  # imported before the limit: imports map memory
    limit_memory(args.memory_mb)
    return serve(target, args.memory_mb)


if __name__ == "__main__":
    sys.exit(main())
