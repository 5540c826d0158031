"""The state database (SQLite, or PostgreSQL): item history, published entries and their fragments, feeds, sources."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from feeds.errors import StoreError
from feeds.model import Author, Category, Enclosure, Entry

if TYPE_CHECKING:
    from feeds.postgres import Connection

SCHEMA_VERSION = 5
PAGE_SIZE = 16384  # bytes in a page of a new SQLite store

# Each step takes the schema from version N to N+1; never edit a released step, append one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE items (
        source      TEXT NOT NULL,
        id          TEXT NOT NULL,
        data        TEXT NOT NULL,
        first_seen  TEXT NOT NULL,
        last_seen   TEXT NOT NULL,
        PRIMARY KEY (source, id)
    );
    CREATE TABLE entries (
        id            TEXT PRIMARY KEY,
        content_hash  TEXT NOT NULL,
        first_seen    TEXT NOT NULL,
        published     TEXT NOT NULL,
        updated       TEXT NOT NULL
    );
    CREATE TABLE sources (
        name           TEXT PRIMARY KEY,
        doc_hash       TEXT NOT NULL DEFAULT '',
        etag           TEXT NOT NULL DEFAULT '',
        last_modified  TEXT NOT NULL DEFAULT '',
        last_attempt   TEXT NOT NULL DEFAULT '',
        last_success   TEXT NOT NULL DEFAULT '',
        last_error     TEXT NOT NULL DEFAULT '',
        failures       INTEGER NOT NULL DEFAULT 0,
        redirect       TEXT NOT NULL DEFAULT '',
        gone           INTEGER NOT NULL DEFAULT 0,
        entries        INTEGER NOT NULL DEFAULT 0,
        next_run       TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE archive_pages (
        slug    TEXT NOT NULL,
        number  INTEGER NOT NULL,
        ids     TEXT NOT NULL,
        frozen  TEXT NOT NULL,
        PRIMARY KEY (slug, number)
    );
    CREATE TABLE outputs (
        path         TEXT PRIMARY KEY,
        fingerprint  TEXT NOT NULL,
        changed      TEXT NOT NULL
    );
    """,
    # Incremental passes: what changed is known (dirty items, pending documents), each published entry
    # keeps its rendered fragments, and feed membership is a table the documents are read from in order.
    """
    ALTER TABLE items ADD COLUMN match_key TEXT NOT NULL DEFAULT '';
    UPDATE items SET match_key = coalesce(json_extract(data, '$.match_key'), '');
    CREATE INDEX items_by_id ON items (id);
    CREATE INDEX items_by_match_key ON items (match_key) WHERE match_key <> '';
    CREATE TABLE dirty (
        source  TEXT NOT NULL,
        id      TEXT NOT NULL,
        PRIMARY KEY (source, id)
    );
    ALTER TABLE entries ADD COLUMN data TEXT NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN categories TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE entries ADD COLUMN page TEXT NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN render_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN atom BLOB NOT NULL DEFAULT x'';
    ALTER TABLE entries ADD COLUMN rss BLOB NOT NULL DEFAULT x'';
    ALTER TABLE entries ADD COLUMN json BLOB NOT NULL DEFAULT x'';
    ALTER TABLE entries ADD COLUMN li BLOB NOT NULL DEFAULT x'';
    CREATE TABLE members (
        slug       TEXT NOT NULL,
        id         TEXT NOT NULL,
        arrived    INTEGER NOT NULL,
        published  INTEGER NOT NULL,
        updated    INTEGER NOT NULL,
        live       INTEGER NOT NULL,
        page       INTEGER NOT NULL DEFAULT 0,
        late       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (slug, id)
    );
    CREATE INDEX members_by_arrival ON members (slug, page, arrived, published, id) WHERE live = 1;
    CREATE INDEX members_late ON members (slug) WHERE late = 1 AND live = 1;
    CREATE INDEX members_by_id ON members (id);
    CREATE TABLE derived (
        slug   TEXT PRIMARY KEY,
        title  TEXT NOT NULL
    );
    CREATE TABLE pending (
        name  TEXT PRIMARY KEY
    );
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    INSERT INTO dirty (source, id) SELECT source, id FROM items;
    ALTER TABLE archive_pages ADD COLUMN frozen_us INTEGER NOT NULL DEFAULT 0;
    UPDATE archive_pages SET frozen_us = CAST(round((julianday(frozen) - 2440587.5) * 86400000000) AS INTEGER);
    INSERT INTO members (slug, id, arrived, published, updated, live, page)
        SELECT a.slug, j.value, 0, 0, 0, 0, a.number FROM archive_pages a, json_each(a.ids) j WHERE true
        ON CONFLICT (slug, id) DO NOTHING;
    ALTER TABLE sources ADD COLUMN last_warning TEXT NOT NULL DEFAULT '';
    """,
    # Followed pages: what each item's own page said, and what is needed to ask for it again conditionally.
    """
    CREATE TABLE pages (
        url             TEXT PRIMARY KEY,
        source          TEXT NOT NULL,
        item_digest     TEXT NOT NULL DEFAULT '',
        etag            TEXT NOT NULL DEFAULT '',
        last_modified   TEXT NOT NULL DEFAULT '',
        digest          TEXT NOT NULL DEFAULT '',
        extracted       TEXT NOT NULL DEFAULT '',
        content_type    TEXT NOT NULL DEFAULT '',
        content_length  INTEGER NOT NULL DEFAULT 0,
        failures        INTEGER NOT NULL DEFAULT 0,
        last_status     TEXT NOT NULL DEFAULT '',
        checked         TEXT NOT NULL DEFAULT '',
        next_try        TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX pages_by_source ON pages (source);
    """,
    # Published files kept in the store, for nodes that share it: each mirrors them into its own output/.
    """
    CREATE TABLE documents (
        path      TEXT PRIMARY KEY,
        body      BLOB,
        gz        BLOB,
        etag      TEXT NOT NULL DEFAULT '',
        modified  INTEGER NOT NULL DEFAULT 0,
        seq       INTEGER NOT NULL
    );
    CREATE INDEX documents_by_seq ON documents (seq, path);
    """,
    # Many nodes on one store: who runs, which node took each source's period, and which polled it last.
    """
    CREATE TABLE nodes (
        name       TEXT PRIMARY KEY,
        url        TEXT NOT NULL DEFAULT '',
        started    TEXT NOT NULL,
        heartbeat  TEXT NOT NULL,
        worker     INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE claims (
        source   TEXT NOT NULL,
        slot     TEXT NOT NULL,
        node     TEXT NOT NULL,
        claimed  TEXT NOT NULL,
        PRIMARY KEY (source, slot)
    );
    CREATE INDEX claims_by_time ON claims (claimed);
    CREATE TABLE polls (
        source  TEXT PRIMARY KEY,
        node    TEXT NOT NULL,
        polled  TEXT NOT NULL
    );
    """,
)

# PostgreSQL's spelling of the steps whose SQL is SQLite's own (by index in _MIGRATIONS); the others serve both.
_POSTGRESQL_STEPS: dict[int, str] = {
    1: """
    ALTER TABLE items ADD COLUMN match_key TEXT NOT NULL DEFAULT '';
    UPDATE items SET match_key = coalesce(data::json ->> 'match_key', '');
    CREATE INDEX items_by_id ON items (id);
    CREATE INDEX items_by_match_key ON items (match_key) WHERE match_key <> '';
    CREATE TABLE dirty (
        source  TEXT NOT NULL,
        id      TEXT NOT NULL,
        PRIMARY KEY (source, id)
    );
    ALTER TABLE entries ADD COLUMN data TEXT NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN categories TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE entries ADD COLUMN page TEXT NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN render_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN atom BYTEA NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN rss BYTEA NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN json BYTEA NOT NULL DEFAULT '';
    ALTER TABLE entries ADD COLUMN li BYTEA NOT NULL DEFAULT '';
    CREATE TABLE members (
        slug       TEXT NOT NULL,
        id         TEXT NOT NULL,
        arrived    INTEGER NOT NULL,
        published  INTEGER NOT NULL,
        updated    INTEGER NOT NULL,
        live       INTEGER NOT NULL,
        page       INTEGER NOT NULL DEFAULT 0,
        late       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (slug, id)
    );
    CREATE INDEX members_by_arrival ON members (slug, page, arrived, published, id) WHERE live = 1;
    CREATE INDEX members_late ON members (slug) WHERE late = 1 AND live = 1;
    CREATE INDEX members_by_id ON members (id);
    CREATE TABLE derived (
        slug   TEXT PRIMARY KEY,
        title  TEXT NOT NULL
    );
    CREATE TABLE pending (
        name  TEXT PRIMARY KEY
    );
    CREATE TABLE settings (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    INSERT INTO dirty (source, id) SELECT source, id FROM items;
    ALTER TABLE archive_pages ADD COLUMN frozen_us INTEGER NOT NULL DEFAULT 0;
    UPDATE archive_pages SET frozen_us = CAST(round(extract(epoch FROM frozen::timestamptz) * 1000000) AS INTEGER);
    INSERT INTO members (slug, id, arrived, published, updated, live, page)
        SELECT a.slug, j.value, 0, 0, 0, 0, a.number FROM archive_pages a, json_array_elements_text(a.ids::json) j
        ON CONFLICT (slug, id) DO NOTHING;
    ALTER TABLE sources ADD COLUMN last_warning TEXT NOT NULL DEFAULT '';
    """,
    # The bytes kept as they are, not compressed again by the server on every write (TOAST): the gzip
    # already is, and SQLite compresses nothing either.
    3: """
    CREATE TABLE documents (
        path      TEXT PRIMARY KEY,
        body      BYTEA,
        gz        BYTEA,
        etag      TEXT NOT NULL DEFAULT '',
        modified  INTEGER NOT NULL DEFAULT 0,
        seq       INTEGER NOT NULL
    );
    CREATE INDEX documents_by_seq ON documents (seq, path);
    ALTER TABLE documents ALTER COLUMN body SET STORAGE EXTERNAL;
    ALTER TABLE documents ALTER COLUMN gz SET STORAGE EXTERNAL;
    """,
}


_IN_CHUNK = 500  # values bound to one IN (…) at most


def micros(moment: datetime) -> int:
    """An aware time as whole microseconds since the epoch: the order of instants, as an integer."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Published:
    """An entry as a pass publishes it: its categories set, and what it renders as."""

    entry: Entry
    page: str  # our page for it (a path under output/), "" when it links to its own
    render_key: str
    atom: bytes
    rss: bytes
    json: bytes
    li: bytes  # its item on its categories' pages


class Member(NamedTuple):
    """An entry in one feed, with what orders it there."""

    slug: str
    id: str
    arrived: int  # micros(first seen)
    published: int  # micros(published)
    updated: int  # micros(updated)


class DocumentRow(NamedTuple):
    """An entry as a document shows it: its order and its rendered fragments."""

    id: str
    published: int
    updated: int
    atom: bytes
    rss: bytes
    json: bytes
    li: bytes


# A document's entries: their order and their fragments.
_ROWS = "SELECT m.id, m.published, m.updated, e.atom, e.rss, e.json, e.li FROM members m JOIN entries e ON e.id = m.id "


class PublishedFile(NamedTuple):
    """A file as the store keeps it for the nodes that mirror it: bytes, gzip (None: none kept), ETag."""

    path: str
    body: bytes
    gz: bytes | None
    etag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceState:
    """What the store remembers about one source between runs."""

    name: str
    doc_hash: str = ""
    etag: str = ""
    last_modified: str = ""
    last_attempt: str = ""
    last_success: str = ""
    last_error: str = ""
    failures: int = 0
    redirect: str = ""
    gone: bool = False
    entries: int = 0
    next_run: str = ""  # set by the daemon's scheduler, for `feeds status`
    last_warning: str = ""  # what the last read left unread, though the source did not fail


@dataclass(frozen=True, slots=True, kw_only=True)
class PageState:
    """What the store remembers about one followed page between passes."""

    url: str
    source: str
    item_digest: str = ""  # content_hash of the listing item the page was last read for
    etag: str = ""
    last_modified: str = ""
    digest: str = ""  # sha256 of the page's body as last downloaded
    extracted: str = ""  # JSON of what was read from it; "" when nothing was ever read
    content_type: str = ""  # a page that is no HTML (a PDF) is an enclosure: its type and length
    content_length: int = 0
    failures: int = 0  # failed fetches in a row
    last_status: str = ""  # "ok", "not-modified", "enclosure", or the last error
    checked: str = ""  # ISO time of the last fetch
    next_try: str = ""  # ISO time before which a failed page is not asked for again


_SOURCE_COLUMNS = (
    "name, doc_hash, etag, last_modified, last_attempt, last_success, last_error, failures, redirect, gone, entries, "
    "next_run, last_warning"
)


def _source_state(row: Sequence[Any]) -> SourceState:
    return SourceState(
        name=row[0],
        doc_hash=row[1],
        etag=row[2],
        last_modified=row[3],
        last_attempt=row[4],
        last_success=row[5],
        last_error=row[6],
        failures=row[7],
        redirect=row[8],
        gone=bool(row[9]),
        entries=row[10],
        next_run=row[11],
        last_warning=row[12],
    )


def _stored_state(name: str, rows: Any) -> SourceState:
    """A source's state from the answer to a query of its row: a new source has none yet."""
    row = rows.fetchone()
    return SourceState(name=name) if row is None else _source_state(row)


_PAGE_COLUMNS = (
    "url, source, item_digest, etag, last_modified, digest, extracted, content_type, content_length, failures, "
    "last_status, checked, next_try"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stamp:
    """The outcome of recording one entry: whether readers will see it as new or as updated."""

    entry: Entry
    new: bool
    changed: bool
    first_seen: datetime
    digest: str  # content_hash(entry): equal digests, equal content


# Made once: json.dumps builds an encoder on every call, a cost of the same order as encoding one entry.
_JSON = json.JSONEncoder(ensure_ascii=False)
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True)  # a digest needs one text for equal content


def content_hash(entry: Entry) -> str:
    """A digest of everything a reader sees of an entry, except its times and feed categories."""
    return hashlib.sha256(_content_text(entry).encode()).hexdigest()


def _content(entry: Entry) -> dict[str, Any]:
    """The fields content_hash covers: not `updated`, `categories`, `source` or `match_key`."""
    return {
        "id": entry.id,
        "title": entry.title,
        "link": entry.link,
        "published": entry.published.isoformat(),
        "summary": entry.summary,
        "content_html": entry.content_html,
        "authors": [[a.name, a.uri, a.email] for a in entry.authors],
        "contributors": [[a.name, a.uri, a.email] for a in entry.contributors],
        "labels": list(_shown_labels(entry)),
        "enclosures": [[e.url, e.length, e.type] for e in entry.enclosures],
    }


def _shown_labels(entry: Entry) -> tuple[str, ...]:
    # Tags were labels until they had a field of their own: digested together, an entry stored
    # before keeps its digest, and so its `updated`.
    return entry.labels + entry.tags if entry.tags else entry.labels


def _payload(entry: Entry) -> dict[str, Any]:
    """Everything _entry needs to make the entry again (its categories are collate's, never stored)."""
    payload = {
        **_content(entry),
        "labels": list(entry.labels),
        "updated": entry.updated.isoformat(),
        "source": entry.source,
        "match_key": entry.match_key,
    }
    if entry.tags:  # absent when empty, so an entry without tags is stored as it always was
        payload["tags"] = list(entry.tags)
    if entry.undated:  # only then: the payloads of dated entries stay as they always were
        payload["undated"] = True
    return payload


# The JSON text of one str, the function both encoders above call for each string they meet.
_string = encode_basestring


def _content_text(entry: Entry) -> str:
    """`_CANONICAL.encode(_content(entry))`, written out in its key order.

    Not the encoder itself: it sets itself up again on every call, which costs more than the text.
    """
    try:
        return (
            f'{{"authors": {_people_text(entry.authors)}, "content_html": {_string(entry.content_html)}, '
            f'"contributors": {_people_text(entry.contributors)}, "enclosures": {_enclosures_text(entry.enclosures)}, '
            f'"id": {_string(entry.id)}, "labels": {_strings_text(_shown_labels(entry))}, '
            f'"link": {_string(entry.link)}, '
            f'"published": {_string(entry.published.isoformat())}, "summary": {_string(entry.summary)}, '
            f'"title": {_string(entry.title)}}}'
        )
    except TypeError:  # a field that is not the str it should be: the encoder writes it as it always did
        return _CANONICAL.encode(_content(entry))


def _payload_text(entry: Entry) -> str:
    """`_JSON.encode(_payload(entry))`, written out in its key order (see _content_text)."""
    published = _string(entry.published.isoformat())
    # Most sources never date an edit: their `updated` is their `published`, one object, written once.
    updated = published if entry.updated is entry.published else _string(entry.updated.isoformat())
    try:
        return (
            f'{{"id": {_string(entry.id)}, "title": {_string(entry.title)}, "link": {_string(entry.link)}, '
            f'"published": {published}, "summary": {_string(entry.summary)}, '
            f'"content_html": {_string(entry.content_html)}, "authors": {_people_text(entry.authors)}, '
            f'"contributors": {_people_text(entry.contributors)}, "labels": {_strings_text(entry.labels)}, '
            f'"enclosures": {_enclosures_text(entry.enclosures)}, "updated": {updated}, '
            f'"source": {_string(entry.source)}, "match_key": {_string(entry.match_key)}'
            + (f', "tags": {_strings_text(entry.tags)}' if entry.tags else "")
            + (_UNDATED if entry.undated else "")
            + "}"
        )
    except TypeError:
        return _JSON.encode(_payload(entry))


_UNDATED = ', "undated": true'


def _people_text(people: tuple[Author, ...]) -> str:
    if not people:
        return "[]"
    return "[" + ", ".join(f"[{_string(a.name)}, {_string(a.uri)}, {_string(a.email)}]" for a in people) + "]"


def _strings_text(strings: tuple[str, ...]) -> str:
    return "[" + ", ".join(map(_string, strings)) + "]"


def _enclosures_text(enclosures: tuple[Enclosure, ...]) -> str:
    # Rare, and their lengths are numbers: the encoder writes them (lists have no keys to sort).
    return _JSON.encode([[e.url, e.length, e.type] for e in enclosures]) if enclosures else "[]"


def _published(data: str, categories: str) -> Entry:
    return _entry(json.loads(data), tuple(Category(slug=s, title=t) for s, t in json.loads(categories)))


def _entry(data: dict[str, Any], categories: tuple[Category, ...] = ()) -> Entry:
    published = datetime.fromisoformat(data["published"])
    return Entry(
        id=data["id"],
        title=data["title"],
        link=data["link"],
        published=published,
        # One object for both when they are one time, as the adapters make them: then written once, not twice.
        updated=published if data["updated"] == data["published"] else datetime.fromisoformat(data["updated"]),
        source=data["source"],
        summary=data["summary"],
        content_html=data["content_html"],
        authors=_people(data["authors"]),
        contributors=_people(data["contributors"]),
        labels=tuple(data["labels"]),
        tags=tuple(data.get("tags", ())),
        enclosures=_enclosures(data["enclosures"]),
        match_key=data["match_key"],
        undated=data.get("undated", False),
        categories=categories,
    )


# Most entries have none of these: () is cheaper than a generator that yields nothing.
def _people(rows: list[list[str]]) -> tuple[Author, ...]:
    return tuple(Author(name=n, uri=u, email=e) for n, u, e in rows) if rows else ()


def _enclosures(rows: list[list[Any]]) -> tuple[Enclosure, ...]:
    return tuple(Enclosure(url=u, length=n, type=t) for u, n, t in rows) if rows else ()


def _dated(entry: Entry, first_seen: datetime) -> tuple[Entry, datetime]:
    if entry.undated:
        entry = replace(entry, published=first_seen, updated=first_seen)
    return entry, first_seen


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _updated_at(entry: Entry, moment: datetime) -> Entry:
    """The entry updated at `moment`, in its own zone as later rebuilds will have it, so the bytes do not flip.

    The entry itself when its `updated` is that already, as for most entries of most passes: no copy.
    """
    updated = moment.astimezone(entry.updated.tzinfo)
    if _identical(updated, entry.updated):
        return entry
    return replace(entry, updated=updated)


def _identical(a: datetime, b: datetime) -> bool:
    """Whether two datetimes are one value in every field, zone and fold included.

    `==` says less: across zones it compares instants, within one zone it ignores the fold. Within one
    zone (one tzinfo object) it compares the fields as they are, though: no naive copies needed.
    """
    return a.tzinfo is b.tzinfo and a.fold == b.fold and a == b


class Store:
    """The state database: one connection, used from one thread at a time.

    The SQLite file at `path`, or, given a `url`, the PostgreSQL database it names (then `path` is unused).
    """

    def __init__(self, path: Path, *, url: str = "") -> None:
        self.path = path
        self._pg: Connection | None = None
        if url:
            from feeds import postgres  # only a store that is PostgreSQL's needs psycopg loaded

            self._pg = postgres.Connection(url)
            self._db: sqlite3.Connection | Connection = self._pg
            try:
                self._migrate()
            except BaseException:
                self._pg.close()
                raise
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # Pages of 16 KiB for a new file (an existing one keeps its own): an entry's row, text and
            # fragments, is about 4 KiB, and would spill from SQLite's default 4 KiB pages into overflow
            # pages, each read and written apart.
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(str(path), f"cannot open the state database: {exc}") from exc
        except OSError as exc:
            raise StoreError(str(path.parent), f"cannot create the state directory: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        if self._pg is not None:
            self._migrate_postgresql(self._pg)
            return
        version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                str(self.path),
                f"written by a newer release (schema {version}, this release knows "
                f"{SCHEMA_VERSION}); upgrade feeds or point site.state elsewhere",
            )
        for step in range(version, SCHEMA_VERSION):
            with self.transaction():
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {step + 1}")

    def _migrate_postgresql(self, pg: Connection) -> None:
        from feeds.postgres import WHERE, schema

        with self.transaction():
            pg.lock_schema()  # held to the end: another node starting now waits, then finds the schema done
            version = pg.version()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    WHERE,
                    f"{pg.url} was written by a newer release (schema {version}, this release knows "
                    f"{SCHEMA_VERSION}); upgrade feeds or point store.url elsewhere",
                )
            for step in range(version, SCHEMA_VERSION):
                for statement in schema(_POSTGRESQL_STEPS.get(step, _MIGRATIONS[step])).split(";"):
                    if statement.strip():
                        pg.execute(statement)
                pg.set_version(step + 1)

    @contextmanager
    def transaction(self, *, flush: bool = True) -> Iterator[None]:
        """All the writes inside it, or none: one inside another is part of the outer one.

        `flush=False`, for what a later pass can write again (a poll's record): on PostgreSQL its COMMIT
        does not wait for the server's disk. A crash of the server may then lose the last such commits,
        never a part of one, as SQLite's WAL (synchronous=NORMAL) may; a later commit that waits (a
        publish) writes every earlier one to disk with its own, so nothing published rests on a lost one.
        """
        if self._db.in_transaction:
            yield
            return
        if self._pg is not None:
            with self._pg.transaction(flush=flush):
                yield
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (a full disk does): a second ROLLBACK would hide why.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            hint = "free space, then build again" if "full" in str(exc) else "check the state directory"
            raise StoreError(str(self.path), f"cannot write the state database ({exc}); {hint}") from exc

    # -- source items: what each source said, kept after it falls off the page --------------

    def save_items(
        self, source: str, entries: Iterable[Entry], now: datetime, *, known: dict[str, str] | None = None
    ) -> int:
        """Record a source's current items and mark the new and changed ones dirty; return how many those are.

        Items seen before and now absent are kept, as they were. `known`: what source_items() read of them.
        """
        stamp = _iso(now)
        if known is None:
            known = dict(self._db.execute("SELECT id, data FROM items WHERE source = ?", (source,)).fetchall())
        rows: list[tuple[str, str, str, str, str, str]] = []
        seen: list[str] = []
        for entry in entries:
            data = _payload_text(entry)
            if known.get(entry.id) == data:
                seen.append(entry.id)
            else:
                rows.append((source, entry.id, data, entry.match_key, stamp, stamp))
        with self.transaction():
            self._db.executemany(
                "INSERT INTO items (source, id, data, match_key, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (source, id) DO UPDATE SET data = excluded.data, match_key = excluded.match_key, "
                "last_seen = excluded.last_seen",
                rows,
            )
            # One statement for the items seen again, not one each: on PostgreSQL each is a round trip.
            for start in range(0, len(seen), _IN_CHUNK):
                chunk = seen[start : start + _IN_CHUNK]
                self._db.execute(
                    f"UPDATE items SET last_seen = ? WHERE source = ? AND id IN ({', '.join('?' * len(chunk))})",
                    (stamp, source, *chunk),
                )
            self._db.executemany(
                "INSERT INTO dirty (source, id) VALUES (?, ?) ON CONFLICT DO NOTHING", [(r[0], r[1]) for r in rows]
            )
        return len(rows)

    def dirty(self, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` items recorded as new or changed and not yet published, as (source, id)."""
        return self._db.execute("SELECT source, id FROM dirty ORDER BY source, id LIMIT ?", (limit,)).fetchall()

    def mark_all_dirty(self) -> None:
        """Every item, to be published again: the rules that place them, or how they render, changed."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO dirty (source, id) SELECT source, id FROM items WHERE true ON CONFLICT DO NOTHING"
            )

    def groups(self, items: Sequence[tuple[str, str]]) -> list[tuple[str, Entry, datetime]]:
        """The given items and every item they are one entry with (the same id or match key, transitively).

        As (source, entry, first seen), in a stable order.
        """
        ids = {i for _, i in items}
        keys: set[str] = set()
        found: dict[tuple[str, str], tuple[str, str]] = {}
        new_ids, new_keys = set(ids), set[str]()
        while new_ids or new_keys:
            rows = self._select_in(
                "SELECT source, id, data, match_key, first_seen FROM items WHERE id IN ({})", new_ids
            )
            # Only the ids of the items of a key: most are the items just read, and the others are read
            # by their id next round, with every item of that id.
            keyed = self._select_in(
                # The first condition lets the partial index serve.
                "SELECT id FROM items WHERE match_key <> '' AND match_key IN ({})",
                new_keys,
            )
            new_ids, new_keys = set(), set()
            for source, item_id, data, key, first in rows:
                if (source, item_id) not in found:
                    found[source, item_id] = (data, first)
                    if key and key not in keys:
                        keys.add(key)
                        new_keys.add(key)
            for (item_id,) in keyed:
                if item_id not in ids:
                    ids.add(item_id)
                    new_ids.add(item_id)
        return [
            (source, *_dated(_entry(json.loads(data)), datetime.fromisoformat(first)))
            for (source, _), (data, first) in sorted(found.items())
        ]

    def clean(self, items: Iterable[tuple[str, str]]) -> None:
        """These items are published: no longer dirty."""
        with self.transaction():
            self._db.executemany("DELETE FROM dirty WHERE source = ? AND id = ?", list(items))

    def _select_in(self, query: str, values: Iterable[str]) -> list[Any]:
        """`query` with its one `IN ({})` filled with `values`, a bounded number at a time."""
        values = list(values)
        rows: list[Any] = []
        for start in range(0, len(values), _IN_CHUNK):
            chunk = values[start : start + _IN_CHUNK]
            rows += self._db.execute(query.format(", ".join("?" * len(chunk))), chunk).fetchall()
        return rows

    # -- published entries: identity and time --------------------------------------------------

    def stamp(self, entries: Sequence[Entry], now: datetime) -> list[Stamp]:
        """Give each entry its lasting `published` and `updated`; `updated` moves only on a content change."""
        known = {
            row[0]: row[1:]
            for row in self._select_in(
                "SELECT id, content_hash, updated, first_seen FROM entries WHERE id IN ({})", [e.id for e in entries]
            )
        }
        now_iso = _iso(now)
        out: list[Stamp] = []
        inserts: list[tuple[str, str, str, str, str]] = []
        updates: list[tuple[str, str, str, str]] = []
        for entry in entries:
            digest = content_hash(entry)
            previous = known.get(entry.id)
            if previous is None:
                published_iso = _iso(entry.published)
                updated_iso = published_iso if entry.updated is entry.published else _iso(entry.updated)
                inserts.append((entry.id, digest, now_iso, published_iso, updated_iso))
                known[entry.id] = (digest, updated_iso, now_iso)
                out.append(Stamp(entry=entry, new=True, changed=False, first_seen=now, digest=digest))
                continue
            old_hash, updated, first = previous
            first_seen = datetime.fromisoformat(first)
            old_updated = datetime.fromisoformat(updated)
            if old_hash == digest:
                stamped = _updated_at(entry, old_updated)
                out.append(Stamp(entry=stamped, new=False, changed=False, first_seen=first_seen, digest=digest))
                continue
            # A source that dates its own edits is believed; otherwise the edit happened now.
            moved = entry.updated if entry.updated > old_updated else now
            updates.append((digest, _iso(entry.published), _iso(moved), entry.id))
            out.append(
                Stamp(entry=_updated_at(entry, moved), new=False, changed=True, first_seen=first_seen, digest=digest)
            )
        if inserts or updates:
            with self.transaction():
                self._db.executemany(
                    "INSERT INTO entries (id, content_hash, first_seen, published, updated) VALUES (?, ?, ?, ?, ?)",
                    inserts,
                )
                self._db.executemany(
                    "UPDATE entries SET content_hash = ?, published = ?, updated = ? WHERE id = ?", updates
                )
        return out

    def entry_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM entries")}

    # -- published entries: what each renders as, and the feeds it is in --------------------------

    def render_keys(self, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
        """(render key, our page's path) of the given entries as last published."""
        rows = self._select_in("SELECT id, render_key, page FROM entries WHERE id IN ({})", ids)
        return {row[0]: (row[1], row[2]) for row in rows}

    def put_published(self, published: Sequence[Published]) -> None:
        """Record entries as published: their text, categories, page, render key and rendered fragments."""
        with self.transaction():
            self._db.executemany(
                "UPDATE entries SET data = ?, categories = ?, page = ?, render_key = ?, "
                "atom = ?, rss = ?, json = ?, li = ? WHERE id = ?",
                [
                    (
                        _payload_text(p.entry),
                        _JSON.encode([[c.slug, c.title] for c in p.entry.categories]),
                        p.page,
                        p.render_key,
                        p.atom,
                        p.rss,
                        p.json,
                        p.li,
                        p.entry.id,
                    )
                    for p in published
                ],
            )

    def memberships(self, ids: Iterable[str]) -> dict[str, list[tuple[str, int]]]:
        """The feeds each of these entries is in now, as (slug, archive page or 0), by id."""
        out: dict[str, list[tuple[str, int]]] = {}
        for slug, entry_id, page in self._select_in(
            "SELECT slug, id, page FROM members WHERE live = 1 AND id IN ({})", ids
        ):
            out.setdefault(entry_id, []).append((slug, page))
        return out

    def put_members(self, rows: Sequence[Member], leaving: Iterable[str] = ()) -> None:
        """Put entries in feeds, after taking the `leaving` ids out of every feed they were in.

        An id taken out keeps its archive page, if any, should it come back.
        """
        with self.transaction():
            self._db.executemany("UPDATE members SET live = 0 WHERE id = ?", [(i,) for i in leaving])
            # `late`: on a frozen archive page and changed after it froze, so shown in the current document too.
            self._db.executemany(
                "INSERT INTO members (slug, id, arrived, published, updated, live) VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (slug, id) DO UPDATE SET arrived = excluded.arrived, published = excluded.published, "
                "updated = excluded.updated, live = 1, late = CAST(members.page > 0 AND excluded.updated > "
                "(SELECT frozen_us FROM archive_pages a WHERE a.slug = members.slug AND a.number = members.page) "
                "AS INTEGER)",
                rows,
            )

    def put_derived(self, categories: Iterable[tuple[str, str]]) -> None:
        """Remember the title of each category made from a type label, the first one seen."""
        with self.transaction():
            self._db.executemany("INSERT INTO derived (slug, title) VALUES (?, ?) ON CONFLICT DO NOTHING", categories)

    def live_slugs(self) -> dict[str, int]:
        """Every feed that has an entry, with how many entries are not archived (its current document's arrivals)."""
        rows = self._db.execute(
            "SELECT slug, count(*) FILTER (WHERE page = 0) FROM members WHERE live = 1 GROUP BY slug"
        ).fetchall()
        return {slug: count for slug, count in rows}

    def open_count(self, slug: str) -> int:
        """How many entries of a feed are on no frozen archive page."""
        row = self._db.execute(
            "SELECT count(*) FROM members WHERE live = 1 AND slug = ? AND page = 0", (slug,)
        ).fetchone()
        return int(row[0])

    def feed_ids(self, slug: str) -> list[str]:
        """The ids of every entry in a feed, archived or not."""
        return [row[0] for row in self._db.execute("SELECT id FROM members WHERE live = 1 AND slug = ?", (slug,))]

    def derived_titles(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT slug, title FROM derived").fetchall())

    def unarchived(self, slug: str, limit: int) -> list[str]:
        """The ids of the oldest `limit` arrivals of a feed that are on no frozen archive page."""
        rows = self._db.execute(
            "SELECT id FROM members WHERE live = 1 AND slug = ? AND page = 0 ORDER BY arrived, published, id LIMIT ?",
            (slug, limit),
        ).fetchall()
        return [row[0] for row in rows]

    def documents_rows(self, slug: str, page: int, *, newest: int = -1, skip: int = 0) -> list[DocumentRow]:
        """Entries of a feed on one archive page (0: not archived), in arrival order, from `skip`, at most `newest`."""
        limit = newest if newest >= 0 or self._pg is None else None  # no limit: -1 to SQLite, NULL to PostgreSQL
        return [
            DocumentRow(*row)
            for row in self._db.execute(
                _ROWS + "WHERE m.live = 1 AND m.slug = ? AND m.page = ? "
                "ORDER BY m.arrived, m.published, m.id LIMIT ? OFFSET ?",
                (slug, page, limit, skip),
            )
        ]

    def corrections(self, slug: str, limit: int) -> list[DocumentRow]:
        """Archived entries of a feed edited after their page froze: the `limit` most recently edited."""
        return [
            DocumentRow(*row)
            for row in self._db.execute(
                _ROWS + "WHERE m.live = 1 AND m.late = 1 AND m.slug = ? ORDER BY m.updated DESC, m.id DESC LIMIT ?",
                (slug, limit),
            )
        ]

    def late_count(self, slug: str) -> int:
        """How many archived entries of a feed were edited after their page froze."""
        row = self._db.execute("SELECT count(*) FROM members WHERE live = 1 AND late = 1 AND slug = ?", (slug,))
        return int(row.fetchone()[0])

    def published_entries(self, ids: Iterable[str]) -> list[tuple[Entry, str]]:
        """The given entries as published, categories included, each with our page's path ("" for none)."""
        rows = self._select_in("SELECT data, categories, page FROM entries WHERE id IN ({}) AND data <> ''", ids)
        return [(_published(data, categories), page) for data, categories, page in rows]

    def updated_text(self, entry_id: str) -> str:
        """An entry's `updated` as published, in its own zone ("" for none)."""
        row = self._db.execute("SELECT data FROM entries WHERE id = ? AND data <> ''", (entry_id,)).fetchone()
        return str(json.loads(row[0])["updated"]) if row else ""

    def page_paths(self, ids: Iterable[str]) -> list[str]:
        """Our pages of the given entries, as paths under output/."""
        return [row[0] for row in self._select_in("SELECT page FROM entries WHERE id IN ({}) AND page <> ''", ids)]

    def own_pages(self) -> list[str]:
        """The ids of live entries that have a page of ours."""
        return [
            row[0]
            for row in self._db.execute(
                "SELECT e.id FROM entries e WHERE e.page <> '' AND EXISTS "
                "(SELECT 1 FROM members m WHERE m.id = e.id AND m.slug = 'all' AND m.live = 1) ORDER BY e.id"
            )
        ]

    # -- documents to write ---------------------------------------------------------------------

    def add_pending(self, names: Iterable[str]) -> None:
        with self.transaction():
            self._db.executemany("INSERT INTO pending (name) VALUES (?) ON CONFLICT DO NOTHING", [(n,) for n in names])

    def pending(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name FROM pending ORDER BY name")]

    def has_work(self) -> bool:
        """Whether items are recorded but not published, or documents are due but not written."""
        return bool(
            self._db.execute("SELECT EXISTS (SELECT 1 FROM dirty) OR EXISTS (SELECT 1 FROM pending)").fetchone()[0]
        )

    def done(self, names: Iterable[str], changed: Iterable[str], now: datetime) -> None:
        """These pending documents are written, and these files of them changed now (for the status page)."""
        stamp = _iso(now)
        with self.transaction():
            self._db.executemany("DELETE FROM pending WHERE name = ?", ((n,) for n in names))
            self._db.executemany(
                "INSERT INTO outputs (path, fingerprint, changed) VALUES (?, '', ?) "
                "ON CONFLICT (path) DO UPDATE SET changed = excluded.changed",
                ((path, stamp) for path in changed),
            )

    def setting(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else ""

    def put_setting(self, key: str, value: str) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- source state ----------------------------------------------------------------------------

    def source(self, name: str) -> SourceState:
        return _stored_state(name, self._db.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE name = ?", (name,)))

    def source_items(self, name: str) -> tuple[SourceState, dict[str, str]]:
        """A source's state and its items' data by id, for recording what it now says.

        Both are asked before either is read: in a transaction on PostgreSQL, one round trip.
        """
        state = self._db.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE name = ?", (name,))
        items = self._db.execute("SELECT id, data FROM items WHERE source = ?", (name,))
        return _stored_state(name, state), dict(items.fetchall())

    def sources(self) -> list[SourceState]:
        """Every source the store knows, by name: read at once, not one by one."""
        return [_source_state(row) for row in self._db.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY name")]

    def put_source(self, state: SourceState) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO sources (name, doc_hash, etag, last_modified, last_attempt, last_success, last_error, "
                "failures, redirect, gone, entries, next_run, last_warning) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET doc_hash = excluded.doc_hash, etag = excluded.etag, "
                "last_modified = excluded.last_modified, last_attempt = excluded.last_attempt, "
                "last_success = excluded.last_success, last_error = excluded.last_error, "
                "failures = excluded.failures, redirect = excluded.redirect, gone = excluded.gone, "
                "entries = excluded.entries, next_run = excluded.next_run, last_warning = excluded.last_warning",
                (
                    state.name,
                    state.doc_hash,
                    state.etag,
                    state.last_modified,
                    state.last_attempt,
                    state.last_success,
                    state.last_error,
                    state.failures,
                    state.redirect,
                    int(state.gone),
                    state.entries,
                    state.next_run,
                    state.last_warning,
                ),
            )

    # -- followed pages ----------------------------------------------------------------------------

    def pages(self, source: str) -> dict[str, PageState]:
        """The followed pages of a source, by URL."""
        rows = self._db.execute(f"SELECT {_PAGE_COLUMNS} FROM pages WHERE source = ?", (source,)).fetchall()
        return {row[0]: PageState(**dict(zip(PageState.__slots__, row, strict=True))) for row in rows}

    def put_pages(self, states: Iterable[PageState]) -> None:
        columns = _PAGE_COLUMNS.split(", ")
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        with self.transaction():
            self._db.executemany(
                f"INSERT INTO pages ({_PAGE_COLUMNS}) VALUES ({', '.join('?' * len(columns))}) "
                f"ON CONFLICT (url) DO UPDATE SET {updates}",
                [tuple(getattr(state, c) for c in columns) for state in states],
            )

    # -- outputs: when each file last changed, for the status page ------------------------------

    def published_slugs(self) -> set[str]:
        """The categories whose current Atom document has been written (by this release or an earlier one)."""
        rows = self._db.execute("SELECT path FROM outputs WHERE path LIKE '%.atom' AND path NOT LIKE '%/%'")
        return {row[0].removesuffix(".atom") for row in rows}

    def output_changes(self) -> dict[str, str]:
        """When each output file last changed (ISO time), for the status page."""
        return dict(self._db.execute("SELECT path, changed FROM outputs").fetchall())

    # -- published documents, for nodes that share a PostgreSQL store -----------------------------

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """One publisher at a time among the nodes sharing a PostgreSQL store (on SQLite, the state lock does it).

        One lock for the site, not one per feed: every change is in `all` and the site's pages, so
        publishers would queue for those anyway.
        """
        if self._pg is None:
            yield
            return
        self._pg.lock_publishing()
        try:
            yield
        finally:
            with suppress(StoreError):  # a lost connection took the lock with it
                self._pg.unlock_publishing()

    @property
    def shared(self) -> bool:
        """Whether the store is PostgreSQL's, which nodes share: output/ then mirrors its documents."""
        return self._pg is not None

    def has_document(self, path: str) -> bool:
        row = self._db.execute("SELECT 1 FROM documents WHERE path = ? AND body IS NOT NULL", (path,)).fetchone()
        return row is not None

    def put_documents(self, writes: Iterable[PublishedFile], drops: Sequence[str], now: datetime) -> set[str]:
        """Record a pass's files and removals as one change, after the last; return the paths whose bytes changed.

        A dropped directory (a path ending in "/") takes every file under it with it. Nodes that mirror
        the store apply changes in their order; on PostgreSQL they are told at once (NOTIFY).
        """
        modified = int(now.timestamp())
        changed: set[str] = set()
        with self.transaction():
            seq = int(self._db.execute("SELECT coalesce(max(seq), 0) + 1 FROM documents").fetchone()[0])
            for path in drops:
                if path.endswith("/"):
                    self._db.execute(
                        "UPDATE documents SET body = NULL, gz = NULL, etag = '', modified = ?, seq = ? "
                        "WHERE substr(path, 1, ?) = ? AND body IS NOT NULL",
                        (modified, seq, len(path), path),
                    )
            self._db.executemany(
                "INSERT INTO documents (path, body, gz, etag, modified, seq) VALUES (?, NULL, NULL, '', ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET body = NULL, gz = NULL, etag = '', modified = excluded.modified, "
                "seq = excluded.seq",
                [(path, modified, seq) for path in drops],
            )
            batch: list[PublishedFile] = []
            for file in writes:
                batch.append(file)
                if len(batch) == _IN_CHUNK:
                    changed |= self._put_files(batch, modified, seq)
                    batch = []
            changed |= self._put_files(batch, modified, seq)
            if self._pg is not None and (changed or drops):
                self._pg.announce(seq)
        return changed

    def last_change(self) -> tuple[int, int]:
        """The number and Last-Modified (seconds) of the last change put_documents recorded; (0, 0) for none."""
        row = self._db.execute("SELECT seq, modified FROM documents ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def _put_files(self, files: Sequence[PublishedFile], modified: int, seq: int) -> set[str]:
        known = dict(self._select_in("SELECT path, etag FROM documents WHERE path IN ({})", (f.path for f in files)))
        fresh = [f for f in files if known.get(f.path) != f.etag]
        self._db.executemany(
            "INSERT INTO documents (path, body, gz, etag, modified, seq) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (path) DO UPDATE SET body = excluded.body, gz = excluded.gz, etag = excluded.etag, "
            "modified = excluded.modified, seq = excluded.seq",
            [(f.path, f.body, f.gz, f.etag, modified, seq) for f in fresh],
        )
        return {f.path for f in fresh}

    # -- archives: RFC 5005 pages that never change once full -------------------------------------

    def archive_count(self, slug: str) -> int:
        """How many archive pages of a category are frozen."""
        row = self._db.execute("SELECT count(*) FROM archive_pages WHERE slug = ?", (slug,)).fetchone()
        return int(row[0])

    def freeze_archive_page(self, slug: str, number: int, ids: Sequence[str], now: datetime) -> None:
        """Archive page `number` of a category holds `ids` from now on, and never changes again."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO archive_pages (slug, number, ids, frozen, frozen_us) VALUES (?, ?, ?, ?, ?)",
                (slug, number, json.dumps(list(ids)), _iso(now), micros(now)),
            )
            self._db.executemany(
                "UPDATE members SET page = ?, late = CAST(updated > ? AS INTEGER) WHERE slug = ? AND id = ?",
                [(number, micros(now), slug, i) for i in ids],
            )

    def integrity_check(self) -> str:
        """SQLite's own check of the file ("ok"); PostgreSQL checks its pages itself, so there: "ok" when it answers."""
        if self._pg is not None:
            return "ok" if self._pg.execute("SELECT 1").fetchone() == (1,) else "no answer"
        result: str = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        return result
