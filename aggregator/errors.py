"""One exception tree for the whole project.

Commands turn an ``AggregatorError`` into a one-line message and a non-zero exit; anything
else is a bug. Errors from libraries are chained (``raise ... from e``) so the cause stays
visible in logs.
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Base of every error aggregator raises on purpose."""


class ConfigError(AggregatorError):
    """The configuration (file, environment or feed list) is invalid."""


class StorageError(AggregatorError):
    """The database cannot be reached or refuses an operation."""


class LockedError(AggregatorError):
    """Another process holds a lock this command needs."""


class InputError(AggregatorError):
    """A file or argument given by the user is invalid."""


class FeedError(AggregatorError):
    """A feed could not be fetched or parsed; it costs that feed only."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.message = message


class FetchError(FeedError):
    """The HTTP request failed (network, timeout, HTTP error status, size cap)."""

    def __init__(
        self,
        url: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(url, message)
        self.status = status
        self.retry_after = retry_after


class BlockedAddressError(FetchError):
    """The feed resolves to an address the SSRF guard refuses."""


class ParseError(FeedError):
    """The body is not a usable feed (HTML page, empty body, broken XML with no entries).

    ``transient``: the parser did not give a verdict on the body (its worker overran its
    budget, ran out of memory or crashed), so the same bytes may parse another time; a
    verdict ("not a feed") is final for those bytes, and refresh does not parse them again.
    """

    def __init__(self, url: str, message: str, *, transient: bool = False) -> None:
        super().__init__(url, message)
        self.transient = transient


class DecisionError(AggregatorError):
    """An editor's decision cannot be applied; nothing was changed.

    ``reason`` is "invalid" (bad input), "not_found" (unknown story, article, topic or
    decision) or "conflict" (valid but pointless or contradictory now). The message is in
    French: editors read it.
    """

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason
