"""A helper process: an executor that runs each call in one child Python process, in submission order.

The build hands it entries to render while its own process renders others (render.Shared). It is
not a ProcessPoolExecutor because that starts its workers by spawn, and a spawned child imports the
program's __main__ module again: a user's script without an `if __name__ == "__main__"` guard would
run twice. This child imports the package and nothing else.

The child reads calls from stdin and writes results to stdout, each a pickle after its length (a
4-byte little-endian header). A thread here feeds it one call at a time, so a call still queued can
be cancelled and done by its caller instead. When the child dies or cannot start, the call in flight
and every queued one fail with HelperGone, and so do later submissions: the caller does the work.
Signals meant for the build are ignored in the child, as in the second writer: it lives as long as
its input, which ends when the executor shuts down or the build's process dies.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from feeds import _writer

log = logging.getLogger("feeds")

_SIZE = struct.Struct("<I")
_ROOT = str(Path(__file__).resolve().parent.parent)  # where the child finds this package
_CHILD = f"import sys; sys.path.insert(0, {_ROOT!r}); from feeds.helper import serve; serve()"


def cpus() -> int:
    """The cores this process may run on (all of the machine's where affinity is unknown)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def started(worth_it: bool) -> Iterator[HelperProcess | None]:
    """A helper process for work that is worth one, on a machine with a core to spare; else None.

    It is shut down at the end: calls still queued are cancelled, the one in flight is finished.
    """
    if not worth_it or cpus() < 2:
        yield None
        return
    try:
        process = HelperProcess()
    except OSError as exc:
        log.warning("cannot start a helper process (%s); the build does all its work in its own", exc)
        yield None
        return
    try:
        yield process
    finally:
        process.shutdown(wait=True, cancel_futures=True)


class HelperGone(RuntimeError):
    """The helper process died, could not start, or was shut down: the work falls to the caller."""


class HelperProcess(Executor):
    """An executor with one child process: calls (picklable functions and arguments) run there, one at a time."""

    def __init__(self, python: str = sys.executable) -> None:
        # OSError here (no interpreter) is the caller's to handle: there is no helper.
        self._process = subprocess.Popen(
            [python, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True
        )
        self._calls: collections.deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._ready = threading.Condition()
        self._closing = False
        self._gone: str = ""
        self._thread = threading.Thread(target=self._run, name="feeds-helper", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            raise TypeError("HelperProcess.submit takes positional arguments only")
        future: Future[Any] = Future()
        with self._ready:
            if self._gone or self._closing:
                raise HelperGone(self._gone or "the helper process is shut down")
            self._calls.append((future, fn, args))
            self._ready.notify()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._ready:
            self._closing = True
            if cancel_futures:
                while self._calls:
                    self._calls.popleft()[0].cancel()
            self._ready.notify()
        if wait:
            self._thread.join()

    def _run(self) -> None:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            while True:
                with self._ready:
                    while not self._calls and not self._closing:
                        self._ready.wait()
                    if not self._calls:
                        return
                    future, fn, args = self._calls.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    data = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # an argument that cannot be pickled: this call alone fails
                    future.set_exception(exc)
                    continue
                try:
                    ok, value = self._exchange(stdin, stdout, data)
                except Exception as exc:  # a pipe that broke, or an answer that is not one
                    self._fail(future, f"the helper process stopped ({exc!r})")
                    return
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        finally:
            self._stop(stdin)

    @staticmethod
    def _exchange(stdin: Any, stdout: Any, data: bytes) -> tuple[bool, Any]:
        """Send one pickled call; return (True, its result) or (False, the exception it raised)."""
        stdin.write(_SIZE.pack(len(data)))
        stdin.write(data)
        stdin.flush()
        header = stdout.read(_SIZE.size)
        if len(header) < _SIZE.size:
            raise EOFError("no answer")
        (size,) = _SIZE.unpack(header)
        reply = stdout.read(size)
        if len(reply) < size:
            raise EOFError("an answer cut short")
        ok, value = pickle.loads(reply)
        return bool(ok), value

    def _fail(self, future: Future[Any], why: str) -> None:
        with self._ready:
            self._gone = why
            queued = list(self._calls)
            self._calls.clear()
        for waiting in (future, *(f for f, _, _ in queued)):
            if waiting is future or waiting.set_running_or_notify_cancel():
                waiting.set_exception(HelperGone(why))

    def _stop(self, stdin: Any) -> None:
        """End the child's input and reap it; one that does not end promptly is killed."""
        with contextlib.suppress(OSError):
            stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def serve() -> None:
    """The child's loop: each call read from stdin is run, and its result or exception written to stdout."""
    _writer.ignore_build_signals()
    # Results go to a descriptor of their own; anything printed goes to stderr, never into a reply.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    read = sys.stdin.buffer.read
    while len(header := read(_SIZE.size)) == _SIZE.size:
        (size,) = _SIZE.unpack(header)
        data = read(size)
        if len(data) < size:
            return
        try:
            fn, args = pickle.loads(data)
            reply = pickle.dumps((True, fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # every failure goes back to the caller, who decides
            try:
                reply = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # an exception that cannot be pickled still says what it was
                reply = pickle.dumps((False, RuntimeError(repr(exc))), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            out.write(_SIZE.pack(len(reply)))
            out.write(reply)
            out.flush()
        except BrokenPipeError:  # the build is gone: nobody to answer
            return
