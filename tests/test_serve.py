"""feeds.serve over real uvicorn on loopback: validators, 304s, gzip, media types, and what must never be served."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from serve_helpers import LAST_MODIFIED, MTIME, SECRET, TRAVERSALS, Site, make_site, raw_request, write

from feeds.errors import FeedsError
from feeds.serve import DynamicResponse, ServerThread, StaticFeeds

HUB = "https://hub.example.org/"
BASE_URL = "https://feeds.example.org/"
IDENTITY = {"Accept-Encoding": "identity"}


def max_age(rel: str) -> int:
    return 900 if rel.startswith("news.") else 1800


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
def server(site: Site) -> Iterator[ServerThread]:
    routes = {"/healthz": lambda: DynamicResponse(body=b"ok\n")}
    app = StaticFeeds(site.root, max_age=max_age, hubs=(HUB,), base_url=BASE_URL, routes=routes)
    with ServerThread(app) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=IDENTITY) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "rel", "media_type"),
    [
        ("/news.atom", "news.atom", "application/atom+xml; charset=utf-8"),
        ("/news.rss", "news.rss", "application/rss+xml; charset=utf-8"),
        ("/news.json", "news.json", "application/feed+json; charset=utf-8"),
        ("/feeds.opml", "feeds.opml", "text/x-opml; charset=utf-8"),
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/sub/", "sub/index.html", "text/html; charset=utf-8"),
        ("/caf%C3%A9.atom", "caf\u00e9.atom", "application/atom+xml; charset=utf-8"),
    ],
)
def test_get_serves_file_with_validators_and_media_type(
    client: httpx.Client, site: Site, path: str, rel: str, media_type: str
) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.content == site.files[rel]
    assert r.headers["content-type"] == media_type
    assert r.headers["content-length"] == str(len(site.files[rel]))
    assert r.headers["last-modified"] == LAST_MODIFIED
    assert r.headers["cache-control"] == f"public, max-age={max_age(rel)}"
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in r.headers
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10  # strong: no W/ prefix


def test_etag_depends_on_content_only(client: httpx.Client, site: Site) -> None:
    first = client.get("/news.atom").headers["etag"]
    os.utime(site.root / "news.atom", (MTIME + 100, MTIME + 100))  # touched, same bytes
    assert client.get("/news.atom").headers["etag"] == first
    assert client.get("/news.rss").headers["etag"] != first


def test_archive_is_cached_for_a_year(client: httpx.Client) -> None:
    r = client.get("/archive/news/1.atom")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    # The newest page still fills up until a newer one exists.
    newest = client.get("/archive/news/2.atom")
    assert newest.status_code == 200
    assert "immutable" not in newest.headers["cache-control"]


def test_if_none_match_gives_304(client: httpx.Client) -> None:
    etag = client.get("/news.atom").headers["etag"]
    for value in (etag, f"W/{etag}", f'"nope", {etag}', "*", f'"a",  W/{etag} ,"b"'):
        r = client.get("/news.atom", headers={"If-None-Match": value})
        assert r.status_code == 304, value
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert r.headers["cache-control"] == "public, max-age=900"
        assert r.headers["vary"] == "Accept-Encoding"
        assert "content-length" not in r.headers


def test_if_none_match_wins_over_if_modified_since(client: httpx.Client) -> None:
    etag = client.get("/news.atom").headers["etag"]
    older = formatdate(MTIME - 3600, usegmt=True)
    assert client.get("/news.atom", headers={"If-None-Match": etag, "If-Modified-Since": older}).status_code == 304
    r = client.get("/news.atom", headers={"If-None-Match": '"other"', "If-Modified-Since": LAST_MODIFIED})
    assert r.status_code == 200
    assert r.headers["etag"] == etag


@pytest.mark.parametrize(
    ("since", "status"),
    [
        (LAST_MODIFIED, 304),
        (formatdate(MTIME + 3600, usegmt=True), 304),
        (formatdate(MTIME - 1, usegmt=True), 200),
        ("not a date", 200),
        ("", 200),
    ],
)
def test_if_modified_since_alone(client: httpx.Client, since: str, status: int) -> None:
    assert client.get("/news.atom", headers={"If-Modified-Since": since}).status_code == status


def test_head_has_get_headers_and_no_body(client: httpx.Client, server: ServerThread) -> None:
    for path in ("/news.atom", "/", "/nope.atom", "/healthz"):
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code
        assert head.content == b""
        assert {k: v for k, v in head.headers.items() if k != "date"} == {
            k: v for k, v in get.headers.items() if k != "date"
        }
    # And on the wire: nothing follows the blank line.
    raw = raw_request(server.port, b"/news.atom", method=b"HEAD")
    assert raw.status == 200 and raw.body == b""


def test_gzip_sibling_served_when_accepted(client: httpx.Client, site: Site) -> None:
    identity = client.get("/news.atom")
    with client.stream("GET", "/news.atom", headers={"Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert r.headers["content-length"] == str(len(raw))
    assert raw == site.gz("news.atom")
    assert gzip.decompress(raw) == identity.content == site.files["news.atom"]
    assert r.headers["etag"] != identity.headers["etag"]
    assert r.headers["etag"].endswith('-gz"')
    assert r.headers["last-modified"] == identity.headers["last-modified"]
    # Each coding validates only itself.
    gz_etag = r.headers["etag"]
    assert client.get("/news.atom", headers={"Accept-Encoding": "gzip", "If-None-Match": gz_etag}).status_code == 304
    assert client.get("/news.atom", headers={"If-None-Match": gz_etag}).status_code == 200


@pytest.mark.parametrize(
    ("accept", "gzipped"),
    [
        ("gzip", True),
        ("deflate, gzip;q=0.5, br", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0, *", False),
        ("*;q=0", False),
        ("identity", False),
        ("br, deflate", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_q_values(client: httpx.Client, accept: str, gzipped: bool) -> None:
    r = client.get("/news.atom", headers={"Accept-Encoding": accept})
    assert r.status_code == 200
    assert (r.headers.get("content-encoding") == "gzip") is gzipped
    assert r.headers["vary"] == "Accept-Encoding"


def test_no_or_stale_gzip_sibling_serves_identity(client: httpx.Client, site: Site) -> None:
    r = client.get("/news.rss", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in r.headers
    assert r.content == site.files["news.rss"]
    # stale.atom.gz is older than stale.atom: a previous version, never to be served for the new one.
    r = client.get("/stale.atom", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in r.headers
    assert r.content == site.files["stale.atom"]


def test_gz_by_its_own_name_is_a_download(client: httpx.Client, site: Site) -> None:
    r = client.get("/news.atom.gz")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/gzip"
    assert "content-encoding" not in r.headers
    assert r.content == site.gz("news.atom")


def test_replaced_file_is_served_at_once(client: httpx.Client, site: Site) -> None:
    path = site.root / "news.rss"
    old = client.get("/news.rss")
    # Same size and same mtime: only the inode tells the versions apart, as after the publisher's os.replace.
    new_bytes = old.content.replace(b"<title>news</title>", b"<title>NEWS</title>")
    assert len(new_bytes) == len(old.content)
    write(site.root / ".news.rss.tmp", new_bytes)
    os.replace(site.root / ".news.rss.tmp", path)
    r = client.get("/news.rss", headers={"If-None-Match": old.headers["etag"]})
    assert r.status_code == 200
    assert r.content == new_bytes
    assert r.headers["etag"] != old.headers["etag"]
    assert client.get("/news.rss", headers={"If-None-Match": r.headers["etag"]}).status_code == 304


def test_replaced_gzip_pair_is_served_at_once(client: httpx.Client, site: Site) -> None:
    before = client.get("/news.atom", headers={"Accept-Encoding": "gzip"})
    new_bytes = site.files["news.atom"].replace(b"<title>news</title>", b"<title>changed</title>")
    for name, data in (("news.atom.gz", gzip.compress(new_bytes, mtime=0)), ("news.atom", new_bytes)):
        write(site.root / f".{name}.tmp", data, mtime=MTIME + 60)
        os.replace(site.root / f".{name}.tmp", site.root / name)
    after = client.get("/news.atom", headers={"Accept-Encoding": "gzip"})
    assert after.headers["content-encoding"] == "gzip"
    assert after.content == new_bytes
    assert after.headers["etag"] != before.headers["etag"]
    assert after.headers["last-modified"] == formatdate(MTIME + 60, usegmt=True)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_not_allowed(client: httpx.Client, method: str) -> None:
    r = client.request(method, "/news.atom")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_traversal_and_hidden_files_are_404(server: ServerThread, target: bytes) -> None:
    r = raw_request(server.port, target)
    assert r.status == 404
    assert SECRET not in r.body
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


def test_raw_requests_do_reach_the_files(server: ServerThread, site: Site) -> None:
    # The control for the traversal corpus: the same socket code gets real files.
    assert raw_request(server.port, b"/news.atom").body == site.files["news.atom"]
    assert raw_request(server.port, b"/sub%2Findex.html").body == site.files["sub/index.html"]


def test_absolute_form_target_cannot_escape(server: ServerThread) -> None:
    r = raw_request(server.port, b"http://127.0.0.1/../outside/secret.txt")
    assert r.status in (400, 404)
    assert SECRET not in r.body


def test_symlink_inside_root_is_followed(client: httpx.Client, site: Site) -> None:
    assert client.get("/inside.atom").content == site.files["news.atom"]


def test_directories_give_index_or_404_never_a_listing(client: httpx.Client, site: Site) -> None:
    r = client.get("/sub", follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == "/sub/"
    assert client.get("/sub", follow_redirects=True).content == site.files["sub/index.html"]
    for path in ("/empty", "/empty/", "/archive/", "/archive"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 404, path
        assert b"2020" not in r.content
    assert client.get("/news.atom/").status_code == 404


def test_link_headers_for_feeds(client: httpx.Client) -> None:
    r = client.get("/news.atom")
    assert r.headers.get_list("link") == [f'<{HUB}>; rel="hub"', '<https://feeds.example.org/news.atom>; rel="self"']
    r = client.get("/archive/news/1.atom")
    assert '<https://feeds.example.org/archive/news/1.atom>; rel="self"' in r.headers.get_list("link")
    assert "link" not in client.get("/").headers
    r = client.get("/caf%C3%A9.atom")
    assert '<https://feeds.example.org/caf%C3%A9.atom>; rel="self"' in r.headers.get_list("link")


def test_reloaded_links_apply_at_once(site: Site) -> None:
    app = StaticFeeds(site.root, base_url=BASE_URL, hubs=(HUB,))
    with ServerThread(app) as running, httpx.Client(base_url=running.url) as c:
        assert f'<{HUB}>; rel="hub"' in c.get("/news.atom").headers.get_list("link")
        app.set_links(hubs=("https://hub.example.net/",), base_url="https://elsewhere.example.org/")
        assert c.get("/news.atom").headers.get_list("link") == [
            '<https://hub.example.net/>; rel="hub"',
            '<https://elsewhere.example.org/news.atom>; rel="self"',
        ]


def test_no_link_headers_without_hubs(site: Site) -> None:
    with ServerThread(StaticFeeds(site.root, base_url=BASE_URL)) as running:
        r = httpx.get(running.url + "/news.atom")
    assert "link" not in r.headers
    assert r.headers["cache-control"] == "public, max-age=3600"


def test_dynamic_routes(client: httpx.Client, server: ServerThread) -> None:
    r = client.get("/healthz")
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, b"ok\n", "text/plain; charset=utf-8")
    assert client.post("/healthz").status_code == 405
    server.app.add_route(
        "/status",
        lambda: DynamicResponse(status=503, headers=(("Content-Type", "application/json"),), body=b'{"ok":false}'),
    )
    r = client.get("/status")
    assert (r.status_code, r.headers["content-type"], r.json()) == (503, "application/json", {"ok": False})


def test_missing_file_is_small_plain_404(client: httpx.Client) -> None:
    r = client.get("/missing.atom")
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert len(r.content) < 64


def test_busy_port_is_a_feeds_error(server: ServerThread, site: Site) -> None:
    with pytest.raises(FeedsError, match="cannot listen"):
        ServerThread(StaticFeeds(site.root), port=server.port).start()


def test_max_age_callable_sees_relative_paths(site: Site) -> None:
    seen: list[str] = []

    def record(rel: str) -> int:
        seen.append(rel)
        return 60

    with ServerThread(StaticFeeds(site.root, max_age=record)) as running, httpx.Client(base_url=running.url) as c:
        for path in ("/", "/news.atom", "/sub/", "/archive/news/1.atom"):
            c.get(path)
    assert seen == ["index.html", "news.atom", "sub/index.html"]  # a full archive page is immutable, never asked


def test_feeds_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "config.toml").write_text(
        '[site]\ntitle = "T"\nbase_url = "http://127.0.0.1/"\n'
        '[[sources]]\nname = "s"\nadapter = "listing"\nlocation = "s.txt"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "feeds", "serve", "--config", str(tmp_path / "config.toml"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/").status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "feeds serve did not start"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
