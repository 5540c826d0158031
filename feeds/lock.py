"""The state directory's lock: one writer per store on one machine, and the pid of the process that holds it."""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from feeds.errors import FeedsError, StateInUse

LOCK_FILE = "feeds.lock"

# `holder()` takes the lock shared for an instant to learn whether anyone holds it, and a holder is
# still writing its record just after locking: a few short tries tell these apart from a real holder.
_TRIES, _PAUSE = 10, 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """The process that holds the lock, as its record in the lock file names it (pid 0: no record)."""

    pid: int
    command: str

    def __str__(self) -> str:
        if not self.pid:
            return "another `feeds run` or `feeds build` (its pid is not recorded)"
        return f"`feeds {self.command}` (pid {self.pid})"


class StateLock:
    """An exclusive `flock` on the state directory's lock file, held until `release()` or the process ends.

    The kernel releases it when the process ends however it ends, so a killed holder frees it. Its
    record, "<pid> <command>", stays in the file after release; only the lock says who holds it now.
    """

    def __init__(self, state: Path, command: str, *, wait: bool = False) -> None:
        path = state / LOCK_FILE
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FeedsError(str(state), f"cannot create the state directory ({exc.strerror or exc})") from exc
        try:
            # Not truncated on open: the file holds the current holder's record until this process has the lock.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            what = f"cannot open the lock file ({exc.strerror or exc}); check the state directory"
            raise FeedsError(str(path), what) from exc
        try:
            if wait:
                fcntl.flock(fd, fcntl.LOCK_EX)
            elif not _try(fd, fcntl.LOCK_EX):
                raise StateInUse(str(state), f"in use by {_record(fd)}")
            record = f"{os.getpid()} {command}\n".encode()
            try:
                # Written over the old record, then cut to length: a reader never finds the file empty.
                os.pwrite(fd, record, 0)
                os.ftruncate(fd, len(record))
            except OSError as exc:
                # A stale record left in place would name the wrong process to those refused.
                what = f"cannot write the lock file ({exc.strerror or exc}); free space in the state directory"
                raise FeedsError(str(path), what) from exc
        except BaseException:
            os.close(fd)
            raise
        self.path = path
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(state: Path) -> Holder | None:
    """The process that holds the state directory's lock; None when none does."""
    path = state / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        what = f"cannot read the lock file ({exc.strerror or exc}); check the state directory"
        raise FeedsError(str(path), what) from exc
    try:
        if _try(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _record(fd)
    finally:
        os.close(fd)


def _try(fd: int, kind: int) -> bool:
    """Take the lock without waiting for a holder, though past another process's probe of it."""
    for attempt in range(_TRIES):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < _TRIES:
                time.sleep(_PAUSE)
    return False


def _record(fd: int) -> Holder:
    for attempt in range(_TRIES):
        first = os.pread(fd, 128, 0).decode("ascii", "replace").partition("\n")[0]
        pid, _, command = first.partition(" ")
        if pid.isdigit() and command:
            return Holder(pid=int(pid), command=command)
        if attempt + 1 < _TRIES:
            time.sleep(_PAUSE)
    return Holder(pid=0, command="")
