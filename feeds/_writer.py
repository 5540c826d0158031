"""The second writer: a process that writes the files a build sends it, on another core.

Run by feeds.publish as `python -I -S _writer.py`, so it imports nothing of the project or of
site-packages and starts in milliseconds. It writes READY to stdout, then reads records from
stdin: a little-endian header (the path's length, then the data's), the path as bytes, then the
data. Each path is created or truncated and given the data, in order, so a path sent twice keeps
the last. At the end of its input it exits 0. On the first failure it writes "<errno> <path>" to
stdout and exits 1; a record cut short (its sender died) is dropped and the process exits 2.
Signals meant for the build (Ctrl-C reaches a terminal's whole process group, a service manager
may signal every process of the service) are ignored: the build decides, and this process lives
as long as its input, which ends when the build closes it, dies, or kills this process.
"""

from __future__ import annotations

import os
import signal
import struct
import sys

HEADER = struct.Struct("<II")
READY = b"ready\n"
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def ignore_build_signals() -> None:
    """Ignore what is meant for the build: a child of it lives exactly as long as its input."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd`, however many calls that takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main() -> int:
    ignore_build_signals()
    os.umask(0o022)  # files come out 0644, whatever the caller's umask: the server must read them
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    read = sys.stdin.buffer.read
    while header := read(HEADER.size):
        if len(header) < HEADER.size:
            return 2
        path_size, data_size = HEADER.unpack(header)
        path, data = read(path_size), read(data_size)
        if len(path) < path_size or len(data) < data_size:
            return 2
        try:
            fd = os.open(path, FLAGS, 0o644)
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            sys.stdout.buffer.write(b"%d %s" % (exc.errno or 0, path))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
