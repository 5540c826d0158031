"""PostgreSQL for the store tests: the local server, and databases made and dropped per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

SERVER = os.environ.get("FEEDS_TEST_POSTGRESQL", "postgresql://root@127.0.0.1:5432/postgres")


def server_answers() -> str:
    """ "" when the test server answers, else why not."""
    try:
        psycopg.connect(SERVER, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return ""


def url_of(database: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + database


@contextmanager
def database() -> Iterator[str]:
    """A new empty database on the test server, dropped afterwards; yields its URL."""
    name = f"feeds_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url_of(name)
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def terminate(url: str) -> int:
    """End every other session on the database `url` names, as a server restart would; return how many."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(SERVER, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)
