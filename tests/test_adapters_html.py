"""The html adapter (CSS selectors from config) on three page structures and on broken input."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.adapters import ADAPTERS
from feeds.adapters.html import CssSelectors, parse_date
from feeds.config import SourceConfig, parse_schedule
from feeds.errors import SourceError
from feeds.fetch import fetch_file
from feeds.model import Document, Entry

DATA = Path(__file__).parent / "data" / "html"
EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
ZURICH = ZoneInfo("Europe/Zurich")
PAGE = "https://coop.example.org/news/latest/"
ADAPTER = CssSelectors()


def source(options: dict[str, Any], zone: ZoneInfo = ZURICH) -> SourceConfig:
    return SourceConfig(
        name="coop",
        adapter="html",
        location=PAGE,
        time_zone=zone,
        schedule=parse_schedule("every 1h"),
        options=MappingProxyType(options),
        id_prefix="tag:feeds.example.org,2026:coop:",
    )


def page(body: str, url: str = PAGE, headers: dict[str, str] | None = None) -> Document:
    html = f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{body}</body></html>"
    return Document(
        content=html.encode(), url=url, media_type="text/html", charset="utf-8", headers=MappingProxyType(headers or {})
    )


def parse(doc: Document, options: dict[str, Any]) -> list[Entry]:
    return list(ADAPTER.parse(doc, source(options)))


def test_registered() -> None:
    assert isinstance(ADAPTERS["html"], CssSelectors)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_pages(name: str) -> None:
    expected = EXPECTED[name]
    doc = replace(fetch_file("coop", DATA / name), url=expected["url"])
    entries = list(ADAPTER.parse(doc, source(expected["options"], ZoneInfo(expected["time_zone"]))))
    got = [
        {
            "id": entry.id,
            "title": entry.title,
            "link": entry.link,
            "published": entry.published.isoformat(),
            "tags": list(entry.tags),
            "authors": [author.name for author in entry.authors],
            "summary": entry.summary,
        }
        for entry in entries
    ]
    assert got == expected["entries"]
    assert all(entry.source == "coop" and entry.updated == entry.published for entry in entries)
    assert ADAPTER.check_options(expected["options"]) == []


def test_three_structures_are_really_different() -> None:
    items = {name: expected["options"]["item"] for name, expected in EXPECTED.items()}
    assert items == {
        "ilo-africa-listing.html": "li.views-row",
        "coop-blog.html": "article.post",
        "publications-table.html": "#publications tbody tr",
    }


def test_blog_content_is_sanitized_and_absolute() -> None:
    expected = EXPECTED["coop-blog.html"]
    doc = replace(fetch_file("coop", DATA / "coop-blog.html"), url=expected["url"])
    first, second, third = ADAPTER.parse(doc, source(expected["options"]))
    assert doc.charset == "windows-1252"  # from <meta http-equiv>, so "Léa" reads right
    assert "<script" not in first.content_html and "tracking" not in first.content_html
    assert "onerror" not in first.content_html
    # Relative to <base href>, not to the page's own URL.
    assert '<img src="https://blog.example.org/img/meeting.jpg" alt="A general assembly">' in first.content_html
    assert '<a href="https://blog.example.org/reports/2021-worker-coops.pdf">full report</a>' in first.content_html
    assert "<em>voting early</em>" in first.content_html
    assert "iframe" not in second.content_html
    assert "credit unions &amp; one café cooperative" in third.content_html


def test_listing_links_resolve_against_the_page_url() -> None:
    expected = EXPECTED["ilo-africa-listing.html"]
    links = [entry["link"] for entry in expected["entries"]]
    assert "https://www.ilo.org/africa/news/WCMS_832003/lang--en/index.htm" in links  # "/africa/…"
    assert "https://www.ilo.org/africa/areas-of-work/publications/WCMS_831004/lang--en/index.htm" in links  # "../"
    assert "https://www.ilo.org/global/publications/WCMS_830005/lang--en/index.htm" in links  # absolute


# --- links and titles --------------------------------------------------------------------------


def test_default_title_is_the_first_heading_and_link_its_anchor() -> None:
    doc = page(
        '<div class="i"><a href="/tags/x">tag</a><h2><a href="one">First</a></h2><time>2021-10-28</time></div>'
        '<div class="i"><a href="two"><h3>Second</h3></a><time>2021-10-27</time></div>'
        '<div class="i"><a href="three">Third, a bare link</a><time>2021-10-26</time></div>'
    )
    entries = parse(doc, {"item": "div.i", "date": "time"})
    assert [(entry.title, entry.link) for entry in entries] == [
        ("First", "https://coop.example.org/news/latest/one"),
        ("Second", "https://coop.example.org/news/latest/two"),
        ("Third, a bare link", "https://coop.example.org/news/latest/three"),
    ]


def test_link_selector_takes_the_href_of_or_inside_the_match() -> None:
    doc = page(
        '<div class="i"><h2>T1</h2><a class="more" href="/a">more</a><time>2021-10-28</time></div>'
        '<div class="i"><h2>T2</h2><p class="more"><a href="/b">more</a></p><time>2021-10-28</time></div>'
        '<div class="i"><h2>T3</h2><a class="more" href="javascript:void(0)">x</a><time>2021-10-28</time></div>'
    )
    entries = parse(doc, {"item": "div.i", "date": "time", "link": ".more"})
    assert [entry.link for entry in entries] == ["https://coop.example.org/a", "https://coop.example.org/b", ""]


def test_item_without_link_gets_a_tag_id_from_date_and_title() -> None:
    doc = page('<div class="i"><h2>Annual Report — 2021</h2><time>28 October 2021</time></div>')
    (entry,) = parse(doc, {"item": "div.i", "date": "time"})
    assert entry.link == ""
    assert entry.id == "tag:feeds.example.org,2026:coop:2021-10-28:annual-report-2021"


def test_page_date_is_used_when_no_date_selector_is_configured() -> None:
    doc = page('<div class="i"><h2>Undated</h2></div>', headers={"last-modified": "Wed, 03 Nov 2021 10:00:00 GMT"})
    (entry,) = parse(doc, {"item": "div.i"})
    assert entry.published.isoformat() == "2021-11-03T10:00:00+00:00"
    # That date changes whenever the page does, so it stays out of the id.
    assert entry.id == "tag:feeds.example.org,2026:coop:undated"


def test_no_date_at_all_is_an_error() -> None:
    with pytest.raises(SourceError) as caught:
        parse(page('<div class="i"><h2>Undated</h2></div>'), {"item": "div.i"})
    assert (
        str(caught.value)
        == f"coop: {PAGE}: the entries have no date: set options.date to a selector for each item's date"
    )


def test_title_text_is_clean() -> None:
    doc = page('<div class="i"><h2>  Two\n lines<br>joined &amp; <b>bold</b>\x07 </h2><time>2021-10-28</time></div>')
    (entry,) = parse(doc, {"item": "div.i", "date": "time"})
    assert entry.title == "Two lines joined & bold"


def test_categories_and_authors_are_deduplicated_in_order() -> None:
    doc = page(
        '<div class="i"><h2>T</h2><time>2021-10-28</time><span class="c">News</span><span class="c">Africa</span>'
        '<span class="c">News</span><span class="a">A. Writer</span><span class="a">B. Writer</span></div>'
    )
    (entry,) = parse(doc, {"item": "div.i", "date": "time", "category": ".c", "author": ".a"})
    assert entry.tags == ("News", "Africa")
    assert [author.name for author in entry.authors] == ["A. Writer", "B. Writer"]


# --- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 January 2022", "2022-01-10T00:00:00+01:00"),
        ("1er février 2021", "2021-02-01T00:00:00+01:00"),
        ("25 de agosto de 2020", "2020-08-25T00:00:00+02:00"),
        ("lundi 4 février 2019", "2019-02-04T00:00:00+01:00"),
        ("January 10, 2022", "2022-01-10T00:00:00+01:00"),
        ("2021-10-28", "2021-10-28T00:00:00+02:00"),
        ("2021-10-28T10:00:00+02:00", "2021-10-28T10:00:00+02:00"),
        ("2021-10-28T08:00:00Z", "2021-10-28T10:00:00+02:00"),
        ("Thu, 28 Oct 2021 10:00:00 GMT", "2021-10-28T10:00:00+00:00"),
        ("Thu, 28 Oct 2021 10:00:00 -0400", "2021-10-28T10:00:00-04:00"),
        ("2021/10/28 14:30", "2021-10-28T14:30:00+02:00"),
        ("Oct 28 2021 10:00 EST", "2021-10-28T10:00:00+02:00"),  # unknown zone name: the source's zone
        ("Publicado el 2 de febrero de 2023", "2023-02-02T00:00:00+01:00"),
        ("Posted on June 2, 2022", "2022-06-02T00:00:00+02:00"),
        ("01 June 2022, Vientiane, Lao People's Democratic Republic", "2022-06-01T00:00:00+02:00"),
    ],
)
def test_automatic_dates(text: str, expected: str) -> None:
    parsed = parse_date(text, ZURICH)
    assert parsed is not None
    assert parsed.isoformat() == expected


@pytest.mark.parametrize("text", ["", "News", "Monday", "3 Smarch 2021", "31 February 2021", "soon"])
def test_not_dates(text: str) -> None:
    assert parse_date(text, ZURICH) is None


def test_date_format_is_strict_and_resolves_day_month_order() -> None:
    assert str(parse_date("03.04.2021", ZURICH, "%d.%m.%Y")) == "2021-04-03 00:00:00+02:00"
    assert parse_date("2021-04-03", ZURICH, "%d.%m.%Y") is None


def test_time_datetime_attribute_wins_over_its_text() -> None:
    doc = page('<div class="i"><h2>T</h2><time datetime="2021-10-28T09:30:00+02:00">last Thursday</time></div>')
    (entry,) = parse(doc, {"item": "div.i", "date": "time"})
    assert entry.published.isoformat() == "2021-10-28T09:30:00+02:00"


# --- what cannot be read -----------------------------------------------------------------------


def test_items_without_title_or_date_are_reported_after_the_good_ones() -> None:
    doc = page(
        '<li><h3><a href="/1">One</a></h3><span class="d">10 January 2022</span></li>'
        '<li><span class="d">11 January 2022</span><p>No heading here</p></li>'
        '<li><h3><a href="/3">Three</a></h3><span class="d">someday</span></li>'
        '<li><h3><a href="/4">Four</a></h3></li>'
        '<li><h3><a href="/5">Five</a></h3><span class="d">12 January 2022</span></li>'
    )
    got: list[str] = []
    with pytest.raises(SourceError) as caught:
        for entry in ADAPTER.parse(doc, source({"item": "li", "title": "h3", "date": ".d"})):
            got.append(entry.title)
    assert got == ["One", "Five"]
    assert str(caught.value) == (
        f"coop: {PAGE}: items 2, 3, 4 of 5 cannot be read ("
        'item 2: no title (title selector "h3" matched nothing); '
        'item 3: cannot read "someday" as a date for "Three"; '
        'item 4: no date (date selector ".d" matched nothing) for "Four")'
    )


def test_one_bad_item_with_a_date_format() -> None:
    doc = page('<li><h3>One</h3><span class="d">2022-01-10</span></li>')
    with pytest.raises(SourceError) as caught:
        parse(doc, {"item": "li", "title": "h3", "date": ".d", "date_format": "%d/%m/%Y"})
    assert str(caught.value) == (
        f'coop: {PAGE}: item 1 of 1 cannot be read (item 1: cannot read "2022-01-10" with date_format "%d/%m/%Y" '
        'for "One")'
    )


def test_empty_title_is_reported() -> None:
    with pytest.raises(SourceError, match=r"item 1: the title is empty\)$"):
        parse(page('<li><h3> </h3><span class="d">2022-01-10</span></li>'), {"item": "li", "title": "h3", "date": ".d"})


def test_no_items_is_an_error() -> None:
    with pytest.raises(SourceError) as caught:
        parse(page("<p>The layout changed</p>"), {"item": "li.views-row", "date": ".d"})
    assert str(caught.value) == f'coop: {PAGE}: no element matches the item selector "li.views-row"'


def test_undecodable_page() -> None:
    doc = Document(content=b"<p>caf\xe9</p>", url=PAGE, media_type="text/html", charset="utf-8")
    with pytest.raises(SourceError) as caught:
        parse(doc, {"item": "p", "date": "p"})
    assert str(caught.value) == f"coop: {PAGE}: not valid utf-8 (byte 0xe9 at offset 6)"


def test_empty_page() -> None:
    with pytest.raises(SourceError, match=r": the page is empty$"):
        parse(Document(content=b"  \n", url=PAGE, media_type="text/html"), {"item": "p", "date": "p"})


def test_references_to_unwanted_characters_are_dropped_as_the_characters_are() -> None:
    body = (
        '<article><h2>A&#xFFFF;b&#1;</h2><time>2024-01-02</time><div class="c"><p>x&#xFFFE;y&#0;z</p></div></article>'
    )
    [entry] = parse(page(body), {"item": "article", "title": "h2", "date": "time", "content": ".c"})
    assert (entry.title, entry.content_html) == ("Ab", "<p>xyz</p>")


# --- options -----------------------------------------------------------------------------------


def test_check_options() -> None:
    assert ADAPTER.check_options({"item": "li", "titel": "h3", "date": "li[", "date_format": 5, "link": 3}) == [
        (
            "titel",
            "unknown option for the html adapter (known: author, category, content, date, date_format, item, link, "
            "summary, title)",
        ),
        ("link", "must be a CSS selector string, got 3"),
        ("date", "\"li[\" is not a valid CSS selector: Expected ident or '*', got <EOF at 3>"),
        ("date_format", 'must be a strptime format such as "%d %B %Y", got 5'),
    ]
    assert ADAPTER.check_options({}) == [("item", "is required: a CSS selector matching each entry's element")]
    assert ADAPTER.check_options({"item": "a::text"}) == [
        ("item", '"a::text" is not a valid CSS selector: Pseudo-elements are not supported.')
    ]
    assert ADAPTER.check_options({"item": "li", "date_format": "dd/mm/yyyy"}) == [
        ("date_format", "must be a strptime format such as \"%d %B %Y\", got 'dd/mm/yyyy'")
    ]


def test_bad_options_at_parse_time_are_a_source_error() -> None:
    with pytest.raises(SourceError) as caught:
        parse(page("<li>x</li>"), {"item": "li >"})
    assert str(caught.value) == (
        'coop: cannot use the html adapter: options.item "li >" is not a valid CSS selector: '
        "Expected selector, got <EOF at 4>"
    )


def test_bad_selector_in_config_file(make_config: Any) -> None:
    from feeds.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        make_config(
            '[[sources]]\nname = "coop"\nadapter = "html"\nlocation = "https://coop.example.org/"\n'
            '[sources.options]\nitem = "div[class="\n'
        )
    assert caught.value.problems == [
        (
            "sources[0].options.item",
            '"div[class=" is not a valid CSS selector: Expected string or ident, got <EOF at 10>',
        )
    ]


# --- anything at all ---------------------------------------------------------------------------


noise = st.sampled_from([
    "", "<script>x()</script>", "<img src=x onerror=alert(1)>", "&amp;", "\x00", "\ud800", "<!--", "-->",
    "<base href='https://b.example.org/'>", "<?xml version='1.0' encoding='latin-1'?>", "<![CDATA[", "]]>", "</li>",
])  # fmt: skip
items = st.builds(
    "<li><h2><a href='{}'>{}</a></h2><time>{}</time><span>{}</span><p>{}{}</p></li>".format,
    st.sampled_from(["/x", "rel/y", "javascript:alert(1)", "https://e.org/z", "", "http://[::1"]),
    st.text(max_size=20),
    st.sampled_from(["2021-10-28", "10 janvier 2022", "25 de agosto de 2020", "soon", "", "31 February 2021"]),
    st.text(max_size=10),
    st.text(max_size=30),
    noise,
)
fragments = st.lists(st.one_of(items, noise, st.text(max_size=10)), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), fragments.map(lambda text: text.encode("utf-8", "surrogatepass"))))
def test_arbitrary_input_raises_only_source_errors(content: bytes) -> None:
    doc = Document(content=content, url=PAGE, media_type="text/html", charset="utf-8")
    options = {"item": "li", "date": "time, span", "content": "li", "summary": "li", "category": "span"}
    entries: list[Entry] = []
    with contextlib.suppress(SourceError):  # the good entries before the error are still checked
        entries.extend(ADAPTER.parse(doc, source(options)))
    for entry in entries:
        assert "<script" not in entry.content_html
        assert "onerror" not in entry.content_html
        assert entry.link == "" or entry.link.startswith(("http://", "https://"))
