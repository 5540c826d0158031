"""What a person sees in a real browser: the index, the category pages and the status page of `feeds run`."""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from apscheduler.triggers.cron import CronTrigger
from browser_helpers import PNG_MAGIC, Browser, chromium_or_skip
from lxml import etree

from feeds.config import Config
from feeds.schedule import Daemon

ROOT = Path(__file__).resolve().parent.parent
FEED_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml", "json": "application/feed+json"}
SERVED_TYPES = {
    **{ext: f"{media}; charset=utf-8" for ext, media in FEED_TYPES.items()},
    "html": "text/html; charset=utf-8",
    "opml": "text/x-opml; charset=utf-8",
}
ALTERNATES = "[...document.head.querySelectorAll('link[rel~=alternate]')].map(l => [l.type, l.getAttribute('href')])"
ANCHORS = "[...document.body.querySelectorAll('a[href]')].map(a => [a.getAttribute('href'), a.type, a.textContent])"


@dataclass(frozen=True)
class Site:
    base: str
    config: Config
    daemon: Daemon

    @property
    def slugs(self) -> list[str]:
        """One feed per configured category, and `all`."""
        return ["all", *(c.slug for c in self.config.categories)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    executable = chromium_or_skip()
    chromium = Browser(executable, tmp_path_factory.mktemp("chromium"))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The repository's default configuration and sample sources, run by the daemon on a free loopback port."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(ROOT / "sources", root / "sources")
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    text, count = re.subn(
        r'^base_url\s*=\s*"[^"]*"', f'base_url = "{base}"', (ROOT / "config.toml").read_text(), flags=re.M
    )
    assert count == 1, "config.toml lost its site.base_url line"
    (root / "config.toml").write_text(text, encoding="utf-8")
    daemon = Daemon(root / "config.toml", port=port)
    daemon.start()
    try:
        assert len(daemon.config.categories) >= 3
        yield Site(base=base, config=daemon.config, daemon=daemon)
    finally:
        daemon.stop()


def _suffix(url: str) -> str:
    return url.rpartition("/")[2].rpartition(".")[2]


def _check_served(response: dict[str, Any]) -> None:
    """A followed link: 200, the media type its name promises, and a body that parses as that type."""
    url, body = response["url"], response["body"]
    assert response["status"] == 200, url
    ext = _suffix(url)
    assert response["type"] == SERVED_TYPES[ext], url
    if ext in ("atom", "rss"):
        parsed = feedparser.parse(body.encode("utf-8"))
        assert parsed.bozo == 0, (url, parsed.get("bozo_exception"))
        assert [link.href for link in parsed.feed.links if link.rel == "self"] == [url]
        assert parsed.entries, url
    elif ext == "json":
        data = json.loads(body)
        assert data["version"] == "https://jsonfeed.org/version/1.1"
        assert data["feed_url"] == url
        assert data["items"], url
    elif ext == "opml":
        assert etree.fromstring(body.encode("utf-8")).tag == "opml"
    else:
        assert "<html" in body.lower(), url


def _screenshot(browser: Browser, path: Path) -> None:
    data = browser.screenshot(path)
    assert data.startswith(PNG_MAGIC) and path.stat().st_size > 1000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the IHDR chunk
    assert width > 0 and height > 0


def test_index_lists_every_feed_with_working_links(browser: Browser, site: Site, tmp_path: Path) -> None:
    base = site.base
    assert browser.open(base) == 200  # "/" serves index.html
    assert browser.open(base + "index.html") == 200
    _screenshot(browser, tmp_path / "index.png")

    expected_feeds = {f"{base}{slug}.{ext}" for slug in site.slugs for ext in FEED_TYPES}
    alternates = browser.evaluate(ALTERNATES)
    assert sorted(map(tuple, alternates)) == sorted((FEED_TYPES[_suffix(url)], url) for url in expected_feeds)

    anchors = browser.evaluate(ANCHORS)
    hrefs = {href for href, _, _ in anchors}
    assert all(href.startswith(base) for href in hrefs), hrefs
    assert {h for h in hrefs if _suffix(h) in FEED_TYPES} == expected_feeds
    assert {h for h in hrefs if _suffix(h) == "html"} == {f"{base}{slug}.html" for slug in site.slugs}
    for href, media, _ in anchors:
        if _suffix(href) in FEED_TYPES:
            assert media == FEED_TYPES[_suffix(href)], href  # the subscribe link says what it leads to

    responses = browser.fetch(sorted(hrefs))
    assert [r["url"] for r in responses] == sorted(hrefs)
    for response in responses:
        _check_served(response)


def test_category_pages_list_their_entries(browser: Browser, site: Site, tmp_path: Path) -> None:
    base = site.base
    for slug in site.slugs:
        assert browser.open(base + "index.html") == 200
        assert browser.click(f'a[href="{base}{slug}.html"]') == 200  # followed as a reader would
        _screenshot(browser, tmp_path / f"{slug}.png")

        alternates = browser.evaluate(ALTERNATES)
        assert sorted(map(tuple, alternates)) == sorted(
            (media, f"{base}{slug}.{ext}") for ext, media in FEED_TYPES.items()
        )

        (feed,) = browser.fetch([f"{base}{slug}.json"])
        items = [(item["url"], " ".join(item["title"].split())) for item in json.loads(feed["body"])["items"]]
        assert items
        anchors = [(href, " ".join(text.split())) for href, _, text in browser.evaluate(ANCHORS)]
        own = {base + "index.html", *(f"{base}{slug}.{ext}" for ext in FEED_TYPES)}
        assert {href for href, _ in anchors if href not in own} == {url for url, _ in items}
        for item in items:
            assert item in anchors, item  # the title links to the entry

        assert all(url.startswith(("http://", "https://")) for url, _ in items)
        ours = sorted({href for href, _ in anchors if href.startswith(base)})
        for response in browser.fetch(ours):
            _check_served(response)


def test_status_page_shows_every_source_and_feed(browser: Browser, site: Site, tmp_path: Path) -> None:
    base = site.base
    assert browser.open(base + "status") == 200
    _screenshot(browser, tmp_path / "status.png")

    rows = browser.evaluate(
        "[...document.querySelectorAll('#sources tbody tr')].map(tr => [...tr.cells].map(td => td.textContent.trim()))"
    )
    assert [row[0] for row in rows] == [s.name for s in site.config.sources]
    for source, (name, last_fetch, result, next_run, entries) in zip(site.config.sources, rows, strict=True):
        assert result == "ok", name
        assert int(entries) > 0, name
        fetched = datetime.fromisoformat(last_fetch).replace(tzinfo=UTC)  # the page shows UTC
        shown = datetime.fromisoformat(next_run).replace(tzinfo=UTC)
        schedule = source.schedule
        if schedule.cron:
            expected = CronTrigger.from_crontab(schedule.cron, timezone=source.time_zone).get_next_fire_time(
                None, fetched
            )
            assert shown == expected.astimezone(UTC), name
        else:
            # The first run is one period after the start, plus up to a twentieth of it to spread sources.
            period = schedule.seconds
            assert fetched + timedelta(seconds=period) <= shown, name
            assert shown <= fetched + timedelta(seconds=period + period // 20 + 30), name

    feeds = browser.evaluate(
        "[...document.querySelectorAll('#feeds tbody tr')].map(tr => [tr.cells[0].textContent.trim(),"
        " tr.querySelector('a').getAttribute('href')])"
    )
    names = {name for name, _ in feeds}
    assert names >= {f"{slug}.{ext}" for slug in site.slugs for ext in FEED_TYPES}
    assert all(href == base + name for name, href in feeds)
    for response in browser.fetch(sorted(href for _, href in feeds)):
        _check_served(response)

    assert browser.click(f'a[href="{base}index.html"]') == 200
