"""The whole pipeline: sources in, every produced file read back, stable bytes, moving `updated`."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from lxml import etree, html
from site_helpers import DATA, NOW

from feeds import cli, documents, pages, pipeline, publish
from feeds.config import Config
from feeds.model import Entry

LISTING = """Cooperative news

  1. News

    Dairy cooperative opens a cold store

    10 January 2022

    Farmers share a new cooling room.

  2. Publication

    A guide to savings groups

    17 December 2021

  3. Spotlight Interviews with Co-operators

    Sung Ho Kim, International Cooperation Department, KFCC

    28 October 2021

    A short note announcing the interview.
"""

INTERVIEW = """Spotlight Interviews with Co-operators

Sung Ho Kim, International Cooperation Department, KFCC

A conversation about credit cooperatives.

Article | 28 October 2021

What does your department do?

It links our cooperatives with partners abroad.

What comes next?

  •  More exchanges
  •  More training
"""

BODY = """
[[categories]]
slug = "news"
title = "News"
description = "News items."
types = ["News"]

[[categories]]
slug = "interviews"
title = "Interviews"
types = ["Spotlight Interviews with Co-operators"]

[[sources]]
name = "africa"
adapter = "listing"
location = "listing.txt"

[[sources]]
name = "pages"
adapter = "interview"
location = "pages/*.txt"
"""

EXPECTED_ALL = [
    "Dairy cooperative opens a cold store",
    "A guide to savings groups",
    "Sung Ho Kim, International Cooperation Department, KFCC",
]
FEEDS = ("all", "news", "interviews", "publication")


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(BODY, {"listing.txt": LISTING, "pages/kim.txt": INTERVIEW})


def atom(config: Config, slug: str) -> feedparser.FeedParserDict:
    parsed = feedparser.parse((config.site.output / f"{slug}.atom").read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def test_every_file_reads_back(config: Config) -> None:
    report = pipeline.build(config, NOW)
    assert not report.failed
    out = config.site.output
    base = config.site.base_url
    for slug in FEEDS:
        a = atom(config, slug)
        r = feedparser.parse((out / f"{slug}.rss").read_bytes())
        assert r.bozo == 0, r.get("bozo_exception")
        assert a.version == "atom10" and r.version == "rss20"
        assert [e.id for e in a.entries] == [e.id for e in r.entries]
        assert [e.title for e in a.entries] == [e.title for e in r.entries]
        assert [e.link for e in a.entries] == [e.link for e in r.entries]
        assert [e.published_parsed for e in a.entries] == [e.published_parsed for e in r.entries]
        assert all(e.link.startswith(base) for e in a.entries)  # local pages: our own entry pages
        self_links = [link.href for link in a.feed.links if link.rel == "self"]
        assert self_links == [f"{base}{slug}.atom"]
        assert a.feed.updated_parsed == max(e.updated_parsed for e in a.entries)
        etree.fromstring((out / f"{slug}.atom").read_bytes())
        doc = json.loads((out / f"{slug}.json").read_bytes())
        assert doc["version"] == "https://jsonfeed.org/version/1.1"
        assert doc["title"] and doc["feed_url"] == f"{base}{slug}.json"
        assert [item["id"] for item in doc["items"]] == [e.id for e in a.entries]
        assert all(item.get("content_html") or item.get("content_text") for item in doc["items"])
        for ext in ("atom", "rss", "json"):
            assert gzip.decompress((out / f"{slug}.{ext}.gz").read_bytes()) == (out / f"{slug}.{ext}").read_bytes()

    everything = atom(config, "all")
    assert [e.title for e in everything.entries] == EXPECTED_ALL
    # The listing item and the interview page are one entry: the page's content, the listing's id.
    kim = everything.entries[2]
    assert (
        kim.id == "tag:feeds.example.org,2026:africa:2021-10-28/sung-ho-kim-international-cooperation-department-kfcc"
    )
    assert "<h3>What does your department do?</h3>" in kim.content[0].value
    assert "<li>More training</li>" in kim.content[0].value
    assert kim.published == "2021-10-28T00:00:00+02:00"
    assert sorted(t.term for t in kim.tags) == ["interviews"]
    assert [e.title for e in atom(config, "news").entries] == ["Dairy cooperative opens a cold store"]
    # "Publication" is claimed by no category: it gets one of its own, derived from the label.
    assert [e.title for e in atom(config, "publication").entries] == ["A guide to savings groups"]

    page = html.fromstring((out / kim.link[len(config.site.base_url) :]).read_bytes())
    assert page.findtext(".//h1") == kim.title
    index = html.fromstring((out / "index.html").read_bytes())
    alternates = index.xpath('//link[@rel="alternate"]/@href')
    assert sorted(alternates) == sorted(f"{base}{slug}.{ext}" for slug in FEEDS for ext in ("atom", "rss", "json"))
    opml = etree.fromstring((out / "feeds.opml").read_bytes())
    assert sorted(opml.xpath("//outline/@xmlUrl")) == sorted(f"{base}{slug}.atom" for slug in FEEDS)


def test_entry_pages_lead_back_to_their_category_show_their_type_and_share_its_style(config: Config) -> None:
    assert not pipeline.build(config, NOW).failed
    out, base = config.site.output, config.site.base_url
    category = html.fromstring((out / "interviews.html").read_bytes())
    (link,) = category.xpath("//ol[@class='entries']/li/h2/a/@href")
    assert link.startswith(base + "entries/")
    page = html.fromstring((out / link[len(base) :]).read_bytes())
    (back,) = page.xpath("/html/body/p/a")
    assert back.get("href") == base + "interviews.html"
    assert (out / "interviews.html").exists() and back.text == "← Interviews"
    assert page.findtext(".//p[@class='meta']/span[@class='type']") == "Spotlight Interviews with Co-operators"
    assert page.xpath("/html/head/style/text()") == category.xpath("/html/head/style/text()") != []
    # A page of a label no configured category takes leads to the category derived from that label.
    guide = html.fromstring((out / "publication.html").read_bytes())
    (link,) = guide.xpath("//ol[@class='entries']/li/h2/a/@href")
    page = html.fromstring((out / link[len(base) :]).read_bytes())
    assert page.xpath("/html/body/p/a/@href") == [base + "publication.html"]
    assert page.findtext(".//p[@class='meta']/span[@class='type']") == "Publication"


def test_category_page_lists_entries_as_written_escaped() -> None:
    entries = [
        pages.PageEntry(
            title='Tools & "rules" <for> groups',
            link='https://example.org/a?x=1&y="2"',
            published_iso="2022-01-10T00:00:00+00:00",
            published_text="10 January 2022",
            summary="Less < more & then some",
        ),
        pages.PageEntry(
            title="No summary",
            link="https://example.org/b",
            published_iso="2021-12-17T00:00:00+00:00",
            published_text="17 December 2021",
            summary="",
        ),
    ]
    feed = pages.FeedLink(slug="news", title="News <&>", description="", entries=2)
    page = html.fromstring(
        pages.category_html(
            site_title="Site",
            base_url="https://feeds.example.org/",
            language="en",
            feed=feed,
            items=[pages.entry_item(e) for e in entries],
        )
    )
    assert page.findtext(".//h1") == "News <&>"
    items = page.findall(".//ol[@class='entries']/li")
    assert [(li.find("h2/a").get("href"), li.findtext("h2/a")) for li in items] == [(e.link, e.title) for e in entries]
    assert [li.find("p/time").get("datetime") for li in items] == [e.published_iso for e in entries]
    assert [li.findtext("p/time") for li in items] == [e.published_text for e in entries]
    assert [[p.text for p in li.findall("p")[1:]] for li in items] == [["Less < more & then some"], []]
    empty = html.fromstring(
        pages.category_html(
            site_title="Site", base_url="https://feeds.example.org/", language="en", feed=feed, items=[]
        )
    )
    assert empty.find(".//ol") is None
    assert "No entries yet." in empty.text_content()


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_rebuild_rewrites_nothing(config: Config) -> None:
    pipeline.build(config, NOW)
    before = snapshot(config.site.output)
    os.utime(config.path.parent / "listing.txt")  # touched, not changed
    report = pipeline.build(config, NOW + timedelta(hours=3))
    assert report.written == []
    assert snapshot(config.site.output) == before
    # Even when the sources must be parsed again (a changed config), equal bytes are not rewritten.
    with pipeline.open_store(config) as store:
        store.put_setting(documents.SETTINGS, "stale")
    pipeline.build(config, NOW + timedelta(hours=4))
    assert snapshot(config.site.output) == before


def test_a_pass_of_local_files_opens_no_http_client(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    # Making an HTTP client loads the CA bundle, which costs more than parsing a small source.
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an HTTP client was made for local files")

    monkeypatch.setattr(httpx, "Client", refuse)
    report = pipeline.build(config, NOW)
    assert not report.failed
    assert (config.site.output / "all.atom").exists()


def test_new_directories_appear_whole_and_a_name_written_twice_keeps_the_last(tmp_path: Path) -> None:
    writes = [
        publish.Write("entries/a/1.html", b"first", gzip=False),
        publish.Write("entries/a/1.html", b"second", gzip=False),
        publish.Write("entries/a/deeper/2.html", b"two", gzip=False),
        publish.Write("archive/x/1.atom", b"<feed/>"),
    ]
    written = publish.write_files(tmp_path, writes)
    assert written == {"entries/a/1.html", "entries/a/deeper/2.html", "archive/x/1.atom"}
    assert (tmp_path / "entries/a/1.html").read_bytes() == b"second"
    assert (tmp_path / "entries/a/deeper/2.html").read_bytes() == b"two"
    assert gzip.decompress((tmp_path / "archive/x/1.atom.gz").read_bytes()) == b"<feed/>"
    assert (tmp_path / "entries/a").stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no hidden copy left behind


def page_of(entry_id: str) -> str:
    return documents.entry_page_path(Entry(id=entry_id, title="t", link="", published=NOW, updated=NOW, source="s"))


def test_every_entry_without_a_link_has_a_page_of_its_own() -> None:
    # A listing item's page keeps the path it always had.
    listed = "tag:feeds.example.org,2026:coop-news:2022-01-10/a-title-of-the-item"
    assert page_of(listed) == "entries/coop-news/2022-01-10-a-title-of-the-item.html"
    # The same guid from two feed sources, and keys that slug alike in one source, are pages apart.
    same_guid = [page_of(f"tag:feeds.example.org,2026:{source}:guid:item-6") for source in ("rss", "http-rss")]
    alike = [page_of(f"tag:feeds.example.org,2026:rss:guid:{key}") for key in ("Item 6", "item_6", "ITEM-6")]
    pages = [*same_guid, *alike]
    assert len(set(pages)) == len(pages), pages
    assert same_guid == ["entries/rss/guid-item-6.html", "entries/http-rss/guid-item-6.html"]
    long_key = page_of("tag:feeds.example.org,2026:rss:" + "x" * 300)
    assert len(long_key.rpartition("/")[2]) <= 125


def test_editing_a_summary_moves_updated_and_keeps_the_id(config: Config) -> None:
    pipeline.build(config, NOW)
    first = atom(config, "all")
    listing = config.path.parent / "listing.txt"
    listing.write_text(LISTING.replace("Farmers share a new cooling room.", "Farmers share two cooling rooms."))
    later = NOW + timedelta(days=2)
    report = pipeline.build(config, later)
    news = next(f for f in report.files if f.path == "news.atom")
    assert (news.new, news.updated, news.written) == (0, 1, True)
    second = atom(config, "all")
    assert [e.id for e in second.entries] == [e.id for e in first.entries]
    edited = second.entries[0]
    assert edited.summary == "Farmers share two cooling rooms."
    assert edited.updated_parsed == later.utctimetuple()
    assert edited.published_parsed == first.entries[0].published_parsed
    assert second.feed.updated_parsed == later.utctimetuple()
    assert second.entries[1].updated_parsed == first.entries[1].updated_parsed
    # Untouched feeds keep their bytes.
    assert atom(config, "interviews").feed.updated_parsed == first.entries[2].updated_parsed


def test_entries_that_fall_off_the_listing_stay(config: Config) -> None:
    pipeline.build(config, NOW)
    listing = config.path.parent / "listing.txt"
    listing.write_text(LISTING.split("  2. Publication")[0])
    pipeline.build(config, NOW + timedelta(days=1))
    assert [e.title for e in atom(config, "all").entries] == EXPECTED_ALL


def test_a_failing_source_keeps_its_entries_and_the_others_publish(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["build", "--config", str(config.path)]) == 0
    (config.path.parent / "listing.txt").unlink()
    (config.path.parent / "pages" / "kim.txt").write_text(INTERVIEW.replace("Art", "Spotlight Art"))
    assert cli.main(["build", "--config", str(config.path)]) == 1
    out = capsys.readouterr().out
    assert f"error: africa: {config.path.parent / 'listing.txt'}: no such file (check sources[0].location)" in out
    assert "source pages: read, 1 entries" in out
    assert [e.title for e in atom(config, "all").entries] == EXPECTED_ALL


def test_half_readable_listing_publishes_what_it_can(
    make_config: Callable[..., Config], capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(
        '[[sources]]\nname = "bad"\nadapter = "listing"\nlocation = "bad.txt"\n', {"bad.txt": DATA / "listing-bad.txt"}
    )
    assert cli.main(["build", "--config", str(config.path)]) == 1
    out = capsys.readouterr().out
    assert "error: bad line " in out
    assert len(atom(config, "all").entries) >= 1


def test_cli_build_prints_per_feed(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "news.atom: 1 entries, 1 new, 0 updated, written" in out
    assert "all.rss: 3 entries, 3 new, 0 updated, written" in out
    assert cli.main(["build", "--config", str(config.path)]) == 0
    assert "nothing changed" in capsys.readouterr().out
    assert cli.main(["check", "--config", str(config.path)]) == 0
    assert "source africa: ok, 3 entries" in capsys.readouterr().out


def test_cli_validate(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", "--config", str(config.path)]) == 0
    assert cli.main(["validate", "--config", str(config.path)]) == 0
    assert "0 problems" in capsys.readouterr().out
    news = config.site.output / "news.atom"
    news.write_bytes(
        news.read_bytes().replace(b"<updated>", b"<published>", 1).replace(b"</updated>", b"</published>", 1)
    )
    assert cli.main(["validate", "--config", str(config.path)]) == 1
    out = capsys.readouterr().out
    assert "news.atom:2: feed has no atom:updated" in out
    assert "news.atom.gz does not hold the same bytes" in out
    assert "2 problems" in out


@pytest.mark.parametrize("command", ["build", "check", "run", "serve", "status", "reload", "validate"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: feeds {command}" in text and "--config PATH" in text
    assert command in README, f"README does not document `feeds {command}`"


README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
