"""What operators watch a running daemon by: /healthz, /metrics and its structured log lines."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import httpx
import pytest
from daemon_helpers import LATER, TWO_FILES, TWO_SOURCES, Run, events, metric_samples, snapshot, wait_for
from prometheus_client.parser import text_string_to_metric_families

from feeds.serve import ServerThread


def test_healthz_is_200_while_the_scheduler_runs_and_503_after_stop(start_daemon: Callable[..., Run]) -> None:
    run = start_daemon(TWO_SOURCES, TWO_FILES)
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
    start_daemon: Callable[..., Run],
) -> None:
    run = start_daemon(TWO_SOURCES, TWO_FILES)
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


def test_one_log_line_per_fetch_and_per_written_file(
    start_daemon: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="feeds")
    run = start_daemon(TWO_SOURCES, TWO_FILES)
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
