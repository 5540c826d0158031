"""A small site on loopback for the follow tests: a listing, its items' pages, a PDF, and pages that fail."""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DATA = Path(__file__).parent / "data" / "follow"
SLOW_SECONDS = 2.0  # longer than the read timeout the tests give their fetcher
SIZE_CAP = 64 * 1024  # the fetcher's max_bytes in the tests; the long page is over it


@dataclass(frozen=True, slots=True)
class Seen:
    """One request the site answered."""

    method: str
    path: str
    conditional: bool  # sent If-None-Match or If-Modified-Since
    status: int
    body_bytes: int


def pdf_bytes() -> bytes:
    return b"%PDF-1.4\n% a stand-in document for the tests\n" + b"0" * 4000 + b"\n%%EOF\n"


def long_page() -> bytes:
    paragraph = "<p>" + "The assembly heard the report of the board and discussed it at length. " * 20 + "</p>\n"
    return ("<!DOCTYPE html><html><body><main><h1>Minutes</h1>" + paragraph * 100 + "</main></body></html>").encode()


def site_pages() -> dict[str, tuple[bytes, str]]:
    """Path → (body, Content-Type) of every page the site serves with 200."""
    html = "text/html; charset=utf-8"
    return {
        "/listing.html": ((DATA / "listing.html").read_bytes(), html),
        "/interviews/amina-diallo.html": ((DATA / "amina-diallo.html").read_bytes(), html),
        "/interviews/jonas-berg.html": ((DATA / "jonas-berg.html").read_bytes(), html),
        "/news/river-ferry-cooperative.html": ((DATA / "river-ferry-cooperative.html").read_bytes(), html),
        "/publications/care-cooperatives.pdf": (pdf_bytes(), "application/pdf"),
        "/news/slow-server.html": ((DATA / "river-ferry-cooperative.html").read_bytes(), html),
        "/news/very-long-page.html": (long_page(), html),
        "/drafts/board-notes.html": ((DATA / "board-notes.html").read_bytes(), html),
        "/robots.txt": ((DATA / "robots.txt").read_bytes(), "text/plain"),
    }


@dataclass
class Site:
    """The site's pages (changeable by a test) and every request it saw."""

    pages: dict[str, tuple[bytes, str]] = field(default_factory=site_pages)
    seen: list[Seen] = field(default_factory=list)
    slow: set[str] = field(default_factory=lambda: {"/news/slow-server.html"})
    base: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base + path

    def requests(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: the tests read `site.seen`
            pass

        def _answer(self, send_body: bool) -> None:
            path = self.path.split("?")[0]
            conditional = bool(self.headers.get("If-None-Match") or self.headers.get("If-Modified-Since"))
            if path in site.slow:
                time.sleep(SLOW_SECONDS)
            found = site.pages.get(path)
            if found is None:
                body = b"<html><body><h1>Not found</h1></body></html>"
                self._send(404, body, "text/html", "", send_body, path, conditional)
                return
            body, media_type = found
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self._send(304, b"", media_type, etag, False, path, conditional)
                return
            self._send(200, body, media_type, etag, send_body, path, conditional)

        def _send(
            self, status: int, body: bytes, media_type: str, etag: str, send_body: bool, path: str, conditional: bool
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", media_type)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", "0" if status == 304 else str(len(body)))
            self.end_headers()
            sent = 0
            if send_body and status != 304:
                try:
                    self.wfile.write(body)
                    sent = len(body)
                except (BrokenPipeError, ConnectionResetError):
                    sent = -1  # the client stopped reading
            with site.lock:
                site.seen.append(Seen(self.command, path, conditional, status, sent))

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that closes its connection without reading (a PDF told by its headers) is no error of the site.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def serve_site() -> Iterator[Site]:
    site = Site()
    server = _Server(("127.0.0.1", 0), _handler(site))
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
