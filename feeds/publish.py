"""Writing output/: atomic replacement, gzip siblings, the index page and the OPML list."""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import gzip
import itertools
import os
import queue
import select
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import IO, NamedTuple, TypeVar

from lxml import etree
from lxml.html import builder as E
from lxml.html import tostring

from feeds import _writer
from feeds.errors import PublishError
from feeds.helper import cpus
from feeds.model import FORMATS


@dataclass(frozen=True, slots=True)
class Write:
    """One file to bring up to date: its path under the output directory and its bytes."""

    name: str
    data: bytes
    gzip: bool = True  # keep a precompressed .gz beside it for the server
    durable: bool = True  # flushed to disk before it replaces the old file


def write_files(root: Path, writes: Iterable[Write]) -> set[str]:
    """Replace every file whose bytes differ; return the names written.

    Readers see each file old or new, never a mix, and a failure (a full disk, or an error raised
    while `writes` is rendered) leaves every previous file in place: all new bytes go to hidden
    temporary files first and only then are renamed over their targets, each .gz before its file.
    Durable files are flushed to disk before the rename, so a power cut cannot leave them empty;
    the flushes run on threads while the next files render, several at once so the file system
    can commit them together. Entry pages skip that (a flush each costs more than the rest of
    their build) and rely on the file system ordering data before renames. A directory below
    `root` that does not exist yet is written whole under a hidden name and renamed into place
    once: it appears with every file in it, and its files need no rename each. When there are
    many such files (a first build's ten thousand entry pages), a second process writes them.
    """
    # Staging on worker threads while the caller renders was measured and dropped: a worker needs
    # the GIL back after every system call and, behind a busy renderer, waits for it each time; the
    # build took as long, with a quarter more CPU. Compressing and flushing are long calls that let
    # go of the GIL, so they alone run beside the caller, on another core when there is one.
    # Paths as strings: pathlib's objects cost more than the system calls, ten thousand files over.
    top = str(root)
    staged: list[tuple[str, str]] = []  # (temp, target) of the files and of the new directories
    staged_gz: dict[str, tuple[str, str]] = {}  # the file's path: (temp, target) of its .gz
    renames: list[tuple[str, str]] = []  # all of them, in the order of renaming
    packing: list[_Packing] = []
    renamed = 0
    written: set[str] = set()
    made: dict[str, str | None] = {}  # directory: the hidden one its files go to, or None when it exists
    try:
        with (
            ThreadPoolExecutor(max_workers=_compressors(), thread_name_prefix="gzip") as pool,
            _Flusher() as flush,
            _SecondWriter() as second,
        ):
            try:
                for write in writes:
                    path = f"{top}/{write.name}"
                    # Nothing in a directory this call makes can hold the bytes yet: no need to look.
                    if made.get(path.rpartition("/")[0]) is None and _holds(path, write.data):
                        # A pass killed between renames leaves a newer .gz beside the old file: compare it.
                        if write.gzip:
                            packing.append(_Packing(pool.submit(_compress, write.data), path, write.durable, None))
                        continue
                    # Only plain files go to the second writer: the others are flushed, or stat'ed for their .gz.
                    plain = not write.durable and not write.gzip
                    tmp, in_place = _stage(
                        path, write.data, made, top, staged, flush if write.durable else None, second if plain else None
                    )
                    if not in_place:
                        staged.append((tmp, path))
                    written.add(write.name)
                    if write.gzip:
                        # Same mtime as its file, so a server that serves a .gz only when it is as new, can.
                        mtime = os.stat(tmp).st_mtime_ns
                        packing.append(_Packing(pool.submit(_compress, write.data), path, write.durable, mtime))
                for pack in packing:
                    gz = pack.path + ".gz"
                    packed = pack.packed.result()
                    if pack.mtime_ns is None and _holds(gz, packed):
                        continue
                    tmp_gz, in_place = _stage(gz, packed, made, top, staged, flush if pack.durable else None)
                    if not in_place:
                        staged_gz[pack.path] = (tmp_gz, gz)
                    if pack.mtime_ns is not None:
                        os.utime(tmp_gz, ns=(pack.mtime_ns, pack.mtime_ns))
                flush.wait()
                second.wait()
            except BaseException:
                for pack in packing:
                    pack.packed.cancel()
                raise
        # Each .gz right before its file; first those of the files that stay as they were.
        for tmp_name, path in staged:
            if path in staged_gz:
                renames.append(staged_gz.pop(path))
            renames.append((tmp_name, path))
        renames[:0] = staged_gz.values()
        for done, (tmp_name, target) in enumerate(renames, start=1):
            os.replace(tmp_name, target)
            renamed = done
    except BaseException as exc:
        for tmp_name, _target in renames[renamed:] if renames else [*staged, *staged_gz.values()]:
            with contextlib.suppress(OSError):
                if os.path.isdir(tmp_name):  # a new directory's hidden copy
                    shutil.rmtree(tmp_name)
                else:
                    os.unlink(tmp_name)
        if not isinstance(exc, OSError):
            raise
        where = exc.filename or str(root)
        hint = (
            "the disk is full; free space, then build again"
            if exc.errno == errno.ENOSPC
            else "check that the output directory is writable"
        )
        raise PublishError(str(where), f"cannot write ({exc.strerror}); previous files are intact; {hint}") from exc
    return written


class _Packing(NamedTuple):
    """A .gz being compressed while the next files render."""

    packed: Future[bytes]
    path: str  # the file it sits beside
    durable: bool
    mtime_ns: int | None  # the new file's, which the .gz takes; None when the file stays as it was


STALE_TEMP_SECONDS = 15 * 60  # far longer than any pass holds a temp file; younger ones may be a live writer's


def remove_stale_temps(root: Path, older_than: float) -> int:
    """Delete the hidden temp files and directories a killed writer left under root, older than `older_than`."""
    removed = 0
    for path in list(root.rglob(".*.tmp")):
        with contextlib.suppress(OSError):
            if path.lstat().st_mtime >= older_than:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    return removed


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace one file (no .gz) unless it already holds exactly `data`; True when written."""
    return bool(write_files(path.parent, [Write(path.name, data, gzip=False)]))


def _holds(path: str, data: bytes) -> bool:
    try:
        if os.stat(path).st_size != len(data):
            return False
        with open(path, "rb") as file:
            return file.read() == data
    except FileNotFoundError:
        return False


_temp_numbers = itertools.count()
_Made = TypeVar("_Made")
_NEW = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC  # a file opened to be written anew


def _stage(
    path: str,
    data: bytes,
    made: dict[str, str | None],
    top: str,
    staged: list[tuple[str, str]],
    flush: _Flusher | None = None,
    second: _SecondWriter | None = None,
) -> tuple[str, bool]:
    """Write `data` where it waits to replace `path`; return that file, and whether it needs no rename of its own.

    That is a hidden temp file beside `path`, or, in a directory this call makes, the file itself in
    the directory's hidden copy (whose rename joins `staged`). `made` is the directories known: the
    hidden copy each goes to, or None when it exists. `flush` flushes the file to disk; `second`
    may take the writing of a file in a new directory.
    """
    parent, _, name = path.rpartition("/")
    if parent not in made:
        made[parent] = _new_directory(parent, top, made, staged)
    into = made[parent]
    if into is not None:
        target = f"{into}/{name}"
        if second is not None and second.take(target, data):
            return target, True
        # Truncated, not exclusive: only this call writes there, and a name written twice keeps the last.
        _fill(os.open(target, _NEW | os.O_TRUNC, 0o644), target, data, flush)
        return target, True
    tmp_name, fd = _hidden(parent, name, lambda tmp: os.open(tmp, _NEW | os.O_EXCL, 0o644))
    _fill(fd, tmp_name, data, flush)
    return tmp_name, False


def _new_directory(directory: str, top: str, made: dict[str, str | None], staged: list[tuple[str, str]]) -> str | None:
    """Where the files of `directory` go while this call writes: None when it exists (or is `top`, made
    as it is), else a hidden copy, renamed into place with the other files (see write_files)."""
    if os.path.isdir(directory):
        return None
    outer, _, leaf = directory.rpartition("/")
    below = outer.startswith(f"{top}/")
    if below and outer not in made:
        # Its parent is new too: the outermost new directory is the one hidden, and appears whole.
        made[outer] = _new_directory(outer, top, made, staged)
    if (hidden_outer := made.get(outer)) is not None:
        # Inside a directory this call makes: a plain directory in its hidden copy, published with it.
        inner = f"{hidden_outer}/{leaf}"
        os.mkdir(inner)
        os.chmod(inner, 0o755)
        return inner
    if not below and outer != top:
        os.makedirs(directory, exist_ok=True)
        return None
    os.makedirs(outer, exist_ok=True)
    hidden, _ = _hidden(outer, leaf, os.mkdir)
    os.chmod(hidden, 0o755)  # whatever the umask: the server and nginx must read it
    staged.append((hidden, directory))
    return hidden


def _hidden(parent: str, name: str, make: Callable[[str], _Made]) -> tuple[str, _Made]:
    """A new hidden temp name for `name` in `parent`, and what `make` made there (a file or a directory).

    Named by process and counter, not tempfile's random names, whose making cost more than the file.
    """
    while True:
        hidden = f"{parent}/.{name}.{os.getpid()}-{next(_temp_numbers)}.tmp"
        try:
            return hidden, make(hidden)
        except FileExistsError:  # left by a killed process that had the same pid
            continue


def _fill(fd: int, name: str, data: bytes, flush: _Flusher | None) -> None:
    """Write `data` to the new file `name` open on `fd`, then close it, or have `flush` flush and close it.

    On failure the file is removed."""
    try:
        try:
            os.fchmod(fd, 0o644)  # whatever the umask: the server and nginx must read it
            _writer.write_all(fd, data)
        except BaseException:
            os.close(fd)
            raise
        if flush is None:
            os.close(fd)
        else:
            flush(fd, name)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


class _Flusher:
    """Flushes files to disk on threads: `flush(fd, name)` takes the open file and closes it when done;
    `wait()` returns once every file is on disk, or raises the first failure, naming its file."""

    THREADS = 4  # flushes that overlap are committed together by journaling file systems
    IN_FLIGHT = 64  # open files at most: beyond that, the oldest flush is waited for

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="flush")
        self._pending: collections.deque[tuple[Future[None], str]] = collections.deque()

    def __enter__(self) -> _Flusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown()  # after an error too: every file is closed before its caller removes it

    def __call__(self, fd: int, name: str) -> None:
        self._pending.append((self._pool.submit(_flush_and_close, fd), name))
        if len(self._pending) > self.IN_FLIGHT:
            self._done(*self._pending.popleft())

    def wait(self) -> None:
        while self._pending:
            self._done(*self._pending.popleft())

    @staticmethod
    def _done(flushing: Future[None], name: str) -> None:
        try:
            flushing.result()
        except OSError as exc:
            exc.filename = name
            raise


class _SecondWriter:
    """A second process that writes the files of new directories, on another core, as git's parallel
    checkout does: creating a file costs the kernel 30 µs to a millisecond, and a thread could not
    take that off the renderer (see write_files).

    It starts once a call has written START_AFTER such files itself, so small builds start nothing,
    and where it cannot start they are written here. A thread feeds its pipe, so rendering goes on
    while the disk catches up, up to QUEUED chunks ahead. `wait()` returns once every file it took
    is written, or raises the first failure as an OSError naming the file.
    """

    START_AFTER = 256
    CHUNK = 1 << 20  # bytes sent at once
    QUEUED = 16
    READY_SECONDS = 10
    PROGRAM = str(Path(__file__).with_name("_writer.py"))

    def __init__(self) -> None:
        self._kept = 0  # files written here before it started
        self._process: subprocess.Popen[bytes] | None = None
        self._feeder: threading.Thread | None = None
        self._queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUED)
        self._chunk: list[bytes] = []
        self._size = 0
        self._broken = False  # its input closed early: it failed, and says why once it has exited
        self._unavailable = not sys.executable

    def __enter__(self) -> _SecondWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # After a failure: it stops before the caller removes what it was writing into.
        if self._process is not None:
            self._process.kill()
            self._finish()

    def take(self, path: str, data: bytes) -> bool:
        """Send one file to be written; False when it is to be written here instead."""
        if self._process is None and not self._start():
            return False
        name = os.fsencode(path)
        self._chunk += (_writer.HEADER.pack(len(name), len(data)), name, data)
        self._size += len(name) + len(data)
        if self._size >= self.CHUNK:
            if self._broken:
                self.wait()  # raises what went wrong, before more is rendered for nothing
            self._send()
        return True

    def wait(self) -> None:
        if self._process is None:
            return
        self._send()
        code, failure = self._finish()
        if code:
            number, _, name = failure.partition(b" ")
            if number.isdigit() and name:
                raise OSError(int(number), os.strerror(int(number)), os.fsdecode(name))
            raise OSError(errno.EIO, f"the process writing new files exited with status {code}", self.PROGRAM)

    def _start(self) -> bool:
        self._kept += 1
        if self._unavailable or self._kept <= self.START_AFTER:
            return False
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", self.PROGRAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        except OSError:
            self._unavailable = True
            return False
        assert process.stdin is not None and process.stdout is not None
        # An interpreter that cannot run it (an embedding program as sys.executable) never says it is ready.
        if not select.select([process.stdout], [], [], self.READY_SECONDS)[0] or (
            process.stdout.read(len(_writer.READY)) != _writer.READY
        ):
            process.kill()
            process.communicate()
            self._unavailable = True
            return False
        self._process = process
        self._feeder = threading.Thread(target=self._feed, args=(process.stdin,), name="second-writer", daemon=True)
        self._feeder.start()
        return True

    def _send(self) -> None:
        if self._chunk:
            self._queue.put(b"".join(self._chunk))
            self._chunk, self._size = [], 0

    def _feed(self, pipe: IO[bytes]) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._broken:
                continue  # drained, so the renderer never blocks on a full queue
            try:
                _writer.write_all(pipe.fileno(), chunk)
            except OSError:
                self._broken = True
        with contextlib.suppress(OSError):
            pipe.close()

    def _finish(self) -> tuple[int, bytes]:
        """End its input, wait for it and for the thread feeding it; its exit status, and what it said."""
        process, self._process = self._process, None
        assert process is not None and process.stdout is not None and self._feeder is not None
        self._queue.put(None)
        self._feeder.join()
        with process.stdout as said:
            return process.wait(), said.read()


def _flush_and_close(fd: int) -> None:
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _compressors() -> int:
    """Threads compressing at once: one a core, up to four."""
    # A build has rendered everything while its last feeds are still being compressed: on two cores,
    # two threads cut that wait from 0.38 s to 0.13 s in a first build of ten thousand entries.
    return min(4, cpus())


def _compress(data: bytes) -> bytes:
    # No file name and mtime 0 in the header: the same bytes in give the same .gz out.
    return gzip.compress(data, compresslevel=9, mtime=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedLink:
    """A category's feeds as the index and OPML list them."""

    slug: str
    title: str
    description: str
    entries: int


def html_document(tree: etree._Element) -> bytes:
    """An lxml.html tree as a UTF-8 HTML5 document."""
    body: bytes = tostring(tree, encoding="utf-8", pretty_print=True)
    return b"<!DOCTYPE html>\n" + body


def index_html(*, site_title: str, base_url: str, language: str, feeds: Sequence[FeedLink]) -> bytes:
    """The landing page: every feed, with autodiscovery links and one subscribe link per format."""
    head = E.HEAD(
        E.META(charset="utf-8"),
        E.META(name="viewport", content="width=device-width, initial-scale=1"),
        E.TITLE(site_title),
        *(
            E.LINK(rel="alternate", type=media, title=f"{feed.title} ({label})", href=f"{base_url}{feed.slug}.{ext}")
            for feed in feeds
            for ext, media, label in FORMATS
        ),
        E.LINK(rel="outline", type="text/x-opml", title="All feeds (OPML)", href=f"{base_url}feeds.opml"),
        E.STYLE(_CSS),
    )
    rows = []
    for feed in feeds:
        links = [E.A(label, href=f"{base_url}{feed.slug}.{ext}", type=media) for ext, media, label in FORMATS]
        spaced: list[object] = []
        for link in links:
            spaced.extend((link, " "))
        rows.append(
            E.LI(
                E.H2(E.A(feed.title, href=f"{base_url}{feed.slug}.html")),
                E.P(feed.description) if feed.description else "",
                E.P(
                    f"{feed.entries} {'entry' if feed.entries == 1 else 'entries'} · subscribe: ",
                    *spaced[:-1],
                    **{"class": "subscribe"},
                ),
                id=f"feed-{feed.slug}",
            )
        )
    body = E.BODY(
        E.H1(site_title),
        E.P(
            "Subscribe to a feed in your reader, or import ",
            E.A("every feed as OPML", href=f"{base_url}feeds.opml"),
            ".",
        ),
        E.UL(*rows, **{"class": "feeds"}),
    )
    return html_document(E.HTML(head, body, lang=language))


def opml(*, site_title: str, base_url: str, feeds: Sequence[FeedLink]) -> bytes:
    """OPML 2.0 listing every Atom feed, for importing into a reader at once."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = site_title
    body = etree.SubElement(root, "body")
    for feed in feeds:
        etree.SubElement(
            body,
            "outline",
            type="rss",
            text=feed.title,
            title=feed.title,
            xmlUrl=f"{base_url}{feed.slug}.atom",
            htmlUrl=f"{base_url}{feed.slug}.html",
            description=feed.description,
        )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
ul.feeds, ol.entries { list-style: none; padding: 0; }
ul.feeds li, ol.entries li { border-top: 1px solid #ddd; padding: .75rem 0; }
h2 { font-size: 1.2rem; margin: 0; }
.subscribe a { margin-right: .25rem; }
time, .meta { color: #666; font-size: .9rem; }
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PageEntry:
    """What a category page shows of one entry."""

    title: str
    link: str
    published_iso: str
    published_text: str
    summary: str


def category_html(
    *, site_title: str, base_url: str, language: str, feed: FeedLink, entries: Sequence[PageEntry]
) -> bytes:
    """A readable page of one category's entries, with autodiscovery links to its feeds."""
    head = E.HEAD(
        E.META(charset="utf-8"),
        E.META(name="viewport", content="width=device-width, initial-scale=1"),
        E.TITLE(f"{feed.title} · {site_title}"),
        *(
            E.LINK(rel="alternate", type=media, title=f"{feed.title} ({label})", href=f"{base_url}{feed.slug}.{ext}")
            for ext, media, label in FORMATS
        ),
        E.STYLE(_CSS),
    )
    subscribe: list[object] = []
    for ext, media, label in FORMATS:
        subscribe.extend((E.A(label, href=f"{base_url}{feed.slug}.{ext}", type=media), " "))
    body = E.BODY(
        E.P(E.A(f"← {site_title}", href=f"{base_url}index.html")),
        E.H1(feed.title),
        E.P(feed.description) if feed.description else "",
        E.P("Subscribe: ", *subscribe[:-1], **{"class": "subscribe"}),
        E.OL(**{"class": "entries"}) if entries else E.P("No entries yet."),
    )
    page = html_document(E.HTML(head, body, lang=language))
    # The items are written as text and put in the empty list: building thousands of elements for
    # lxml to write out again took most of a long page's time. Only the list's own tag can match.
    empty = b'<ol class="entries"></ol>'
    items = "".join(map(_entry_item, entries)).encode("utf-8")
    return page.replace(empty, b'<ol class="entries">\n' + items + b"</ol>", 1) if entries else page


@functools.lru_cache(maxsize=1 << 14)  # an entry is on its category's page and on all's: written once
def _entry_item(entry: PageEntry) -> str:
    summary = f"<p>{escape(entry.summary, quote=False)}</p>\n" if entry.summary else ""
    return (
        f'<li>\n<h2><a href="{escape(entry.link)}">{escape(entry.title, quote=False)}</a></h2>\n'
        f'<p class="meta"><time datetime="{escape(entry.published_iso)}">{escape(entry.published_text, quote=False)}'
        f"</time></p>\n{summary}</li>\n"
    )


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def format_day(moment: datetime) -> str:
    """ "10 January 2022": how pages show a date."""
    # Not strftime("%B"): that follows the process locale, and the page bytes must not.
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"
