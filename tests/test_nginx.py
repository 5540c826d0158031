"""deploy/nginx.conf under real nginx: the same output/ gets the same conditional GET, gzip and media types."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from serve_helpers import LAST_MODIFIED, MTIME, SECRET, TRAVERSALS, Nginx, Site, make_site, nginx_available, raw_request

IDENTITY = {"Accept-Encoding": "identity"}
# Targets that nginx itself normalizes to a file inside the root ("/./news.atom"); serving those is fine.
INSIDE = {b"/./news.atom", b"/%2e/news.atom", b"/sub/./index.html"}


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
def nginx(site: Site, tmp_path: Path) -> Iterator[Nginx]:
    if not nginx_available():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing on CI: install nginx-light (apt-get install nginx-light)")
        pytest.skip("nginx not installed: apt-get install nginx-light")
    with Nginx(site.root, tmp_path / "nginx") as running:
        yield running


@pytest.fixture
def client(nginx: Nginx) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=nginx.url, headers=IDENTITY) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "rel", "media_type"),
    [
        ("/news.atom", "news.atom", "application/atom+xml; charset=utf-8"),
        ("/news.rss", "news.rss", "application/rss+xml; charset=utf-8"),
        ("/news.json", "news.json", "application/feed+json; charset=utf-8"),
        ("/feeds.opml", "feeds.opml", "text/x-opml; charset=utf-8"),
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/sub/", "sub/index.html", "text/html; charset=utf-8"),
    ],
)
def test_media_types_and_validators(client: httpx.Client, site: Site, path: str, rel: str, media_type: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.content == site.files[rel]
    assert r.headers["content-type"] == media_type
    assert r.headers["last-modified"] == LAST_MODIFIED
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["etag"].startswith('"')


def test_archive_is_immutable(client: httpx.Client) -> None:
    r = client.get("/archive/news/1.atom")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"


def test_conditional_get(client: httpx.Client) -> None:
    etag = client.get("/news.atom").headers["etag"]
    assert client.get("/news.atom", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/news.atom", headers={"If-None-Match": f'"x", {etag}'}).status_code == 304
    assert client.get("/news.atom", headers={"If-Modified-Since": LAST_MODIFIED}).status_code == 304
    later = formatdate(MTIME + 3600, usegmt=True)
    assert client.get("/news.atom", headers={"If-Modified-Since": later}).status_code == 304
    earlier = formatdate(MTIME - 1, usegmt=True)
    assert client.get("/news.atom", headers={"If-Modified-Since": earlier}).status_code == 200
    # What a cache sends back: both validators it was given. (nginx also checks an If-Modified-Since
    # sent beside a matching If-None-Match, which RFC 9110 says to ignore; see deploy/nginx.conf.)
    assert (
        client.get("/news.atom", headers={"If-None-Match": etag, "If-Modified-Since": LAST_MODIFIED}).status_code == 304
    )
    r = client.get("/news.atom", headers={"If-None-Match": '"other"', "If-Modified-Since": LAST_MODIFIED})
    assert r.status_code == 200


def test_head_matches_get(client: httpx.Client) -> None:
    get = client.get("/news.atom")
    head = client.head("/news.atom")
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
        assert head.headers[name] == get.headers[name]


def test_gzip_static(client: httpx.Client, site: Site) -> None:
    identity = client.get("/news.atom")
    with client.stream("GET", "/news.atom", headers={"Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["vary"] == "Accept-Encoding"
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert raw == site.gz("news.atom")
    assert gzip.decompress(raw) == identity.content
    assert r.headers["etag"] != identity.headers["etag"]
    assert identity.headers["vary"] == "Accept-Encoding"
    r = client.get("/news.atom", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in r.headers
    assert r.content == site.files["news.atom"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head(client: httpx.Client, method: str) -> None:
    assert client.request(method, "/news.atom").status_code in (403, 405)


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_traversal_and_hidden_files(nginx: Nginx, target: bytes) -> None:
    r = raw_request(nginx.port, target)
    assert SECRET not in r.body
    if target not in INSIDE:
        assert r.status in (400, 403, 404)


def test_no_directory_listing(client: httpx.Client) -> None:
    for path in ("/empty/", "/archive/"):
        r = client.get(path)
        assert r.status_code in (403, 404)
        assert b"2020" not in r.content
