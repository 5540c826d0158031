"""A second process for the CPU work of a pass: a function and its arguments in, its result out.

A Python process renders on one core at a time. A pass with thousands of entries to render hands
a share of them to a child Python process, started with `subprocess` rather than
`multiprocessing`: its spawn start method runs the parent's main script again in the child
(anyone calling `build` from a script without a `__main__` guard would see it run twice), and
forking a process that has threads (the daemon's) is unsafe. The child imports the same `feeds`
package as the parent, reads one pickled call on stdin and writes the pickled result on stdout;
when the parent dies, its pipes close and the child ends.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

import feeds

T = TypeVar("T")

# Run by the child: find this very `feeds` package first, then serve the call.
_BOOT = """\
import importlib.util, os, sys
root = sys.argv[1]
spec = importlib.util.find_spec("feeds")
if spec is None or os.path.dirname(os.path.dirname(spec.origin or "")) != root:
    sys.path.insert(0, root)
from feeds.worker import serve
serve()
"""


class WorkerError(Exception):
    """The child process failed: it could not start, it died, or its call raised."""


class Call(Generic[T]):
    """`function(*args)` running in a child process; `result()` waits for it."""

    def __init__(self, function: Callable[..., T], *args: Any) -> None:
        payload = pickle.dumps((function.__module__, function.__qualname__, args), protocol=pickle.HIGHEST_PROTOCOL)
        root = str(Path(feeds.__file__).resolve().parent.parent)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, root],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise WorkerError(f"cannot start {sys.executable or 'python'}: {exc}") from exc
        # The child reads the call only once it has started and imported; this thread feeds it
        # meanwhile (waiting on a pipe lets go of the GIL), so the caller goes on with its own work.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-io")
        self._io: Future[tuple[bytes, bytes]] = self._pool.submit(self._process.communicate, payload)

    def result(self) -> T:
        try:
            out, err = self._io.result()
        finally:
            self._pool.shutdown()
        if self._process.returncode != 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            raise WorkerError(f"exit status {self._process.returncode}: {lines[-1] if lines else 'no message'}")
        result: T = pickle.loads(out)  # our own child's output
        return result

    def cancel(self) -> None:
        """Stop the child and wait for it; for a caller that no longer wants the result."""
        self._process.kill()
        with contextlib.suppress(Exception):  # a killed child's pipes may say anything; it is gone either way
            self._io.result()
        self._pool.shutdown()


def serve() -> None:
    """The child's side: one call from stdin, its result to stdout."""
    module, name, args = pickle.load(sys.stdin.buffer)
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    result = target(*args)
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    os._exit(0)  # nothing left to clean up; skip the interpreter's teardown
