"""Nodes sharing a PostgreSQL store: one publishes at a time, and every node's output/ holds the same files."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
from daemon_helpers import wait_for
from pg_helpers import terminate
from site_helpers import NOW, SITE, contents

from feeds import pipeline
from feeds.adapters import ADAPTERS
from feeds.config import Config, load
from feeds.mirror import Mirror
from feeds.serve import ServerThread, StaticFeeds
from feeds.store import Store

NEWS = """
[[categories]]
slug = "news"
title = "News"
types = ["News"]
"""
CATEGORIES = (
    NEWS
    + """
[[categories]]
slug = "publications"
title = "Publications"
types = ["Publication"]
"""
)

SOURCE = """
[[sources]]
name = "africa"
adapter = "listing"
location = "africa.txt"
"""


def listing(count: int) -> str:
    lines = ["Cooperative news from Africa", ""]
    for n in range(count):
        kind = "News" if n % 3 else "Publication"
        lines += [f"  {n + 1}. {kind}", "", f"    Item {n}: cooperatives at work", "", f"    {1 + n % 28} May 2022", ""]
    return "\n".join(lines)


def node(root: Path, url: str, categories: str = CATEGORIES) -> Config:
    """A node's config: its own output/ and state/, the shared store, the sources beside it."""
    root.mkdir(exist_ok=True)
    (root / "config.toml").write_text(
        SITE.replace("entries_per_feed = 50", "entries_per_feed = 4")
        + f'\n[store]\nurl = "{url}"\n'
        + categories
        + SOURCE,
        encoding="utf-8",
    )
    return load(root / "config.toml", ADAPTERS)


def dates(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): int(p.stat().st_mtime) for p in out.rglob("*") if p.is_file()}


def test_every_node_holds_the_same_files_with_the_same_dates_and_serves_the_same_validators(
    tmp_path: Path, pg_url: str
) -> None:
    a = node(tmp_path / "a", pg_url)
    (tmp_path / "a" / "africa.txt").write_text(listing(6), encoding="utf-8")
    assert not pipeline.build(a, NOW).failed
    out_a, out_b = a.site.output, tmp_path / "b" / "output"
    assert (out_a / "all.atom").exists() and (out_a / "all.atom.gz").exists()

    b = Mirror(pg_url, out_b)
    assert b.catch_up() > 0
    assert contents(out_b) == contents(out_a)
    assert dates(out_b) == dates(out_a)  # Last-Modified, and nginx's ETag made of it, agree too
    assert any(name.startswith("archive/") for name in contents(out_a))

    with ServerThread(StaticFeeds(out_a)) as serve_a, ServerThread(StaticFeeds(out_b)) as serve_b:
        for path, coding in (("all.atom", "identity"), ("news.rss", "gzip"), ("index.html", "identity")):
            answers = [
                httpx.get(f"{server.url}/{path}", headers={"accept-encoding": coding}) for server in (serve_a, serve_b)
            ]
            assert [r.status_code for r in answers] == [200, 200]
            assert answers[0].content == answers[1].content
            for header in ("etag", "last-modified", "content-encoding"):
                assert answers[0].headers.get(header) == answers[1].headers.get(header), (path, header)


def test_a_following_node_takes_each_change_and_removal_and_a_late_one_catches_up(tmp_path: Path, pg_url: str) -> None:
    a = node(tmp_path / "a", pg_url)
    source = tmp_path / "a" / "africa.txt"
    source.write_text(listing(3), encoding="utf-8")
    assert not pipeline.build(a, NOW).failed
    out_b = tmp_path / "b" / "output"
    b = Mirror(pg_url, out_b)
    b.catch_up()
    b.start()
    try:
        source.write_text(listing(9), encoding="utf-8")
        assert not pipeline.build(a, NOW + timedelta(hours=1)).failed
        wait_for(lambda: contents(out_b) == contents(a.site.output), timeout=20)
        assert b"Item 8: cooperatives at work" in (out_b / "all.atom").read_bytes()

        # A category taken out of the config: its files leave every node.
        a = node(tmp_path / "a", pg_url, categories=NEWS)
        assert not pipeline.build(a, NOW + timedelta(hours=2)).failed
        assert not (a.site.output / "publications.atom").exists()
        wait_for(lambda: contents(out_b) == contents(a.site.output), timeout=20)
        assert not (out_b / "publications.atom").exists()
    finally:
        b.stop()

    late = tmp_path / "c" / "output"
    Mirror(pg_url, late).catch_up()
    assert contents(late) == contents(a.site.output)
    assert dates(late) == dates(a.site.output)


def test_one_node_publishes_at_a_time(tmp_path: Path, pg_url: str) -> None:
    entered: list[float] = []
    with Store(tmp_path / "unused.db", url=pg_url) as first, Store(tmp_path / "unused.db", url=pg_url) as second:

        def publish_too() -> None:
            with second.publishing():
                entered.append(time.monotonic())

        with first.publishing():
            other = threading.Thread(target=publish_too)
            other.start()
            time.sleep(0.5)
            assert entered == []  # the second publisher waits for the first
            released = time.monotonic()
        other.join(10)
        assert len(entered) == 1 and entered[0] >= released


def test_a_node_that_dies_while_publishing_lets_the_others_publish(tmp_path: Path, pg_url: str) -> None:
    with (
        Store(tmp_path / "unused.db", url=pg_url) as first,
        Store(tmp_path / "unused.db", url=pg_url) as second,
        first.publishing(),
    ):
        assert terminate(pg_url) >= 1  # the first node's session ends, as when its machine goes down
        done = threading.Event()

        def publish_too() -> None:
            with second.publishing():
                done.set()

        other = threading.Thread(target=publish_too)
        other.start()
        assert done.wait(10)
        other.join(10)
    assert not os.path.exists(tmp_path / "unused.db")
