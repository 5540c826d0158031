"""WebSub publishing against real hubs on loopback: the ping, retries, Retry-After, isolation, and discovery."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from urllib.parse import urlsplit

import httpx
import pytest
from hub_helpers import Hub
from lxml import etree
from site_helpers import DATA, NOW, SITE

from feeds import pipeline
from feeds.config import Config
from feeds.serve import ServerThread, StaticFeeds
from feeds.websub import HubPinger

UA = "feeds/test (+https://feeds.example.org/contact)"
FEED = "https://feeds.example.org/news.atom"
OTHER = "https://feeds.example.org/news.rss"
THIRD = "https://feeds.example.org/news.json"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def dead_hub() -> Iterator[str]:
    """The URL of a hub that is down: connections to it are refused."""
    with socket.socket() as sock:
        # Bound but not listening: refused like a closed port, and no other test's server can take the port.
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hub"


class FakeTime:
    """A clock that only moves when the pinger sleeps, and remembers every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def pinger(hubs: list[str], time_: FakeTime | None = None, **kwargs: object) -> HubPinger:
    fake = time_ or FakeTime()
    options: dict[str, object] = {"sleep": fake.sleep, "clock": fake.clock, "rng": lambda: 0.5, "timeout": 5.0}
    options.update(kwargs)
    return HubPinger(hubs, user_agent=UA, **options)  # type: ignore[arg-type]


def websub_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "feeds.websub"]


def websub_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("feeds-websub-")]


# -- the ping ------------------------------------------------------------------------------------


def test_ping_is_one_form_post_per_feed_url(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="feeds.websub")
    with pinger([hub.url]) as p:
        p.publish([FEED, OTHER])
        assert p.flush(5)
        assert p.stats == {"sent": 2, "failed": 0, "retried": 0, "dropped": 0}
    pings = hub.wait_for(2)
    assert [(ping.method, ping.path) for ping in pings] == [("POST", "/hub")] * 2
    assert {ping.content_type for ping in pings} == {"application/x-www-form-urlencoded"}
    assert {ping.user_agent for ping in pings} == {UA}
    # hub.url for PubSubHubbub-era hubs, hub.topic for hubs written from the W3C text: the same URL.
    assert [ping.form for ping in pings] == [
        {"hub.mode": ["publish"], "hub.topic": [FEED], "hub.url": [FEED]},
        {"hub.mode": ["publish"], "hub.topic": [OTHER], "hub.url": [OTHER]},
    ]
    assert f"event=websub hub={hub.url} url={FEED} result=sent status=202" in websub_lines(caplog)


def test_every_hub_hears_of_every_url(make_hub: Callable[[], Hub]) -> None:
    first, second = make_hub(), make_hub().answer((204, {}, b""))
    with pinger([first.url, second.url, first.url]) as p:  # a hub listed twice is pinged once
        p.publish([FEED, OTHER])
        assert p.flush(5)
    assert first.urls == [FEED, OTHER]
    assert second.urls == [FEED, OTHER]


def test_server_errors_are_retried_with_backoff(hub: Hub) -> None:
    hub.answer((503, {}, b""), (500, {}, b"oops"), (502, {}, b""))
    fake = FakeTime()
    with pinger([hub.url], fake, retries=4, backoff_base=1.0) as p:
        p.publish([FEED])
        assert p.flush(5)
        assert p.stats == {"sent": 1, "failed": 0, "retried": 3, "dropped": 0}
    assert hub.urls == [FEED] * 4
    # Full jitter (rng fixed at 0.5) over 1, 2, 4 seconds.
    assert fake.sleeps == [0.5, 1.0, 2.0]


def test_network_errors_retry_until_given_up(dead_hub: str, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    with pinger([dead_hub], fake, retries=4, backoff_base=1.0, backoff_max=3.0, rng=lambda: 1.0) as p:
        p.publish([FEED])
        assert p.flush(5)
        assert p.stats == {"sent": 0, "failed": 1, "retried": 4, "dropped": 0}
    assert fake.sleeps == [1.0, 2.0, 3.0, 3.0]  # doubling, capped at backoff_max
    (failed,) = [line for line in websub_lines(caplog) if "result=failed" in line]
    assert failed.startswith(f"event=websub hub={dead_hub} url={FEED} result=failed status=ConnectError attempts=5 ")


def test_retry_after_is_honoured(hub: Hub) -> None:
    date = 1_700_000_000
    hub.answer(
        (503, {"Retry-After": "7"}, b""),
        (429, {"Retry-After": formatdate(date + 120, usegmt=True), "Date": formatdate(date, usegmt=True)}, b""),
        (429, {}, b""),  # no Retry-After: our own backoff
    )
    fake = FakeTime()
    with pinger([hub.url], fake, retries=4) as p:
        p.publish([FEED])
        assert p.flush(5)
        assert p.stats == {"sent": 1, "failed": 0, "retried": 3, "dropped": 0}
    assert fake.sleeps == [7.0, 120.0, 2.0]


def test_retry_after_also_holds_the_next_ping(hub: Hub) -> None:
    hub.answer((429, {"Retry-After": "30"}, b""))
    fake = FakeTime()
    with pinger([hub.url], fake, retries=0) as p:
        p.publish([FEED])
        assert p.flush(5)
        assert p.stats["failed"] == 1
        assert fake.sleeps == []
        p.publish([OTHER])
        assert p.flush(5)
        assert p.stats["sent"] == 1
    assert fake.sleeps == [30.0]
    assert hub.urls == [FEED, OTHER]


@pytest.mark.parametrize("status", [400, 403, 404, 410])
def test_client_errors_are_logged_not_retried(hub: Hub, status: int, caplog: pytest.LogCaptureFixture) -> None:
    hub.answer((status, {"Content-Type": "text/plain"}, b"hub.topic  is not\nallowed here"))
    fake = FakeTime()
    with pinger([hub.url], fake) as p:
        p.publish([FEED])
        assert p.flush(5)
        assert p.stats == {"sent": 0, "failed": 1, "retried": 0, "dropped": 0}
    assert hub.urls == [FEED]
    assert fake.sleeps == []
    assert websub_lines(caplog) == [
        f'event=websub hub={hub.url} url={FEED} result=failed status={status} attempts=1 error="hub.topic is not '
        'allowed here"'
    ]


def test_a_moved_hub_is_not_followed(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    hub.answer((308, {"Location": "http://127.0.0.1:9/elsewhere"}, b""))
    with pinger([hub.url]) as p:
        p.publish([FEED])
        assert p.flush(5)
        assert p.stats["failed"] == 1
    assert hub.urls == [FEED]
    assert "hub redirects to http://127.0.0.1:9/elsewhere: update site.hubs" in websub_lines(caplog)[0]


# -- never in the way ----------------------------------------------------------------------------


def test_a_down_hub_does_not_delay_a_healthy_one(dead_hub: str, hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    backing_off = threading.Event()
    gate = threading.Event()

    def sleep(seconds: float) -> None:
        backing_off.set()
        gate.wait(10)

    with pinger([dead_hub, hub.url], sleep=sleep, retries=1) as p:
        p.publish([FEED])
        assert backing_off.wait(5)  # the dead hub's worker is parked in its backoff...
        assert hub.wait_for(1)[0].url == FEED  # ...and the healthy hub has its ping all the same
        assert not p.flush(0.05)
        gate.set()
        assert p.flush(5)
        assert p.stats == {"sent": 1, "failed": 1, "retried": 1, "dropped": 0}
    lines = websub_lines(caplog)
    assert any(line.startswith(f"event=websub hub={dead_hub} url={FEED} result=failed") for line in lines), lines


def test_publish_returns_at_once_while_the_hub_hangs(hub: Hub) -> None:
    hub.answering.clear()
    with pinger([hub.url]) as p:
        started = time.monotonic()
        p.publish([FEED])
        elapsed = time.monotonic() - started
        hub.wait_for(1)  # the hub holds this request until told to answer
        started = time.monotonic()
        p.publish([OTHER])
        elapsed = max(elapsed, time.monotonic() - started)
        assert p.stats["sent"] == 0
        assert not p.flush(0.05)
        hub.answering.set()
        assert p.flush(5)
        assert p.stats["sent"] == 2
    assert elapsed < 1.0  # the hub would have held us for ten seconds
    assert hub.urls == [FEED, OTHER]


def test_urls_already_queued_are_not_queued_again(hub: Hub) -> None:
    hub.answering.clear()
    with pinger([hub.url]) as p:
        p.publish([FEED])
        hub.wait_for(1)
        p.publish([OTHER, THIRD, OTHER])
        p.publish([THIRD, OTHER])
        # FEED's ping is in flight, not queued: the hub may already have read the old bytes, so it goes again.
        p.publish([FEED])
        hub.answering.set()
        assert p.flush(5)
    assert hub.urls == [FEED, OTHER, THIRD, FEED]


def test_close_stops_the_workers_and_drops_what_is_pending(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    hub.answer((503, {}, b""))
    # The real sleep this time: a 30 s backoff that close() must cut short.
    p = HubPinger([hub.url], user_agent=UA, backoff_base=30.0, rng=lambda: 1.0)
    p.publish([FEED])
    hub.wait_for(1)
    p.publish([OTHER])
    assert websub_threads()
    started = time.monotonic()
    p.close()
    assert time.monotonic() - started < 5.0
    assert websub_threads() == []
    assert p.stats == {"sent": 0, "failed": 0, "retried": 1, "dropped": 2}
    p.publish([THIRD])  # ignored after close, with a log line
    p.close()  # and a second close is harmless
    assert p.flush(0)
    assert hub.urls == [FEED]
    dropped = [line for line in websub_lines(caplog) if "result=dropped" in line]
    assert f'event=websub hub={hub.url} url={OTHER} result=dropped error="shutting down"' in dropped
    assert f'event=websub hub={hub.url} url={FEED} result=dropped error="shutting down"' in dropped
    assert f'event=websub hub=- url={THIRD} result=dropped error="pinger closed"' in dropped


def test_no_hubs_no_threads() -> None:
    with HubPinger([], user_agent=UA) as p:
        p.publish([FEED])
        assert p.flush(0)
        assert websub_threads() == []
        assert p.stats["sent"] == 0


@pytest.mark.parametrize("bad", ["ftp://hub.example.org/", "/hub", "hub.example.org"])
def test_hubs_must_be_http_urls(bad: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        HubPinger([bad], user_agent=UA)


# -- end to end: what the hub is told is what subscribers discover ------------------------------

E2E_BODY = """
[[categories]]
slug = "news"
title = "News"
types = ["News"]

[[sources]]
name = "africa"
adapter = "listing"
location = "listing.txt"
"""


def test_pinged_urls_serve_feeds_that_name_the_hub_and_themselves(hub: Hub, make_config: Callable[..., Config]) -> None:
    config = make_config(E2E_BODY, {"listing.txt": DATA / "listing.txt"}, site=SITE + f'hubs = ["{hub.url}"]\n')
    base = config.site.base_url
    report = pipeline.build(config, NOW)
    topics = [base + path for path in report.written if path.endswith((".atom", ".rss", ".json"))]
    assert {urlsplit(t).path for t in topics} >= {
        f"/{slug}.{ext}" for slug in ("all", "news") for ext in ("atom", "rss", "json")
    }

    # As the daemon does: ping once the new files are in place.
    with HubPinger(config.site.hubs, user_agent=UA) as p:
        p.publish(topics)
        assert p.flush(5)
    assert sorted(hub.urls) == sorted(topics)

    # As the hub then does: fetch each topic (our server standing in for the public host).
    app = StaticFeeds(config.site.output, hubs=config.site.hubs, base_url=base)
    with ServerThread(app) as server, httpx.Client(base_url=server.url) as client:
        for topic in topics:
            r = client.get(urlsplit(topic).path)
            assert r.status_code == 200, topic
            assert r.headers.get_list("link") == [f'<{hub.url}>; rel="hub"', f'<{topic}>; rel="self"'], topic
            if topic.endswith(".atom"):
                feed = etree.fromstring(r.content)
                links = {(link.get("rel"), link.get("href")) for link in feed.iterfind(f"{ATOM}link")}
                assert {("self", topic), ("hub", hub.url)} <= links, topic
            elif topic.endswith(".rss"):
                channel = etree.fromstring(r.content).find("channel")
                assert channel is not None
                links = {(link.get("rel"), link.get("href")) for link in channel.iterfind(f"{ATOM}link")}
                assert {("self", topic), ("hub", hub.url)} <= links, topic
            else:
                feed_json = json.loads(r.content)
                assert feed_json["feed_url"] == topic
                assert feed_json["hubs"] == [{"type": "WebSub", "url": hub.url}]

    # A rebuild that changes nothing writes nothing, so the daemon has nothing to tell the hub.
    assert [p for p in pipeline.build(config, NOW).written if p.endswith((".atom", ".rss", ".json"))] == []
