"""The daemon tells the hubs about exactly the feed files whose bytes changed, once they are in place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from hub_helpers import Hub
from site_helpers import NOW, SITE

from feeds.config import Config
from feeds.schedule import Daemon

LISTING = """Cooperative news

  1. News

    Dairy cooperative opens a cold store

    10 January 2022
"""
MORE = (
    LISTING
    + """
  2. News

    Fishers form a marketing cooperative

    11 January 2022
"""
)
BODY = """
[[categories]]
slug = "news"
title = "News"
types = ["News"]

[[sources]]
name = "africa"
adapter = "listing"
location = "listing.txt"
schedule = "every 1h"
"""


def test_daemon_pings_hubs_for_written_feeds(
    make_hub: Callable[[], Hub],
    make_config: Callable[..., Config],
    tmp_path: Path,
) -> None:
    hub = make_hub()
    config = make_config(BODY, {"listing.txt": LISTING}, site=SITE + f'hubs = ["{hub.url}"]\n')
    daemon = Daemon(config.path, port=0, clock=lambda: NOW)
    daemon.start()
    try:
        base = config.site.base_url
        assert daemon._pinger.flush(5)
        first = sorted(hub.urls)
        assert first == sorted(base + f"{s}.{e}" for s in ("all", "news") for e in ("atom", "rss", "json"))
        # A poll that changes nothing pings nothing.
        daemon._poll("africa")
        assert daemon._pinger.flush(5)
        assert len(hub.urls) == len(first)
        (tmp_path / "listing.txt").write_text(MORE, encoding="utf-8")
        daemon._poll("africa")
        assert daemon._pinger.flush(5)
        assert sorted(hub.urls[len(first) :]) == first
        for url in hub.urls:
            r = httpx.get(daemon.server.url + "/" + url[len(base) :])
            assert f'<{url}>; rel="self"' in r.headers.get_list("link")
        metrics = httpx.get(daemon.server.url + "/metrics").text
        assert 'feeds_websub_pings_total{result="sent"} 12.0' in metrics
    finally:
        daemon.stop()
