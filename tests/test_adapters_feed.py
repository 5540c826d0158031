"""The feed adapter: RSS 0.91, RSS 1.0, RSS 2.0 and Atom sources, filters, and hostile feeds."""

from __future__ import annotations

import contextlib
import json
import tracemalloc
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.adapters import ADAPTERS
from feeds.adapters.feed import ExistingFeed
from feeds.config import SourceConfig, parse_schedule
from feeds.errors import SourceError, SourceWarning
from feeds.fetch import fetch_file
from feeds.model import Document, Entry

DATA = Path(__file__).parent / "data" / "feeds"
EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
# Feeds as they are found: URLs that need escaping, encodings declared wrongly or not at all, items
# without a title, many tags.
SHAPES: dict[str, Any] = json.loads((DATA / "shapes.expected.json").read_text(encoding="utf-8"))
ADAPTER = ExistingFeed()
PREFIX = "tag:feeds.example.org,2026:"
EPISODE_12 = "Episode 12: the bakery that became a cooperative"


def source(options: dict[str, Any] | None = None, name: str = "coop") -> SourceConfig:
    return SourceConfig(
        name=name,
        adapter="feed",
        location="https://feeds.example.org/source.xml",
        time_zone=ZoneInfo("Europe/Zurich"),
        schedule=parse_schedule("every 1h"),
        options=MappingProxyType(options or {}),
        id_prefix=f"{PREFIX}{name}:",
    )


def fixture(name: str, url: str = "") -> Document:
    document = fetch_file("coop", DATA / name)
    known = {**EXPECTED, **SHAPES}.get(name, {})
    return replace(document, url=url or known.get("url", "https://feeds.example.org/" + name))


def parse(doc: Document, options: dict[str, Any] | None = None, name: str = "coop") -> list[Entry]:
    return list(ADAPTER.parse(doc, source(options, name)))


def test_registered() -> None:
    assert isinstance(ADAPTERS["feed"], ExistingFeed)


@pytest.mark.parametrize("name", sorted({*EXPECTED, *SHAPES}))
def test_fixture_feeds(name: str) -> None:
    expected = {**EXPECTED, **SHAPES}[name]
    entries: list[Entry] = []
    warning = ""
    try:
        for entry in ADAPTER.parse(fixture(name), source()):
            entries.append(entry)
    except SourceWarning as exc:  # raised after the last entry: every entry is still read
        warning = str(exc)
    assert warning == expected.get("warning", "")
    got = [
        {
            "id": entry.id,
            "title": entry.title,
            "link": entry.link,
            "published": entry.published.isoformat(),
            "updated": entry.updated.isoformat(),
            "tags": list(entry.tags),
            "authors": [[author.name, author.uri, author.email] for author in entry.authors],
            "contributors": [[author.name, author.uri, author.email] for author in entry.contributors],
            "enclosures": [[enclosure.url, enclosure.length, enclosure.type] for enclosure in entry.enclosures],
            "summary": entry.summary,
            "content_html": entry.content_html,
        }
        for entry in entries
    ]
    assert got == expected["entries"]


def test_all_four_formats_are_covered() -> None:
    import feedparser

    versions = {name: feedparser.parse((DATA / name).read_bytes()).version for name in EXPECTED}
    assert versions == {"rss091.xml": "rss091n", "rss10.rdf": "rss10", "rss20.xml": "rss20", "atom.xml": "atom10"}


def test_ids_are_kept_verbatim() -> None:
    assert [entry.id for entry in parse(fixture("atom.xml"))] == [
        "tag:federation.example.org,2021:news/annual-assembly",
        "urn:uuid:0b6f1b5c-2f7e-4c6a-a4e4-5a1d2c3b4a59",
    ]
    assert [entry.id for entry in parse(fixture("rss10.rdf"))] == [  # rdf:about
        "https://research.example.org/papers/member-voice",
        "https://research.example.org/papers/platform-coops",
    ]


def test_a_guid_that_is_no_uri_is_scoped_to_the_source() -> None:
    # "trailer-2021" is unique only inside its own feed and is not a valid atom:id.
    ids = [entry.id for entry in parse(fixture("rss20.xml"))]
    assert ids[-1] == f"{PREFIX}coop:guid:trailer-2021"


def test_dates_are_aware_and_date_only_values_use_the_source_zone() -> None:
    entries = parse(fixture("rss10.rdf"))
    assert all(entry.published.tzinfo is not None for entry in entries)
    assert entries[1].published.isoformat() == "2021-09-01T00:00:00+02:00"  # dc:date "2021-09-01", Zurich


def test_rss091_items_take_the_channel_date_and_latin1_is_decoded() -> None:
    doc = fixture("rss091.xml")
    assert doc.charset == "windows-1252"
    entries = parse(doc)
    assert {entry.published.isoformat() for entry in entries} == {"2021-11-01T09:00:00+00:00"}
    assert entries[1].title == "Issue 40: réseaux de coopératives"
    assert entries[1].summary.endswith("Lyon & Genève.")


def test_hostile_content_is_sanitized() -> None:
    episode = parse(fixture("rss20.xml"))[0]
    assert "steal" not in episode.content_html
    assert "onclick" not in episode.content_html
    training = parse(fixture("atom.xml"))[1]
    assert "iframe" not in training.content_html and "evil" not in training.content_html
    assembly = parse(fixture("atom.xml"))[0]
    assert "position" not in assembly.content_html


# --- the same entries from several sources -----------------------------------------------------


def test_overlapping_feeds_give_equal_ids_for_the_same_entries() -> None:
    desk_a = parse(fixture("overlap-a.xml"), name="desk-a")
    desk_b = parse(fixture("overlap-b.xml"), name="desk-b")
    shared = {entry.id for entry in desk_a} & {entry.id for entry in desk_b}
    assert shared == {"https://news.example.org/2021/valley-bank", "urn:uuid:2a0c6a4e-64a1-4bb7-9a57-6a0c1f1e5d21"}
    by_id = {entry.id: entry for entry in desk_b}
    for entry in desk_a:
        if entry.id in shared:
            assert (entry.title, entry.link, entry.published) == (
                by_id[entry.id].title,
                by_id[entry.id].link,
                by_id[entry.id].published,
            )
    merged = {entry.id for entry in [*desk_a, *desk_b]}
    assert len(merged) == 4  # 3 + 3 entries, 2 of them the same


# --- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "titles"),
    [
        ({"include": ["bakery"]}, [EPISODE_12]),
        ({"include": ["MUTUALS", "two minutes"]}, ["Episode 11: insurance mutuals explained", "Trailer"]),
        ({"exclude": ["trailer"]}, [EPISODE_12, "Episode 11: insurance mutuals explained"]),
        ({"include": ["bake"]}, []),  # whole words only
        ({"include_categories": ["worker co-ops"]}, [EPISODE_12]),
        ({"exclude_categories": ["Podcast"]}, ["Trailer"]),
        ({"include_categories": ["podcast"], "exclude": ["bakery"]}, ["Episode 11: insurance mutuals explained"]),
    ],
)  # fmt: skip
def test_filters(options: dict[str, Any], titles: list[str]) -> None:
    assert [entry.title for entry in parse(fixture("rss20.xml"), options)] == titles


def test_check_options() -> None:
    assert ADAPTER.check_options({"include": ["coop"], "exclude_categories": []}) == []
    assert ADAPTER.check_options({"includes": ["x"], "exclude": "news", "include_categories": ["ok", ""]}) == [
        ("includes", "unknown option for the feed adapter (known: exclude, exclude_categories, include, "
                     "include_categories)"),
        ("exclude", "must be a list of non-empty strings, such as [\"cooperative\"], got 'news'"),
        ("include_categories", "must be a list of non-empty strings, such as [\"cooperative\"], got ['ok', '']"),
    ]  # fmt: skip
    with pytest.raises(SourceError, match=r"^coop: cannot use the feed adapter: options.exclude must be a list"):
        parse(fixture("rss20.xml"), {"exclude": "news"})


# --- hostile and broken feeds ------------------------------------------------------------------


def test_external_entities_are_not_resolved(tmp_path: Path) -> None:
    entries = parse(fixture("xxe.xml"))
    assert [entry.id for entry in entries] == ["https://xxe.example.org/1"]
    passwd = Path("/etc/passwd").read_text(encoding="utf-8") if Path("/etc/passwd").exists() else "root:x:0:0"
    for entry in entries:
        for text in (entry.title, entry.summary, entry.content_html):
            assert "root:" not in text
            assert passwd.splitlines()[0] not in text

    # The same with a file whose content we know, on a single-line DOCTYPE and as a parameter entity.
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-MARKER-93f1", encoding="utf-8")
    for doctype in (
        f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>',
        f'<!DOCTYPE rss [\n<!ENTITY xxe SYSTEM "{secret.as_uri()}">\n]>',
        f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "{secret.as_uri()}"> %p;]>',
        f'<!DOCTYPE rss SYSTEM "{secret.as_uri()}">',
    ):
        body = (
            f'<?xml version="1.0"?>\n{doctype}\n<rss version="2.0"><channel><title>t</title><item>'
            "<title>a &xxe;</title><guid>https://x.example.org/1</guid><description>&xxe;</description>"
            "<pubDate>Wed, 03 Nov 2021 10:00:00 GMT</pubDate></item></channel></rss>"
        )
        doc = Document(content=body.encode(), url="https://x.example.org/feed", media_type="application/xml")
        for entry in parse(doc):
            assert "SECRET-MARKER" not in f"{entry.title} {entry.summary} {entry.content_html}"


def test_billion_laughs_does_not_expand() -> None:
    tracemalloc.start()
    try:
        entries = parse(fixture("billion-laughs.xml"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # expanded, &lol9; alone would be 3 GB
    assert all("lollol" not in f"{entry.title} {entry.summary}" for entry in entries)


def test_garbage_bytes() -> None:
    doc = Document(content=(DATA / "garbage.bin").read_bytes(), url="https://x.example.org/feed")
    with pytest.raises(SourceError) as caught:
        parse(doc)
    assert (
        str(caught.value) == "coop: https://x.example.org/feed: not a readable feed (not well-formed (invalid token))"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the feed is empty"),
        (b"  \n ", "the feed is empty"),
        (b"<!DOCTYPE html><html><body><p>Not a feed</p></body></html>",
         "not an RSS or Atom feed (no rss, rdf:RDF or feed element)"),
    ],
)  # fmt: skip
def test_unreadable_documents(content: bytes, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        parse(Document(content=content, url="https://x.example.org/feed"))
    assert str(caught.value) == f"coop: https://x.example.org/feed: {message}"


def test_a_valid_feed_without_items_gives_nothing() -> None:
    doc = Document(
        content=b"<rss version='2.0'><channel><title>x</title></channel></rss>", url="https://x.example.org/f"
    )
    assert parse(doc) == []


def test_a_bozo_feed_with_entries_is_read_leniently() -> None:
    body = (
        b"<rss version='2.0'><channel><title>x &nbsp; y</title><item><title>Kept</title>"
        b"<guid>https://x.example.org/1</guid><pubDate>Wed, 03 Nov 2021 10:00:00 GMT</pubDate></item>"
        b"<item><title>Also kept &amp; <unclosed></title><guid>https://x.example.org/2</guid>"
        b"<pubDate>Wed, 03 Nov 2021 10:00:00 GMT</pubDate></item></channel>"
    )
    entries = parse(Document(content=body, url="https://x.example.org/feed"))
    assert [entry.id for entry in entries] == ["https://x.example.org/1", "https://x.example.org/2"]


def test_entries_without_any_date_are_reported_after_the_good_ones() -> None:
    body = (
        b"<rss version='2.0'><channel><title>x</title>"
        b"<item><title>Dated</title><guid>https://x.example.org/1</guid>"
        b"<pubDate>Wed, 03 Nov 2021 10:00:00 GMT</pubDate></item>"
        b"<item><title>Undated</title><guid>https://x.example.org/2</guid></item>"
        b"<item><guid>https://x.example.org/3</guid><pubDate>Wed, 03 Nov 2021 10:00:00 GMT</pubDate></item>"
        b"</channel></rss>"
    )
    got: list[str] = []
    with pytest.raises(SourceError) as caught:
        for entry in ADAPTER.parse(Document(content=body, url="https://x.example.org/feed"), source()):
            got.append(entry.id)
    # Entry 3 has a date and nothing else: valid RSS, kept, and named by its date.
    assert got == ["https://x.example.org/1", "https://x.example.org/3"]
    assert str(caught.value) == (
        "coop: https://x.example.org/feed: entry 2 of 3 cannot be read "
        '(entry 2: "Undated" has no date, and neither has the feed)'
    )


def test_the_document_date_stands_in_for_a_feed_without_dates() -> None:
    body = b"<rss version='0.91'><channel><title>x</title><item><title>Old style</title></item></channel></rss>"
    doc = Document(
        content=body,
        url="https://x.example.org/feed",
        headers=MappingProxyType({"last-modified": "Wed, 03 Nov 2021 10:00:00 GMT"}),
    )
    (entry,) = parse(doc)
    assert entry.published.isoformat() == "2021-11-03T10:00:00+00:00"
    assert entry.id == f"{PREFIX}coop:old-style"  # neither link nor date of its own


def test_a_truncated_feed_names_its_bad_entries_and_the_parser_error() -> None:
    body = b"<rss version='2.0'><channel><title>x</title><item><title>unclosed"
    with pytest.raises(SourceError) as caught:
        parse(Document(content=body, url="https://x.example.org/feed"))
    assert str(caught.value) == (
        "coop: https://x.example.org/feed: entry 1 of 1 cannot be read (entry 1: no title, text or date); "
        "the feed is not well-formed (no element found)"
    )


def test_title_from_text_when_the_item_has_none() -> None:
    body = (
        b"<rss version='2.0'><channel><title>x</title><item><guid>https://x.example.org/1</guid>"
        b"<pubDate>Wed, 03 Nov 2021 10:00:00 GMT</pubDate><description>A short note from the field about a "
        b"cooperative that bought the mill it had worked in for thirty years.</description></item></channel></rss>"
    )
    (entry,) = parse(Document(content=body, url="https://x.example.org/feed"))
    assert entry.title == "A short note from the field about a cooperative that bought the mill it had…"


# --- anything at all ---------------------------------------------------------------------------

items = st.builds(
    "<item><title>{}</title><link>{}</link><guid>{}</guid><pubDate>{}</pubDate><description>{}</description></item>".format,
    st.text(max_size=20),
    st.sampled_from(["https://e.org/a", "/rel", "javascript:alert(1)", "", "http://[::1"]),
    st.sampled_from(["", "abc", "urn:uuid:1", "https://e.org/a", "a b"]),
    st.sampled_from(["Wed, 03 Nov 2021 10:00:00 GMT", "2021-09-01", "", "never"]),
    st.text(max_size=30),
)  # fmt: skip
feeds = st.builds(
    "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{}</channel></rss>".format,
    st.lists(items, max_size=5).map("".join),
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), feeds.map(lambda text: text.encode("utf-8", "surrogatepass"))))
def test_arbitrary_input_raises_only_source_errors(content: bytes) -> None:
    entries: list[Entry] = []
    with contextlib.suppress(SourceError):  # the good entries before the error are still checked
        entries.extend(ADAPTER.parse(Document(content=content, url="https://x.example.org/feed"), source()))
    for entry in entries:
        assert entry.id
        assert entry.link == "" or entry.link.startswith(("http://", "https://"))
        assert "<script" not in entry.content_html
