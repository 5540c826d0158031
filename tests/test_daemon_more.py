"""The daemon behind `feeds run`: back-off, health, metrics, selective rewrites, logs, caching, stopping."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import feedparser
import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger
from lxml import etree
from lxml import html as lxml_html
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from feeds import cli
from feeds.schedule import Daemon, backoff
from feeds.serve import ServerThread

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
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
SITE = """
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


def source(name: str, location: str, schedule: str) -> str:
    return f'\n[[sources]]\nname = "{name}"\nadapter = "listing"\nlocation = "{location}"\nschedule = "{schedule}"\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    """Start a daemon in this process on `sources` (TOML) with `files` beside its config; stopped afterwards."""
    runs: list[Run] = []

    def start(sources: str, files: dict[str, str]) -> Run:
        for name, text in files.items():
            (tmp_path / name).write_text(text, encoding="utf-8")
        port = free_port()
        (tmp_path / "config.toml").write_text(SITE.format(port=port) + sources, encoding="utf-8")
        clock = Clock()
        daemon = Daemon(tmp_path / "config.toml", port=port, clock=clock)
        run = Run(daemon=daemon, root=tmp_path, base=f"http://127.0.0.1:{port}/", clock=clock)
        runs.append(run)
        daemon.start()
        return run

    yield start
    for run in runs:
        run.stop()


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


def test_a_failing_source_backs_off_and_recovers_by_itself(
    start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="feeds")
    run = start(source("steady", "news.txt", "every 1h") + source("flaky", "flaky.txt", "every 1s"), {"news.txt": NEWS})

    def flaky(event: str) -> list[tuple[float, dict[str, str]]]:
        return [(at, f) for at, f in events(list(caplog.records), event) if f["source"] == "flaky"]

    def two_backoffs() -> list[tuple[float, dict[str, str]]]:
        found = flaky("backoff")
        return found if len(found) >= 2 else []

    rests = wait_for(two_backoffs)
    # Repaired while it rests; the clock moves so that the success is told apart from the start.
    run.clock.now = LATER
    (run.root / "flaky.txt").write_text(PUBS, encoding="utf-8")

    def recovered_and_polled_again() -> list[tuple[float, dict[str, str]]]:
        fetches = flaky("fetch")
        results = [f["result"] for _, f in fetches]
        return fetches if "ok" in results and len(results) > results.index("ok") + 1 else []

    fetches = recovered_and_polled_again()
    fetches = wait_for(recovered_and_polled_again)
    results = [f["result"] for _, f in fetches]
    assert results[:4] == ["failed", "failed", "failed", "ok"]  # the first pass, two polls, the recovery

    # Each failure in a row doubles the rest: 2 s after the second, 4 s after the third, and the job honours it.
    assert [f["failures"] for _, f in rests[:2]] == ["2", "3"]
    for (logged, fields), (next_fetch, _) in zip(rests[:2], fetches[2:4], strict=True):
        next_run = datetime.fromisoformat(fields["next_run"]).timestamp()
        rest = backoff(1, int(fields["failures"])).total_seconds()
        assert abs(next_run - logged - rest) < 1.5, fields
        assert next_fetch >= next_run - 0.05, "polled again before its rest was over"

    # Back to the normal period at once: the next poll comes one second after the recovery, not 8 s.
    (ok_at, _), (after_at, _) = fetches[3], fetches[4]
    assert 0.3 < after_at - ok_at < 2.5

    samples = metric_samples(run.get("metrics").text)
    assert samples[("feeds_fetch_failures_total", frozenset({("source", "flaky")}))] == 3
    assert samples[("feeds_fetch_failures_total", frozenset({("source", "steady")}))] == 0
    assert samples[("feeds_fetches_total", frozenset({("source", "flaky"), ("result", "failed")}))] == 3
    assert samples[("feeds_fetches_total", frozenset({("source", "flaky"), ("result", "ok")}))] == 1
    assert samples[("feeds_source_last_success_timestamp_seconds", frozenset({("source", "flaky")}))] == (
        LATER.timestamp()
    )
    assert samples[("feeds_source_last_success_timestamp_seconds", frozenset({("source", "steady")}))] == (
        NOW.timestamp()
    )

    _last_fetch, result, next_run, entries = status_rows(run.get("status").content)["flaky"]
    assert result == "ok"  # the failure count was reset
    assert entries == "2"
    assert datetime.fromisoformat(next_run).replace(tzinfo=UTC) <= datetime.now(UTC) + timedelta(seconds=3)


def test_healthz_is_200_while_the_scheduler_runs_and_503_after_stop(start: Callable[..., Run]) -> None:
    run = start(TWO_SOURCES, TWO_FILES)
    healthy = run.get("healthz")
    assert (healthy.status_code, healthy.text) == (200, "ok\n")
    assert healthy.headers["cache-control"] == "no-store"
    assert httpx.head(run.base + "healthz").status_code == 200
    run.stop()
    with pytest.raises(httpx.TransportError):
        run.get("healthz")
    # The same app behind a fresh server: it must report the stopped scheduler, not a cached "ok".
    with ServerThread(run.daemon.app) as server:
        stopped = httpx.get(server.url + "/healthz", timeout=10)
    assert (stopped.status_code, stopped.text) == (503, "stopped\n")


def test_metrics_are_prometheus_text_with_fetches_failures_entries_render_time_and_last_success(
    start: Callable[..., Run],
) -> None:
    run = start(TWO_SOURCES, TWO_FILES)
    run.clock.now = LATER
    run.append_news()
    wait_for(lambda: "Fishers" in run.get("news.atom").text)

    def both_read_later() -> httpx.Response | None:
        response = run.get("metrics")
        samples = metric_samples(response.text)
        stamps = [
            samples.get(("feeds_source_last_success_timestamp_seconds", frozenset({("source", s)})))
            for s in ("news", "pubs")
        ]
        return response if stamps == [LATER.timestamp()] * 2 else None

    response = wait_for(both_read_later)
    assert re.match(r"text/plain; version=\d", response.headers["content-type"])
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["feeds_fetches"].type == "counter"
    assert families["feeds_fetch_failures"].type == "counter"
    assert families["feeds_render_seconds"].type == "histogram"
    assert families["feeds_source_last_success_timestamp_seconds"].type == "gauge"

    samples = metric_samples(response.text)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    for name in ("news", "pubs"):
        fetched = sum(
            v for (n, labels), v in samples.items() if n == "feeds_fetches_total" and ("source", name) in labels
        )
        assert fetched >= 2  # the first pass and at least one poll
        assert value("feeds_fetch_failures_total", source=name) == 0
    assert value("feeds_fetches_total", source="news", result="ok") >= 2
    assert value("feeds_source_entries", source="news") == 3
    assert value("feeds_source_entries", source="pubs") == 2
    assert value("feeds_feed_entries", feed="news.atom") == 3
    assert value("feeds_feed_entries", feed="publications.json") == 2
    assert value("feeds_feed_entries", feed="all.rss") == 5
    assert value("feeds_render_seconds_count") >= 1
    assert value("feeds_render_seconds_sum") > 0
    assert value("feeds_render_seconds_bucket", le="+Inf") == value("feeds_render_seconds_count")
    assert value("feeds_files_written_total") >= 9


def test_a_change_rewrites_only_the_files_it_touches(start: Callable[..., Run]) -> None:
    run = start(TWO_SOURCES, TWO_FILES)
    before = snapshot(run.out)
    assert {"news.atom", "publications.atom", "all.atom", "index.html"} <= before.keys()
    time.sleep(1.2)  # one round of polls that read nothing new
    assert snapshot(run.out) == before

    run.append_news()
    wait_for(lambda: b"Fishers" in (run.out / "news.atom").read_bytes())
    run.stop()  # waits for the poll to finish its writes
    after = snapshot(run.out)

    changed = {name for name, seen in after.items() if before.get(name) != seen}
    for ext in ("atom", "rss", "json"):
        assert {f"news.{ext}", f"news.{ext}.gz", f"all.{ext}", f"all.{ext}.gz"} <= changed
    untouched = [name for name in before if name.startswith("publications.")]
    assert len(untouched) >= 8  # three feeds and a page, each with its .gz
    assert not changed & set(untouched)
    unexpected = [n for n in changed if not re.match(r"(news|all)\.|index\.html|entries/", n)]
    assert unexpected == []


def test_one_log_line_per_fetch_and_per_written_file(
    start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="feeds")
    run = start(TWO_SOURCES, TWO_FILES)
    first = snapshot(run.out)
    mark = len(caplog.records)
    run.append_news()
    wait_for(lambda: b"Fishers" in (run.out / "news.atom").read_bytes())
    run.stop()
    after = snapshot(run.out)
    records = list(caplog.records)

    def written(rs: list[logging.LogRecord]) -> list[str]:
        return [f["path"] for _, f in events(rs, "write")]

    # The first pass wrote every file; each .gz goes with its file and is not logged apart.
    initial = written(records[:mark])
    assert sorted(initial) == sorted(n for n in first if not n.endswith(".gz"))
    changed = sorted(n for n, seen in after.items() if first.get(n) != seen and not n.endswith(".gz"))
    assert sorted(written(records[mark:])) == changed
    assert "news.atom" in changed

    fetches = events(records, "fetch")
    assert all({"source", "result", "entries", "seconds", "error"} <= f.keys() for _, f in fetches)
    samples = metric_samples(run.daemon.metrics.render().decode())
    for name in ("news", "pubs"):
        counted = sum(
            v for (n, labels), v in samples.items() if n == "feeds_fetches_total" and ("source", name) in labels
        )
        assert len([f for _, f in fetches if f["source"] == name]) == counted
    news_results = [f["result"] for _, f in fetches if f["source"] == "news"]
    assert news_results[0] == "ok" and "ok" in news_results[1:]  # the first pass, then the change


def test_rss_ttl_agrees_with_cache_control(start: Callable[..., Run]) -> None:
    run = start(source("news", "news.txt", "every 2m") + source("pubs", "pubs.txt", "every 5m"), TWO_FILES)

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


def test_stop_waits_for_a_failing_fetch_in_flight(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A poll that fails backs off through the scheduler; stopping while it is under way must neither hang
    # (APScheduler's shutdown holds the lock that asks for) nor cut the poll short.
    caplog.set_level(logging.INFO, logger="feeds")
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    requests: list[float] = []
    in_flight = threading.Event()

    def slow_not_found(request: Request) -> Response:
        requests.append(time.monotonic())
        if len(requests) >= 2:
            in_flight.set()
        time.sleep(1.0)
        return Response("not here yet\n", status=404)

    server.expect_request("/news.txt").respond_with_handler(slow_not_found)
    server.start()
    try:
        port = free_port()
        config = tmp_path / "config.toml"
        config.write_text(SITE.format(port=port) + source("remote", server.url_for("/news.txt"), "every 1s"))
        daemon = Daemon(config, port=port)
        daemon.start()
        try:
            assert in_flight.wait(30), "the scheduled poll never came"
        finally:
            stopping = threading.Thread(target=daemon.stop)
            stopping.start()
            stopping.join(30)
        assert not stopping.is_alive(), "stop() hangs while a failing poll is in flight"
    finally:
        server.clear()
        server.stop()
    backoffs = [f for _, f in events(list(caplog.records), "backoff")]
    assert [f["failures"] for f in backoffs] == ["2"]  # the poll in flight finished and was recorded


# -- `feeds run` as a process ---------------------------------------------------------------------------

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


def test_sigterm_during_a_write_leaves_whole_files_then_status_shows_next_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    (tmp_path / "news.txt").write_text(big_listing(300), encoding="utf-8")
    (tmp_path / "pubs.txt").write_text(PUBS, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        SITE.format(port=port) + source("news", "news.txt", "every 1s") + source("pubs", "pubs.txt", "0 6 * * *")
    )
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "feeds", "run", "--config", str(config), "--port", str(port)],
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:

        def log() -> str:
            return log_path.read_text(encoding="utf-8", errors="replace")

        def started() -> bool:
            assert proc.poll() is None, log()
            return "event=start" in log()

        wait_for(started, timeout=60)
        with (tmp_path / "news.txt").open("a", encoding="utf-8") as f:
            f.write(ADDED.replace("  3.", "  301."))

        # The fetch line comes just before the poll renders and writes, so the signal usually lands during the
        # write (some 200 ms here). What is asserted below holds whenever it lands: the poll finishes its files.
        wait_for(lambda: log().count("event=fetch source=news result=ok") >= 2, timeout=30, every=0.005)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    text = log()
    assert "event=signal signal=SIGTERM" in text and "event=stop" in text
    out = tmp_path / "output"
    assert check_whole(out) > 20
    # The poll under way finished every file, not some: the new entry is in each feed it belongs to.
    for name in ("news.atom", "news.rss", "news.json", "all.atom", "all.rss", "all.json", "news.html", "all.html"):
        assert b"Fishers form a marketing cooperative" in (out / name).read_bytes(), name
    assert b"Fishers" not in (out / "publications.atom").read_bytes()

    # `feeds status` afterwards: each source with its last fetch and the next run the daemon planned, in UTC.
    capsys.readouterr()
    assert cli.main(["status", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    rows = {
        m.group(1): m.groups()[1:]
        for m in (re.match(rf"^(\S+)\s+({stamp})\s+({stamp})\s+(\d+)\s+(.+)$", line) for line in lines)
        if m
    }
    assert rows.keys() == {"news", "pubs"}, lines
    last_news, next_news, entries, result = rows["news"]
    assert (entries, result) == ("301", "ok")
    assert timedelta(0) < _utc(next_news) - _utc(last_news) <= timedelta(seconds=3)
    last_pubs, next_pubs, entries, result = rows["pubs"]
    assert (entries, result) == ("2", "ok")
    cron = CronTrigger.from_crontab("0 6 * * *", timezone="Europe/Zurich")
    assert _utc(next_pubs) == cron.get_next_fire_time(None, _utc(last_pubs)).astimezone(UTC)
    assert any(line.startswith("news.atom ") for line in lines)


def _utc(text: str) -> Any:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
