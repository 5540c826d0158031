"""Running the daemon in tests: its config and sources, a clock moved by hand, readers of its logs, metrics, pages."""

from __future__ import annotations

import gzip
import json
import logging
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import feedparser
import httpx
from lxml import etree
from lxml import html as lxml_html
from prometheus_client.parser import text_string_to_metric_families
from site_helpers import NOW

from feeds.schedule import Daemon

LATER = NOW + timedelta(hours=1)


T = TypeVar("T")


NEWS = """Cooperative news

  1. News

    Dairy cooperative opens a cold store

    10 January 2022

    Farmers share a new cooling room.

  2. News

    Savings group reaches a thousand members

    5 January 2022
"""


ADDED = """
  3. News

    Fishers form a marketing cooperative

    11 January 2022

    They sell the catch together now.
"""


PUBS = """Publications

  1. Publication

    A guide to savings groups

    17 December 2021

  2. Publication

    Cooperatives and the care economy

    2 December 2021
"""


DAEMON_SITE = """
[site]
title = "Daemon test"
base_url = "http://127.0.0.1:{port}/"
time_zone = "Europe/Zurich"

[[categories]]
slug = "news"
title = "News"
types = ["News"]

[[categories]]
slug = "publications"
title = "Publications"
types = ["Publication"]
"""


def terminate(proc: subprocess.Popen[bytes], log: Callable[[], str], timeout: float = 60.0) -> int:
    """SIGTERM a `feeds run` and return its exit status; one that does not stop in time is made to print
    each thread's stack (SIGABRT, which the daemon hands to faulthandler) and the test fails with its log."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=10)
        raise AssertionError(f"feeds run did not stop within {timeout:.0f} s of SIGTERM:\n{log()}") from None


def source(name: str, location: str, schedule: str) -> str:
    return f'\n[[sources]]\nname = "{name}"\nadapter = "listing"\nlocation = "{location}"\nschedule = "{schedule}"\n'


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, every: float = 0.05) -> T:
    """Poll until `predicate` gives something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate.__name__}")
        time.sleep(every)


class Clock:
    """The `now` the daemon passes down; the test moves it by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Run:
    daemon: Daemon
    root: Path
    base: str
    clock: Clock
    stopped: bool = False

    @property
    def out(self) -> Path:
        return self.root / "output"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=10)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.daemon.stop()

    def append_news(self) -> None:
        with (self.root / "news.txt").open("a", encoding="utf-8") as f:
            f.write(ADDED)


TWO_SOURCES = source("news", "news.txt", "every 1s") + source("pubs", "pubs.txt", "every 1s")


TWO_FILES = {"news.txt": NEWS, "pubs.txt": PUBS}


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]+)(?:\s+|$)')


def logfmt_fields(message: str) -> dict[str, str]:
    """A structured log line's fields; it must consist of nothing else."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(message):
        match = _FIELD.match(message, position)
        assert match, f"not logfmt at {position}: {message!r}"
        value = match.group(2)
        fields[match.group(1)] = json.loads(value) if value.startswith('"') else value
        position = match.end()
    return fields


def events(records: list[logging.LogRecord], event: str) -> list[tuple[float, dict[str, str]]]:
    """(time, fields) of the daemon's structured lines with this event."""
    found = []
    for record in records:
        message = record.getMessage()
        if record.name == "feeds" and message.startswith(f"event={event} "):
            found.append((record.created, logfmt_fields(message)))
    return found


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, keyed by name and labels (parsing it validates it)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def snapshot(out: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.relative_to(out).as_posix(): (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()
    }


def status_rows(page: bytes) -> dict[str, list[str]]:
    tree = lxml_html.fromstring(page)
    return {
        cells[0]: cells[1:]
        for cells in (
            [td.text_content().strip() for td in tr.findall("td")] for tr in tree.cssselect("#sources tbody tr")
        )
    }


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")


def big_listing(count: int) -> str:
    """A listing long enough that rendering it takes a while, so a signal can land during the write."""
    items = [
        f"  {i + 1}. News\n\n    Cooperative bulletin number {i}\n\n"
        f"    {1 + i % 28} {MONTHS[i % 10]} {2021 - i // 280}\n\n"
        f"    Members of cooperative {i} met to {'discuss the harvest ' * 20}and agreed on next steps.\n"
        for i in range(count)
    ]
    return "Cooperative news\n\n" + "\n".join(items)


def check_whole(out: Path) -> int:
    """Every output file parses as what its name says; the number checked."""
    assert [p.name for p in out.rglob(".*")] == [], "a temporary file was left behind"
    checked = 0
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            assert gzip.decompress(data) == path.with_suffix("").read_bytes(), path
        elif path.suffix in (".atom", ".rss"):
            parsed = feedparser.parse(data)
            assert parsed.bozo == 0, (path, parsed.get("bozo_exception"))
        elif path.suffix == ".json":
            assert json.loads(data)["version"] == "https://jsonfeed.org/version/1.1", path
        elif path.suffix == ".opml":
            assert etree.fromstring(data).tag == "opml", path
        elif path.suffix == ".html":
            # An HTML parser reads any prefix of a page; the closing tag shows the whole page is there.
            assert data.rstrip().endswith(b"</html>"), path
            assert lxml_html.document_fromstring(data).find("body") is not None, path
        else:
            raise AssertionError(f"unexpected file in output/: {path}")
        checked += 1
    return checked
