"""Writing output/: atomic replacement of files and new directories, with gzip siblings."""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import itertools
import os
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from zlib_ng import zlib_ng

from feeds.errors import PublishError


@dataclass(frozen=True, slots=True)
class Write:
    """One file to bring up to date: its path under the output directory and its bytes."""

    name: str
    data: bytes
    gzip: bool = True  # keep a precompressed .gz beside it for the server
    gz: bytes | None = None  # that .gz's bytes, when they are known already
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
    once: it appears with every file in it, and its files need no rename each.
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
        ):
            try:
                for write in writes:
                    path = f"{top}/{write.name}"
                    # Nothing in a directory this call makes can hold the bytes yet: no need to look.
                    if made.get(path.rpartition("/")[0]) is None and _holds(path, write.data):
                        # A pass killed between renames leaves a newer .gz beside the old file: compare it.
                        if write.gzip:
                            packing.append(_Packing(_packed(pool, write), path, write.durable, None))
                        continue
                    tmp, in_place = _stage(path, write.data, made, top, staged, flush if write.durable else None)
                    if not in_place:
                        staged.append((tmp, path))
                    written.add(write.name)
                    if write.gzip:
                        # Same mtime as its file, so a server that serves a .gz only when it is as new, can.
                        mtime = os.stat(tmp).st_mtime_ns
                        packing.append(_Packing(_packed(pool, write), path, write.durable, mtime))
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


def remove_stale_temps(root: Path, older_than: float, directories: Iterable[str] = (".",)) -> int:
    """Delete the hidden temp files and directories a killed writer left, older than `older_than`.

    Only in `directories` (relative to root; not their subdirectories): a writer leaves temp files
    only beside the files it writes, so a pass looks where it is about to write, not at every file.
    """
    removed = 0
    stale = [p for d in directories if (root / d).is_dir() for p in (root / d).glob(".*.tmp")]
    for path in stale:
        with contextlib.suppress(OSError):
            if path.lstat().st_mtime >= older_than:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    return removed


def remove_files(root: Path, names: Iterable[str]) -> None:
    """Remove files no longer published (each with its .gz) and directories (names ending in "/") under root."""
    for name in names:
        path = root / name
        if name.endswith("/"):
            shutil.rmtree(path, ignore_errors=True)
            continue
        for target in (path, path.with_name(path.name + ".gz")):
            with contextlib.suppress(FileNotFoundError):
                target.unlink()


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
) -> tuple[str, bool]:
    """Write `data` where it waits to replace `path`; return that file, and whether it needs no rename of its own.

    That is a hidden temp file beside `path`, or, in a directory this call makes, the file itself in
    the directory's hidden copy (whose rename joins `staged`). `made` is the directories known: the
    hidden copy each goes to, or None when it exists. `flush` flushes the file to disk.
    """
    parent, _, name = path.rpartition("/")
    if parent not in made:
        made[parent] = _new_directory(parent, top, made, staged)
    into = made[parent]
    if into is not None:
        target = f"{into}/{name}"
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
            _write_all(fd, data)
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


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`, however many calls that takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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


def _flush_and_close(fd: int) -> None:
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _compressors() -> int:
    """Threads compressing at once: one a core this process may run on, up to four."""
    # A build has rendered everything while its last feeds are still being compressed: a thread a
    # core shortens that wait, and compressing lets go of the GIL.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(4, cores or 1)


def entity_tag(body: bytes, *, gz: bool = False) -> str:
    """The ETag a file is served with: from its bytes alone, so every node that holds them gives the same."""
    # A gzip body's tag is marked too, so it reads apart from the identity tag in logs and caches.
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}{"-gz" if gz else ""}"'


def _packed(pool: ThreadPoolExecutor, write: Write) -> Future[bytes]:
    if write.gz is None:
        return pool.submit(compress, write.data)
    known: Future[bytes] = Future()
    known.set_result(write.gz)
    return known


_GZIP_WBITS = 31  # deflate's largest window, in a gzip header and trailer


def compress(data: bytes) -> bytes:
    """The .gz of a file: the same bytes in give the same .gz out (no file name, mtime 0 in the header)."""
    # zlib-ng at its level 6, not zlib at 9: a feed is compressed again on every change of it, and
    # on feed XML this takes about a third of the time for files a few percent larger.
    return zlib_ng.compress(data, 6, wbits=_GZIP_WBITS)
