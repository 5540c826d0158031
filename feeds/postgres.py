"""The store's PostgreSQL connection: one connection from a pool, spoken to in the store's SQLite spelling."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from feeds.errors import StoreError

WHERE = "store.url"  # every error names the config key, never the password
CONNECT_SECONDS = 10
_SCHEMA_LOCK = 0x66656564  # an advisory lock: two nodes starting at once migrate one after the other
_PUBLISH_LOCK = 0x66656565  # held while a node publishes: the site's documents have one writer at a time
DOCUMENTS = "feeds_documents"  # the channel a change of the published documents is announced on, by its number


class Rows(Protocol):
    """What the store reads of a statement's result, as of an sqlite3 cursor."""

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


def reason(exc: BaseException) -> str:
    """What went wrong with the server, in a few words fit for a one-line message."""
    return _reason(exc)


def shown(url: str) -> str:
    """The URL without its password and query (either may hold secrets): fit for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _reason(exc: BaseException) -> str:
    """libpq's cause, without its "connection to server at … failed:" preamble and hints."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reason = first.rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip()
    return reason[:1].lower() + reason[1:]


class Connection:
    """A connection to the shared store, replaced when the server drops it.

    Taken from a pool of one, so that a broken connection is checked and a new one made by
    psycopg_pool. The store is used from one thread at a time: the connection is pinned, not
    taken per statement. SQL arrives with `?` placeholders, as SQLite takes it.
    """

    def __init__(self, url: str) -> None:
        self.url = shown(url)
        self._conninfo = url
        self._probe()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=1,
            open=False,
            check=ConnectionPool.check_connection,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_SECONDS},
            reconnect_timeout=CONNECT_SECONDS,
            name="feeds-store",
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_SECONDS)
            self._conn = self._pool.getconn(timeout=CONNECT_SECONDS)
        except PoolTimeout as exc:
            self._pool.close()
            raise self._unreachable(exc) from exc
        self._returned = False  # self._conn is back in the pool, broken, and no other came in its place yet
        self._open = False  # inside transaction(): BEGIN may still wait in the pipeline, unsent
        self._sql: dict[str, str] = {}

    def _probe(self) -> None:
        """Connect once, plainly: the pool retries in silence until its timeout, this says at once why it cannot."""
        try:
            psycopg.connect(self._conninfo, connect_timeout=CONNECT_SECONDS).close()
        except psycopg.Error as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: BaseException) -> StoreError:
        reason = _reason(exc) if not isinstance(exc, PoolTimeout) else f"no connection within {CONNECT_SECONDS} s"
        return StoreError(
            WHERE, f"cannot connect to {self.url} ({reason}); check that PostgreSQL runs and store.url is right"
        )

    def close(self) -> None:
        if not self._returned:
            self._pool.putconn(self._conn)
        self._pool.close()

    @property
    def in_transaction(self) -> bool:
        return not self._returned and (self._open or self._conn.info.transaction_status != TransactionStatus.IDLE)

    @contextmanager
    def transaction(self, *, flush: bool = True) -> Iterator[None]:
        """BEGIN, then the transaction's statements in pipeline mode: those whose answer nobody reads (most
        writes) are sent together, with the COMMIT, and a read waits only for what came before it. A poll's
        record took a round trip per statement, eight or so; now BEGIN's, one per read, and COMMIT's.

        A statement the server refuses is raised by the read or the COMMIT after it, and nothing of the
        transaction is kept. `flush=False`: COMMIT does not wait for the server's disk (see Store.transaction).
        """
        # BEGIN alone, and awaited: a connection the server dropped while idle is replaced, as for any
        # statement on its own, before anything of the transaction is asked.
        self.execute("BEGIN")
        conn = self._conn
        self._open = True
        try:
            with conn.pipeline():
                try:
                    if not flush:
                        conn.execute("SET LOCAL synchronous_commit = off")
                    yield
                except BaseException:
                    if not conn.broken:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except psycopg.OperationalError as exc:
            self._recover(exc, False)
        except psycopg.Error as exc:
            self._abandon()
            raise StoreError(
                WHERE, f"the database at {self.url} failed ({_reason(exc)}); check the server's log"
            ) from exc
        except BaseException:
            self._abandon()
            raise
        finally:
            self._open = False

    def _abandon(self) -> None:
        """After a failed transaction: a COMMIT or ROLLBACK the server skipped leaves it open, and failed."""
        if not self._conn.broken and self._conn.info.transaction_status != TransactionStatus.IDLE:
            self._conn.execute("ROLLBACK")

    def execute(self, sql: str, params: Any = None) -> Rows:
        if self._returned:  # the server was away when its connection was lost: try again now
            self._reconnect()
        idle = not self.in_transaction
        try:
            return self._conn.execute(self._spelt(sql, params), params)
        except psycopg.OperationalError as exc:
            self._recover(exc, idle)
        # The server dropped an idle connection: the statement stood alone, and is asked again once.
        try:
            return self._conn.execute(self._spelt(sql, params), params)
        except psycopg.OperationalError as exc:
            self._recover(exc, False)
            raise AssertionError("unreachable") from exc

    def executemany(self, sql: str, rows: Any) -> None:
        rows = list(rows)
        if not rows:
            return
        if len(rows) == 1:  # psycopg sends many in a pipeline, which costs one more round trip than one statement
            self.execute(sql, rows[0])
            return
        if self._returned:
            self._reconnect()
        idle = not self.in_transaction
        for attempt in (1, 2):
            try:
                with self._conn.cursor() as cursor:
                    cursor.executemany(self._spelt(sql, rows[0]), rows)
                return
            except psycopg.OperationalError as exc:
                self._recover(exc, idle and attempt == 1)

    def _recover(self, exc: psycopg.OperationalError, retry: bool) -> None:
        """Return when the failed statement may be asked again on a new connection; raise otherwise."""
        if not self._conn.broken:
            raise StoreError(
                WHERE, f"the database at {self.url} failed ({_reason(exc)}); check the server's log"
            ) from exc
        self._pool.putconn(self._conn)  # the pool drops it and connects anew
        self._returned = True
        self._reconnect()
        if not retry:
            raise StoreError(
                WHERE,
                f"lost the connection to {self.url} ({_reason(exc)}); what was being written was rolled back, "
                "and the next write will try again",
            ) from exc

    def _reconnect(self) -> None:
        try:
            self._conn = self._pool.getconn(timeout=CONNECT_SECONDS)
        except PoolTimeout as exc:
            self._probe()  # raises, saying why, unless the server came back this very moment
            raise self._unreachable(exc) from exc
        self._returned = False

    def _spelt(self, sql: str, params: Any) -> str:
        """SQLite's `?` as psycopg's `%s` (and a literal `%` doubled), when there are parameters to bind."""
        if params is None:
            return sql
        spelt = self._sql.get(sql)
        if spelt is None:
            spelt = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return spelt

    # -- what SQLite keeps in PRAGMAs ----------------------------------------------------------------

    def lock_publishing(self) -> None:
        """Wait until no other node publishes. Held by this session: a node that dies lets go of it."""
        self.execute(f"SELECT pg_advisory_lock({_PUBLISH_LOCK})")

    def unlock_publishing(self) -> None:
        self.execute(f"SELECT pg_advisory_unlock({_PUBLISH_LOCK})")

    def announce(self, seq: int) -> None:
        """Tell the nodes that follow the documents (feeds.mirror) of change `seq`, once it is committed."""
        self.execute("SELECT pg_notify(?, ?)", (DOCUMENTS, str(seq)))

    def lock_schema(self) -> None:
        self.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")

    def version(self) -> int:
        if self.execute("SELECT to_regclass('schema_version') IS NULL").fetchone()[0]:
            return 0
        row = self.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def set_version(self, version: int) -> None:
        self.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        self.execute("DELETE FROM schema_version")
        self.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


_INTEGER = re.compile(r"\bINTEGER\b")


def schema(step: str) -> str:
    """A migration step's DDL for PostgreSQL: SQLite's INTEGER holds 64 bits (times in microseconds), BIGINT too."""
    return _INTEGER.sub("BIGINT", step)
