"""HTTP for output/: an ASGI app serving the generated files with conditional GET and precompressed gzip."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Mapping, MutableMapping
from dataclasses import dataclass
from email.utils import formatdate, parsedate
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from feeds.errors import FeedsError
from feeds.model import FEED_SUFFIXES, FORMATS
from feeds.publish import entity_tag

__all__ = ["DynamicResponse", "ServerThread", "StaticFeeds", "bind_socket", "make_server", "run_server"]

log = logging.getLogger(__name__)

# ASGI's own shapes; the values of a scope are heterogeneous by specification, hence Any.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

LONG_MAX_AGE = 31_536_000  # one year: archive files never change once written

# Media types by suffix. The feed types carry charset so that readers never guess an encoding.
MEDIA_TYPES: dict[str, bytes] = {
    **{f.suffix: f"{f.media_type}; charset=utf-8".encode() for f in FORMATS},
    ".html": b"text/html; charset=utf-8",
    ".opml": b"text/x-opml; charset=utf-8",
    ".xml": b"application/xml; charset=utf-8",
    ".xsl": b"application/xslt+xml; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".txt": b"text/plain; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    # A .gz asked for by its own name is a file download, not a content coding of its sibling.
    ".gz": b"application/gzip",
}
DEFAULT_MEDIA_TYPE = b"application/octet-stream"
COMPRESSIBLE = frozenset({*FEED_SUFFIXES, ".html", ".opml", ".xml", ".xsl", ".css", ".js", ".txt", ".svg"})

_NOSNIFF: Header = (b"x-content-type-options", b"nosniff")
_VARY: Header = (b"vary", b"Accept-Encoding")
_GZIP: Header = (b"content-encoding", b"gzip")
_NOT_FOUND_BODY = b"Not Found\n"
_NOT_FOUND_HEADERS: list[Header] = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_NOT_FOUND_BODY)).encode()),
    _NOSNIFF,
]
_NOT_FOUND: tuple[int, list[Header], bytes] = (404, _NOT_FOUND_HEADERS, _NOT_FOUND_BODY)
_NOT_ALLOWED_BODY = b"Method Not Allowed\n"
_NOT_ALLOWED_HEADERS: list[Header] = [
    (b"allow", b"GET, HEAD"),
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_NOT_ALLOWED_BODY)).encode()),
    _NOSNIFF,
]
# A request's line and headers must arrive within this time and size; uvicorn itself bounds neither.
HEADER_TIMEOUT = 10.0
MAX_HEADER_BYTES = 64 * 1024
# Segment endings of files a writer has not finished; the publisher's own temp files start with ".".
_UNFINISHED_SUFFIXES = (".tmp", ".part", "~")


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamicResponse:
    """What a dynamic route (/healthz, /metrics, /status) answers; HEAD drops the body itself."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = (("content-type", "text/plain; charset=utf-8"),)
    body: bytes = b""


Route = Callable[[], DynamicResponse]


@dataclass(frozen=True, slots=True)
class _File:
    """One version of one file, read whole: its identity, bytes and precomputed validators."""

    sig: tuple[int, int, int, int]  # (st_ino, st_dev, st_mtime_ns, st_size): any rewrite changes it
    body: bytes
    etag: bytes
    mtime: int  # whole seconds, the resolution of Last-Modified
    last_modified: bytes
    length: bytes


@dataclass(frozen=True, slots=True)
class _Target:
    """What one request path names below the root, with the headers that follow from the name alone."""

    rel: str
    wants_index: bool  # the path ended in "/": it named a directory's index.html
    content_type: Header
    compressible: bool
    immutable: bool  # under a long_max_age prefix
    self_link: Header | None  # set for feeds when hubs are configured


def _sig(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_size)


def _read(path: str) -> _File | None:
    # O_NOFOLLOW: the path was checked to be no symlink (or was resolved), so a link swapped in since is refused.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb", closefd=True) as f:
        # fstat of the open file, not the earlier lstat: bytes and validators then always belong together,
        # even when the publisher replaced the file between the two calls.
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        body = f.read()
    mtime = st.st_mtime_ns // 1_000_000_000
    return _File(
        sig=_sig(st),
        body=body,
        etag=entity_tag(body, gz=path.endswith(".gz")).encode(),
        mtime=mtime,
        last_modified=formatdate(mtime, usegmt=True).encode(),
        length=str(len(body)).encode(),
    )


class _FileCache:
    """A small LRU of file versions keyed by path; a changed stat signature means a new version."""

    def __init__(self, max_files: int, max_bytes: int) -> None:
        self._files: OrderedDict[str, _File] = OrderedDict()
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._bytes = 0

    def get(self, path: str, st: os.stat_result) -> _File | None:
        cached = self._files.get(path)
        if cached is not None and cached.sig == _sig(st):
            self._files.move_to_end(path)
            return cached
        file = _read(path)
        if cached is not None:
            del self._files[path]
            self._bytes -= len(cached.body)
        # One file larger than a quarter of the budget would evict everything else on every request.
        if file is not None and len(file.body) <= self._max_bytes // 4:
            self._files[path] = file
            self._bytes += len(file.body)
            while len(self._files) > self._max_files or self._bytes > self._max_bytes:
                _, old = self._files.popitem(last=False)
                self._bytes -= len(old.body)
        return file


def _relative(path: str) -> str | None:
    """The part of a request path below the root ('' for the root), or None when it must not be served.

    `path` is ASGI's, percent-decoded exactly once by the server; it is never decoded again, so an
    encoded `%2e` arriving as `%252e` stays a literal name that no file has.
    """
    if not path.startswith("/") or "\\" in path or "\x00" in path:
        return None
    rel = path[1:]
    segments = rel.split("/")
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if not segment:
            if i != last:  # "//etc/passwd" and "a//b" name nothing we publish
                return None
        # A leading dot covers ".", ".." and every hidden or half-written file the publisher makes.
        elif segment[0] == "." or segment.endswith(_UNFINISHED_SUFFIXES):
            return None
    return rel


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > name.rfind("/") else ""


def _accepts_gzip(value: bytes) -> bool:
    """Whether an Accept-Encoding value admits gzip: an explicit q>0 for gzip, else for `*`."""
    star = False
    for item in value.split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip().lower()
        if coding not in (b"gzip", b"x-gzip", b"*"):
            continue
        q = 1.0
        for param in params.split(b";"):
            key, _, val = param.partition(b"=")
            if key.strip().lower() == b"q":
                try:
                    q = float(val.strip())
                except ValueError:
                    q = 0.0
        if coding == b"*":
            star = q > 0
        else:
            return q > 0
    return star


def _etag_matches(value: bytes, etag: bytes) -> bool:
    """If-None-Match evaluation: weak comparison over a list of tags, or `*`."""
    if value == etag:
        return True
    for item in value.split(b","):
        tag = item.strip()
        if tag == b"*":
            return True
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _not_modified_since(value: bytes, file: _File) -> bool:
    if value == file.last_modified:
        return True
    try:
        parsed = parsedate(value.decode("latin-1"))
    except (ValueError, IndexError, TypeError):
        return False
    # An unparseable date is ignored, as RFC 9110 asks: the full response goes out.
    return parsed is not None and file.mtime <= calendar.timegm(parsed)


class StaticFeeds:
    """ASGI app serving a directory of generated feeds.

    `max_age` gives Cache-Control's max-age for a path relative to root ("news.atom"); it is asked on
    every request, so keep it a dict lookup. Paths under `long_max_age_prefixes` are immutable for a
    year instead, except the newest numbered archive page, which still fills up. `hubs` adds WebSub
    `Link: rel="hub"` headers, with `rel="self"` as `base_url` + path,
    to .atom/.rss/.json responses. `routes` (and `add_route`) answer exact paths before the directory.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_age: Callable[[str], int] | int = 3600,
        hubs: tuple[str, ...] = (),
        base_url: str = "",
        routes: Mapping[str, Route] | None = None,
        long_max_age_prefixes: tuple[str, ...] = ("archive/",),
        cache_files: int = 256,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        # Resolved once: every served path must resolve to somewhere below this prefix.
        self.root = Path(os.path.realpath(root))
        self._prefix = str(self.root) + os.sep
        self._max_age = max_age
        self._long_prefixes = long_max_age_prefixes
        self._routes: dict[str, Route] = dict(routes or {})
        self._base_url = base_url.rstrip("/")
        self._hub_links: list[Header] = [(b"link", f'<{hub}>; rel="hub"'.encode()) for hub in hubs]
        self._cache = _FileCache(cache_files, cache_bytes)
        self._cache_control: dict[int, Header] = {}
        self._long_cache_control: Header = (b"cache-control", f"public, max-age={LONG_MAX_AGE}, immutable".encode())
        self._targets: dict[str, _Target] = {}
        # Accept-Encoding values repeat endlessly across clients; bounded so odd values cannot grow it.
        self._gzip_ok: dict[bytes, bool] = {}

    def set_links(self, *, hubs: tuple[str, ...], base_url: str) -> None:
        """Change the WebSub hubs and public base URL (a daemon reload); takes effect on the next request."""
        self._base_url = base_url.rstrip("/")
        self._hub_links = [(b"link", f'<{hub}>; rel="hub"'.encode()) for hub in hubs]
        self._targets = {}  # remembered targets carry the old self links

    def add_route(self, path: str, route: Route) -> None:
        """Answer `path` exactly from `route` instead of the directory (the daemon's /healthz, /metrics)."""
        self._routes[path] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            status, headers, body = 405, _NOT_ALLOWED_HEADERS, _NOT_ALLOWED_BODY
        else:
            status, headers, body = self._answer(scope)
        # One start and one body message: the whole response leaves in a single write.
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Nothing to set up; answering keeps uvicorn from logging that lifespan is unsupported.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    def _answer(self, scope: Scope) -> tuple[int, list[Header], bytes]:
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :] or "/"
        route = self._routes.get(path)
        if route is not None:
            return _dynamic(route())
        target = self._target(path)
        if target is None:
            return _NOT_FOUND
        found = self._lookup(target.rel)
        if found is None:
            return _NOT_FOUND
        full, st = found
        if not stat.S_ISREG(st.st_mode):
            if not target.wants_index and stat.S_ISDIR(st.st_mode) and self._lookup(target.rel + "/index.html"):
                return _to_directory(scope)
            return _NOT_FOUND
        file = self._cache.get(full, st)
        if file is None:
            return _NOT_FOUND
        return self._file(scope, target, full, file)

    def _target(self, path: str) -> _Target | None:
        """What a request path names, checked once per distinct path and then remembered."""
        target = self._targets.get(path)
        if target is None:
            rel = _relative(path)
            if rel is None:
                return None  # not remembered: junk paths must not crowd out real ones
            wants_index = not rel or rel[-1] == "/"
            if wants_index:
                rel += "index.html"
            suffix = _suffix(rel)
            self_link = None
            if self._hub_links and suffix in FEED_SUFFIXES:
                # Header values are bytes on the wire: a non-ASCII file name goes out percent-encoded.
                self_link = (b"link", f'<{self._base_url}/{quote(rel)}>; rel="self"'.encode())
            target = _Target(
                rel=rel,
                wants_index=wants_index,
                content_type=(b"content-type", MEDIA_TYPES.get(suffix, DEFAULT_MEDIA_TYPE)),
                compressible=suffix in COMPRESSIBLE,
                immutable=rel.startswith(self._long_prefixes),
                self_link=self_link,
            )
            if len(self._targets) >= 1024:
                self._targets.clear()
            self._targets[path] = target
        return target

    def _lookup(self, rel: str) -> tuple[str, os.stat_result] | None:
        """The real path and stat of `rel` below the root, or None if absent or resolving outside it."""
        full = self._prefix + rel
        try:
            st = os.lstat(full)
            # A top-level regular file cannot lead outside; anything deeper may pass through a symlinked
            # directory, and a symlink itself may point anywhere, so those are resolved and checked.
            if "/" in rel or stat.S_ISLNK(st.st_mode):
                full = os.path.realpath(full)
                if not full.startswith(self._prefix):
                    return None
                st = os.stat(full)
        except (OSError, ValueError):
            return None
        return full, st

    def _file(self, scope: Scope, target: _Target, full: str, file: _File) -> tuple[int, list[Header], bytes]:
        inm: bytes | None = None
        ims: bytes | None = None
        accept: bytes | None = None
        for name, value in scope["headers"]:
            # Repeated fields combine into one list, as RFC 9110 defines for these headers.
            if name == b"if-none-match":
                inm = value if inm is None else inm + b"," + value
            elif name == b"if-modified-since":
                ims = value
            elif name == b"accept-encoding":
                accept = value if accept is None else accept + b"," + value

        rep = file
        if target.compressible and accept is not None and self._accepts_gzip(accept):
            rep = self._gzip_sibling(full, file) or file

        # If-None-Match, when present, decides alone (RFC 9110 §13.2.2): If-Modified-Since is then ignored.
        if inm is not None:
            not_modified = _etag_matches(inm, rep.etag)
        elif ims is not None:
            not_modified = _not_modified_since(ims, file)
        else:
            not_modified = False

        # The identity file's time for both codings: the resource changed when its content did.
        headers: list[Header] = [
            (b"etag", rep.etag),
            (b"last-modified", file.last_modified),
            self._long_cache_control
            if target.immutable and self._frozen(target.rel)
            else self._cache_control_for(target.rel),
        ]
        if target.compressible:
            headers.append(_VARY)
        if not_modified:
            # A 304 carries only what updates a cache (RFC 9110 §15.4.5), no content metadata.
            return 304, headers, b""
        headers.append(target.content_type)
        headers.append(_NOSNIFF)
        if rep is not file:
            headers.append(_GZIP)
        if target.self_link is not None:
            headers.extend(self._hub_links)
            headers.append(target.self_link)
        headers.append((b"content-length", rep.length))
        return 200, headers, rep.body

    def _accepts_gzip(self, accept: bytes) -> bool:
        ok = self._gzip_ok.get(accept)
        if ok is None:
            ok = _accepts_gzip(accept)
            if len(self._gzip_ok) >= 256:
                self._gzip_ok.clear()
            self._gzip_ok[accept] = ok
        return ok

    def _gzip_sibling(self, full: str, file: _File) -> _File | None:
        """The `.gz` beside `full` if it is a regular file at least as new as the file itself."""
        gz_path = full + ".gz"
        try:
            st = os.lstat(gz_path)
        except (OSError, ValueError):
            return None
        # Older than the file means the publisher has not rewritten it yet: its bytes are a stale version.
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns < file.sig[2]:
            return None
        return self._cache.get(gz_path, st)

    def _frozen(self, rel: str) -> bool:
        """An archive page is final once a newer page exists: `archive/news/3.atom` when `4.atom` does."""
        head, _, name = rel.rpartition("/")
        number, dot, ext = name.partition(".")
        if not number.isdigit():
            return True  # not a numbered page: the prefix alone decides
        return os.path.exists(f"{self._prefix}{head}/{int(number) + 1}{dot}{ext}")

    def _cache_control_for(self, rel: str) -> Header:
        # Asked on every request, not remembered: the daemon may change a feed's interval while running.
        seconds = self._max_age if isinstance(self._max_age, int) else self._max_age(rel)
        header = self._cache_control.get(seconds)
        if header is None:
            header = (b"cache-control", f"public, max-age={max(0, seconds)}".encode())
            self._cache_control[seconds] = header
        return header


def _dynamic(response: DynamicResponse) -> tuple[int, list[Header], bytes]:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    if not any(k == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(response.body)).encode()))
    return response.status, headers, response.body


def _to_directory(scope: Scope) -> tuple[int, list[Header], bytes]:
    # As nginx does: send the client to the slash form, so that relative links in the index resolve.
    location: bytes = scope.get("raw_path") or scope["path"].encode()
    location += b"/"
    if scope.get("query_string"):
        location += b"?" + scope["query_string"]
    return 301, [(b"location", location), (b"content-length", b"0"), _NOSNIFF], b""


class _HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline and a size limit for each request's line and headers.

    uvicorn arms no timer before its first response and cancels its keep-alive timer on any byte, so a
    client that connects and sends nothing, or trickles a header line now and then (slowloris), kept its
    connection and memory forever; and llhttp buffers a header of any length.
    """

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Counted whole chunks while a request's headers are still incomplete: httptools keeps a header
        # it has not finished in its own buffer, out of reach of the on_header callback.
        if self._header_timer is not None and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self.send_400_response("Request line and headers too large.")

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    """uvicorn's server, with signal capture optional: the daemon owns SIGTERM when it runs us."""

    def __init__(self, config: uvicorn.Config, *, install_signal_handlers: bool) -> None:
        super().__init__(config)
        self._install_signal_handlers = install_signal_handlers

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self._install_signal_handlers or threading.current_thread() is not threading.main_thread():
            yield
            return
        # Like uvicorn's, but a SIGTERM or SIGINT that stopped us gracefully is not raised again
        # afterwards: `feeds serve` then exits 0, as `feeds run` does, instead of dying by the signal.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def make_server(
    app: StaticFeeds,
    host: str,
    port: int,
    *,
    install_signal_handlers: bool = True,
    log_level: str = "warning",
) -> uvicorn.Server:
    """A uvicorn server tuned for small static responses; run it with `run_server` or `ServerThread`."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # httptools (uvicorn[standard]) parses faster than h11. Not uvloop: under many busy connections
        # it left new ones unaccepted long enough for clients to time out; asyncio's loop accepts them
        # promptly, for a little less throughput.
        http=_HttpProtocol,
        loop="asyncio",
        lifespan="on",
        # One log line per request costs more than serving a cached feed; nginx in front logs if wanted.
        access_log=False,
        server_header=False,
        # Nothing here reads the client address, so the X-Forwarded-* rewriting layer is pure cost.
        proxy_headers=False,
        log_level=log_level,
        log_config=None,
    )
    return _Server(config, install_signal_handlers=install_signal_handlers)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; binding here, not inside uvicorn, turns a busy port into a FeedsError."""
    where = f"serve {host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise FeedsError(where, f"cannot resolve host: {exc}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise FeedsError(where, f"cannot listen: {exc.strerror or exc}") from exc
    return sock


def run_server(app: StaticFeeds, host: str, port: int, *, install_signal_handlers: bool = True) -> uvicorn.Server:
    """Serve in this thread until SIGINT/SIGTERM (or `should_exit`); returns the stopped server."""
    sock = bind_socket(host, port)
    server = make_server(app, host, port, install_signal_handlers=install_signal_handlers)
    log.info("serving %s on http://%s:%d", app.root, *sock.getsockname()[:2])
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return server


class ServerThread:
    """Runs the server in a background thread, so a scheduler can keep the main thread and stop it later."""

    def __init__(self, app: StaticFeeds, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.server = make_server(app, host, port, install_signal_handlers=False)
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Bind (port 0 picks a free one, then `port` tells which), start, and wait until it accepts."""
        self._socket = bind_socket(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, name="feeds-serve", daemon=True
        )
        self._thread.start()
        waited = 0.0
        while not self.server.started:
            if not self._thread.is_alive() or waited >= timeout:
                self.stop()
                raise FeedsError(f"serve {self.host}:{self.port}", "server did not start")
            self._thread.join(0.01)
            waited += 0.01
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish open requests and stop; idle keep-alive connections are closed."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
