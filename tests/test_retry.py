"""The retry rules that fetching sources and pinging WebSub hubs share."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from feeds.retry import backoff, http_date, retry_after, server_now, worth_retrying

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [408, 429, 500, 503, 599])
def test_timeouts_throttling_and_server_errors_are_worth_retrying(status: int) -> None:
    assert worth_retrying(status)


@pytest.mark.parametrize("status", [200, 304, 400, 404, 410])
def test_other_answers_are_final(status: int) -> None:
    assert not worth_retrying(status)


def test_backoff_doubles_up_to_the_ceiling_times_the_draw() -> None:
    waits = [backoff(attempt, base=0.5, ceiling=3.0, rng=lambda: 1.0) for attempt in range(1, 6)]
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff(3, base=0.5, ceiling=3.0, rng=lambda: 0.25) == 0.5


def test_retry_after_in_seconds() -> None:
    assert retry_after(httpx.Headers({"Retry-After": " 7 "}), NOW) == 7.0


def test_retry_after_date_is_measured_on_the_server_clock() -> None:
    headers = httpx.Headers({"Retry-After": "Fri, 01 Mar 2024 10:00:30 GMT", "Date": "Fri, 01 Mar 2024 10:00:00 GMT"})
    assert retry_after(headers, NOW) == 30.0  # our clock is two hours ahead: it does not count
    assert server_now(headers, NOW) == datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)


def test_retry_after_date_without_a_server_date_uses_our_clock() -> None:
    assert retry_after(httpx.Headers({"Retry-After": "Fri, 01 Mar 2024 12:00:10 GMT"}), NOW) == 10.0
    assert retry_after(httpx.Headers({"Retry-After": "Fri, 01 Mar 2024 11:00:00 GMT"}), NOW) == 0.0  # past


@pytest.mark.parametrize("value", ["", "soon", "-5", "1.5"])
def test_unreadable_retry_after_is_none(value: str) -> None:
    assert retry_after(httpx.Headers({"Retry-After": value}), NOW) is None


def test_http_date_without_a_zone_is_gmt() -> None:
    assert http_date("Fri, 01 Mar 2024 10:00:00 -0000") == datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)
    assert http_date("not a date") is None
