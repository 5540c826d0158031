"""`feeds run` for a long while: 50 changing, failing and recovering sources; every poll valid, nothing lost."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import feedparser
import httpx
import pytest
from serve_helpers import free_port

pytestmark = pytest.mark.slow

SOURCES = 50
SECONDS = 600 if os.environ.get("CI") == "true" else int(os.environ.get("FEEDS_SOAK_SECONDS", "60"))
SAMPLE_EVERY = min(10.0, SECONDS / 6)
FEEDS = ("all.atom", "all.rss", "all.json", "news.atom", "news.rss", "news.json")
FIRST_DAY = date(2024, 1, 1)
KINDS = ("listing", "html", "rss")
FAULTS = ("500", "garbage", "hang")


@dataclass
class Item:
    number: int
    title: str
    day: date
    summary: str


@dataclass
class Source:
    """One simulated source: its items, and a fault it shows until `fault_until` (monotonic)."""

    index: int
    kind: str
    items: list[Item] = field(default_factory=list)
    fault: str = ""
    fault_until: float = 0.0

    def add(self) -> Item:
        number = len(self.items) + 1
        item = Item(
            number=number,
            title=f"Source {self.index} story {number}",
            day=FIRST_DAY + timedelta(days=number),
            summary=f"First word on story {number} of source {self.index}.",
        )
        self.items.append(item)
        return item

    def render(self) -> tuple[str, bytes]:
        items = list(reversed(self.items))  # newest first, as the sites list them
        if self.kind == "listing":
            lines = [f"Source {self.index} news", ""]
            for n, item in enumerate(items, start=1):
                lines += [f"  {n}. News", "", f"    {item.title}", "", f"    {_day(item.day)}", ""]
                lines += [f"    {item.summary}", ""]
            return "text/plain; charset=utf-8", "\n".join(lines).encode()
        if self.kind == "html":
            rows = "".join(
                f'<li class="views-row"><span class="item-type">News</span>'
                f'<h3 class="item-title"><a href="{_link(self.index, item)}">{escape(item.title)}</a></h3>'
                f'<span class="item-date">{_day(item.day)}</span>'
                f'<p class="item-summary">{escape(item.summary)}</p></li>'
                for item in items
            )
            page = f"<!doctype html><html><head><title>S{self.index}</title></head><body><ul>{rows}</ul></body></html>"
            return "text/html; charset=utf-8", page.encode()
        entries = "".join(
            f"<item><title>{escape(item.title)}</title><link>{_link(self.index, item)}</link>"
            f'<guid isPermaLink="false">s{self.index}-{item.number}</guid><category>News</category>'
            f"<pubDate>{format_datetime(datetime.combine(item.day, datetime.min.time(), UTC))}</pubDate>"
            f"<description>{escape(item.summary)}</description></item>"
            for item in items
        )
        rss = (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>S{self.index}</title><link>https://example.org/s{self.index}/</link>"
            f"<description>Source {self.index}</description>{entries}</channel></rss>"
        )
        return "application/rss+xml; charset=utf-8", rss.encode()


def _day(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def _link(index: int, item: Item) -> str:
    return f"https://example.org/s{index}/{item.number}"


class World:
    """What the sources say now; every title any of them ever served successfully is remembered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends every hanging request at once
        self.sources = [Source(index=i, kind=KINDS[i % len(KINDS)]) for i in range(SOURCES)]
        for source in self.sources:
            for _ in range(2):
                source.add()
        self.served: set[str] = set()
        self.edited: set[str] = set()
        self.requests = 0
        self.faults_served = 0

    def answer(self, index: int) -> tuple[int, str, bytes] | None:
        """(status, type, body) for one request, or None: hang, then drop the connection."""
        with self.lock:
            self.requests += 1
            source = self.sources[index]
            fault = source.fault if time.monotonic() < source.fault_until else ""
            if fault:
                self.faults_served += 1
            else:
                content_type, body = source.render()
                self.served.update(item.title for item in source.items)
                return 200, content_type, body
        if fault == "500":
            return 500, "text/plain", b"internal error\n"
        if fault == "garbage":
            return 200, "text/html; charset=utf-8" if source.kind != "rss" else "application/rss+xml", b"\x00\xff<<<"
        self.release.wait(min(25.0, max(0.0, source.fault_until - time.monotonic())))
        return None


def source_server(world: World) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                index = int(self.path.rsplit("/", 1)[1])
            except ValueError:
                self.send_error(404)
                return
            answer = world.answer(index)
            if answer is None:
                self.close_connection = True
                return
            status, content_type, body = answer
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def config(port: int, source_port: int) -> str:
    text = f"""
[site]
title = "Soak"
base_url = "http://127.0.0.1:{port}/"
time_zone = "UTC"
entries_per_feed = 10

[[categories]]
slug = "news"
title = "News"
types = ["News"]
"""
    for i in range(SOURCES):
        kind = KINDS[i % len(KINDS)]
        adapter = {"listing": "listing", "html": "html", "rss": "feed"}[kind]
        text += f"""
[[sources]]
name = "s{i}"
adapter = "{adapter}"
location = "http://127.0.0.1:{source_port}/s/{i}"
schedule = "every {2 + i % 2}s"
"""
        if kind == "html":
            text += """
[sources.options]
item = "li.views-row"
title = ".item-title"
link = ".item-title a"
date = ".item-date"
summary = ".item-summary"
category = ".item-type"
"""
    return text


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def ids_and_titles(name: str, body: bytes) -> list[tuple[str, str]]:
    """A feed document's (id, title) pairs, after checking it parses cleanly."""
    if name.endswith(".json"):
        document = json.loads(body)
        assert document["version"] == "https://jsonfeed.org/version/1.1"
        return [(item["id"], item.get("title", "")) for item in document["items"]]
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, f"{name}: {parsed.get('bozo_exception')}"
    return [(entry.id, entry.title) for entry in parsed.entries]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, World, Path]]:
    world = World()
    server = source_server(world)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    port = free_port()
    (tmp_path / "config.toml").write_text(config(port, server.server_address[1]), encoding="utf-8")
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "feeds", "run", "--config", str(tmp_path / "config.toml"), "--port", str(port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(base + "healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the daemon did not come up"
            time.sleep(0.2)
        yield proc, base, world, log
    finally:
        world.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.shutdown()
        server.server_close()


class Poller:
    """Reads every feed again and again with conditional GET, checking each answer."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.etags: dict[str, str] = {}
        self.polls = 0
        self.fresh = 0
        self.not_modified = 0
        self.problems: list[str] = []
        self.client = httpx.Client(timeout=10)

    def poll(self) -> None:
        self.polls += 1
        for name in FEEDS:
            headers = {"If-None-Match": self.etags[name]} if name in self.etags else {}
            response = self.client.get(self.base + name, headers=headers)
            if response.status_code == 304:
                self.not_modified += 1
                continue
            if response.status_code != 200:
                self.problems.append(f"{name}: HTTP {response.status_code}")
                continue
            self.fresh += 1
            self.etags[name] = response.headers["etag"]
            try:
                ids = [i for i, _ in ids_and_titles(name, response.content)]
            except (AssertionError, ValueError, KeyError) as exc:
                self.problems.append(f"{name}: {exc}")
                continue
            if len(ids) != len(set(ids)):
                self.problems.append(f"{name}: duplicate ids {sorted(i for i in ids if ids.count(i) > 1)}")

    def chain(self, name: str) -> list[list[tuple[str, str]]]:
        """The (id, title) pairs of each document from the current one back through prev-archive."""
        documents = []
        url = self.base + name
        seen: set[str] = set()
        for _ in range(10_000):
            if not url:
                break
            assert url not in seen, f"archive cycle at {url}"
            seen.add(url)
            response = self.client.get(url)
            assert response.status_code == 200, url
            documents.append(ids_and_titles(url, response.content))
            links = feedparser.parse(response.content).feed.get("links", [])
            url = next((link.href for link in links if link.rel == "prev-archive"), "")
        return documents


def test_soak(daemon: tuple[subprocess.Popen[bytes], str, World, Path]) -> None:
    proc, base, world, log = daemon
    rng = random.Random(20261125)
    poller = Poller(base)
    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    end = started + SECONDS
    next_sample = started
    next_change = started
    changes = faults = 0
    # The faults end some time before the end, so that every source can recover and be read again.
    faults_until = end - min(30.0, SECONDS / 3)
    for _ in range(int(SECONDS * 20) + 100):  # bounded; the clock ends it
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_sample:
            samples.append((now - started, rss_kb(proc.pid)))
            next_sample += SAMPLE_EVERY
        if now >= next_change:
            next_change = now + 0.5
            with world.lock:
                source = rng.choice(world.sources)
                if rng.random() < 0.6:
                    source.add()
                else:
                    item = rng.choice(source.items)
                    item.summary = f"Edited at {now - started:.1f} s: {item.title} has news."
                    world.edited.add(item.title)
                changes += 1
                if now < faults_until and rng.random() < 0.15:
                    victim = rng.choice(world.sources)
                    hanging = sum(1 for s in world.sources if s.fault == "hang" and s.fault_until > now)
                    victim.fault = rng.choice(FAULTS if hanging < 2 else FAULTS[:2])
                    victim.fault_until = min(now + rng.uniform(3, 10), faults_until)
                    faults += 1
        poller.poll()
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)

    # Settle: no more changes or faults; wait until every title ever served is in the archive chain.
    world.release.set()
    settled_at = time.monotonic()
    missing: set[str] = set()
    for _ in range(600):
        poller.poll()
        with world.lock:
            served = set(world.served)
        documents = poller.chain("all.atom")
        titles = {title for document in documents for _, title in document}
        missing = served - titles
        if not missing or time.monotonic() - settled_at > 120:
            break
        time.sleep(1)
    settle_seconds = time.monotonic() - settled_at

    poller.client.close()
    ids = [i for document in documents for i, _ in document]
    # RFC 5005: an archived entry edited later comes back in the current document, and the newer copy wins.
    counts = Counter(pair for document in documents for pair in document)
    twice = {title for (_, title), count in counts.items() if count > 1}
    proc.send_signal(signal.SIGTERM)
    status = proc.wait(timeout=30)

    kbs = [kb for _, kb in samples]
    warm = kbs[1:] if len(kbs) > 3 else kbs  # the first sample is taken before the first real polls
    third = max(1, len(warm) // 3)
    first, last = sum(warm[:third]) / third, sum(warm[-third:]) / third
    print(
        f"\nsoak: {SECONDS} s, {SOURCES} sources, {world.requests} source requests ({world.faults_served} faulty), "
        f"{changes} changes, {faults} fault windows\n"
        f"polls: {poller.polls} rounds, {poller.fresh} fresh answers, {poller.not_modified} not modified, "
        f"{len(poller.problems)} problems\n"
        f"all.atom chain: {len(documents)} documents, {len(ids)} entries, {len(served)} titles served, "
        f"{len(twice)} edited after archiving and so listed again, "
        f"{len(missing)} missing after {settle_seconds:.1f} s of settling\n"
        f"daemon RSS (MB) every {SAMPLE_EVERY:.0f} s: {' '.join(f'{kb / 1024:.1f}' for kb in kbs)}; "
        f"first third {first / 1024:.1f}, last third {last / 1024:.1f}\n"
        f"exit status after SIGTERM: {status}"
    )
    assert poller.problems == []
    for document in documents:
        assert len(document) == len({i for i, _ in document}), "an entry appears twice in one document"
    with world.lock:
        assert twice <= world.edited, f"unedited entries appear twice in the chain: {sorted(twice - world.edited)}"
    assert not missing, f"entries lost: {sorted(missing)[:20]}"
    assert last <= first * 1.25, "the daemon's memory kept growing"
    assert status == 0, log.read_text()[-3000:]
