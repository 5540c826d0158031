"""The store: schema versioning, item history, and when `updated` moves."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from feeds.model import Entry
from feeds.store import SCHEMA_VERSION, SourceState, Store, StoreError

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


def test_schema_is_versioned(tmp_path: Path) -> None:
    Store(tmp_path / "f.db").close()
    db = sqlite3.connect(tmp_path / "f.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="written by a newer release"):
        Store(tmp_path / "f.db")


def test_updated_moves_only_when_content_changes(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
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


def test_a_source_that_dates_its_edits_is_believed(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        store.stamp([entry("a")], NOW)
        edit_time = DAY + timedelta(days=3)
        edited = replace(entry("a", "New words."), updated=edit_time)
        assert store.stamp([edited], NOW)[0].entry.updated == edit_time


def test_items_that_fall_off_the_page_are_kept(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        store.save_items("s", [entry("a"), entry("b")], NOW)
        store.save_items("s", [entry("b", "changed"), entry("c")], NOW + timedelta(hours=1))
        items = {e.id.rsplit(":", 1)[1]: (e, seen) for e, seen in store.items()}
    assert sorted(items) == ["a", "b", "c"]
    assert items["b"][0].summary == "changed"
    assert items["b"][1] == NOW  # first seen does not move
    assert items["c"][1] == NOW + timedelta(hours=1)


def test_source_state_round_trips(tmp_path: Path) -> None:
    with Store(tmp_path / "f.db") as store:
        assert store.source("x") == SourceState(name="x")
        state = SourceState(name="x", etag='"abc"', last_error="boom", failures=2, gone=True, entries=7)
        store.put_source(state)
        assert store.source("x") == state
        assert store.integrity_check() == "ok"


def test_unreadable_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"f\.db: cannot open the state database"):
        Store(tmp_path / "f.db")
