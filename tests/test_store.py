"""The store: schema versioning, item history, and when `updated` moves."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pg_helpers
import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from serve_helpers import free_port

from feeds import store as store_module
from feeds.errors import StoreError
from feeds.model import Author, Category, Enclosure, Entry
from feeds.store import PAGE_SIZE, SCHEMA_VERSION, Member, PageState, Published, SourceState, Store, content_hash

ZURICH = ZoneInfo("Europe/Zurich")
DAY = datetime(2021, 12, 17, tzinfo=ZURICH)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def entry(key: str, summary: str = "A summary.") -> Entry:
    return Entry(
        id=f"tag:e.org,2026:s:{key}",
        title=f"Title {key}",
        link="",
        published=DAY,
        updated=DAY,
        source="s",
        summary=summary,
        labels=("News",),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Opens the store of one test, on each backend: the SQLite file, or a PostgreSQL database of its own."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else ""
    return lambda: Store(tmp_path / "f.db", url=url)


def test_schema_is_versioned(tmp_path: Path) -> None:
    Store(tmp_path / "f.db").close()
    db = sqlite3.connect(tmp_path / "f.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="written by a newer release"):
        Store(tmp_path / "f.db")


def test_updated_moves_only_when_content_changes(new_store: Callable[[], Store]) -> None:
    with new_store() as store:
        first = store.stamp([entry("a")], NOW)[0]
        assert first.new and first.entry.updated == DAY
        later = NOW + timedelta(hours=1)
        again = store.stamp([entry("a")], later)[0]
        assert not again.new and not again.changed and again.entry.updated == DAY
        edited = store.stamp([entry("a", "A corrected summary.")], later)[0]
        assert edited.changed and edited.entry.updated == later
        assert edited.entry.updated.tzinfo == ZURICH  # rendered in the same zone every time
        still = store.stamp([entry("a", "A corrected summary.")], later + timedelta(hours=1))[0]
        assert not still.changed and still.entry.updated == later


def test_a_source_that_dates_its_edits_is_believed(new_store: Callable[[], Store]) -> None:
    with new_store() as store:
        store.stamp([entry("a")], NOW)
        edit_time = DAY + timedelta(days=3)
        edited = replace(entry("a", "New words."), updated=edit_time)
        assert store.stamp([edited], NOW)[0].entry.updated == edit_time


def test_a_new_entry_keeps_its_own_updated(new_store: Callable[[], Store]) -> None:
    dated = replace(entry("a"), updated=DAY + timedelta(days=3))
    with new_store() as store:
        store.stamp([dated], NOW)
        again = store.stamp([dated], NOW + timedelta(hours=1))[0]
    assert not again.changed and again.entry.updated == DAY + timedelta(days=3) and again.entry.published == DAY


def test_items_that_fall_off_the_page_are_kept(new_store: Callable[[], Store]) -> None:
    with new_store() as store:
        store.save_items("s", [entry("a"), entry("b")], NOW)
        store.save_items("s", [entry("b", "changed"), entry("c")], NOW + timedelta(hours=1))
        ids = [entry(k).id for k in "abc"]
        items = {e.id.rsplit(":", 1)[1]: (e, seen) for _, e, seen in store.groups([("s", i) for i in ids])}
    assert sorted(items) == ["a", "b", "c"]
    assert items["b"][0].summary == "changed"
    assert items["b"][1] == NOW  # first seen does not move
    assert items["c"][1] == NOW + timedelta(hours=1)


def test_source_state_round_trips(new_store: Callable[[], Store]) -> None:
    with new_store() as store:
        assert store.source("x") == SourceState(name="x")
        state = SourceState(name="x", etag='"abc"', last_error="boom", failures=2, gone=True, entries=7)
        store.put_source(state)
        assert store.source("x") == state
        assert store.integrity_check() == "ok"


def test_unreadable_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"f\.db: cannot open the state database"):
        Store(tmp_path / "f.db")


# -- the store's shortcuts answer exactly as the plain computations they stand in for ---------------------

FAST = settings(max_examples=300, deadline=None)
ZONES = [ZURICH, UTC, timezone(timedelta(hours=-5, minutes=-30), "X"), ZoneInfo("America/New_York")]
# Strings JSON escapes, or writes as they are only with ensure_ascii off: quotes, controls, surrogates, astral.
TEXT = st.one_of(
    st.text(max_size=8), st.sampled_from(['"', "\\", "\n", "\x00", "\x7f", "\u2028", "\ud800", "é", "😀", "</p>"])
)
MOMENTS = st.builds(
    lambda naive, zone, fold: naive.replace(tzinfo=zone, fold=fold),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(ZONES),
    st.sampled_from([0, 1]),
)
AUTHORS = st.lists(st.builds(Author, name=TEXT, uri=TEXT, email=TEXT), max_size=2).map(tuple)


def _updated(published: datetime, other: datetime, how: str) -> datetime:
    """`published` itself (as adapters make it), its instant in another zone or the same copied, or another time."""
    return {
        "itself": published,
        "elsewhere": published.astimezone(other.tzinfo),
        "copy": published.replace(),
        "other": other,
    }[how]


ENTRIES = st.builds(
    lambda published, other, how, **fields: Entry(
        published=published, updated=_updated(published, other, how), **fields
    ),
    published=MOMENTS,
    other=MOMENTS,
    how=st.sampled_from(["itself", "elsewhere", "copy", "other"]),
    id=TEXT.filter(bool),
    title=TEXT,
    link=TEXT,
    source=TEXT,
    summary=TEXT,
    content_html=TEXT,
    authors=AUTHORS,
    contributors=AUTHORS,
    labels=st.lists(TEXT, max_size=3).map(tuple),
    tags=st.lists(TEXT, max_size=3).map(tuple),
    enclosures=st.lists(
        st.builds(Enclosure, url=TEXT, length=st.integers(min_value=0, max_value=2**70), type=TEXT), max_size=2
    ).map(tuple),
    match_key=TEXT,
    undated=st.booleans(),
)


GAP = datetime(1919, 3, 30, 2, 0, tzinfo=ZoneInfo("America/New_York"))  # a wall time the clocks skipped


@FAST
@given(ENTRIES)
@example(Entry(id="gap", title="", link="", published=GAP, updated=GAP, source=""))
def test_entry_texts_are_what_the_encoders_write(entry: Entry) -> None:
    assert store_module._content_text(entry) == store_module._CANONICAL.encode(store_module._content(entry))
    assert store_module._payload_text(entry) == store_module._JSON.encode(store_module._payload(entry))
    again = store_module._entry(json.loads(store_module._payload_text(entry)))
    # Times come back at a fixed offset: equal as text, since across zones `==` is False in a fold or gap.
    assert replace(again, published=entry.published, updated=entry.updated) == entry
    assert again.published.isoformat() == entry.published.isoformat()
    assert again.updated.isoformat() == entry.updated.isoformat()


@pytest.mark.parametrize(
    "change",
    [
        {"title": None},
        {"link": 7},
        {"labels": ("News", None)},
        {"tags": ("Housing", None)},
        {"authors": (Author(name=None),)},
    ],  # type: ignore[arg-type]
)
def test_fields_of_the_wrong_type_are_written_as_the_encoders_write_them(change: dict[str, Any]) -> None:
    odd = replace(entry("a"), **change)
    assert store_module._content_text(odd) == store_module._CANONICAL.encode(store_module._content(odd))
    assert store_module._payload_text(odd) == store_module._JSON.encode(store_module._payload(odd))


def test_content_hash_is_the_one_existing_databases_hold() -> None:
    pinned = Entry(
        id="tag:e.org,2026:s:a",
        title='Quote " and \\ back «ç» \U0001f600',
        link="https://e.org/a",
        published=datetime(2021, 12, 17, 9, 30, tzinfo=ZURICH),
        updated=datetime(2022, 1, 2, tzinfo=UTC),
        source="s",
        summary="Line\nbreak\ttab",
        content_html="<p>A &amp; B</p>",
        authors=(Author(name="Ann", uri="https://ann.example", email="a@x"),),
        contributors=(Author(name="Bo"),),
        labels=("News", "Série"),
        enclosures=(Enclosure(url="https://e.org/a.mp3", length=1234, type="audio/mpeg"),),
        match_key="k",
    )
    assert content_hash(pinned) == "a8f481a643d1c9859d7cf3d1345f4b3fd740194a5526807a9ab60d670e827aee"
    # A feed's categories were stored as labels before they were tags: the same digest, the same `updated`.
    as_tags = replace(pinned, labels=(), tags=pinned.labels)
    assert content_hash(as_tags) == content_hash(pinned)
    assert '"tags"' not in store_module._payload_text(pinned)
    assert store_module._entry(json.loads(store_module._payload_text(as_tags))).tags == pinned.labels


def _old_identical(a: datetime, b: datetime) -> bool:
    return a.tzinfo is b.tzinfo and a.fold == b.fold and a.replace(tzinfo=None) == b.replace(tzinfo=None)


@FAST
@given(MOMENTS, MOMENTS, st.booleans())
@example(datetime(2021, 10, 31, 2, 30, tzinfo=ZURICH), datetime(2021, 10, 31, 2, 30, fold=1, tzinfo=ZURICH), False)
@example(datetime(2021, 10, 31, 1, 30, tzinfo=UTC), datetime(2021, 10, 31, 2, 30, tzinfo=ZURICH), False)
def test_identical_is_the_field_by_field_comparison(a: datetime, b: datetime, near: bool) -> None:
    if near:  # one instant, or one wall time, in the other's zone: the pairs where `==` could say too much
        b = a.astimezone(b.tzinfo) if b.fold else a.replace(tzinfo=b.tzinfo)
    assert store_module._identical(a, b) == _old_identical(a, b)
    assert store_module._identical(a, a) and store_module._identical(a, a.replace(fold=a.fold))


def test_only_new_and_changed_items_are_dirty(new_store: Callable[[], Store]) -> None:
    with new_store() as store:
        assert store.save_items("s", [entry("a"), entry("b")], NOW) == 2
        assert sorted(store.dirty(10)) == [("s", entry("a").id), ("s", entry("b").id)]
        store.clean(store.dirty(10))
        assert store.dirty(10) == []
        # Unchanged items are not dirty again; a changed one and a new one are.
        assert store.save_items("s", [entry("a"), entry("b", "changed"), entry("c")], NOW + timedelta(hours=1)) == 2
        assert sorted(store.dirty(10)) == [("s", entry("b").id), ("s", entry("c").id)]
        assert store.has_work()


def test_groups_follow_ids_and_match_keys_across_sources(new_store: Callable[[], Store]) -> None:
    listed = replace(entry("listed"), match_key="2021-12-17/kim")
    page = replace(entry("page"), source="p", id="tag:e.org,2026:p:page", match_key="2021-12-17/kim")
    again = replace(entry("listed"), source="other")  # the same id from another source
    alone = entry("alone")
    with new_store() as store:
        store.save_items("s", [listed, alone], NOW)
        store.save_items("p", [page], NOW)
        store.save_items("other", [again], NOW)
        group = store.groups([("p", page.id)])
    assert sorted((source, e.id) for source, e, _ in group) == sorted(
        [("s", listed.id), ("p", page.id), ("other", again.id)]
    )


def test_a_new_sqlite_store_has_pages_an_entry_fits_in_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    Store(tmp_path / "new.db").close()
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("PRAGMA page_size = 4096")
    old.execute("PRAGMA journal_mode = WAL")
    old.executescript(store_module._MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    old.close()
    with Store(tmp_path / "old.db") as store:
        assert store.integrity_check() == "ok"
    sizes = {
        name: sqlite3.connect(tmp_path / name).execute("PRAGMA page_size").fetchone()[0]
        for name in ("new.db", "old.db")
    }
    # An entry's row (its text and its fragments in three formats) is about 4 KiB: it fits in one page.
    assert sizes == {"new.db": PAGE_SIZE, "old.db": 4096}


def test_a_database_of_schema_1_is_migrated_and_republished(tmp_path: Path) -> None:
    """A state file written before incremental passes: its items are published again, its archive pages kept."""
    path = tmp_path / "f.db"
    db = sqlite3.connect(path)
    db.executescript(store_module._MIGRATIONS[0])
    data = store_module._payload_text(entry("a"))
    db.execute("INSERT INTO items VALUES ('s', ?, ?, ?, ?)", (entry("a").id, data, NOW.isoformat(), NOW.isoformat()))
    db.execute("INSERT INTO archive_pages VALUES ('news', 1, ?, ?)", (json.dumps([entry("a").id]), NOW.isoformat()))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.dirty(10) == [("s", entry("a").id)]
        assert store.archive_count("news") == 1
        assert store.integrity_check() == "ok"
    db = sqlite3.connect(path)
    assert db.execute("SELECT page FROM members WHERE slug = 'news'").fetchall() == [(1,)]
    assert db.execute("SELECT frozen_us FROM archive_pages").fetchone()[0] == store_module.micros(NOW)
    db.close()


def test_a_version_1_database_gains_the_warning_column_and_keeps_its_sources(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "f.db")
    db.executescript(store_module._MIGRATIONS[0])
    db.execute("INSERT INTO sources (name, last_error, failures, entries) VALUES ('africa', 'old error', 2, 7)")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Store(tmp_path / "f.db") as store:
        state = store.source("africa")
        assert (state.last_error, state.failures, state.entries, state.last_warning) == ("old error", 2, 7, "")
        store.put_source(replace(state, last_warning="africa: 1 item-like line left unread: line 12"))
        assert store.source("africa").last_warning.endswith("line 12")
    db = sqlite3.connect(tmp_path / "f.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_an_undated_item_is_dated_when_first_seen_and_stays_so(new_store: Callable[[], Store]) -> None:
    from feeds.model import UNDATED

    announced = replace(entry("event"), published=UNDATED, updated=UNDATED, undated=True)
    dated = entry("news")
    with new_store() as store:
        store.save_items("s", [announced, dated], NOW)
        for later in (NOW + timedelta(hours=1), NOW + timedelta(days=30)):
            store.save_items("s", [replace(announced, summary="Details to follow."), dated], later)
            group = store.groups([("s", announced.id), ("s", dated.id)])
            items = {e.id: (e, seen) for _, e, seen in group}
            event, seen = items[announced.id]
            assert event.published == event.updated == seen == NOW and event.undated
            assert items[dated.id][0].published == DAY  # a dated item keeps its own date
            assert store.stamp([event], later)[0].entry.published == NOW
    # The payload of a dated entry is as it always was: no "undated" key.
    assert "undated" not in store_module._payload_text(dated)
    assert store_module._payload_text(announced).endswith(', "undated": true}')


# -- PostgreSQL: what SQLite keeps in the file, and a server that goes away ------------------------


def test_a_postgresql_store_from_a_newer_release_is_refused(pg_url: str, tmp_path: Path) -> None:
    Store(tmp_path / "f.db", url=pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=r"^store\.url: .* written by a newer release .* point store\.url elsewhere"):
        Store(tmp_path / "f.db", url=pg_url)
    assert not (tmp_path / "f.db").exists()  # the state directory's file is not the store then


def test_a_dropped_idle_connection_is_replaced_and_the_statement_asked_again(pg_url: str, tmp_path: Path) -> None:
    with Store(tmp_path / "f.db", url=pg_url) as store:
        store.put_source(SourceState(name="a", failures=1))
        assert pg_helpers.terminate(pg_url) == 1
        assert store.source("a").failures == 1  # a read alone: asked again on a new connection
        assert pg_helpers.terminate(pg_url) == 1
        store.put_source(SourceState(name="b", failures=2))  # a write alone, too
        assert store.source("b").failures == 2


def test_a_connection_dropped_in_a_transaction_rolls_it_back_and_the_next_one_works(
    pg_url: str, tmp_path: Path
) -> None:
    with Store(tmp_path / "f.db", url=pg_url) as store:
        lost = r"^store\.url: lost the connection to postgresql://root@.*rolled back"
        with pytest.raises(StoreError, match=lost), store.transaction():
            store.put_source(SourceState(name="a", failures=1))
            store.save_items("s", [entry("a")], NOW)
            pg_helpers.terminate(pg_url)
            store.put_source(SourceState(name="b", failures=2))
        assert store.source("a") == SourceState(name="a")  # nothing of it written
        assert store.dirty(10) == []
        with store.transaction():
            store.put_source(SourceState(name="a", failures=3))
        assert store.source("a").failures == 3
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT name, failures FROM sources").fetchall() == [("a", 3)]


def test_a_statement_the_server_refuses_in_a_transaction_keeps_nothing_of_it(pg_url: str, tmp_path: Path) -> None:
    with Store(tmp_path / "f.db", url=pg_url) as store:
        # Writes travel with the COMMIT (pipeline mode): the refusal comes at the end, and undoes them all.
        refused = r"^store\.url: the database at postgresql://root@.* failed"
        with pytest.raises(StoreError, match=refused), store.transaction(flush=False):
            store.put_source(SourceState(name="a", failures=1))
            store.save_items("s", [entry("a")], NOW)
            store._db.execute("INSERT INTO sources (name) VALUES (?)", ("a",))  # its key is taken
        assert store.source("a") == SourceState(name="a")
        assert store.dirty(10) == []
        with store.transaction():
            store.put_source(SourceState(name="a", failures=2))
        assert store.source_items("a") == (SourceState(name="a", failures=2), {})
        assert store.source_items("s")[1].keys() == set()


def test_an_unreachable_server_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(StoreError) as raised:
        Store(tmp_path / "f.db", url=f"postgresql://feeds:s3cret@127.0.0.1:{port}/feeds?sslmode=disable")
    message = str(raised.value)
    assert message == (
        f"store.url: cannot connect to postgresql://feeds@127.0.0.1:{port}/feeds (connection refused); "
        "check that PostgreSQL runs and store.url is right"
    )
    assert not (tmp_path / "f.db").exists()


def test_a_missing_database_is_a_clear_error(pg_url: str, tmp_path: Path) -> None:
    missing = pg_helpers.url_of("feeds_test_no_such_database")
    with pytest.raises(StoreError, match=r'^store\.url: cannot connect to .*\(database "feeds_test_no_such_database"'):
        Store(tmp_path / "f.db", url=missing)


def test_a_postgresql_database_of_schema_1_is_migrated_as_sqlite_is(pg_url: str, tmp_path: Path) -> None:
    """The PostgreSQL spelling of the second step does what SQLite's does: items republished, archive pages kept."""
    from feeds.postgres import schema

    data = store_module._payload_text(replace(entry("a"), match_key="2021-12-17/a"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in schema(store_module._MIGRATIONS[0]).split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO items VALUES ('s', %s, %s, %s, %s)", (entry("a").id, data, NOW.isoformat(), "x"))
        conn.execute(
            "INSERT INTO archive_pages VALUES ('news', 1, %s, %s)", (json.dumps([entry("a").id]), NOW.isoformat())
        )
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
    with Store(tmp_path / "f.db", url=pg_url) as store:
        assert store.dirty(10) == [("s", entry("a").id)]
        assert store.archive_count("news") == 1
        assert [e.match_key for _, e, _ in store.groups([("s", entry("a").id)])] == ["2021-12-17/a"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT page FROM members WHERE slug = 'news'").fetchall() == [(1,)]
        assert conn.execute("SELECT frozen_us FROM archive_pages").fetchone() == (store_module.micros(NOW),)
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_postgresql_store_keeps_the_documents_bytes_as_they_are(pg_url: str, tmp_path: Path) -> None:
    """Not compressed again by the server: gzip already is, and the bodies change on every publish."""
    with Store(tmp_path / "f.db", url=pg_url):
        pass
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = 'documents'::regclass "
            "AND attname IN ('body', 'gz') ORDER BY attname"
        ).fetchall()
    assert rows == [("body", "e"), ("gz", "e")]  # EXTERNAL: out of line, uncompressed


def test_nodes_opening_a_new_postgresql_store_at_once_create_it_once(pg_url: str, tmp_path: Path) -> None:
    opened: list[BaseException | None] = []

    def open_one() -> None:
        try:
            Store(tmp_path / "f.db", url=pg_url).close()
            opened.append(None)
        except BaseException as exc:
            opened.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened == [None] * 4
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_feeds_archives_and_outputs_read_back_alike(new_store: Callable[[], Store]) -> None:
    """The queries whose spelling differs between the backends: fragments, limits, late entries, LIKE."""
    entries = [replace(entry(k), categories=(Category(slug="news", title="News"),)) for k in "abc"]
    micro = store_module.micros
    with new_store() as store:
        store.stamp(entries, NOW)
        store.put_published(
            [
                Published(entry=e, page="", render_key="k", atom=b"<a\x00/>", rss=b"r", json=b"{}", li=b"\xff")
                for e in entries
            ]
        )
        members = [Member("news", e.id, micro(NOW) + n, micro(DAY), micro(DAY)) for n, e in enumerate(entries)]
        store.put_members(members)
        assert store.live_slugs() == {"news": 3}
        rows = store.documents_rows("news", 0)  # no limit
        assert [r.id for r in rows] == [e.id for e in entries]
        assert (rows[0].atom, rows[0].li, store.updated_text(rows[0].id)) == (b"<a\x00/>", b"\xff", DAY.isoformat())
        assert [r.id for r in store.documents_rows("news", 0, newest=1, skip=1)] == [entries[1].id]

        store.freeze_archive_page("news", 1, [entries[0].id], NOW)
        assert store.live_slugs() == {"news": 2} and store.open_count("news") == 2
        assert store.late_count("news") == 0
        # Edited after its page froze: late, so shown among the current document's corrections.
        store.put_members([members[0]._replace(updated=micro(NOW) + 1)])
        assert store.late_count("news") == 1
        assert [r.id for r in store.corrections("news", 5)] == [entries[0].id]
        assert [e.id for e, _ in store.published_entries([entries[0].id])] == [entries[0].id]

        store.put_derived([("news", "News"), ("news", "Later title")])
        assert store.derived_titles() == {"news": "News"}
        store.add_pending(["news", "all"])
        assert store.pending() == ["all", "news"] and store.has_work()
        store.done(["news", "all"], ["news.atom", "archive/news/1.atom", "news.rss"], NOW)
        assert store.pending() == []
        assert store.published_slugs() == {"news"}  # a LIKE with '%' in it
        store.put_setting("k", "v1")
        store.put_setting("k", "v2")
        assert store.setting("k") == "v2"


def test_a_server_away_for_a_while_is_a_clear_error_until_it_is_back(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feeds import postgres

    monkeypatch.setattr(postgres, "CONNECT_SECONDS", 1)
    name = pg_url.rsplit("/", 1)[1]
    with Store(tmp_path / "f.db", url=pg_url) as store:
        store.put_source(SourceState(name="a", failures=1))
        with psycopg.connect(pg_helpers.SERVER, autocommit=True) as conn:  # every connection ended, none possible
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        for _ in range(2):  # each attempt says why, and none hangs
            with pytest.raises(
                StoreError, match=rf'^store\.url: cannot connect to .*\(database "{name}" does not exist'
            ):
                store.source("a")
        with psycopg.connect(pg_helpers.SERVER, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        assert store.integrity_check() == "ok"  # back, on a new connection
        with store.transaction():
            assert store._db.in_transaction  # a transaction of its own again, not autocommitted statements


def test_followed_pages_round_trip(new_store: Callable[[], Store]) -> None:
    page = PageState(url="https://e.org/p/1", source="s", etag='"x"', content_length=3 * 2**31, failures=2)
    with new_store() as store:
        store.put_pages([page, replace(page, url="https://e.org/p/2", source="other")])
        store.put_pages([replace(page, last_status="ok")])
        assert store.pages("s") == {page.url: replace(page, last_status="ok")}  # a length past 32 bits kept
