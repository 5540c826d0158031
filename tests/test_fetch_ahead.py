"""A pass fetches its URL sources at once, a few per host, and still records them in config order."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import feedparser
import pytest
from pytest_httpserver import HTTPServer
from site_helpers import NOW
from werkzeug import Request, Response

from feeds import pipeline
from feeds.config import Config
from feeds.fetch import FetchLimits

PER_HOST = FetchLimits().per_host
SOURCES_PER_HOST = PER_HOST + 2


class Gate:
    """Holds each request until `PER_HOST` are in flight on this server, and records the most seen at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.changed = threading.Condition()

    def handle(self, request: Request) -> Response:
        with self.changed:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.changed.notify_all()
            # The first requests wait for each other; a fetcher asking one at a time waits out the timeout.
            self.changed.wait_for(lambda: self.peak >= PER_HOST, timeout=10)
        try:
            number = request.path.removeprefix("/n").removesuffix(".txt")
            port = request.host.rpartition(":")[2]
            text = f"Notes\n\n  1. News\n\n    Item {number} from port {port}\n\n    3 March 2022\n"
            return Response(text, content_type="text/plain; charset=utf-8")
        finally:
            with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()


@pytest.fixture
def servers() -> Iterator[list[tuple[HTTPServer, Gate]]]:
    started = []
    for _ in range(2):
        server = HTTPServer(host="127.0.0.1", threaded=True)
        gate = Gate()
        server.expect_request("/n0.txt").respond_with_handler(gate.handle)
        for n in range(1, SOURCES_PER_HOST):
            server.expect_request(f"/n{n}.txt").respond_with_handler(gate.handle)
        server.start()
        started.append((server, gate))
    yield started
    for server, _gate in started:
        server.clear()
        server.stop()


def test_sources_are_fetched_at_once_within_the_per_host_limit(
    servers: list[tuple[HTTPServer, Gate]], make_config: Callable[..., Config]
) -> None:
    body = ""
    names = []
    for server, _gate in servers:
        for n in range(SOURCES_PER_HOST):
            name = f"s{server.port}-{n}"
            names.append(name)
            body += (
                f'\n[[sources]]\nname = "{name}"\nadapter = "listing"\nlocation = "{server.url_for(f"/n{n}.txt")}"\n'
            )
    config = make_config(body)

    report = pipeline.build(config, NOW)

    assert [s.error for s in report.sources] == [""] * len(names)
    assert [s.name for s in report.sources] == names  # recorded in config order, whatever finished first
    # Every host got exactly as many requests at once as it may have, never more.
    assert [gate.peak for _server, gate in servers] == [PER_HOST, PER_HOST]
    titles = {e.title for e in feedparser.parse((config.site.output / "all.atom").read_bytes()).entries}
    assert titles == {f"Item {n} from port {s.port}" for s, _gate in servers for n in range(SOURCES_PER_HOST)}
