"""A node's output/ kept in step with the documents a shared PostgreSQL store holds.

The node that publishes records its files in the store (`Store.put_documents`) and PostgreSQL
tells the others (NOTIFY). Every node then writes those bytes into its own output/ with the
Last-Modified the store gives, so the built-in server and an nginx on each node answer with the
same bytes, ETags and dates. The publishing node writes its own change from the bytes it holds
(`write_own`), having caught up first, and reads back only what it could not keep.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from feeds import publish
from feeds.errors import PublishError, StoreError
from feeds.logfmt import logfmt
from feeds.postgres import CONNECT_SECONDS, DOCUMENTS, WHERE, reason, shown

log = logging.getLogger("feeds")

POLL_SECONDS = 5.0  # how often a node looks for changes when no notification came (one may be lost)
_CHUNK = 200  # documents read and written at a time: a first catch-up never holds the whole site in memory


_Row = tuple[str, bytes | None, bytes | None, int, int]  # path, body (None: removed), gz, modified, seq


class Mirror:
    """Brings output/ up to the store's documents: once (`catch_up`), or on every change (`start`)."""

    def __init__(self, url: str, output: Path) -> None:
        self._url = url
        self._output = output
        self._seq = 0  # the last change applied; a new node starts from nothing and takes every document
        self._path: str | None = ""  # within that change, the last path applied; None: all of it
        self._lock = threading.Lock()  # the publishing thread and the listening one both catch up
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def seq(self) -> int:
        return self._seq

    def catch_up(self) -> int:
        """Write every change not yet in output/; return how many documents were applied."""
        return self._connected(self._catch_up)

    def _connected(self, use: Callable[[psycopg.Connection[tuple[object, ...]]], int]) -> int:
        try:
            with psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_SECONDS) as conn:
                return use(conn)
        except psycopg.Error as exc:
            raise StoreError(WHERE, f"cannot read the documents at {shown(self._url)} ({reason(exc)})") from exc

    def _catch_up(self, conn: psycopg.Connection[tuple[object, ...]]) -> int:
        with self._lock:
            return self._apply(conn)

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """While this node publishes, under the store's publish lock: output/ caught up first, then left to it.

        The change this node is about to record goes on top of every earlier one; a catch-up of the
        listening thread waits meanwhile, so it does not read that change back.
        """
        with self._lock:
            self._connected(self._apply)
            yield

    def write_own(self, seq: int, modified: int, writes: Sequence[publish.Write], removed: Sequence[str]) -> None:
        """This node's own change `seq`, from the bytes it holds, its files dated `modified` as the store dates them.

        Called inside publishing(), right after the change is recorded: output/ held every earlier one.
        """
        self._output.mkdir(parents=True, exist_ok=True)
        publish.remove_files(self._output, removed)
        publish.write_files(self._output, writes)
        for write in writes:
            self._date(write, modified)
        self._seq, self._path = seq, None

    def read_own(self) -> int:
        """This node's own change, read back from the store (inside publishing()): when it kept no bytes of it."""
        return self._connected(self._apply)

    def _apply(self, conn: psycopg.Connection[tuple[object, ...]]) -> int:
        self._output.mkdir(parents=True, exist_ok=True)
        applied = 0
        for rows in self._changes(conn):
            publish.remove_files(self._output, [path for path, body, *_ in rows if body is None])
            kept = [(path, body, gz, modified) for path, body, gz, modified, _seq in rows if body is not None]
            writes = [
                publish.Write(path, body, gzip=gz is not None, gz=gz, durable=not path.startswith("entries/"))
                for path, body, gz, _modified in kept
            ]
            publish.write_files(self._output, writes)
            for write, (*_, modified) in zip(writes, kept, strict=True):
                self._date(write, modified)
            applied += len(rows)
            last = rows[-1]
            self._seq, self._path = last[4], last[0]
        return applied

    def _changes(self, conn: psycopg.Connection[tuple[object, ...]]) -> Iterator[list[_Row]]:
        while True:
            after: str
            params: tuple[object, ...]
            if self._path is None:  # all of change `seq` is applied
                after, params = "seq > %s", (self._seq, _CHUNK)
            else:
                after, params = "(seq, path) > (%s, %s)", (self._seq, self._path, _CHUNK)
            rows: list[_Row] = conn.execute(  # type: ignore[assignment]
                f"SELECT path, body, gz, modified, seq FROM documents WHERE {after} ORDER BY seq, path LIMIT %s",
                params,
            ).fetchall()
            if not rows:
                return
            yield rows

    def _date(self, write: publish.Write, modified: int) -> None:
        """The store's Last-Modified on the file and its .gz: equal on every node, for nginx's ETag and dates."""
        path = self._output / write.name
        for target in (path, path.with_name(path.name + ".gz")) if write.gzip else (path,):
            try:
                os.utime(target, (modified, modified))
            except OSError as exc:
                raise PublishError(str(target), f"cannot set its time ({exc.strerror})") from exc

    # -- following every change -------------------------------------------------------------------

    def start(self) -> None:
        """Follow the store's changes on a thread of its own until stop()."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._follow, name="feeds-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(POLL_SECONDS + CONNECT_SECONDS)
            self._thread = None

    def _follow(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=CONNECT_SECONDS) as conn:
                    conn.execute(f"LISTEN {DOCUMENTS}")
                    if failing:
                        log.info(logfmt(event="mirror", result="reconnected", seq=self._seq))
                        failing = False
                    while not self._stopping.is_set():
                        self._catch_up_logged(conn)
                        self._wait(conn)
            except psycopg.Error as exc:
                if not failing:
                    log.warning(logfmt(event="mirror", result="failed", store=shown(self._url), error=reason(exc)))
                failing = True
                self._stopping.wait(1.0)

    def _wait(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Until a change is announced, or POLL_SECONDS pass (a notification may be lost), or stop()."""
        waited = 0.0
        while not self._stopping.is_set() and waited < POLL_SECONDS:
            if any(True for _ in conn.notifies(timeout=1.0, stop_after=1)):
                return
            waited += 1.0

    def _catch_up_logged(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        try:
            applied = self._catch_up(conn)
        except PublishError as exc:
            log.error(logfmt(event="mirror", result="failed", error=str(exc)))
            return
        if applied:
            log.info(logfmt(event="mirror", documents=applied, seq=self._seq))
