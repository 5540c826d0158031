"""Stopping the daemon: a poll in flight is finished, and SIGTERM during a write leaves whole files.

`feeds status` afterwards shows each source's last fetch and next run.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from daemon_helpers import ADDED, DAEMON_SITE, PUBS, big_listing, check_whole, events, source, terminate, wait_for
from pytest_httpserver import HTTPServer
from serve_helpers import free_port
from werkzeug import Request, Response

from feeds import cli
from feeds.schedule import Daemon


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
        config.write_text(DAEMON_SITE.format(port=port) + source("remote", server.url_for("/news.txt"), "every 1s"))
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


def test_sigterm_during_a_write_leaves_whole_files_then_status_shows_next_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    (tmp_path / "news.txt").write_text(big_listing(300), encoding="utf-8")
    (tmp_path / "pubs.txt").write_text(PUBS, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        DAEMON_SITE.format(port=port) + source("news", "news.txt", "every 1s") + source("pubs", "pubs.txt", "0 6 * * *")
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
        assert terminate(proc, log) == 0, log()
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
