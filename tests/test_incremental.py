"""A pass costs what changed: only the documents of new, changed or gone entries are rendered and written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from daemon_helpers import TWO_FILES, Run, source
from lxml import etree, html
from site_helpers import NOW

from feeds import cli, documents, pipeline, render
from feeds.adapters import ADAPTERS
from feeds.config import Config, load
from feeds.store import Store


def listing(*items: tuple[str, str, str, str]) -> str:
    """A listing document of (type, title, date, summary) items."""
    lines = ["Cooperative news", ""]
    for n, (kind, title, day, summary) in enumerate(items, start=1):
        lines += [f"  {n}. {kind}", "", f"    {title}", "", f"    {day}", ""]
        if summary:
            lines += [f"    {summary}", ""]
    return "\n".join(lines)


NEWS = [
    ("News", "Dairy cooperative opens a cold store", "10 January 2022", "Farmers share a new cooling room."),
    ("News", "Credit union reaches a thousand members", "12 January 2022", ""),
]
PUBLICATIONS = [("Publication", "A guide to savings groups", "17 December 2021", "How groups keep their books.")]

BODY = """
[[categories]]
slug = "news"
title = "News"
types = ["News"]

[[categories]]
slug = "publications"
title = "Publications"
types = ["Publication"]

[[sources]]
name = "africa"
adapter = "listing"
location = "africa.txt"

[[sources]]
name = "pubs"
adapter = "listing"
location = "pubs.txt"
"""


def rendered(report: pipeline.BuildReport) -> set[str]:
    """The files a pass rendered (written or found equal), entry pages aside."""
    return {f.path for f in report.files if not f.path.startswith("entries/")}


def test_a_changed_item_renders_only_the_documents_it_is_in(make_config: Callable[..., Config]) -> None:
    config = make_config(BODY, {"africa.txt": listing(*NEWS), "pubs.txt": listing(*PUBLICATIONS)})
    first = pipeline.build(config, NOW)
    assert {"news.atom", "publications.atom", "all.atom", "index.html"} <= rendered(first)

    edited = [NEWS[0], (*NEWS[1][:3], "A summary added later.")]
    (config.path.parent / "africa.txt").write_text(listing(*edited), encoding="utf-8")
    report = pipeline.build(config, NOW + timedelta(hours=1))
    feeds = {"news.atom", "news.rss", "news.json", "news.html", "all.atom", "all.rss", "all.json", "all.html"}
    assert rendered(report) == feeds | {"index.html", "feeds.opml"}
    pages = [f for f in report.files if f.path.startswith("entries/")]
    assert [p.path for p in pages] == ["entries/africa/2022-01-12-credit-union-reaches-a-thousand-members.html"]
    news = next(f for f in report.files if f.path == "news.atom")
    assert (news.new, news.updated, news.written) == (0, 1, True)
    assert not any(f.written for f in report.files if f.path in ("index.html", "feeds.opml"))

    parsed = feedparser.parse((config.site.output / "news.atom").read_bytes())
    assert parsed.bozo == 0
    assert [e.get("summary", "") for e in parsed.entries] == ["A summary added later.", NEWS[0][3]]

    # A pass with nothing new renders nothing at all.
    assert pipeline.build(config, NOW + timedelta(hours=2)).files == []


def test_an_item_that_becomes_one_entry_with_another_leaves_the_feeds(make_config: Callable[..., Config]) -> None:
    """A page published first and the listing item announcing it later: one entry, the id published first."""
    page = """Spotlight Interviews with Co-operators

Sung Ho Kim, International Cooperation Department, KFCC

A conversation about credit cooperatives.

Article | 28 October 2021

What does your department do?

It links our cooperatives with partners abroad.
"""
    body = BODY.replace('location = "pubs.txt"', 'location = "pages/*.txt"').replace('"pubs"', '"pages"')
    body = body.replace('adapter = "listing"\nlocation = "pages', 'adapter = "interview"\nlocation = "pages')
    config = make_config(body, {"africa.txt": listing(*NEWS), "pages/kim.txt": page})
    pipeline.build(config, NOW)
    before = feedparser.parse((config.site.output / "all.atom").read_bytes())
    kim = [e for e in before.entries if e.title.startswith("Sung Ho Kim")]
    assert len(kim) == 1

    announced = (*NEWS, ("Spotlight Interviews with Co-operators", kim[0].title, "28 October 2021", "A note."))
    (config.path.parent / "africa.txt").write_text(listing(*announced), encoding="utf-8")
    pipeline.build(config, NOW + timedelta(hours=1))
    after = feedparser.parse((config.site.output / "all.atom").read_bytes())
    assert after.bozo == 0
    ids = [e.id for e in after.entries]
    assert len(ids) == len(set(ids)) == 3
    assert [e.id for e in after.entries if e.title.startswith("Sung Ho Kim")] == [kim[0].id]


def test_a_category_removed_from_the_config_leaves_output(make_config: Callable[..., Config]) -> None:
    config = make_config(BODY, {"africa.txt": listing(*NEWS), "pubs.txt": listing(*PUBLICATIONS)})
    pipeline.build(config, NOW)
    out = config.site.output
    assert (out / "publications.atom").exists()

    text = config.path.read_text(encoding="utf-8")
    config.path.write_text(text.replace('slug = "publications"', 'slug = "reports"'), encoding="utf-8")
    report = pipeline.build(load(config.path, ADAPTERS), NOW + timedelta(hours=1))
    assert not report.failed
    for name in ("publications.atom", "publications.atom.gz", "publications.rss", "publications.json"):
        assert not (out / name).exists(), name
    assert (out / "reports.atom").exists()
    index = html.fromstring((out / "index.html").read_bytes())
    assert not [h for h in index.xpath("//a/@href") if "publications" in h]
    opml = etree.fromstring((out / "feeds.opml").read_bytes())
    assert "https://feeds.example.org/reports.atom" in opml.xpath("//outline/@xmlUrl")
    assert not [u for u in opml.xpath("//outline/@xmlUrl") if "publications" in u]
    assert cli.main(["validate", "--config", str(config.path)]) == 0
    # Done with: the next pass has nothing to do.
    with pipeline.open_store(config) as store:
        assert not store.has_work()
    assert pipeline.build(load(config.path, ADAPTERS), NOW + timedelta(hours=2)).files == []


def test_an_entry_page_no_longer_needed_is_removed(make_config: Callable[..., Config], tmp_path: Path) -> None:
    """An item that gains a permalink of its own needs our page no more."""

    def feed(link: str) -> str:
        item = f"<title>Harvest report</title><guid isPermaLink='false'>harvest-1</guid>{link}"
        return (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>C</title><link>https://coop.example.org/</link>'
            f"<description>d</description><item>{item}<pubDate>Tue, 02 Nov 2021 07:30:00 +0000</pubDate>"
            "</item></channel></rss>"
        )

    body = '\n[[sources]]\nname = "coop"\nadapter = "feed"\nlocation = "coop.xml"\n'
    config = make_config(body, {"coop.xml": feed("")})
    pipeline.build(config, NOW)
    pages = list((config.site.output / "entries").rglob("*.html"))
    assert len(pages) == 1

    (tmp_path / "coop.xml").write_text(feed("<link>https://coop.example.org/harvest</link>"), encoding="utf-8")
    pipeline.build(config, NOW + timedelta(hours=1))
    assert not pages[0].exists()
    with pipeline.open_store(config) as store:
        assert not store.has_work()
    entry = feedparser.parse((config.site.output / "all.atom").read_bytes()).entries[0]
    assert entry.link == "https://coop.example.org/harvest"


def test_after_an_upgrade_feeds_the_configuration_no_longer_makes_are_removed(
    make_config: Callable[..., Config],
) -> None:
    """A state written by an earlier release: its settings unknown, its feeds recorded as written."""
    config = make_config(BODY, {"africa.txt": listing(*NEWS), "pubs.txt": listing(*PUBLICATIONS)})
    pipeline.build(config, NOW)
    out = config.site.output
    for ext in ("atom", "rss", "json", "html"):  # a feed an earlier release made of a tag
        (out / f"podcast.{ext}").write_text("old", encoding="utf-8")
    with pipeline.open_store(config) as store:
        store.done([], ["podcast.atom"], NOW)
        store.put_setting(documents.SETTINGS, "")
    report = pipeline.build(config, NOW + timedelta(hours=1))
    assert not report.failed
    assert not [p.name for p in out.iterdir() if p.name.startswith("podcast.")]
    assert (out / "news.atom").exists() and (out / "publications.atom").exists()


def test_an_entry_that_cannot_be_rendered_is_left_out_and_the_rest_published(
    make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """feedgen refusing one entry (cleaning should leave it nothing to refuse) costs that entry alone."""
    build_one = render._build

    def refusing(item: Any, base_url: str) -> Any:
        if item.title.startswith("Credit union"):
            raise ValueError("refused by the renderer")
        return build_one(item, base_url)

    monkeypatch.setattr(render, "_build", refusing)
    config = make_config(BODY, {"africa.txt": listing(*NEWS), "pubs.txt": listing(*PUBLICATIONS)})
    report = pipeline.build(config, NOW)
    titles = [e.title for e in feedparser.parse((config.site.output / "all.atom").read_bytes()).entries]
    assert titles == [NEWS[0][1], PUBLICATIONS[0][1]]
    assert "refused by the renderer" in caplog.text
    assert next(f for f in report.files if f.path == "all.json").entries == 2
    assert cli.main(["validate", "--config", str(config.path)]) == 0


def test_nodes_with_their_own_output_and_state_share_the_settings_fingerprint(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    # Nodes sharing a store each write their own output/ and state/; a fingerprint of those would make every
    # publish of one node republish every item after the other's.
    config = make_config(BODY, {"africa.txt": listing(*NEWS), "pubs.txt": listing(*PUBLICATIONS)})
    other = replace(config, site=replace(config.site, output=tmp_path / "b" / "output", state=tmp_path / "b" / "state"))
    assert documents.settings_fingerprint(other) == documents.settings_fingerprint(config)
    retitled = replace(config, site=replace(config.site, title="Another title"))
    assert documents.settings_fingerprint(retitled) != documents.settings_fingerprint(config)


def test_a_daemons_poll_reads_and_writes_its_own_sources_state_only(
    start_daemon: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    others = "".join(source(f"pubs-{n}", "pubs.txt", "every 1h") for n in range(30))
    run = start_daemon(source("news", "news.txt", "every 1h") + others, TWO_FILES)
    calls: dict[str, int] = {}
    for name in ("source", "sources", "put_source"):
        method = getattr(Store, name)

        def counted(self: Store, *args: Any, _name: str = name, _method: Any = method) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _method(self, *args)

        monkeypatch.setattr(Store, name, counted)
    run.append_news()
    run.daemon._poll("news")
    assert "Fishers" in (run.root / "output" / "news.atom").read_text(encoding="utf-8")
    # With 31 sources, not a read or a write per source: a poll's cost follows what it changed.
    assert calls.get("sources", 0) == 0, calls
    assert calls["source"] <= 6 and calls["put_source"] <= 2, calls
