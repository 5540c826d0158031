"""Telling WebSub hubs that feeds changed: one background worker per hub, retries, never delaying publishing."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from urllib.parse import urlencode, urlsplit

import httpx

from feeds.logfmt import logfmt
from feeds.retry import backoff, retry_after, worth_retrying

log = logging.getLogger("feeds.websub")

FORM_TYPE = "application/x-www-form-urlencoded"
# A hub asking us to wait longer than this is treated as asking for this long: one ping must not park its
# hub's worker for days on a misconfigured header, and the ping after it would then go out anyway.
MAX_RETRY_AFTER = 3600.0
_BODY_EXCERPT = 200  # characters of a refusing hub's explanation that go into the log line


def publish_body(url: str) -> bytes:
    """The form a hub receives for a changed topic `url`.

    WebSub leaves the publisher-to-hub message to the hub. The PubSubHubbub convention, which Google's
    hub and Superfeedr follow, names the topic in `hub.url`; hubs written from the W3C text read
    `hub.topic` and most take either. Both carry the same URL, so every hub finds the one it reads.
    """
    return urlencode((("hub.mode", "publish"), ("hub.topic", url), ("hub.url", url))).encode("ascii")


class _Hub:
    """One hub's queue and the state its worker keeps between pings."""

    __slots__ = ("busy", "not_before", "pending", "queued", "thread", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.pending: deque[str] = deque()
        self.queued: set[str] = set()  # the URLs in `pending`, for deduplication
        self.busy = False  # a ping is being sent or retried
        self.not_before = 0.0  # clock time before which this hub asked not to be contacted (Retry-After)
        self.thread: threading.Thread | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Outcome:
    """What one POST to a hub came to."""

    ok: bool
    status: int | str  # the HTTP status, or the network error's class name
    detail: str = ""
    retry: bool = False
    wait: float | None = None  # what the hub asked for in Retry-After; None for our own backoff


class HubPinger:
    """Tells WebSub hubs that feeds changed, from background threads, never delaying publishing.

    `publish(urls)` only enqueues. Each hub has its own queue and worker thread, so a hub that is down,
    slow or rate-limiting never delays another hub's pings. A worker sends one POST per topic URL (one
    `hub.url` a request: the form every hub accepts, and a refusal then names the URL it concerns).
    Network errors, 5xx, 408 and 429 are retried up to `retries` times with full-jitter exponential backoff,
    or after the Retry-After the hub gave; any other answer is final. Nothing is ever raised from the
    workers: outcomes go to the `feeds.websub` logger as `event=websub` logfmt lines, and to `stats`.

    A URL already waiting in a hub's queue is not queued again; one whose ping is already on its way is,
    since the hub may have fetched the feed before its newest bytes were in place.

    `sleep`, `rng` and `clock` are injectable so tests neither wait nor depend on chance. The default
    sleep returns early when `close()` is called.
    """

    def __init__(
        self,
        hubs: Sequence[str],
        *,
        user_agent: str,
        retries: int = 4,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = 10.0,
        sleep: Callable[[float], object] | None = None,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        for address in hubs:
            parts = urlsplit(address)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"WebSub hub must be an absolute http(s) URL, got {address!r}")
        for name, value in (("retries", retries), ("backoff_base", backoff_base), ("backoff_max", backoff_max)):
            if value < 0:
                raise ValueError(f"HubPinger {name} must not be negative, got {value!r}")
        if timeout <= 0:
            raise ValueError(f"HubPinger timeout must be positive, got {timeout!r}")
        self.hubs: tuple[str, ...] = tuple(dict.fromkeys(hubs))
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._stopping = threading.Event()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else self._stopping.wait
        self._rng = rng
        self._clock = clock
        # One condition for every queue: publish(), flush() and the workers each hold it only briefly.
        self._cond = threading.Condition()
        self._stats = {"sent": 0, "failed": 0, "retried": 0, "dropped": 0}
        self._closed = False
        # httpx's pool is thread-safe; redirects are not followed, since one would turn the POST into a GET.
        self._client = httpx.Client(
            headers={"User-Agent": user_agent},
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            transport=transport,
        )
        self._hubs = [_Hub(url) for url in self.hubs]
        for n, hub in enumerate(self._hubs):
            hub.thread = threading.Thread(target=self._work, args=(hub,), name=f"feeds-websub-{n}", daemon=True)
            hub.thread.start()

    # -- the publishing side ----------------------------------------------------------------------

    def publish(self, urls: Iterable[str]) -> None:
        """Queue a ping for every hub about each of `urls` (public feed URLs whose bytes just changed)."""
        wanted = list(dict.fromkeys(urls))
        if not wanted or not self._hubs:
            return
        with self._cond:
            if self._closed:
                for url in wanted:
                    log.warning(logfmt(event="websub", hub="-", url=url, result="dropped", error="pinger closed"))
                return
            for hub in self._hubs:
                for url in wanted:
                    if url not in hub.queued:
                        hub.queued.add(url)
                        hub.pending.append(url)
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every queue is empty and no ping is in flight; False if `timeout` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not any(h.pending or h.busy for h in self._hubs), timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers: queued pings are dropped (each with a log line), a backoff wait is cut short."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stopping.set()
            for hub in self._hubs:
                for url in hub.pending:
                    self._stats["dropped"] += 1
                    log.warning(logfmt(event="websub", hub=hub.url, url=url, result="dropped", error="shutting down"))
                hub.pending.clear()
                hub.queued.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for hub in self._hubs:
            if hub.thread is not None:
                hub.thread.join(max(0.0, deadline - time.monotonic()))
                if hub.thread.is_alive():
                    # Its request ends within the client timeout; closing the client below may end it sooner.
                    log.warning(logfmt(event="websub", hub=hub.url, result="abandoned", error="request in flight"))
        self._client.close()

    @property
    def stats(self) -> dict[str, int]:
        """Pings sent (a hub took them), failed (given up), retried (attempts after the first), dropped (at close)."""
        with self._cond:
            return dict(self._stats)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the workers ------------------------------------------------------------------------------

    def _work(self, hub: _Hub) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(hub.pending) or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                url = hub.pending.popleft()
                hub.queued.discard(url)
                hub.busy = True
            try:
                self._ping(hub, url)
            except Exception:
                # A bug here must not kill the worker: the hub would silently never hear from us again.
                log.exception(logfmt(event="websub", hub=hub.url, url=url, result="failed", error="internal error"))
                self._count("failed")
            finally:
                with self._cond:
                    hub.busy = False
                    self._cond.notify_all()

    def _ping(self, hub: _Hub, url: str) -> None:
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            if not self._wait(hub.not_before - self._clock()):
                self._drop(hub, url)
                return
            outcome = self._post(hub.url, url)
            if outcome.ok:
                self._count("sent")
                log.info(logfmt(event="websub", hub=hub.url, url=url, result="sent", status=outcome.status))
                return
            if outcome.wait is not None:
                # Retry-After speaks for the hub, not this ping: the next ping waits for it too.
                hub.not_before = max(hub.not_before, self._clock() + outcome.wait)
            if not outcome.retry or attempt == attempts:
                self._count("failed")
                log.warning(
                    logfmt(
                        event="websub",
                        hub=hub.url,
                        url=url,
                        result="failed",
                        status=outcome.status,
                        attempts=attempt,
                        error=outcome.detail or "-",
                    )
                )
                return
            self._count("retried")
            wait = self._backoff(attempt) if outcome.wait is None else 0.0
            log.info(
                logfmt(
                    event="websub",
                    hub=hub.url,
                    url=url,
                    result="retry",
                    status=outcome.status,
                    attempt=attempt,
                    wait=f"{max(wait, hub.not_before - self._clock()):.3f}",
                    error=outcome.detail or "-",
                )
            )
            if not self._wait(wait):
                self._drop(hub, url)
                return

    def _wait(self, seconds: float) -> bool:
        """Sleep `seconds` if positive; False when the pinger is closing and the ping should be dropped."""
        if seconds > 0 and not self._stopping.is_set():
            self._sleep(seconds)
        return not self._stopping.is_set()

    def _drop(self, hub: _Hub, url: str) -> None:
        self._count("dropped")
        log.warning(logfmt(event="websub", hub=hub.url, url=url, result="dropped", error="shutting down"))

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, base=self.backoff_base, ceiling=self.backoff_max, rng=self._rng)

    def _count(self, what: str) -> None:
        with self._cond:
            self._stats[what] += 1

    def _post(self, hub: str, url: str) -> _Outcome:
        try:
            with self._client.stream(
                "POST", hub, content=publish_body(url), headers={"Content-Type": FORM_TYPE}
            ) as response:
                status = response.status_code
                if 200 <= status < 300:
                    return _Outcome(ok=True, status=status)
                said = _excerpt(response)
                headers = response.headers
        except httpx.RequestError as exc:  # refused, reset, timed out, DNS: all worth another try
            return _Outcome(ok=False, status=type(exc).__name__, detail=str(exc) or type(exc).__name__, retry=True)
        if worth_retrying(status):
            wait = retry_after(headers, datetime.now(UTC))
            wait = None if wait is None else min(wait, MAX_RETRY_AFTER)
            return _Outcome(ok=False, status=status, detail=said, retry=True, wait=wait)
        if 300 <= status < 400:
            # A moved hub is a configuration matter: the POST is not replayed elsewhere behind the operator's back.
            where = headers.get("location", "")
            return _Outcome(ok=False, status=status, detail=f"hub redirects to {where}: update site.hubs")
        return _Outcome(ok=False, status=status, detail=said)


def _excerpt(response: httpx.Response) -> str:
    """The start of a hub's answer, usually its reason for refusing; the rest of the body is not read."""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= 4 * _BODY_EXCERPT:
            break
    text = " ".join(data.decode("utf-8", "replace").split())
    return text[:_BODY_EXCERPT] or response.reason_phrase
