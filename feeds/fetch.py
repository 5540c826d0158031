"""Retrieving source documents from http(s) URLs and local files as `Document`s."""

from __future__ import annotations

import codecs
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import NoReturn, Self
from urllib.parse import unquote, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from feeds.errors import SourceError
from feeds.model import ATOM, RSS, Document, byte_order_mark
from feeds.retry import backoff, retry_after, server_now, worth_retrying


class SourceGone(SourceError):
    """The server says the source was removed for good (HTTP 410): the operator should drop it."""


class Refused(SourceError):
    """The server answered with a status that is no success, a redirect or a retry (a 404, a 403)."""

    def __init__(self, where: str, what: str, status: int) -> None:
        super().__init__(where, what)
        self.status = status


_DISALLOW_ALL = ("User-agent: *", "Disallow: /")
ROBOTS_TTL = timedelta(days=1)  # how long a host's robots.txt is believed
ROBOTS_UNREACHABLE_TTL = timedelta(hours=1)  # a robots.txt that could not be read: nothing fetched there meanwhile


@dataclass(frozen=True, slots=True, kw_only=True)
class Validators:
    """What the store keeps per source for a conditional GET; empty strings mean "none"."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """The outcome of one fetch: a document, or word that nothing changed."""

    document: Document | None  # None when the server answered 304 Not Modified
    validators: Validators  # to store and send next time
    not_modified: bool
    permanent_redirect: str = ""  # where the config should point now, after 301/308 redirects
    bytes_received: int = 0
    body_skipped: bool = False  # the media type was not wanted: the document holds the headers and no body


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchLimits:
    """How long, how much and how often a fetch may try. Times are seconds; total is per attempt."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    per_host: int = 4

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout", "max_bytes", "per_host"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FetchLimits.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_redirects", "retries", "backoff_base", "backoff_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"FetchLimits.{name} must not be negative, got {getattr(self, name)!r}")


def user_agent(version: str, contact_url: str) -> str:
    """The User-Agent we announce: "feeds/0.1.0 (+https://example.org/contact)"."""
    return f"feeds/{version} (+{contact_url})" if contact_url else f"feeds/{version}"


_ACCEPT = (
    f"{ATOM.media_type}, {RSS.media_type}, application/rdf+xml;q=0.9, application/xml;q=0.9, "
    "text/xml;q=0.9, text/html;q=0.8, application/xhtml+xml;q=0.8, text/plain;q=0.5, */*;q=0.1"
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})


class _Retry(Exception):
    """A failure worth another attempt; `wait` is what the server asked for, None for our backoff."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class Fetcher:
    """Fetches sources over one shared httpx client, at most `per_host` requests at a time per host.

    Safe to use from several threads. `sleep`, `rng`, `clock` (monotonic) and `now` (wall clock,
    for Retry-After dates) are injectable so tests neither wait nor depend on the time of day.
    """

    def __init__(
        self,
        *,
        user_agent: str,
        limits: FetchLimits = FetchLimits(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.limits = limits
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        self._now = now
        self._hosts: dict[str, threading.BoundedSemaphore] = {}
        self._hosts_lock = threading.Lock()
        self._transport = transport
        self._user_agent = user_agent
        # Made on the first fetch: loading the CA bundle is slow, and a pass of local files never
        # needs it.
        self._made: httpx.Client | None = None
        self._made_lock = threading.Lock()
        self._robots: dict[str, tuple[datetime, RobotFileParser]] = {}  # origin → (believed until, its rules)
        self._robots_lock = threading.Lock()

    @property
    def _client(self) -> httpx.Client:
        with self._made_lock:
            if self._made is None:
                self._made = httpx.Client(
                    transport=self._transport,
                    headers={"User-Agent": self._user_agent, "Accept": _ACCEPT},
                    follow_redirects=False,  # followed by hand, to see which hops are permanent
                    trust_env=False,  # config.py is the only reader of the environment
                    timeout=self._timeout(self.limits.total_timeout),
                )
            return self._made

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        with self._made_lock:
            if self._made is not None:
                self._made.close()

    def fetch(
        self,
        source_name: str,
        location: str,
        validators: Validators = Validators(),
        wanted: Callable[[str], bool] | None = None,
    ) -> FetchResult:
        """Fetch `location` (an http(s) URL or a local path) for the source `source_name`.

        Raises SourceError (SourceGone for HTTP 410) with a message meant for the operator. With
        `wanted`, a body whose media type it refuses is not read: the document has its headers only.
        """
        if not location.startswith(("http://", "https://")):
            document = fetch_file(source_name, location, max_bytes=self.limits.max_bytes)
            return FetchResult(
                document=document, validators=Validators(), not_modified=False, bytes_received=len(document.content)
            )
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(source_name, location, validators, wanted)
            except _Retry as retry:
                if attempt > self.limits.retries:
                    tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                    raise SourceError(source_name, f"{retry.reason} (gave up after {tries})") from retry.__cause__
                self._sleep(retry.wait if retry.wait is not None else self._backoff(attempt))

    def allowed(self, source_name: str, url: str) -> bool:
        """Whether the host's robots.txt lets our User-Agent fetch `url`; each host's is read once a day.

        As RFC 9309 says: no robots.txt (a 4xx) allows everything; one that cannot be read (5xx, no
        answer) allows nothing until it is tried again, an hour later.
        """
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        # One lock for all hosts: the first fetch of a host's robots.txt is waited for, never made twice.
        with self._robots_lock:
            cached = self._robots.get(origin)
            if cached is None or cached[0] <= self._now():
                cached = self._read_robots(source_name, origin)
                self._robots[origin] = cached
        return cached[1].can_fetch(self._user_agent, url)

    def _read_robots(self, source_name: str, origin: str) -> tuple[datetime, RobotFileParser]:
        rules = RobotFileParser(origin + "/robots.txt")
        try:
            result = self.fetch(source_name, origin + "/robots.txt", wanted=_is_plain_text)
        except Refused as exc:
            rules.parse(_DISALLOW_ALL if exc.status in (401, 403) else [])
            return self._now() + ROBOTS_TTL, rules
        except SourceError:
            rules.parse(_DISALLOW_ALL)
            return self._now() + ROBOTS_UNREACHABLE_TTL, rules
        document = result.document
        # Anything but text (an HTML page answered with 200) is no robots.txt: no rules.
        rules.parse([] if document is None or result.body_skipped else document.text().splitlines())
        return self._now() + ROBOTS_TTL, rules

    def _backoff(self, attempt: int) -> float:
        return backoff(attempt, base=self.limits.backoff_base, ceiling=self.limits.backoff_max, rng=self._rng)

    def _attempt(
        self, source: str, location: str, validators: Validators, wanted: Callable[[str], bool] | None = None
    ) -> FetchResult:
        deadline = self._clock() + self.limits.total_timeout
        url, chain = location, [location]
        permanent, only_permanent = "", True
        while True:
            with self._slot(source, url), self._open(source, url, validators, deadline) as response:
                status = response.status_code
                if status not in _REDIRECTS:
                    return self._finish(source, url, response, validators, deadline, permanent, wanted)
                target = _redirect_target(source, url, response)
            # The config can follow a permanent hop only while every hop before it was permanent too.
            if status in _PERMANENT and only_permanent:
                permanent = target
            else:
                only_permanent = False
            if target in chain:
                raise SourceError(source, f"redirect loop: {' → '.join([*chain, target])}")
            if len(chain) > self.limits.max_redirects:
                raise SourceError(
                    source, f"more than {self.limits.max_redirects} redirects: {' → '.join([*chain, target])}"
                )
            chain.append(target)
            url = target

    @contextmanager
    def _slot(self, source: str, url: str) -> Iterator[None]:
        try:
            host = httpx.URL(url).netloc.decode("ascii").lower()
        except httpx.InvalidURL as exc:
            raise SourceError(source, f"{url}: not a valid URL: {exc}") from exc
        with self._hosts_lock:
            semaphore = self._hosts.setdefault(host, threading.BoundedSemaphore(self.limits.per_host))
        with semaphore:
            yield

    def _timeout(self, remaining: float) -> httpx.Timeout:
        limits = self.limits
        return httpx.Timeout(
            connect=min(limits.connect_timeout, remaining),
            read=min(limits.read_timeout, remaining),
            write=min(limits.read_timeout, remaining),
            pool=min(limits.connect_timeout, remaining),
        )

    @contextmanager
    def _open(self, source: str, url: str, validators: Validators, deadline: float) -> Iterator[httpx.Response]:
        """A streamed response; every httpx exception, here or while reading it, leaves as ours."""
        headers = {}
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _Retry(f"{url}: no answer within the {self.limits.total_timeout:g} s total limit")
        try:
            with self._client.stream("GET", url, headers=headers, timeout=self._timeout(remaining)) as response:
                yield response
        except httpx.ConnectTimeout as exc:
            raise _Retry(f"{url}: no connection within {self.limits.connect_timeout:g} s") from exc
        except httpx.ReadTimeout as exc:
            raise _Retry(f"{url}: the server sent nothing for {self.limits.read_timeout:g} s") from exc
        except httpx.TimeoutException as exc:
            raise _Retry(f"{url}: timed out ({type(exc).__name__})") from exc
        except httpx.ConnectError as exc:
            raise _Retry(f"{url}: cannot connect: {exc}") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Retry(f"{url}: the connection broke: {exc or type(exc).__name__}") from exc
        except httpx.DecodingError as exc:
            raise SourceError(source, f"{url}: cannot decode the compressed body: {exc}") from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict) as exc:
            raise SourceError(source, f"{url}: {exc or type(exc).__name__}") from exc

    def _finish(
        self,
        source: str,
        url: str,
        response: httpx.Response,
        validators: Validators,
        deadline: float,
        permanent: str,
        wanted: Callable[[str], bool] | None = None,
    ) -> FetchResult:
        status = response.status_code
        if status == 304:
            # A 304 may omit the validators; the ones we sent are still the current ones then.
            kept = Validators(
                etag=response.headers.get("etag", validators.etag),
                last_modified=response.headers.get("last-modified", validators.last_modified),
            )
            return FetchResult(document=None, validators=kept, not_modified=True, permanent_redirect=permanent)
        said = f"HTTP {status} {response.reason_phrase}".rstrip()
        if status == 410:
            raise SourceGone(
                source, f"{url} answered {said}: the source was removed for good; remove it from the configuration"
            )
        if worth_retrying(status):
            self._try_again(source, url, said, response.headers)
        if not 200 <= status < 300:
            raise Refused(source, f"{url} answered {said}", status)
        headers = MappingProxyType({key.lower(): value for key, value in response.headers.items()})
        found = Validators(
            etag=response.headers.get("etag", ""), last_modified=response.headers.get("last-modified", "")
        )
        if wanted is not None and not wanted(_content_type(response.headers.get("content-type", ""), b"")[0]):
            # Told by its headers alone (a PDF, a video): its body may be large and is not ours to read.
            media_type = _content_type(response.headers.get("content-type", ""), b"")[0]
            document = Document(content=b"", url=str(response.url), media_type=media_type, headers=headers)
            return FetchResult(
                document=document, validators=found, not_modified=False, permanent_redirect=permanent, body_skipped=True
            )
        body = self._read(source, url, response, deadline)
        media_type, declared = _content_type(response.headers.get("content-type", ""), body)
        document = _document(
            source, body, url=str(response.url), media_type=media_type, declared=declared, headers=headers, what="body"
        )
        return FetchResult(
            document=document,
            validators=found,
            not_modified=False,
            permanent_redirect=permanent,
            bytes_received=len(body),
        )

    def _try_again(self, source: str, url: str, said: str, headers: httpx.Headers) -> NoReturn:
        wait = retry_after(headers, self._now())
        if wait is None:
            raise _Retry(f"{url} answered {said}")
        if wait > self.limits.backoff_max:
            when = (server_now(headers, self._now()) + timedelta(seconds=wait)).astimezone(UTC)
            raise SourceError(
                source,
                f"{url} answered {said} and asks to retry after {when:%Y-%m-%d %H:%M:%S} UTC "
                f"(in {wait:.0f} s), longer than the {self.limits.backoff_max:g} s we wait: "
                "try again after that time",
            )
        raise _Retry(f"{url} answered {said} (Retry-After {wait:g} s)", wait=wait)

    def _read(self, source: str, url: str, response: httpx.Response, deadline: float) -> bytes:
        limit = self.limits.max_bytes
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise SourceError(
                source, f"{url} is {int(length)} bytes (Content-Length), over the {limit}-byte limit; not downloaded"
            )
        chunks: list[bytes] = []
        received = 0
        # iter_bytes decompresses, so the cap also bounds what a gzip bomb can grow into.
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > limit:
                raise SourceError(
                    source, f"{url} sent more than the {limit}-byte limit ({received} bytes so far); download aborted"
                )
            if self._clock() > deadline:
                raise _Retry(f"{url}: the download took longer than the {self.limits.total_timeout:g} s total limit")
            chunks.append(chunk)
        return b"".join(chunks)


def _is_plain_text(media_type: str) -> bool:
    return media_type == "text/plain"


def _redirect_target(source: str, url: str, response: httpx.Response) -> str:
    location = response.headers.get("location", "").strip()
    if not location:
        raise SourceError(source, f"{url} answered HTTP {response.status_code} without a Location header")
    target = str(response.url.join(location))
    if not target.startswith(("http://", "https://")):
        raise SourceError(source, f"{url} redirects to {target}, which is not an http(s) URL")
    return target


# --- local files ------------------------------------------------------------------------------

_SUFFIX_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".xml": "application/xml",
    RSS.suffix: RSS.media_type,
    ATOM.suffix: ATOM.media_type,
    ".rdf": "application/rdf+xml",
}


def fetch_file(source_name: str, path: str | Path, *, max_bytes: int | None = None) -> Document:
    """A local file as a Document; the media type comes from the suffix, the charset from the bytes.

    The file's mtime is given as a `last-modified` header, as a server would.
    """
    if isinstance(path, str) and path.startswith("file://"):
        path = Path(unquote(urlsplit(path).path))
    file = Path(path)
    try:
        size = file.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise SourceError(source_name, f"{file} is {size} bytes, over the {max_bytes}-byte limit; not read")
        with file.open("rb") as handle:
            content = handle.read(max_bytes + 1) if max_bytes is not None else handle.read()
            mtime = file.stat().st_mtime
    except FileNotFoundError:
        raise SourceError(source_name, f"{file}: no such file") from None
    except IsADirectoryError:
        raise SourceError(source_name, f"{file}: is a directory, not a file") from None
    except OSError as exc:
        raise SourceError(source_name, f"{file}: cannot read: {exc.strerror or exc}") from exc
    if max_bytes is not None and len(content) > max_bytes:  # grew while we read it
        raise SourceError(source_name, f"{file} grew past the {max_bytes}-byte limit while being read")
    media_type = _SUFFIX_TYPES.get(file.suffix.lower(), "text/plain")
    headers = MappingProxyType({"last-modified": formatdate(mtime, usegmt=True), "content-length": str(len(content))})
    return _document(
        source_name,
        content,
        url=file.resolve().as_uri(),
        media_type=media_type,
        declared="",
        headers=headers,
        what=f"{file}: file",
    )


# --- media type and charset -------------------------------------------------------------------

# XML 1.0 appendix F: a document's first "<" in UTF-32 or UTF-16 without a byte order mark.
_UNMARKED = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?\bcharset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
# WHATWG Encoding: browsers read these labels as windows-1252, and servers that send them mean it.
_AS_WINDOWS_1252 = frozenset({"iso8859-1", "latin-1", "ascii"})
_NOT_IN_WINDOWS_1252 = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_PRETTY = {"cp1252": "windows-1252", "utf_16_le": "utf-16-le", "utf_16_be": "utf-16-be"}
_XML_TYPES = frozenset({"application/xml", "text/xml"})


def _content_type(header: str, body: bytes) -> tuple[str, str]:
    """(media type, declared charset) from a Content-Type header, sniffing the body when it is absent."""
    media_type, _, params = header.partition(";")
    media_type = media_type.strip().lower()
    declared = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            declared = value.strip().strip("\"'")
    if not media_type:
        head = body[:512].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")):
            media_type = "text/html"
        elif head.startswith((b"<?xml", b"<rss", b"<feed", b"<rdf:rdf")):
            media_type = "application/xml"
        else:
            media_type = "text/plain"
    return media_type, declared


def _is_text(media_type: str) -> bool:
    main, _, sub = media_type.partition("/")
    return main == "text" or any(word in sub for word in ("xml", "json", "html"))


def _codec(label: str, body: bytes) -> str | None:
    """The codec name Python knows for a charset label; None for a label it does not know."""
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return None
    if name in _AS_WINDOWS_1252:
        # …unless the bytes use what windows-1252 leaves undefined; then latin-1 reads them all.
        name = "iso8859-1" if _NOT_IN_WINDOWS_1252.search(body) else "cp1252"
    if name.startswith("iso8859-"):
        return "iso-8859-" + name.removeprefix("iso8859-")
    return _PRETTY.get(name, name)


def decide_charset(body: bytes, media_type: str, declared: str = "") -> tuple[str, str]:
    """(charset, how it was decided): BOM, then the declared charset, then <meta>, then the XML declaration.

    A byte order mark wins over the header, as in browsers (WHATWG "decode"): it cannot be there by
    accident; so does a first "<" in UTF-16 or UTF-32, which no other charset spells that way.
    """
    if marked := byte_order_mark(body):
        name = marked[1]
        return name, f"the document starts with a {name.upper()} byte order mark"
    for start, name in _UNMARKED:
        if body.startswith(start):
            return name, f"the document is {name.upper()} without a byte order mark"
    if declared and (codec := _codec(declared, body)):
        return codec, f'the server declared charset "{declared}"'
    unknown = [f'the server declared an unknown charset "{declared}"'] if declared else []
    head = body[:2048]
    if media_type in ("text/html", "application/xhtml+xml") and (meta := _META_CHARSET.search(head)):
        label = meta.group(1).decode("ascii")
        if codec := _codec(label, body):
            return codec, f'the document declares charset "{label}" in a <meta> tag'
        unknown.append(f'the document declares an unknown charset "{label}" in a <meta> tag')
    if xml := _XML_ENCODING.match(head):
        label = xml.group(1).decode("ascii")
        if codec := _codec(label, body):
            return codec, f'the document declares encoding "{label}" in its XML declaration'
        unknown.append(f'the document declares an unknown encoding "{label}" in its XML declaration')
    return "utf-8", f"{', and '.join(unknown) or 'no charset was declared'}, so UTF-8 was assumed"


def is_xml(media_type: str) -> bool:
    """Whether a media type is a feed's (XML, but not XHTML, which the page adapters read as HTML)."""
    return media_type in _XML_TYPES or (media_type.endswith("+xml") and media_type != "application/xhtml+xml")


def _document(
    source: str, body: bytes, *, url: str, media_type: str, declared: str, headers: Mapping[str, str], what: str
) -> Document:
    if not _is_text(media_type):
        return Document(content=body, url=url, media_type=media_type, charset=None, headers=headers)
    charset, how = decide_charset(body, media_type, declared)
    document = Document(content=body, url=url, media_type=media_type, charset=charset, headers=headers)
    if is_xml(media_type):
        # A feed is read as feedparser reads it: past a wrong declaration (windows-1252 bytes said to
        # be UTF-8), which the feed adapter then reports.
        return document
    try:
        document.decode()
    except ValueError as exc:
        raise SourceError(source, f"{what} is {exc}; {how}") from exc
    return document
