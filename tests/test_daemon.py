"""`feeds run` as operators run it: a subprocess that fetches on schedule and serves output/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import feedparser
import httpx
import pytest
from daemon_helpers import DAEMON_SITE, source, wait_for
from serve_helpers import free_port

LISTING = """Cooperative news

  1. News

    Dairy cooperative opens a cold store

    10 January 2022

    Farmers share a new cooling room.

  2. Publication

    A guide to savings groups

    17 December 2021
"""
ADDED = """
  3. News

    Fishers form a marketing cooperative

    11 January 2022

    They sell the catch together now.
"""


@pytest.fixture
def daemon(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    (tmp_path / "news.txt").write_text(LISTING, encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        DAEMON_SITE.format(port=port) + source("news", "news.txt", "every 1s"), encoding="utf-8"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "feeds", "run", "--config", str(tmp_path / "config.toml"), "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}/"

    def healthy() -> bool:
        try:
            return httpx.get(base + "healthz").status_code == 200
        except httpx.TransportError:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            return False

    wait_for(healthy)
    yield proc, base, tmp_path
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout:
        proc.stdout.close()


def test_new_entry_appears_and_untouched_feeds_stay(daemon) -> None:  # type: ignore[no-untyped-def]
    proc, base, root = daemon
    with httpx.Client(base_url=base) as http:
        first = http.get("news.atom")
        assert first.status_code == 200
        assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
        etag = first.headers["etag"]
        pubs = http.get("publications.rss")
        assert pubs.status_code == 200

        assert http.get("news.atom", headers={"If-None-Match": etag}).status_code == 304
        time.sleep(1.5)  # at least one scheduled poll with nothing changed
        assert http.get("news.atom", headers={"If-None-Match": etag}).status_code == 304

        with (root / "news.txt").open("a", encoding="utf-8") as f:
            f.write(ADDED)
        statuses: list[int] = []

        def changed() -> httpx.Response | None:
            response = http.get("news.atom", headers={"If-None-Match": etag})
            statuses.append(response.status_code)
            return response if response.status_code == 200 else None

        fresh = wait_for(changed)
        assert set(statuses[:-1]) <= {304}
        parsed = feedparser.parse(fresh.content)
        assert parsed.bozo == 0
        assert [e.title for e in parsed.entries] == [
            "Fishers form a marketing cooperative",
            "Dairy cooperative opens a cold store",
        ]
        assert fresh.headers["etag"] != etag

        again = http.get("publications.rss", headers={"If-None-Match": pubs.headers["etag"]})
        assert again.status_code == 304
        assert http.get("publications.rss").content == pubs.content

        metrics = http.get("metrics").text
        assert 'feeds_fetches_total{result="ok",source="news"}' in metrics
        status = http.get("status").text
        assert "news" in status and "Next run" in status

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    leftovers = [p.name for p in (root / "output").rglob(".*")]
    assert leftovers == []
    for feed in (root / "output").glob("*.atom"):
        assert feedparser.parse(feed.read_bytes()).bozo == 0


def test_reload_refuses_an_invalid_config(daemon) -> None:  # type: ignore[no-untyped-def]
    proc, base, root = daemon
    config = root / "config.toml"
    good = config.read_text()
    config.write_text(good.replace('adapter = "listing"', 'adapter = "lsting"'))
    result = subprocess.run(
        [sys.executable, "-m", "feeds", "reload", "--config", str(config)], capture_output=True, text=True, cwd=root
    )
    assert result.returncode == 2
    assert 'unknown adapter "lsting"' in result.stderr
    proc.send_signal(signal.SIGHUP)  # the daemon must refuse it too and keep serving
    time.sleep(1)
    assert httpx.get(base + "healthz").status_code == 200
    config.write_text(good.replace('title = "News"', 'title = "Headlines"'))
    result = subprocess.run(
        [sys.executable, "-m", "feeds", "reload", "--config", str(config)], capture_output=True, text=True, cwd=root
    )
    assert result.returncode == 0, result.stderr
    wait_for(lambda: "Headlines" in httpx.get(base + "news.atom").text)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    log = proc.stdout.read().decode() if proc.stdout else ""
    assert "event=reload result=refused" in log
    assert "event=reload result=ok" in log
