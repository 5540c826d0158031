"""How long readers may keep what the daemon serves: RSS <ttl> and Cache-Control agree, and follow a reload."""

from __future__ import annotations

import re
from collections.abc import Callable

from daemon_helpers import TWO_FILES, Run, source
from lxml import etree


def test_rss_ttl_agrees_with_cache_control(start_daemon: Callable[..., Run]) -> None:
    run = start_daemon(source("news", "news.txt", "every 2m") + source("pubs", "pubs.txt", "every 5m"), TWO_FILES)

    def ttl_and_max_age(name: str) -> tuple[int, int]:
        response = run.get(name)
        ttl = etree.fromstring(response.content).findtext("channel/ttl")
        assert ttl is not None
        match = re.fullmatch(r"public, max-age=(\d+)", response.headers["cache-control"])
        assert match, response.headers["cache-control"]
        return int(ttl) * 60, int(match.group(1))

    # The shortest poll period: a reader may keep any feed that long.
    assert ttl_and_max_age("news.rss") == (120, 120)
    assert ttl_and_max_age("publications.rss") == (120, 120)
    for name in ("news.atom", "news.json", "index.html"):
        assert run.get(name).headers["cache-control"] == "public, max-age=120"

    config = run.root / "config.toml"
    config.write_text(config.read_text().replace("every 2m", "every 3m"), encoding="utf-8")
    assert run.daemon.reload()
    assert ttl_and_max_age("news.rss") == (180, 180)
    assert ttl_and_max_age("all.rss") == (180, 180)
