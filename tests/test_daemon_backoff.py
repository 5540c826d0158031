"""The daemon and a failing source: it rests longer after each failure in a row, and recovers by itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from daemon_helpers import LATER, NEWS, PUBS, Run, events, metric_samples, source, status_rows, wait_for
from site_helpers import NOW

from feeds.schedule import backoff


def test_a_failing_source_backs_off_and_recovers_by_itself(
    start_daemon: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="feeds")
    run = start_daemon(
        source("steady", "news.txt", "every 1h") + source("flaky", "flaky.txt", "every 1s"), {"news.txt": NEWS}
    )

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
