"""When an HTTP request is worth another try, and how long to wait first: backoff and Retry-After."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

_TRY_AGAIN = frozenset({408, 429})  # request timeout, too many requests: the server asks to come back


def worth_retrying(status: int) -> bool:
    """Whether an answer with this status may succeed if asked again: 408, 429 and every server error."""
    return status in _TRY_AGAIN or status >= 500


def backoff(attempt: int, *, base: float, ceiling: float, rng: Callable[[], float]) -> float:
    """Seconds to wait before retry number `attempt` (from 1): exponential, capped, with full jitter."""
    # Full jitter: clients failing together (many sources after an outage, many publishers at one hub)
    # do not all come back in the same second.
    return rng() * min(ceiling, base * 2.0 ** (attempt - 1))


def retry_after(headers: httpx.Headers, now: datetime) -> float | None:
    """The wait a server asked for in Retry-After, in seconds; None when it asked for none we can read.

    Retry-After is delta-seconds or an HTTP date. A date is on the server's clock, so it is measured
    from the server's Date header when there is one, else from `now`.
    """
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    when = http_date(value)
    if when is None:
        return None
    return max(0.0, (when - server_now(headers, now)).total_seconds())


def server_now(headers: httpx.Headers, now: datetime) -> datetime:
    """The time on the server's clock: its (first) Date header, else `now`."""
    dates = headers.get_list("date")
    return (http_date(dates[0]) if dates else None) or now


def http_date(value: str) -> datetime | None:
    """An HTTP date as an aware datetime; None when unreadable."""
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    # "-0000" in RFC 5322 means UTC with an unknown local zone; HTTP dates are always GMT.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
