"""Rendering a share of a pass on a second process: the same bytes, and nothing lost when it fails."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from feeds import render, worker
from feeds.errors import RenderError
from feeds.model import Author, Category, Enclosure, Entry

BASE = "https://feeds.example.org/"
NEWS = Category(slug="news", title="News")


def entries(count: int) -> list[Entry]:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    return [
        Entry(
            id=f"tag:feeds.example.org,2020:news/{n}",
            title=f"Item {n} & “friends”",
            link=f"{BASE}entries/news/{n}.html",
            published=start + timedelta(days=n),
            updated=start + timedelta(days=n, hours=1),
            source="news",
            summary=f"Summary {n} <plain>",
            content_html=f"<p>Body {n} &amp; more</p>" if n % 2 else "",
            authors=(Author(name="Desk"),) if n % 3 else (),
            contributors=(Author(name=f"Person {n}"),) if n % 5 == 0 else (),
            categories=(NEWS,),
            enclosures=(Enclosure(url=f"{BASE}a/{n}.mp3", length=n, type="audio/mpeg"),) if n % 7 == 0 else (),
        )
        for n in range(count)
    ]


def meta(items: list[Entry]) -> render.FeedMeta:
    return render.FeedMeta(
        slug="news", title="News", description="", base_url=BASE, author="Desk", language="en",
        updated=max(e.updated for e in items),
    )  # fmt: skip


def documents(items: list[Entry], shared: render.Shared) -> list[bytes]:
    return [r(meta(items), items, shared) for r in (render.render_atom, render.render_rss, render.render_json)]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every pass prepares on a worker from 10 entries on; records how many entries each worker got."""
    monkeypatch.setattr(render, "PARALLEL_FROM", 10)
    monkeypatch.setattr(render, "_cpus", lambda: 2)
    sizes: list[int] = []
    real = worker.Call

    def spy(function: object, share: list[Entry], *args: object) -> object:
        sizes.append(len(share))
        return real(function, share, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "Call", spy)
    return sizes


def test_a_share_rendered_on_a_worker_gives_the_same_bytes(calls: list[int]) -> None:
    items = entries(50)
    shared = render.Shared()
    shared.prepare(items, BASE)
    assert calls == [20]  # 40% went to the worker
    assert documents(items, shared) == documents(items, render.Shared())


def test_small_passes_stay_on_one_process(calls: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    items = entries(9)
    render.Shared().prepare(items, BASE)
    monkeypatch.setattr(render, "_cpus", lambda: 1)
    render.Shared().prepare(entries(50), BASE)
    assert calls == []


def test_a_worker_that_cannot_start_leaves_the_work_to_the_feeds(
    calls: list[int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    items = entries(30)
    shared = render.Shared()
    with caplog.at_level(logging.WARNING, logger="feeds.render"):
        shared.prepare(items, BASE)
    assert calls == [12]
    assert "rendering on one process: cannot start /nonexistent/python" in caplog.text
    assert documents(items, shared) == documents(items, render.Shared())


def test_an_entry_that_fails_on_the_worker_is_reported_by_the_feed(calls: list[int]) -> None:
    items = entries(30)
    items[3] = replace(items[3], link="")  # in the worker's share: every entry needs a link
    shared = render.Shared()
    shared.prepare(items, BASE)
    assert calls == [12]
    with pytest.raises(RenderError) as caught:
        render.render_atom(meta(items), items, shared)
    assert str(caught.value) == f"news.atom: entry {items[3].id}: no link (every entry needs an absolute URL)"


def test_a_call_runs_in_another_process_and_its_failure_is_told() -> None:
    assert worker.Call(os.getpid).result() != os.getpid()
    with pytest.raises(worker.WorkerError, match=r"exit status 1: ValueError: invalid literal for int\(\)"):
        worker.Call(int, "not a number").result()
