"""WebSub publishing: when stories change, tell the hub which of our feeds to refetch.

The feeds advertise the hub (rel="hub"); subscribers then get pushed updates instead of
polling. Publishing is hub-specific in the W3C WebSub Recommendation; every public hub
accepts the PubSubHubbub 0.3 form (section 7.1): a POST of ``hub.mode=publish`` with one
``hub.url`` per changed topic URL, repeated. A hub that is down costs a log line, never
the clustering run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from urllib.parse import quote

import httpx

from aggregator.config import Settings
from aggregator.store import Store

log = logging.getLogger(__name__)

PING_TIMEOUT_SECONDS = 10.0
# Topic URLs per POST: keeps each request small; hubs accept many repeated hub.url.
URLS_PER_PING = 100
# Topic feeds announced (the same bound as the OPML export).
MAX_TOPICS = 200


def published_feed_urls(settings: Settings, store: Store) -> list[str]:
    """The feed URLs a subscriber may hold: merged feeds, articles, every visible topic."""
    base = settings.server.base_url
    urls = [
        f"{base}/feed.atom",
        f"{base}/feed.rss",
        f"{base}/feed.json",
        f"{base}/feed.atom?min_sources=2",
        f"{base}/articles.atom",
    ]
    for topic in store.visible_topics(limit=MAX_TOPICS):
        path = f"{base}/topics/{quote(topic.slug)}"
        urls += [f"{path}.atom", f"{path}.rss", f"{path}.json"]
    return urls


def ping_hub(
    hub_url: str,
    urls: Sequence[str],
    *,
    user_agent: str = "aggregator",
    timeout: float = PING_TIMEOUT_SECONDS,
) -> bool:
    """POST the publish notification(s); True when the hub accepted all of them (2xx)."""
    ok = True
    try:
        with httpx.Client(timeout=timeout, headers={"User-Agent": user_agent}) as client:
            for start in range(0, len(urls), URLS_PER_PING):
                batch = list(urls[start : start + URLS_PER_PING])
                response = client.post(hub_url, data={"hub.mode": "publish", "hub.url": batch})
                if not response.is_success:
                    log.warning("WebSub hub %s answered %d", hub_url, response.status_code)
                    ok = False
    except httpx.HTTPError as e:
        log.warning("WebSub hub %s unreachable: %s", hub_url, e)
        return False
    return ok


def announce_changes(settings: Settings, store: Store, counts: Mapping[str, int]) -> bool:
    """After a clustering run that changed stories, ping the configured hub (if any).

    Waits ``[publish] version_check_seconds`` first: a web server checks for changes at
    most that often, and the hub refetches at once, so it must not get stale bytes.
    """
    hub = settings.publish.websub_hub
    if not hub or not any(counts.get(k) for k in ("created", "changed", "deleted")):
        return False
    time.sleep(settings.publish.version_check_seconds)
    urls = published_feed_urls(settings, store)
    accepted = ping_hub(hub, urls, user_agent=settings.fetch.user_agent)
    if accepted:
        log.info("WebSub hub %s notified of %d feeds", hub, len(urls))
    return accepted
