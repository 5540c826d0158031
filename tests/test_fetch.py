"""fetch.py against a real HTTP server on 127.0.0.1: conditional GET, redirects, retries, limits, charsets."""

from __future__ import annotations

import gzip
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from feeds import __version__
from feeds.errors import SourceError
from feeds.fetch import (
    Fetcher,
    FetchLimits,
    FetchResult,
    SourceGone,
    Validators,
    decide_charset,
    fetch_file,
    user_agent,
)

CONTACT = "https://feeds.example.org/contact"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    # Our own server rather than the plugin's: bound to 127.0.0.1 (never "localhost", which may be ::1)
    # and threaded, so slow handlers and the per-host test can overlap.
    instance = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    instance.start()
    yield instance
    instance.clear()
    instance.stop()


@pytest.fixture
def httpserver(server: HTTPServer) -> Iterator[HTTPServer]:
    server.clear()
    yield server
    server.check_handler_errors()


class Recorder:
    """Stands in for time.sleep: remembers each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def waits() -> Recorder:
    return Recorder()


@pytest.fixture
def fetcher_for(waits: Recorder) -> Iterator[Callable[..., Fetcher]]:
    made: list[Fetcher] = []

    def make(**limits: Any) -> Fetcher:
        fetcher = Fetcher(
            user_agent=user_agent(__version__, CONTACT),
            limits=FetchLimits(**limits),
            sleep=waits,
            rng=lambda: 1.0,  # the top of the jitter range, so waits are predictable
            now=lambda: NOW,
        )
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        fetcher.close()


@pytest.fixture
def fetcher(fetcher_for: Callable[..., Fetcher]) -> Fetcher:
    return fetcher_for()


def fetch(fetcher: Fetcher, url: str, validators: Validators | None = None) -> FetchResult:
    return fetcher.fetch("coop-news", url, validators or Validators())


# --- success, conditional GET, User-Agent ------------------------------------------------------


def test_document_carries_bytes_media_type_charset_url_and_headers(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/page").respond_with_data(
        "<p>café</p>", content_type="text/html; charset=utf-8", headers={"X-Extra": "1"}
    )
    result = fetch(fetcher, httpserver.url_for("/page"))
    assert result.document is not None
    assert result.document.content == "<p>café</p>".encode()
    assert result.document.media_type == "text/html"
    assert result.document.charset == "utf-8"
    assert result.document.url == httpserver.url_for("/page")
    assert result.document.headers["x-extra"] == "1"
    assert result.document.decode() == "<p>café</p>"
    assert result.bytes_received == len("<p>café</p>".encode())
    assert not result.not_modified
    assert result.permanent_redirect == ""


def test_user_agent_names_version_and_contact(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/ua").respond_with_data("ok")
    fetch(fetcher, httpserver.url_for("/ua"))
    request, _ = httpserver.log[-1]
    assert request.headers["User-Agent"] == f"feeds/{__version__} (+{CONTACT})"
    assert user_agent("0.1.0", "https://x.example/c") == "feeds/0.1.0 (+https://x.example/c)"
    assert user_agent("0.1.0", "") == "feeds/0.1.0"


def test_etag_and_last_modified_give_a_304(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    etag, modified = '"v1"', "Wed, 03 Nov 2021 10:00:00 GMT"
    httpserver.expect_ordered_request("/feed").respond_with_data(
        "<rss/>", content_type="application/rss+xml", headers={"ETag": etag, "Last-Modified": modified}
    )
    httpserver.expect_ordered_request(
        "/feed", headers={"If-None-Match": etag, "If-Modified-Since": modified}
    ).respond_with_data("", status=304)

    first = fetch(fetcher, httpserver.url_for("/feed"))
    assert first.validators == Validators(etag=etag, last_modified=modified)

    second = fetch(fetcher, httpserver.url_for("/feed"), first.validators)
    assert second.not_modified
    assert second.document is None
    assert second.validators == first.validators  # the 304 named none: the ones we sent still hold
    httpserver.check_assertions()


def test_a_304_with_new_validators_replaces_them(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/feed", headers={"If-None-Match": '"v1"'}).respond_with_data(
        "", status=304, headers={"ETag": '"v2"'}
    )
    result = fetch(fetcher, httpserver.url_for("/feed"), Validators(etag='"v1"'))
    assert result.not_modified
    assert result.validators == Validators(etag='"v2"', last_modified="")


def test_no_validators_no_conditional_headers(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/plain").respond_with_data("ok")
    result = fetch(fetcher, httpserver.url_for("/plain"))
    request, _ = httpserver.log[-1]
    assert "If-None-Match" not in request.headers
    assert "If-Modified-Since" not in request.headers
    assert result.validators == Validators()


# --- redirects ---------------------------------------------------------------------------------


def redirect(httpserver: HTTPServer, path: str, status: int, to: str) -> None:
    httpserver.expect_request(path).respond_with_data("", status=status, headers={"Location": to})


@pytest.mark.parametrize("status", [301, 308])
def test_permanent_redirect_is_reported(httpserver: HTTPServer, fetcher: Fetcher, status: int) -> None:
    redirect(httpserver, "/old", status, "/new")
    httpserver.expect_request("/new").respond_with_data("moved")
    result = fetch(fetcher, httpserver.url_for("/old"))
    assert result.document is not None
    assert result.document.content == b"moved"
    assert result.document.url == httpserver.url_for("/new")
    assert result.permanent_redirect == httpserver.url_for("/new")


@pytest.mark.parametrize("status", [302, 303, 307])
def test_temporary_redirect_is_followed_not_reported(httpserver: HTTPServer, fetcher: Fetcher, status: int) -> None:
    redirect(httpserver, "/today", status, httpserver.url_for("/elsewhere"))
    httpserver.expect_request("/elsewhere").respond_with_data("here")
    result = fetch(fetcher, httpserver.url_for("/today"))
    assert result.document is not None
    assert result.document.url == httpserver.url_for("/elsewhere")
    assert result.permanent_redirect == ""


def test_only_permanent_hops_before_a_temporary_one_count(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    redirect(httpserver, "/a", 301, "/b")
    redirect(httpserver, "/b", 302, "/c")
    httpserver.expect_request("/c").respond_with_data("c")
    assert fetch(fetcher, httpserver.url_for("/a")).permanent_redirect == httpserver.url_for("/b")

    redirect(httpserver, "/x", 302, "/y")
    redirect(httpserver, "/y", 301, "/z")
    httpserver.expect_request("/z").respond_with_data("z")
    assert fetch(fetcher, httpserver.url_for("/x")).permanent_redirect == ""


def test_redirect_loop_is_an_error(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    redirect(httpserver, "/ping", 302, "/pong")
    redirect(httpserver, "/pong", 302, "/ping")
    with pytest.raises(SourceError) as caught:
        fetch(fetcher, httpserver.url_for("/ping"))
    ping, pong = httpserver.url_for("/ping"), httpserver.url_for("/pong")
    assert str(caught.value) == f"coop-news: redirect loop: {ping} → {pong} → {ping}"


def test_more_redirects_than_the_limit_is_an_error(httpserver: HTTPServer, fetcher_for: Callable[..., Fetcher]) -> None:
    for hop in range(4):
        redirect(httpserver, f"/hop{hop}", 301, f"/hop{hop + 1}")
    httpserver.expect_request("/hop4").respond_with_data("end")
    chain = " → ".join(httpserver.url_for(f"/hop{hop}") for hop in range(4))
    with pytest.raises(SourceError) as caught:
        fetch(fetcher_for(max_redirects=2), httpserver.url_for("/hop0"))
    assert str(caught.value) == f"coop-news: more than 2 redirects: {chain}"
    assert len(httpserver.log) == 3  # the third redirect is not followed

    result = fetch(fetcher_for(max_redirects=4), httpserver.url_for("/hop0"))
    assert result.permanent_redirect == httpserver.url_for("/hop4")


def test_redirect_without_location_or_to_another_scheme(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/nowhere").respond_with_data("", status=301)
    with pytest.raises(SourceError, match=r"answered HTTP 301 without a Location header$"):
        fetch(fetcher, httpserver.url_for("/nowhere"))
    redirect(httpserver, "/ftp", 302, "ftp://files.example.org/feed.xml")
    with pytest.raises(SourceError, match=r"redirects to ftp://files\.example\.org/feed\.xml, which is not an http"):
        fetch(fetcher, httpserver.url_for("/ftp"))


# --- status codes, retries, Retry-After --------------------------------------------------------


def test_gone_says_to_remove_the_source(httpserver: HTTPServer, fetcher: Fetcher, waits: Recorder) -> None:
    httpserver.expect_request("/gone").respond_with_data("", status=410)
    with pytest.raises(SourceGone) as caught:
        fetch(fetcher, httpserver.url_for("/gone"))
    assert isinstance(caught.value, SourceError)
    assert str(caught.value) == (
        f"coop-news: {httpserver.url_for('/gone')} answered HTTP 410 GONE: the source was removed for good; "
        "remove it from the configuration"
    )
    assert waits.waits == []  # never retried


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_client_errors_are_not_retried(
    httpserver: HTTPServer, fetcher: Fetcher, waits: Recorder, status: int
) -> None:
    httpserver.expect_request("/e").respond_with_data("", status=status)
    with pytest.raises(SourceError, match=rf"^coop-news: http://127\.0\.0\.1:\d+/e answered HTTP {status} ") as caught:
        fetch(fetcher, httpserver.url_for("/e"))
    assert not isinstance(caught.value, SourceGone)
    assert waits.waits == []
    assert len(httpserver.log) == 1


def test_server_error_then_success_waits_with_backoff(
    httpserver: HTTPServer, fetcher: Fetcher, waits: Recorder
) -> None:
    httpserver.expect_ordered_request("/flaky").respond_with_data("", status=500)
    httpserver.expect_ordered_request("/flaky").respond_with_data("", status=502)
    httpserver.expect_ordered_request("/flaky").respond_with_data("", status=504)
    httpserver.expect_ordered_request("/flaky").respond_with_data("fine")
    result = fetch(fetcher, httpserver.url_for("/flaky"))
    assert result.document is not None
    assert result.document.content == b"fine"
    assert waits.waits == [0.5, 1.0, 2.0]  # base 0.5, doubling; rng pinned at the top of the range


@pytest.mark.parametrize("status", [408, 501, 520])
def test_timeouts_and_every_server_error_are_retried(
    httpserver: HTTPServer, fetcher: Fetcher, waits: Recorder, status: int
) -> None:
    httpserver.expect_ordered_request("/odd").respond_with_data("", status=status)
    httpserver.expect_ordered_request("/odd").respond_with_data("fine")
    result = fetch(fetcher, httpserver.url_for("/odd"))
    assert result.document is not None
    assert waits.waits == [0.5]


def test_backoff_uses_full_jitter_and_the_cap(httpserver: HTTPServer, waits: Recorder) -> None:
    httpserver.expect_request("/down").respond_with_data("", status=503)
    draws = iter([0.5, 0.25, 0.0, 1.0])
    limits = FetchLimits(retries=4, backoff_base=1.0, backoff_max=3.0)
    with (
        Fetcher(user_agent="t", limits=limits, sleep=waits, rng=lambda: next(draws)) as fetcher,
        pytest.raises(SourceError) as caught,
    ):
        fetch(fetcher, httpserver.url_for("/down"))
    # ceilings 1, 2, 4→3 (capped), 8→3; each wait is a uniform draw times its ceiling
    assert waits.waits == [0.5, 0.5, 0.0, 3.0]
    assert str(caught.value) == (
        f"coop-news: {httpserver.url_for('/down')} answered HTTP 503 SERVICE UNAVAILABLE (gave up after 5 attempts)"
    )


def test_429_retry_after_seconds_is_honoured(httpserver: HTTPServer, fetcher: Fetcher, waits: Recorder) -> None:
    httpserver.expect_ordered_request("/busy").respond_with_data("", status=429, headers={"Retry-After": "7"})
    httpserver.expect_ordered_request("/busy").respond_with_data("ok")
    result = fetch(fetcher, httpserver.url_for("/busy"))
    assert result.document is not None
    assert waits.waits == [7.0]


def test_503_retry_after_http_date_is_honoured(httpserver: HTTPServer, fetcher: Fetcher, waits: Recorder) -> None:
    def busy(request: Request) -> Response:
        return Response("", status=503, headers={"Retry-After": formatdate(time.time() + 12, usegmt=True)})

    httpserver.expect_ordered_request("/busy").respond_with_handler(busy)
    httpserver.expect_ordered_request("/busy").respond_with_data("ok")
    fetch(fetcher, httpserver.url_for("/busy"))
    # Measured from the server's Date header; both have one-second resolution.
    assert len(waits.waits) == 1
    assert 11.0 <= waits.waits[0] <= 12.0


def dated(status: int, headers: dict[str, str]) -> httpx.MockTransport:
    """A transport answering `status` once with exactly these headers, then 200."""
    answers = iter([httpx.Response(status, headers=headers), httpx.Response(200, text="ok")])
    return httpx.MockTransport(lambda request: next(answers))


def test_retry_after_date_is_read_on_the_server_clock(waits: Recorder) -> None:
    # The server's clock is a day behind ours: the wait is still the 12 s it meant.
    headers = {"Date": "Tue, 24 Nov 2026 12:00:00 GMT", "Retry-After": "Tue, 24 Nov 2026 12:00:12 GMT"}
    with Fetcher(user_agent="t", transport=dated(503, headers), sleep=waits, now=lambda: NOW) as fetcher:
        fetch(fetcher, "https://feeds.example.org/busy")
    assert waits.waits == [12.0]


def test_retry_after_date_without_a_server_date_uses_our_clock(waits: Recorder) -> None:
    headers = {"Retry-After": "Wed, 25 Nov 2026 12:00:05 GMT"}
    with Fetcher(user_agent="t", transport=dated(429, headers), sleep=waits, now=lambda: NOW) as fetcher:
        fetch(fetcher, "https://feeds.example.org/busy")
    assert waits.waits == [5.0]


def test_retry_after_longer_than_the_cap_says_when_to_retry(
    httpserver: HTTPServer, fetcher: Fetcher, waits: Recorder
) -> None:
    httpserver.expect_request("/busy").respond_with_data("", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(SourceError) as caught:
        fetch(fetcher, httpserver.url_for("/busy"))
    assert re.fullmatch(
        rf"coop-news: {re.escape(httpserver.url_for('/busy'))} answered HTTP 429 TOO MANY REQUESTS and asks to retry "
        r"after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in 3600 s\), longer than the 30 s we wait: "
        r"try again after that time",
        str(caught.value),
    )
    assert waits.waits == []

    # The time named is the server's Date plus the wait.
    headers = {"Date": "Tue, 24 Nov 2026 12:00:00 GMT", "Retry-After": "Tue, 24 Nov 2026 14:00:00 GMT"}
    with (
        Fetcher(user_agent="t", transport=dated(503, headers), sleep=waits, now=lambda: NOW) as mocked,
        pytest.raises(SourceError) as caught,
    ):
        fetch(mocked, "https://feeds.example.org/busy")
    assert str(caught.value) == (
        "coop-news: https://feeds.example.org/busy answered HTTP 503 Service Unavailable and asks to retry after "
        "2026-11-24 14:00:00 UTC (in 7200 s), longer than the 30 s we wait: try again after that time"
    )
    assert waits.waits == []


def test_429_without_retry_after_backs_off(httpserver: HTTPServer, fetcher: Fetcher, waits: Recorder) -> None:
    httpserver.expect_ordered_request("/busy").respond_with_data("", status=429, headers={"Retry-After": "soon"})
    httpserver.expect_ordered_request("/busy").respond_with_data("ok")
    fetch(fetcher, httpserver.url_for("/busy"))
    assert waits.waits == [0.5]


def test_retries_run_out(httpserver: HTTPServer, fetcher_for: Callable[..., Fetcher], waits: Recorder) -> None:
    httpserver.expect_request("/broken").respond_with_data("", status=500)
    with pytest.raises(SourceError) as caught:
        fetch(fetcher_for(retries=2), httpserver.url_for("/broken"))
    assert str(caught.value) == (
        f"coop-news: {httpserver.url_for('/broken')} answered HTTP 500 INTERNAL SERVER ERROR (gave up after 3 attempts)"
    )
    assert waits.waits == [0.5, 1.0]
    assert len(httpserver.log) == 3


def test_connection_refused_is_retried_then_reported(fetcher_for: Callable[..., Fetcher], waits: Recorder) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError) as caught:
        fetcher_for(retries=1).fetch("coop-news", f"http://127.0.0.1:{port}/feed")
    assert str(caught.value).startswith(f"coop-news: http://127.0.0.1:{port}/feed: cannot connect: ")
    assert str(caught.value).endswith("(gave up after 2 attempts)")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert waits.waits == [0.5]


# --- timeouts and size limits ------------------------------------------------------------------


def test_slow_response_hits_the_read_timeout(httpserver: HTTPServer, fetcher_for: Callable[..., Fetcher]) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(SourceError) as caught:
        fetcher_for(read_timeout=0.1, retries=0).fetch("coop-news", httpserver.url_for("/slow"))
    assert str(caught.value) == (
        f"coop-news: {httpserver.url_for('/slow')}: the server sent nothing for 0.1 s (gave up after 1 attempt)"
    )
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_trickling_body_hits_the_total_timeout(httpserver: HTTPServer, fetcher_for: Callable[..., Fetcher]) -> None:
    def trickle(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(20):
                time.sleep(0.05)
                yield b"x" * 10

        return Response(body(), content_type="text/plain")

    httpserver.expect_request("/trickle").respond_with_handler(trickle)
    with pytest.raises(SourceError) as caught:
        fetcher_for(total_timeout=0.3, read_timeout=5, retries=0).fetch("coop-news", httpserver.url_for("/trickle"))
    assert str(caught.value) == (
        f"coop-news: {httpserver.url_for('/trickle')}: the download took longer than the 0.3 s total limit "
        "(gave up after 1 attempt)"
    )


def test_content_length_over_the_cap_is_refused_unread(
    httpserver: HTTPServer, fetcher_for: Callable[..., Fetcher], waits: Recorder
) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 2000)
    with pytest.raises(SourceError) as caught:
        fetcher_for(max_bytes=1000).fetch("coop-news", httpserver.url_for("/big"))
    assert str(caught.value) == (
        f"coop-news: {httpserver.url_for('/big')} is 2000 bytes (Content-Length), over the 1000-byte limit; "
        "not downloaded"
    )
    assert waits.waits == []  # a size problem is not transient


def test_body_growing_over_the_cap_is_aborted(httpserver: HTTPServer, fetcher_for: Callable[..., Fetcher]) -> None:
    sent: list[int] = []

    def endless(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for _ in range(1000):  # 1 MB if nobody stops it
                sent.append(1)
                yield b"y" * 1000

        return Response(body(), content_type="text/plain")  # no Content-Length: chunked

    httpserver.expect_request("/endless").respond_with_handler(endless)
    with pytest.raises(SourceError) as caught:
        fetcher_for(max_bytes=5000).fetch("coop-news", httpserver.url_for("/endless"))
    assert str(caught.value).startswith(
        f"coop-news: {httpserver.url_for('/endless')} sent more than the 5000-byte limit ("
    )
    assert str(caught.value).endswith(" bytes so far); download aborted")
    _, response = httpserver.log[-1]
    assert "Content-Length" not in response.headers


def test_gzip_bomb_is_capped_after_decompression(httpserver: HTTPServer, fetcher_for: Callable[..., Fetcher]) -> None:
    bomb = gzip.compress(b"\0" * 2_000_000)
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(SourceError, match=r"sent more than the 100000-byte limit"):
        fetcher_for(max_bytes=100_000).fetch("coop-news", httpserver.url_for("/bomb"))


def test_broken_compression_is_a_source_error(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/badgzip").respond_with_data(b"not gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(SourceError, match=r"/badgzip: cannot decode the compressed body: "):
        fetch(fetcher, httpserver.url_for("/badgzip"))


# --- charsets ----------------------------------------------------------------------------------


def serve(httpserver: HTTPServer, body: bytes, content_type: str) -> str:
    httpserver.expect_request("/doc").respond_with_data(body, content_type=content_type)
    return httpserver.url_for("/doc")


def test_latin1_declared_in_content_type(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    url = serve(httpserver, "<p>Genève \u2013 café</p>".encode("cp1252"), "text/html; charset=ISO-8859-1")
    document = fetch(fetcher, url).document
    assert document is not None
    # Browsers read ISO-8859-1 as windows-1252 (WHATWG), which also has the en dash (0x96).
    assert document.charset == "windows-1252"
    assert document.decode() == "<p>Genève \u2013 café</p>"


def test_bom_wins_over_the_header(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    url = serve(httpserver, b"\xef\xbb\xbf<p>caf\xc3\xa9</p>", "text/html; charset=iso-8859-1")
    document = fetch(fetcher, url).document
    assert document is not None
    assert document.charset == "utf-8"
    assert document.decode() == "<p>café</p>"


def test_utf16_bom(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    url = serve(httpserver, "\ufeff<rss>é</rss>".encode("utf-16-le"), "application/xml")
    document = fetch(fetcher, url).document
    assert document is not None
    assert document.charset == "utf-16-le"
    assert document.decode() == "<rss>é</rss>"


@pytest.mark.parametrize(
    "meta",
    ['<meta charset="windows-1252">', '<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'],
)
def test_meta_charset_when_the_header_has_none(httpserver: HTTPServer, fetcher: Fetcher, meta: str) -> None:
    url = serve(httpserver, f"<html><head>{meta}</head><body>café</body></html>".encode("cp1252"), "text/html")
    document = fetch(fetcher, url).document
    assert document is not None
    assert document.charset == "windows-1252"
    assert "café" in document.decode()


def test_meta_beyond_the_first_2kb_is_not_read(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    body = b"<html><head>" + b" " * 2100 + b'<meta charset="koi8-r"></head><body>ok</body></html>'
    document = fetch(fetcher, serve(httpserver, body, "text/html")).document
    assert document is not None
    assert document.charset == "utf-8"


def test_xml_declaration_encoding(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-15"?><rss>€</rss>'.encode("iso-8859-15")
    document = fetch(fetcher, serve(httpserver, body, "application/rss+xml")).document
    assert document is not None
    assert document.charset == "iso-8859-15"
    assert document.decode().endswith("<rss>€</rss>")


def test_undecodable_bytes_in_the_declared_charset(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    url = serve(httpserver, b"<p>caf\xe9 au lait</p>", "text/html; charset=utf-8")
    with pytest.raises(SourceError) as caught:
        fetch(fetcher, url)
    assert str(caught.value) == (
        'coop-news: body is not valid utf-8 (byte 0xe9 at offset 6); the server declared charset "utf-8"'
    )


def test_undecodable_bytes_without_any_declaration(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    url = serve(httpserver, b"plain \xff text", "text/plain")
    with pytest.raises(SourceError) as caught:
        fetch(fetcher, url)
    assert str(caught.value) == (
        "coop-news: body is not valid utf-8 (byte 0xff at offset 6); no charset was declared, so UTF-8 was assumed"
    )


def test_unknown_declared_charset_falls_back_and_says_so(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    url = serve(httpserver, b"ok \xff", "text/plain; charset=klingon")
    with pytest.raises(SourceError, match=r'the server declared an unknown charset "klingon", so UTF-8 was assumed$'):
        fetch(fetcher, url)


def test_binary_media_types_are_not_decoded(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    document = fetch(fetcher, serve(httpserver, b"%PDF-1.7\xff\xfe", "application/pdf")).document
    assert document is not None
    assert document.charset is None
    assert document.content == b"%PDF-1.7\xff\xfe"


def test_decide_charset_order() -> None:
    assert decide_charset(b"\xef\xbb\xbfx", "text/html", "koi8-r")[0] == "utf-8"
    assert decide_charset(b'<meta charset="koi8-r">', "text/html", "utf-8")[0] == "utf-8"
    assert decide_charset(b'<meta charset="koi8-r">', "text/html")[0] == "koi8-r"
    assert decide_charset(b'<meta charset="koi8-r">', "text/plain")[0] == "utf-8"  # <meta> only counts in HTML
    assert decide_charset(b'<?xml version="1.0" encoding="koi8-r"?>', "application/xml")[0] == "koi8-r"
    assert decide_charset(b"\x81", "text/plain", "latin-1")[0] == "iso-8859-1"  # undefined in windows-1252


# --- per-host limit ----------------------------------------------------------------------------


def test_per_host_limit_bounds_concurrent_requests(httpserver: HTTPServer, fetcher_for: Callable[..., Fetcher]) -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def counted(request: Request) -> Response:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return Response("ok")

    httpserver.expect_request("/counted").respond_with_handler(counted)
    fetcher = fetcher_for(per_host=2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: fetch(fetcher, httpserver.url_for("/counted")), range(8)))
    assert all(result.document is not None for result in results)
    assert state["max"] == 2


# --- transport errors, local files -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "retried", "text"),
    [
        (httpx.RemoteProtocolError("peer closed connection"), True, "the connection broke: peer closed connection"),
        (httpx.ReadError("reset by peer"), True, "the connection broke: reset by peer"),
        (httpx.PoolTimeout("pool"), True, "timed out (PoolTimeout)"),
        (httpx.UnsupportedProtocol("no such scheme"), False, "no such scheme"),
        (httpx.LocalProtocolError("bad header"), False, "bad header"),
    ],
)
def test_every_httpx_error_becomes_a_source_error(error: Exception, retried: bool, text: str, waits: Recorder) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    limits = FetchLimits(retries=1)
    transport = httpx.MockTransport(fail)
    with (
        Fetcher(user_agent="t", limits=limits, transport=transport, sleep=waits, rng=lambda: 1.0) as fetcher,
        pytest.raises(SourceError) as caught,
    ):
        fetcher.fetch("coop-news", "https://feeds.example.org/x")
    assert text in str(caught.value)
    assert caught.value.__cause__ is error
    assert waits.waits == ([0.5] if retried else [])


def test_invalid_url_is_a_source_error(fetcher: Fetcher) -> None:
    with pytest.raises(SourceError) as caught:
        fetcher.fetch("coop-news", "http://[::1/feed")
    assert str(caught.value) == "coop-news: http://[::1/feed: not a valid URL: Invalid port: ':1'"


def test_local_files(tmp_path: Path, fetcher: Fetcher) -> None:
    page = tmp_path / "page.html"
    page.write_bytes('<meta charset="iso-8859-1"><p>Genève</p>'.encode("latin-1"))
    result = fetcher.fetch("coop-news", str(page))
    assert result.document is not None
    assert result.document.media_type == "text/html"
    assert result.document.charset == "windows-1252"
    assert result.document.url == page.resolve().as_uri()
    assert "last-modified" in result.document.headers
    assert "Genève" in result.document.decode()

    for suffix, media_type in [
        (".htm", "text/html"),
        (".xml", "application/xml"),
        (".rss", "application/rss+xml"),
        (".atom", "application/atom+xml"),
        (".txt", "text/plain"),
        ("", "text/plain"),
    ]:
        path = tmp_path / f"doc{suffix}"
        path.write_text("x", encoding="utf-8")
        assert fetch_file("coop-news", path).media_type == media_type
    assert fetch_file("coop-news", page.resolve().as_uri()).content == page.read_bytes()


def test_local_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        fetch_file("coop-news", tmp_path / "missing.html")
    assert str(caught.value) == f"coop-news: {tmp_path / 'missing.html'}: no such file"
    with pytest.raises(SourceError, match=r": is a directory, not a file$"):
        fetch_file("coop-news", tmp_path)
    big = tmp_path / "big.txt"
    big.write_bytes(b"z" * 100)
    with pytest.raises(SourceError) as caught:
        fetch_file("coop-news", big, max_bytes=10)
    assert str(caught.value) == f"coop-news: {big} is 100 bytes, over the 10-byte limit; not read"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\xc3(")
    with pytest.raises(SourceError) as caught:
        fetch_file("coop-news", bad)
    assert str(caught.value) == (
        f"coop-news: {bad}: file is not valid utf-8 (byte 0xc3 at offset 2); "
        "no charset was declared, so UTF-8 was assumed"
    )


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match=r"FetchLimits.max_bytes must be positive, got 0"):
        FetchLimits(max_bytes=0)
    with pytest.raises(ValueError, match=r"FetchLimits.retries must not be negative, got -1"):
        FetchLimits(retries=-1)


def test_utf16_and_utf32_without_a_byte_order_mark_are_known_by_their_first_character() -> None:
    text = '<?xml version="1.0" encoding="UTF-16"?><rss>é</rss>'
    assert decide_charset(text.encode("utf-16-le"), "application/xml")[0] == "utf-16-le"
    assert decide_charset(text.encode("utf-16-be"), "application/xml")[0] == "utf-16-be"
    assert decide_charset(text.encode("utf-32-le"), "application/xml")[0] == "utf-32-le"
    assert decide_charset(text.encode("utf-32-be"), "application/xml")[0] == "utf-32-be"
    assert decide_charset(b"\xff\xfe\x00\x00" + text.encode("utf-32-le"), "text/xml")[0] == "utf-32-le"
    assert decide_charset(b"\x00\x00\xfe\xff" + text.encode("utf-32-be"), "text/xml")[0] == "utf-32-be"


def test_a_declaration_that_cannot_be_used_is_named_not_denied() -> None:
    _, how = decide_charset(b'<?xml version="1.0" encoding="klingon"?><rss/>', "application/xml")
    assert how == 'the document declares an unknown encoding "klingon" in its XML declaration, so UTF-8 was assumed'
    _, how = decide_charset(b'<meta charset="elvish"><p>x</p>', "text/html", "klingon")
    assert how == (
        'the server declared an unknown charset "klingon", and the document declares an unknown charset "elvish" '
        "in a <meta> tag, so UTF-8 was assumed"
    )


def test_a_feed_in_another_encoding_than_it_declares_is_handed_on(tmp_path: Path) -> None:
    # The feed adapter reads it as feedparser does and says so; a page in that state is refused (above).
    path = tmp_path / "feed.xml"
    path.write_bytes('<?xml version="1.0" encoding="utf-8"?><rss><title>Café</title></rss>'.encode("cp1252"))
    document = fetch_file("coop-news", path)
    assert document.content == path.read_bytes()
    assert document.charset == "utf-8"
