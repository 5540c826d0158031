"""validate_output: a real build passes, and each kind of damage is reported with its file, line and text."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from site_helpers import NOW

from feeds import pipeline
from feeds.config import Config
from feeds.validate import Problem, is_rfc3339, is_web_url, rfc822_problem, validate_output

BASE = "https://feeds.example.org/"

LISTING = """Cooperative news

  1. News

    Dairy cooperative opens a cold store

    10 January 2022

    Farmers share a new cooling room.

  2. Publication

    A guide to savings groups

    17 December 2021
"""

BODY = """
[[categories]]
slug = "news"
title = "News"
description = "News items."
types = ["News"]

[[sources]]
name = "africa"
adapter = "listing"
location = "listing.txt"
"""

DAIRY = "tag:feeds.example.org,2026:africa:2022-01-10/dairy-cooperative-opens-a-cold-store"
GUIDE = "tag:feeds.example.org,2026:africa:2021-12-17/a-guide-to-savings-groups"
DAIRY_TITLE = "Dairy cooperative opens a cold store"
DAIRY_PAGE = f"{BASE}entries/africa/2022-01-10-dairy-cooperative-opens-a-cold-store.html"


@dataclass(frozen=True)
class Site:
    out: Path  # a built output directory in a temporary directory, free to damage
    ids: set[str]

    def text(self, name: str) -> str:
        return (self.out / name).read_text(encoding="utf-8")

    def edit(self, name: str, old: str, new: str) -> None:
        """Replace the first `old` in a file."""
        text = self.text(name)
        assert old in text, f"{old!r} not in {name}"
        self.write(name, text.replace(old, new, 1))

    def write(self, name: str, text: str) -> None:
        """Replace a file and its .gz sibling, as the publisher would."""
        data = text.encode("utf-8")
        (self.out / name).write_bytes(data)
        gz = self.out / f"{name}.gz"
        if gz.exists():
            gz.write_bytes(gzip.compress(data))

    def remove(self, name: str) -> None:
        (self.out / name).unlink()
        (self.out / f"{name}.gz").unlink(missing_ok=True)

    def check(self, *, known_ids: set[str] | None = None, base_url: str = BASE) -> list[Problem]:
        return validate_output(self.out, known_ids=self.ids if known_ids is None else known_ids, base_url=base_url)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth occurrence of `needle`."""
    at = -1
    for _ in range(nth):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


@pytest.fixture
def site(make_config: Callable[..., Config]) -> Site:
    """A real build in a temporary directory, free to damage."""
    config = make_config(BODY, {"listing.txt": LISTING})
    report = pipeline.build(config, NOW)
    assert not report.failed
    assert config.site.base_url == BASE
    with pipeline.open_store(config) as store:
        ids = store.entry_ids()
    return Site(out=config.site.output, ids=ids)


def test_a_fresh_build_has_no_problems(site: Site) -> None:
    assert site.ids == {DAIRY, GUIDE}
    assert {"all.atom", "news.rss", "publication.json", "index.html", "news.html", "feeds.opml"} <= {
        p.name for p in site.out.iterdir()
    }
    assert site.check() == []
    assert validate_output(site.out) == []


def test_a_problem_reads_file_line_message() -> None:
    problem = Problem(path="news.atom", line=12, message="entry has no atom:updated")
    assert str(problem) == "news.atom:12: entry has no atom:updated"


def test_not_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert validate_output(missing) == [Problem(path=".", line=0, message=f"{missing}: not a directory")]


# --- XML -----------------------------------------------------------------------------------------


def test_truncated_xml_names_the_parsers_line(site: Site) -> None:
    lines = site.text("news.atom").splitlines(keepends=True)
    site.write("news.atom", "".join(lines[:15]))
    [problem] = site.check()
    assert (problem.path, problem.line) == ("news.atom", 16)  # the end of the data
    assert problem.message.startswith("not well-formed XML: ")


def test_a_document_type_declaration_is_reported_and_its_entities_stay_unexpanded(site: Site) -> None:
    secret = site.out.parent / "secret.txt"
    secret.write_text("do not read me", encoding="utf-8")
    site.edit(
        "news.rss",
        "<rss ",
        f'<!DOCTYPE rss [<!ENTITY leak SYSTEM "{secret.as_uri()}">]>\n<rss ',
    )
    site.edit("news.rss", "<title>Dairy cooperative opens a cold store</title>", "<title>&leak;</title>")
    problems = site.check()
    assert problems[0] == Problem(
        path="news.rss", line=1, message="has a document type declaration (feeds need none, and none is loaded)"
    )
    assert not any("do not read me" in p.message for p in problems)


# --- Atom ----------------------------------------------------------------------------------------


def test_an_entry_without_updated(site: Site) -> None:
    text = site.text("news.atom")
    title = "    <title>Dairy cooperative opens a cold store</title>\n"
    site.edit("news.atom", title + "    <updated>2022-01-10T00:00:00+01:00</updated>\n", title)
    assert site.check() == [
        Problem(path="news.atom", line=line_of(text, "<entry>"), message="entry has no atom:updated")
    ]


def test_a_feed_without_updated_or_id(site: Site) -> None:
    text = site.text("news.atom")
    site.edit("news.atom", "  <updated>2022-01-10T00:00:00+01:00</updated>\n", "")
    site.edit("news.atom", f"  <id>{BASE}news.atom</id>\n", "")
    assert site.check() == [
        Problem(path="news.atom", line=line_of(text, "<feed"), message="feed has no atom:id"),
        Problem(path="news.atom", line=line_of(text, "<feed"), message="feed has no atom:updated"),
    ]


def test_a_duplicate_entry_id(site: Site) -> None:
    text = site.text("all.atom")
    site.edit("all.atom", f"<id>{GUIDE}</id>", f"<id>{DAIRY}</id>")
    assert site.check() == [
        Problem(
            path="all.atom",
            line=line_of(text, f"<id>{GUIDE}</id>"),
            message=f'duplicate entry id "{DAIRY}" (first on line {line_of(text, f"<id>{DAIRY}</id>")})',
        )
    ]


def test_a_relative_entry_link(site: Site) -> None:
    text = site.text("news.atom")
    site.edit("news.atom", f'href="{DAIRY_PAGE}"', 'href="/entries/dairy.html"')
    assert site.check() == [
        Problem(
            path="news.atom",
            line=line_of(text, f'href="{DAIRY_PAGE}"'),
            message='rel="alternate" link "/entries/dairy.html" is not an absolute http(s) URL',
        )
    ]


def test_an_entry_link_to_a_missing_page_of_ours(site: Site) -> None:
    site.remove(DAIRY_PAGE.removeprefix(BASE))
    missing = DAIRY_PAGE.removeprefix(BASE)
    expected = []
    for name, what, needle in (
        ("all.atom", 'rel="alternate" link', DAIRY_PAGE),
        ("all.json", "url", DAIRY_PAGE),
        ("all.rss", "item <link>", DAIRY_PAGE),
        ("news.atom", 'rel="alternate" link', DAIRY_PAGE),
        ("news.json", "url", DAIRY_PAGE),
        ("news.rss", "item <link>", DAIRY_PAGE),
    ):
        line = line_of(site.text(name), needle)
        expected.append(Problem(path=name, line=line, message=f'{what} "{DAIRY_PAGE}" names a missing file: {missing}'))
    assert site.check() == expected


def test_a_self_link_that_is_not_the_files_url(site: Site) -> None:
    text = site.text("news.atom")
    site.edit("news.atom", f'href="{BASE}news.atom" rel="self"', f'href="{BASE}other.atom" rel="self"')
    assert site.check() == [
        Problem(
            path="news.atom",
            line=line_of(text, 'rel="self"'),
            message=f'rel="self" link "{BASE}other.atom" is not this file\'s URL "{BASE}news.atom"',
        )
    ]


def test_another_base_url_moves_every_self_link(site: Site) -> None:
    problems = site.check(base_url="https://elsewhere.example/")
    text = site.text("news.json")
    assert (
        Problem(
            path="news.json",
            line=line_of(text, '"feed_url"'),
            message=f'feed_url "{BASE}news.json" is not this file\'s URL "https://elsewhere.example/news.json"',
        )
        in problems
    )
    assert {p.path for p in problems} == {f"{slug}.{ext}" for slug in ("all", "news", "publication") for ext in
                                         ("atom", "rss", "json")}  # fmt: skip


def test_no_author_anywhere(site: Site) -> None:
    site.edit("all.atom", "  <author>\n    <name>Test Unit</name>\n  </author>\n", "")
    text = site.text("all.atom")
    assert site.check() == [
        Problem(
            path="all.atom", line=line_of(text, "<entry>", n), message="entry has no atom:author and the feed has none"
        )
        for n in (1, 2)
    ]


def test_an_empty_html_content_and_an_out_of_line_one_without_summary(site: Site) -> None:
    text = site.text("news.atom")
    content = '<content type="html">&lt;p&gt;Farmers share a new cooling room.&lt;/p&gt;</content>'
    site.edit("news.atom", content, '<content type="html"> </content>')
    assert site.check() == [
        Problem(path="news.atom", line=line_of(text, "<content"), message='atom:content type="html" is empty')
    ]
    site.edit("news.atom", '<content type="html"> </content>', f'<content type="text/html" src="{DAIRY_PAGE}"/>')
    site.edit("news.atom", "<summary>Farmers share a new cooling room.</summary>", "")
    assert site.check() == [
        Problem(
            path="news.atom",
            line=line_of(text, "<content"),
            message="entry has out-of-line atom:content but no atom:summary",
        )
    ]


def test_two_alternate_links_of_one_type(site: Site) -> None:
    text = site.text("news.atom")
    alternate = f'  <link href="{BASE}news.html" rel="alternate" type="text/html"/>\n'
    site.edit("news.atom", alternate, alternate * 2)
    assert site.check() == [
        Problem(
            path="news.atom",
            line=line_of(text, alternate) + 1,
            message='more than one rel="alternate" link with type "text/html"',
        )
    ]


def test_an_id_that_is_no_iri(site: Site) -> None:
    text = site.text("news.atom")
    site.edit("news.atom", f"<id>{DAIRY}</id>", "<id>dairy cooperative</id>")
    problems = site.check()
    assert problems == [
        Problem(
            path="news.atom",
            line=line_of(text, f"<id>{DAIRY}</id>"),
            message='entry "dairy cooperative": id not in the store',
        ),
        Problem(
            path="news.atom",
            line=line_of(text, f"<id>{DAIRY}</id>"),
            message='entry id "dairy cooperative" is not an absolute IRI',
        ),
    ]


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "old", "new", "needle", "message"),
    [
        (
            "news.atom",
            "<published>2022-01-10T00:00:00+01:00</published>",
            "<published>2022-01-10 00:00:00</published>",
            "<published>",
            'atom:published "2022-01-10 00:00:00" is not an RFC 3339 date-time with an offset',
        ),
        (
            "news.rss",
            "<pubDate>Mon, 10 Jan 2022 00:00:00 +0100</pubDate>",
            "<pubDate>10/01/2022</pubDate>",
            "<pubDate>",
            '<pubDate> "10/01/2022" is not an RFC 822 date',
        ),
        (
            "news.rss",
            "<lastBuildDate>Mon, 10 Jan 2022 00:00:00 +0100</lastBuildDate>",
            "<lastBuildDate>Mon, 10 Jan 2022 00:00:00</lastBuildDate>",
            "<lastBuildDate>",
            '<lastBuildDate> "Mon, 10 Jan 2022 00:00:00" has no time zone',
        ),
        (
            "news.json",
            '"date_modified": "2022-01-10T00:00:00+01:00"',
            '"date_modified": "2022-01-10T00:00:00"',
            '"date_modified"',
            'date_modified "2022-01-10T00:00:00" is not an RFC 3339 date-time with an offset',
        ),
    ],
    ids=["atom-published", "rss-pubDate", "rss-lastBuildDate", "json-date_modified"],
)
def test_a_bad_date(site: Site, name: str, old: str, new: str, needle: str, message: str) -> None:
    text = site.text(name)
    site.edit(name, old, new)
    assert site.check() == [Problem(path=name, line=line_of(text, needle), message=message)]


def test_date_and_url_shapes() -> None:
    assert is_rfc3339("2022-01-10T00:00:00Z")
    assert is_rfc3339("2016-12-31T23:59:60.5+00:00")  # a leap second, a fraction
    assert not is_rfc3339("2022-02-30T00:00:00Z")
    assert not is_rfc3339("2022-01-10t00:00:00z")  # Atom wants upper case
    assert is_rfc3339("2022-01-10t00:00:00z", upper=False)
    assert not is_rfc3339("2022-01-10T00:00:00+25:00")
    assert rfc822_problem("Mon, 10 Jan 2022 00:00:00 GMT") == ""
    assert rfc822_problem("Mon, 10 Jan 2022 25:00:00 +0100") == "is not an RFC 822 date"
    assert is_web_url("https://feeds.example.org/a b") is False
    assert is_web_url("HTTPS://[::1]:8080/x")
    assert not is_web_url("mailto:unit@example.org")
    assert not is_web_url("http:///path")


# --- RSS -----------------------------------------------------------------------------------------


def test_an_rss_item_with_neither_title_nor_description(site: Site) -> None:
    text = site.text("news.rss")
    site.edit("news.rss", "      <title>Dairy cooperative opens a cold store</title>\n", "")
    site.edit("news.rss", "      <description>Farmers share a new cooling room.</description>\n", "")
    assert site.check() == [
        Problem(path="news.rss", line=line_of(text, "<item>"), message="item has neither <title> nor <description>")
    ]


def test_a_relative_rss_link(site: Site) -> None:
    text = site.text("news.rss")
    site.edit("news.rss", f"<link>{DAIRY_PAGE}</link>", "<link>entries/dairy.html</link>")
    assert site.check() == [
        Problem(
            path="news.rss",
            line=line_of(text, f"<link>{DAIRY_PAGE}</link>"),
            message='item <link> "entries/dairy.html" is not an absolute http(s) URL',
        )
    ]


def test_a_guid_without_is_perma_link_is_a_permalink(site: Site) -> None:
    text = site.text("news.rss")
    site.edit("news.rss", '<guid isPermaLink="false">', "<guid>")
    assert site.check() == [
        Problem(
            path="news.rss",
            line=line_of(text, "<guid"),
            message=f'guid "{DAIRY}" is a permalink but not an absolute http(s) URL',
        )
    ]


def test_a_duplicate_guid_and_a_missing_self_link(site: Site) -> None:
    text = site.text("all.rss")
    site.edit("all.rss", f">{GUIDE}</guid>", f">{DAIRY}</guid>")
    site.edit("all.rss", f'  <atom:link href="{BASE}all.rss" rel="self" type="application/rss+xml"/>\n', "")
    assert site.check() == [
        Problem(path="all.rss", line=line_of(text, "<channel>"), message='channel has no atom:link rel="self"'),
        Problem(
            path="all.rss",
            line=line_of(text, f">{GUIDE}</guid>") - 1,
            message=f'duplicate guid "{DAIRY}" (first on line {line_of(text, f">{DAIRY}</guid>") - 1})',
        ),
    ]


def test_an_rss_version_and_a_missing_channel_description(site: Site) -> None:
    text = site.text("news.rss")
    site.edit("news.rss", 'version="2.0"', 'version="0.92"')
    site.edit("news.rss", "    <description>News items.</description>\n", "")
    assert site.check() == [
        Problem(path="news.rss", line=line_of(text, "<rss"), message='rss version is "0.92", not "2.0"'),
        Problem(path="news.rss", line=line_of(text, "<channel>"), message="channel has no <description>"),
    ]


# --- JSON Feed -----------------------------------------------------------------------------------


def test_a_json_item_without_id(site: Site) -> None:
    text = site.text("news.json")
    site.edit("news.json", f'"id": "{DAIRY}", ', "")
    assert site.check() == [
        Problem(path="news.json", line=line_of(text, f'"id": "{DAIRY}"'), message="items[0] has no id")
    ]


def test_json_items_without_content_or_with_a_number_for_id(site: Site) -> None:
    feed = json.loads(site.text("all.json"))
    feed["items"][0].pop("content_html")
    feed["items"][1]["id"] = 7
    site.write("all.json", json.dumps(feed, indent=2))
    text = site.text("all.json")
    assert site.check() == [
        Problem(
            path="all.json",
            line=line_of(text, f'"id": "{DAIRY}"'),
            message="items[0] has neither content_html nor content_text",
        ),
        Problem(path="all.json", line=line_of(text, '"id": 7'), message="items[1] id 7 is not a non-empty string"),
    ]


def test_json_feed_version_and_feed_url(site: Site) -> None:
    text = site.text("news.json")
    site.edit("news.json", "https://jsonfeed.org/version/1.1", "https://jsonfeed.org/version/1")
    site.edit("news.json", f'"feed_url": "{BASE}news.json"', '"feed_url": "news.json"')
    assert site.check() == [
        Problem(
            path="news.json",
            line=line_of(text, '"version"'),
            message='version is "https://jsonfeed.org/version/1", not "https://jsonfeed.org/version/1.1"',
        ),
        Problem(
            path="news.json",
            line=line_of(text, '"feed_url"'),
            message='feed_url "news.json" is not an absolute http(s) URL',
        ),
    ]


def test_json_that_does_not_parse(site: Site) -> None:
    site.edit("news.json", '"items": [', '"items": [,')
    text = site.text("news.json")
    assert site.check() == [
        Problem(path="news.json", line=line_of(text, '"items"'), message="not valid JSON: Expecting value")
    ]


# --- across files --------------------------------------------------------------------------------


def test_a_title_that_differs_between_formats(site: Site) -> None:
    text = site.text("news.json")
    site.edit("news.json", '"title": "Dairy cooperative opens a cold store"', '"title": "Dairy co-op opens"')
    assert site.check() == [
        Problem(
            path="news.json",
            line=line_of(text, f'"id": "{DAIRY}"'),
            message=f'entry "{DAIRY}": title "Dairy co-op opens" here, "{DAIRY_TITLE}" in news.atom',
        )
    ]


def test_an_id_not_in_the_store(site: Site) -> None:
    problems = site.check(known_ids={GUIDE})
    expected = []
    for name in ("all.atom", "all.json", "all.rss", "news.atom", "news.json", "news.rss"):
        needle = {"atom": f"<id>{DAIRY}", "rss": f">{DAIRY}</guid>", "json": f'"id": "{DAIRY}"'}[name.split(".")[1]]
        line = line_of(site.text(name), needle)
        expected.append(Problem(path=name, line=line, message=f'entry "{DAIRY}": id not in the store'))
    assert problems == expected


def test_an_autodiscovery_link_to_a_missing_file(site: Site) -> None:
    index, page = site.text("index.html"), site.text("news.html")
    site.remove("news.json")
    href = f'href="{BASE}news.json"'
    message = f'<link rel="alternate"> "{BASE}news.json" names a missing file: news.json'
    assert site.check() == [
        Problem(path="index.html", line=line_of(index, href), message=message),
        Problem(path="news.html", line=line_of(page, href), message=message),
    ]


def test_a_relative_autodiscovery_link_and_a_missing_opml_target(site: Site) -> None:
    index, opml = site.text("index.html"), site.text("feeds.opml")
    site.edit("index.html", f'href="{BASE}news.rss"', 'href="news.rss"')
    site.remove("publication.html")
    assert site.check() == [
        Problem(
            path="feeds.opml",
            line=line_of(opml, "publication.html"),
            message=f'htmlUrl "{BASE}publication.html" names a missing file: publication.html',
        ),
        Problem(
            path="index.html",
            line=line_of(index, f'href="{BASE}news.rss"'),
            message='<link rel="alternate"> "news.rss" is not an absolute http(s) URL',
        ),
        Problem(
            path="publication.atom",
            line=line_of(site.text("publication.atom"), "publication.html"),
            message=f'rel="alternate" link "{BASE}publication.html" names a missing file: publication.html',
        ),
        Problem(
            path="publication.json",
            line=line_of(site.text("publication.json"), '"home_page_url"'),
            message=f'home_page_url "{BASE}publication.html" names a missing file: publication.html',
        ),
        Problem(
            path="publication.rss",
            line=line_of(site.text("publication.rss"), "<link>"),
            message=f'channel <link> "{BASE}publication.html" names a missing file: publication.html',
        ),
    ]


# --- archives (RFC 5005), written by hand -------------------------------------------------------

ITEM = "tag:feeds.example.org,2026:africa:item-"
NEWS = f"{BASE}news.atom"


def archive_url(n: int) -> str:
    return f"{BASE}archive/news/{n}.atom"


def atom_doc(url: str, items: tuple[int, ...], links: dict[str, str], *, archive: bool) -> str:
    lines = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:fh="http://purl.org/syndication/history/1.0">',
        f"  <id>{NEWS}</id>",
        "  <title>News</title>",
        "  <updated>2022-01-10T00:00:00Z</updated>",
        "  <author><name>Test Unit</name></author>",
        f'  <link rel="self" type="application/atom+xml" href="{url}"/>',
        f'  <link rel="alternate" type="text/html" href="{BASE}news.html"/>',
        *(f'  <link rel="{rel}" href="{href}"/>' for rel, href in links.items()),
        *(["  <fh:archive/>"] if archive else []),
    ]
    for n in items:
        lines += [
            "  <entry>",
            f"    <id>{ITEM}{n}</id>",
            f"    <title>Item {n}</title>",
            f"    <updated>2022-01-0{n}T00:00:00Z</updated>",
            f'    <link rel="alternate" href="https://www.ilo.org/item-{n}"/>',
            "  </entry>",
        ]
    return "\n".join([*lines, "</feed>", ""])


@pytest.fixture
def chain(tmp_path: Path) -> Site:
    """news.atom (5, 4) → archive/news/2.atom (3, 2) → archive/news/1.atom (1)."""
    out = tmp_path / "chain"
    (out / "archive" / "news").mkdir(parents=True)
    (out / "news.html").write_text("<!DOCTYPE html>\n<html><head><title>News</title></head></html>\n", "utf-8")
    (out / "news.atom").write_text(atom_doc(NEWS, (5, 4), {"prev-archive": archive_url(2)}, archive=False), "utf-8")
    links = {"current": NEWS, "next-archive": NEWS, "prev-archive": archive_url(1)}
    (out / "archive/news/2.atom").write_text(atom_doc(archive_url(2), (3, 2), links, archive=True), "utf-8")
    links = {"current": NEWS, "next-archive": archive_url(2)}
    (out / "archive/news/1.atom").write_text(atom_doc(archive_url(1), (1,), links, archive=True), "utf-8")
    return Site(out=out, ids={f"{ITEM}{n}" for n in range(1, 6)})


def test_an_intact_archive_chain(chain: Site) -> None:
    assert chain.check() == []
    assert validate_output(chain.out) == []  # the base comes from the current feed's self link


def test_the_newest_archive_may_leave_out_next_archive(chain: Site) -> None:
    chain.edit("archive/news/2.atom", f'  <link rel="next-archive" href="{NEWS}"/>\n', "")
    assert chain.check() == []


def test_an_archive_chain_with_a_missing_file(chain: Site) -> None:
    text = chain.text("archive/news/2.atom")
    chain.remove("archive/news/1.atom")
    assert chain.check() == [
        Problem(
            path="archive/news/2.atom",
            line=line_of(text, 'rel="prev-archive"'),
            message=f'prev-archive "{archive_url(1)}" names a missing file: archive/news/1.atom',
        )
    ]


def test_an_archive_chain_with_an_entry_twice(chain: Site) -> None:
    text = chain.text("archive/news/2.atom")
    chain.edit("archive/news/1.atom", f"<id>{ITEM}1</id>", f"<id>{ITEM}3</id>")
    assert chain.check() == [
        Problem(
            path="archive/news/1.atom",
            line=line_of(chain.text("archive/news/1.atom"), f"<id>{ITEM}3</id>"),
            message=f'entry "{ITEM}3" is also in archive/news/2.atom:{line_of(text, f"<id>{ITEM}3</id>")}',
        )
    ]


def test_an_archive_chain_with_a_cycle_and_an_orphan(chain: Site) -> None:
    text = chain.text("archive/news/1.atom")
    chain.edit(
        "archive/news/1.atom",
        '  <link rel="next-archive"',
        f'  <link rel="prev-archive" href="{archive_url(2)}"/>\n  <link rel="next-archive"',
    )
    (chain.out / "archive/news/0.atom").write_text(
        atom_doc(archive_url(0), (), {"current": NEWS, "next-archive": archive_url(1)}, archive=True), "utf-8"
    )
    assert chain.check() == [
        Problem(
            path="archive/news/0.atom",
            line=0,
            message="archive not reached by following prev-archive links from news.atom",
        ),
        Problem(
            path="archive/news/1.atom",
            line=line_of(text, '<link rel="next-archive"'),
            message=f'prev-archive "{archive_url(2)}" makes a cycle',
        ),
    ]


def test_archive_links_back_to_the_wrong_documents(chain: Site) -> None:
    text = chain.text("archive/news/1.atom")
    chain.edit(
        "archive/news/1.atom", f'<link rel="current" href="{NEWS}"/>', f'<link rel="current" href="{BASE}all.atom"/>'
    )
    chain.edit(
        "archive/news/1.atom",
        f'<link rel="next-archive" href="{archive_url(2)}"/>',
        f'<link rel="next-archive" href="{NEWS}"/>',
    )
    chain.edit("archive/news/1.atom", "  <fh:archive/>\n", "")
    assert chain.check() == [
        Problem(path="archive/news/1.atom", line=line_of(text, "<feed"), message="archive has no fh:archive element"),
        Problem(
            path="archive/news/1.atom",
            line=line_of(text, 'rel="current"'),
            message=f'rel="current" link "{BASE}all.atom" is not "{NEWS}"',
        ),
        Problem(
            path="archive/news/1.atom",
            line=line_of(text, 'rel="next-archive"'),
            message=f'rel="next-archive" link "{NEWS}" is not "{archive_url(2)}"',
        ),
    ]


def test_an_older_archive_must_link_the_next_newer_one(chain: Site) -> None:
    text = chain.text("archive/news/1.atom")
    chain.edit("archive/news/1.atom", f'  <link rel="next-archive" href="{archive_url(2)}"/>\n', "")
    assert chain.check() == [
        Problem(
            path="archive/news/1.atom",
            line=line_of(text, "<feed"),
            message=f'archive has no rel="next-archive" link (expected "{archive_url(2)}")',
        )
    ]


def test_a_stale_gzip_sibling(site: Site) -> None:
    (site.out / "news.rss").write_bytes(site.text("news.rss").replace("News items.", "Other news.").encode())
    (site.out / "all.json.gz").write_bytes(b"not gzip")
    assert site.check() == [
        Problem(
            path="all.json", line=0, message="all.json.gz does not hold the same bytes (gzip clients get another file)"
        ),
        Problem(
            path="news.rss", line=0, message="news.rss.gz does not hold the same bytes (gzip clients get another file)"
        ),
    ]


def test_an_html_title_is_compared_by_its_text(site: Site) -> None:
    marked_up = '<title type="html">Dairy &lt;b&gt;cooperative&lt;/b&gt; opens a cold store</title>'
    site.edit("news.atom", f"<title>{DAIRY_TITLE}</title>", marked_up)
    assert site.check() == []
    site.edit("news.atom", "&lt;b&gt;cooperative", "&lt;b&gt;co-op")
    message = f'entry "{DAIRY}": title "{DAIRY_TITLE}" here, "Dairy co-op opens a cold store" in news.atom'
    assert site.check() == [
        Problem(path="news.json", line=line_of(site.text("news.json"), f'"id": "{DAIRY}"'), message=message),
        Problem(path="news.rss", line=line_of(site.text("news.rss"), "<guid"), message=message),
    ]


def test_an_archive_that_points_back_at_the_current_feed(chain: Site) -> None:
    text = chain.text("archive/news/1.atom")
    chain.edit(
        "archive/news/1.atom",
        '  <link rel="current"',
        f'  <link rel="prev-archive" href="{NEWS}"/>\n  <link rel="current"',
    )
    assert chain.check() == [
        Problem(
            path="archive/news/1.atom",
            line=line_of(text, '<link rel="current"'),
            message=f'prev-archive "{NEWS}" makes a cycle',
        )
    ]


def test_archives_outside_the_base_or_of_no_current_feed(chain: Site) -> None:
    text = chain.text("news.atom")
    chain.edit(
        "news.atom",
        f'rel="prev-archive" href="{archive_url(2)}"',
        'rel="prev-archive" href="https://mirror.example/2.atom"',
    )
    (chain.out / "archive/events").mkdir()
    (chain.out / "archive/events/1.atom").write_text((chain.out / "archive/news/1.atom").read_text("utf-8"), "utf-8")
    problems = chain.check()
    assert problems[0] == Problem(
        path="archive/events/1.atom",
        line=0,
        message="archive of no current feed (expected archive/<slug>/<n>.atom beside <slug>.atom)",
    )
    assert (
        Problem(
            path="news.atom",
            line=line_of(text, 'rel="prev-archive"'),
            message=f'prev-archive "https://mirror.example/2.atom" is not under the base URL "{BASE}"',
        )
        in problems
    )
    assert {p.message for p in problems if p.path.startswith("archive/news/")} == {
        "archive not reached by following prev-archive links from news.atom"
    }
