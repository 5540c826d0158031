"""Entry history and source state in one SQLite file (stdlib sqlite3, portable SQL)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from feeds.errors import FeedsError
from feeds.model import Author, Enclosure, Entry

SCHEMA_VERSION = 2

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
    # 2: a source read in part keeps its warning (items left unread, an encoding guessed) for `feeds status`.
    """
    ALTER TABLE sources ADD COLUMN last_warning TEXT NOT NULL DEFAULT ''
    """,
)


class StoreError(FeedsError):
    """The state database cannot be opened or is from a newer release."""


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
        "labels": list(entry.labels),
        "enclosures": [[e.url, e.length, e.type] for e in entry.enclosures],
    }


def _payload(entry: Entry) -> dict[str, Any]:
    """Everything _entry needs to make the entry again (its categories are collate's, never stored)."""
    payload = {
        **_content(entry),
        "updated": entry.updated.isoformat(),
        "source": entry.source,
        "match_key": entry.match_key,
    }
    if entry.undated:  # only then: the payloads of dated entries stay as they always were
        payload["undated"] = True
    return payload


# The JSON text of one str, the function both encoders above call for each string they meet.
_string = encode_basestring


def _content_text(entry: Entry) -> str:
    """`_CANONICAL.encode(_content(entry))`, written out in its key order.

    Twice as fast: the encoder sets itself up again on every call, which costs more than the text.
    """
    try:
        return (
            f'{{"authors": {_people_text(entry.authors)}, "content_html": {_string(entry.content_html)}, '
            f'"contributors": {_people_text(entry.contributors)}, "enclosures": {_enclosures_text(entry.enclosures)}, '
            f'"id": {_string(entry.id)}, "labels": {_strings_text(entry.labels)}, "link": {_string(entry.link)}, '
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
            f"{_UNDATED if entry.undated else ''}}}"
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


def _entry(data: dict[str, Any]) -> Entry:
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
        enclosures=_enclosures(data["enclosures"]),
        match_key=data["match_key"],
        undated=data.get("undated", False),
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
    """The state database: one connection, used from one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
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

    @contextmanager
    def transaction(self) -> Iterator[None]:
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

    def save_items(self, source: str, entries: Iterable[Entry], now: datetime) -> int:
        """Record a source's current items; items seen before and now absent are kept."""
        stamp = _iso(now)
        rows = [(source, e.id, _payload_text(e), stamp, stamp) for e in entries]
        with self.transaction():
            self._db.executemany(
                "INSERT INTO items (source, id, data, first_seen, last_seen) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (source, id) DO UPDATE SET data = excluded.data, last_seen = excluded.last_seen",
                rows,
            )
        return len(rows)

    def items(self) -> list[tuple[Entry, datetime]]:
        """Every item any source ever gave, with when it was first seen, in a stable order.

        An undated item is dated by when it was first seen, which never moves once recorded.
        """
        rows = self._db.execute("SELECT data, first_seen FROM items ORDER BY source, id").fetchall()
        return [_dated(_entry(json.loads(data)), datetime.fromisoformat(first)) for data, first in rows]

    # -- published entries: identity and time --------------------------------------------------

    def stamp(self, entries: Sequence[Entry], now: datetime) -> list[Stamp]:
        """Give each entry its lasting `published` and `updated`; `updated` moves only on a content change."""
        known = {
            row[0]: row[1:]
            for row in self._db.execute("SELECT id, content_hash, updated, first_seen FROM entries").fetchall()
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

    # -- source state ----------------------------------------------------------------------------

    def source(self, name: str) -> SourceState:
        row = self._db.execute(
            "SELECT name, doc_hash, etag, last_modified, last_attempt, last_success, last_error, failures, "
            "redirect, gone, entries, next_run, last_warning FROM sources WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return SourceState(name=name)
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

    def sources(self) -> list[SourceState]:
        names = [row[0] for row in self._db.execute("SELECT name FROM sources ORDER BY name")]
        return [self.source(name) for name in names]

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

    # -- outputs: what was last rendered into each file, to skip work ---------------------------

    def fingerprints(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT path, fingerprint FROM outputs").fetchall())

    def put_fingerprints(self, changes: dict[str, str], now: datetime) -> None:
        if not changes:
            return
        with self.transaction():
            self._db.executemany(
                "INSERT INTO outputs (path, fingerprint, changed) VALUES (?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET fingerprint = excluded.fingerprint, changed = excluded.changed",
                [(path, fp, _iso(now)) for path, fp in changes.items()],
            )

    def output_changes(self) -> dict[str, str]:
        """When each output file last changed (ISO time), for the status page."""
        return dict(self._db.execute("SELECT path, changed FROM outputs").fetchall())

    # -- archives: RFC 5005 pages that never change once full -------------------------------------

    def archive_pages(self, slug: str) -> list[tuple[list[str], datetime]]:
        """The frozen archive pages of a category, oldest first: their entry ids and when they froze."""
        rows = self._db.execute(
            "SELECT ids, frozen FROM archive_pages WHERE slug = ? ORDER BY number", (slug,)
        ).fetchall()
        return [(json.loads(ids), datetime.fromisoformat(frozen)) for ids, frozen in rows]

    def freeze_archive_page(self, slug: str, number: int, ids: Sequence[str], now: datetime) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT INTO archive_pages (slug, number, ids, frozen) VALUES (?, ?, ?, ?)",
                (slug, number, json.dumps(list(ids)), _iso(now)),
            )

    def integrity_check(self) -> str:
        result: str = self._db.execute("PRAGMA integrity_check").fetchone()[0]
        return result
