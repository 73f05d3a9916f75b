"""The SSRF guard and the whole-request deadline, in the network backend under httpx.

``GuardedBackend`` resolves the host itself, refuses it if any address is non-public,
connects to a validated IP and checks ``getpeername()`` again, so every redirect hop and
any DNS rebinding go through the same check. TLS SNI and the Host header still name the
host (httpcore takes them from the URL, not from the address connected to). Every read
and write on the connection is bounded by the request's deadline (``DeadlineClock``).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore

from aggregator.config import FetchSettings, parse_networks

# 100.64.0.0/10 (RFC 6598, carrier-grade NAT) is neither private nor global for
# ipaddress; listed so the rule reads as the issue states it.
CGNAT = ipaddress.ip_network("100.64.0.0/10")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """Raised inside httpcore by the guard; turned into ``BlockedAddressError`` by the fetcher."""


def refusal_reason(address: Address) -> str | None:
    """Why the SSRF guard refuses ``address`` (None: a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            inner = refusal_reason(mapped)
            return f"maps to {mapped}, {inner}" if inner else None
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_unspecified, "unspecified"),
        (address.version == 4 and address in CGNAT, "carrier-grade NAT"),
        (address.is_reserved, "reserved"),
        (address.is_private, "private"),
        (not address.is_global, "not globally routable"),
    )
    return next((why for bad, why in checks if bad), None)


class DeadlineClock(threading.local):
    """The current request's deadline, per thread (httpx.Client is shared by fetch threads)."""

    deadline: float | None = None

    def remaining(self, timeout: float | None, exc: type[Exception]) -> float | None:
        """Clip a per-operation timeout to what is left of the whole-request deadline."""
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise exc("whole-request deadline exceeded")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """Every read and write is bounded by the request deadline: a 1-byte-a-second drip
    (in the headers or the body) is cut when the deadline passes, not per read."""

    def __init__(self, inner: httpcore.NetworkStream, clock: DeadlineClock) -> None:
        self._inner = inner
        self._clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._clock.remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._clock.remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self._clock.remaining(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, timeout), self._clock
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore backend: resolve, validate every address, connect to a validated IP."""

    def __init__(self, settings: FetchSettings, clock: DeadlineClock) -> None:
        self.allow_private = settings.allow_private_networks
        self.allowed: tuple[Network, ...] = parse_networks(settings.allowed_networks)
        self.clock = clock
        self._inner = httpcore.SyncBackend()

    def check(self, host: str, address: Address) -> None:
        if self.allow_private or any(address in net for net in self.allowed):
            return
        why = refusal_reason(address)
        if why:
            raise Refused(
                f"refused by the SSRF guard: {host} is {address} ({why}); "
                "set [fetch] allow_private_networks or allowed_networks to fetch it"
            )

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self.clock.remaining(timeout, httpcore.ConnectTimeout)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
        addresses = list(dict.fromkeys(_address(str(info[4][0])) for info in infos))
        for address in addresses:  # every address, not just the one we use
            self.check(host, address)
        error: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as e:
                error = e
                continue
            try:
                self.check(host, _address(stream.get_extra_info("socket").getpeername()[0]))
            except BaseException:
                stream.close()
                raise
            return _DeadlineStream(stream, self.clock)
        raise error or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise Refused("unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
