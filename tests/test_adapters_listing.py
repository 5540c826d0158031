"""The listing adapter, and the date and text helpers both page adapters share."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from feeds.adapters import ADAPTERS
from feeds.adapters.common import blocks_html, clean_text, match_key, strip_honorific
from feeds.adapters.dates import looks_like_date, parse_date, split_type_date, strip_date_prefix
from feeds.adapters.listing import Listing
from feeds.config import SourceConfig, parse
from feeds.errors import ConfigError, SourceError
from feeds.model import Document, Entry

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
ZURICH = ZoneInfo("Europe/Zurich")
PREFIX = "tag:feeds.example.org,2026:s:"
EXPECTED = json.loads((DATA / "listing.expected.json").read_text(encoding="utf-8"))


def make_source(adapter: str = "listing", time_zone: str = "Europe/Zurich", **options: Any) -> SourceConfig:
    raw = {
        "site": {"title": "T", "base_url": "https://feeds.example.org/"},
        "sources": [{"name": "s", "adapter": adapter, "location": "x.txt", "time_zone": time_zone, "options": options}],
    }
    return parse(raw, Path("config.toml"), ADAPTERS).sources[0]


def make_doc(name_or_text: str, media_type: str = "text/plain", url: str = "file:///data/page") -> Document:
    path = DATA / name_or_text
    content = path.read_bytes() if "\n" not in name_or_text and path.exists() else name_or_text.encode()
    return Document(content=content, url=url, media_type=media_type)


def read(doc: Document, source: SourceConfig | None = None) -> list[Entry]:
    return list(Listing().parse(doc, source or make_source()))


def drain(entries: Iterator[Entry]) -> tuple[list[Entry], SourceError | None]:
    """The entries a parse yields before it fails, and the error it fails with."""
    good: list[Entry] = []
    try:
        for entry in entries:
            good.append(entry)
    except SourceError as exc:
        return good, exc
    return good, None


# --- the text rendering -------------------------------------------------------------------------


def test_text_listing_gives_the_expected_entries() -> None:
    entries = read(make_doc("listing.txt"))
    assert len(entries) == len(EXPECTED) == 9
    for entry, want in zip(entries, EXPECTED, strict=True):
        assert entry.title == want["title"]
        assert entry.labels == tuple(want["labels"])
        assert entry.published == datetime.fromisoformat(want["published"])
        assert entry.updated == entry.published
        assert entry.summary == want["summary"]
        assert entry.content_html == want["content_html"]
        assert entry.id == PREFIX + want["tag_key"]
        assert entry.link == ""
        assert entry.match_key == want["match_key"]
        assert entry.source == "s"


def test_dates_are_midnight_in_the_source_zone() -> None:
    entries = read(make_doc("listing.txt"))
    assert all(entry.published.tzinfo is ZURICH for entry in entries)
    french, spanish = entries[5], entries[6]
    assert french.published.isoformat() == "2019-02-04T00:00:00+01:00"  # 4 février 2019, winter time
    assert spanish.published.isoformat() == "2020-08-25T00:00:00+02:00"  # 25 de agosto de 2020, summer time
    elsewhere = read(make_doc("listing.txt"), make_source(time_zone="Africa/Abidjan"))
    assert elsewhere[0].published == datetime(2022, 1, 10, tzinfo=UTC)


def test_types_titles_and_forms() -> None:
    by_title = {entry.title: entry for entry in read(make_doc("listing.txt"))}
    # the number followed directly by the title: no type line
    assert by_title["Cooperative society of solid waste collectors of Mbeubeuss-Bokk Diom is established"].labels == ()
    # multi-word types
    assert by_title["Sung Ho Kim, International Cooperation Department, KFCC"].labels == (
        "Spotlight Interviews with Co-operators",
    )
    assert by_title["Alexandre Soho, ILO Senior Technical Officer on agriculture and rural economy"].labels == (
        "ILO COOP 100 Interview",
    )
    # "Type | date" after the title, and on the item's number line with the title after it
    worker_led = by_title["ILO COOP discusses WIEGO report on 'worker-led' social protection schemes in Africa"]
    assert (worker_led.labels, worker_led.published.date().isoformat()) == (("News",), "2021-11-09")
    guide = by_title["Économie sociale et solidaire : guide pratique pour les coopératives (2e édition)"]
    assert (guide.labels, guide.published.date().isoformat()) == (("Publication",), "2020-03-01")
    assert guide.summary == "Une mise à jour du guide, avec des fiches sur la gouvernance et le financement."


def test_summary_is_escaped_into_content() -> None:
    report = read(make_doc("listing.txt"))[1]
    assert "& to women <fast>," in report.summary
    assert report.content_html.startswith("<p>A joint study")
    assert "&amp; to women &lt;fast&gt;," in report.content_html
    assert "<fast>" not in report.content_html


def test_default_type_option_labels_items_without_one() -> None:
    entries = read(make_doc("listing.txt"), make_source(type="News"))
    assert entries[2].labels == ("News",)
    assert entries[3].labels == ("Spotlight Interviews with Co-operators",)  # a shown type wins


def test_compact_rendering() -> None:
    entries = read(make_doc("listing-compact.txt"))
    assert [(e.title, e.labels, e.published.date().isoformat(), e.summary) for e in entries] == [
        (
            "Financial mechanisms for innovative social and solidarity economy ecosystems: The case of Morocco",
            ("Publication",),
            "2021-11-25",
            "A study of who finances social enterprises in Morocco, and what the pandemic changed for them.",
        ),
        ("Improved working conditions, productivity and income for formalized women tanners", (), "2021-10-26", ""),
        (
            "Mr Alexandre Soho, ILO Senior Technical Officer",
            ("ILO COOP 100 Interview",),
            "2020-07-22",
            "2021. A year in numbers: this line opens with a number, and it belongs to the summary.",
        ),
    ]


# --- the HTML page --------------------------------------------------------------------------------


def _without_identity(entry: Entry) -> Entry:
    return dataclasses.replace(entry, id="-", link="")


def test_html_listing_gives_the_same_entries_as_text() -> None:
    text = read(make_doc("listing.txt"))
    page = read(make_doc("listing.html", "text/html", url="file:///data/listing.html"))
    assert [_without_identity(e) for e in page] == [_without_identity(e) for e in text]
    assert [e.link for e in page] == [want["html_link"] for want in EXPECTED]
    for entry, want in zip(page, EXPECTED, strict=True):
        # a permalink is the id; without one the id is the same tag the text rendering gets
        assert entry.id == (want["html_link"] or PREFIX + want["tag_key"])


def test_html_is_recognised_without_a_media_type() -> None:
    page = read(make_doc("listing.html", "application/octet-stream"))
    assert len(page) == 9


def test_html_articles_without_a_list() -> None:
    doc = make_doc("listing-articles.html", "text/html", url="https://coop.example.org/en/news/index.html")
    good, error = drain(Listing().parse(doc, make_source()))
    assert [(e.title, e.labels, e.published.isoformat(), e.link) for e in good] == [
        (
            "The ILO and the UNTFSSE participated in European Social Economy Week 2021",
            ("News",),
            "2021-10-25T09:30:00+02:00",
            "https://coop.example.org/news/european-social-economy-week",
        ),
        ("A title whose only link is not http", ("Publication",), "2021-12-13T00:00:00+01:00", ""),
    ]
    assert good[0].summary == (
        "Two speakers from Geneva joined a panel on the social economy as a driver of sustainable development."
    )
    assert good[1].id == PREFIX + "2021-12-13/a-title-whose-only-link-is-not-http"
    assert error is not None
    assert error.where == "s line 11"
    assert "no date" in error.what and "ILO sheds light" in error.what


def test_html_inline_items_and_relative_links() -> None:
    doc = make_doc("listing-inline.html", "text/html", url="https://coop.example.org/en/latest/")
    entries = read(doc)
    assert [(e.title, e.labels, e.published.date().isoformat(), e.link) for e in entries] == [
        (
            "Cooperative society of solid waste collectors of Mbeubeuss-Bokk Diom is established",
            ("News",),
            "2021-12-15",
            "https://coop.example.org/en/latest/items/1.html",
        ),
        (
            "12th Academy on Social and Solidarity Economy",
            (),
            "2022-01-10",
            "https://coop.example.org/en/latest/items/2.html",
        ),
    ]


# --- what cannot be read --------------------------------------------------------------------------


def test_bad_items_come_after_the_good_ones_in_one_error() -> None:
    good, error = drain(Listing().parse(make_doc("listing-bad.txt"), make_source()))
    assert [e.title for e in good] == [
        "Good item before the bad ones",
        "A good item between the bad ones",
        "An item that forgot its date",
        "Good item after the bad ones",
    ]
    # No date line at all: an announced item, published undated (the store dates it when first seen).
    forgot = good[2]
    assert (forgot.undated, forgot.labels) == (True, ("News",))
    assert forgot.summary == "The summary follows the title directly."
    assert forgot.id == PREFIX + "undated/an-item-that-forgot-its-date" and forgot.match_key == ""
    assert not any(e.undated for e in good[:2] + good[3:])
    assert error is not None
    assert error.where == "s line 13"
    assert str(error).startswith("s line 13: 2 items cannot be read: line 13: ")
    assert '"31 February 2021": there is no day 31 in that month' in error.what
    assert 'line 31: cannot read the date: "10 Janvary 2022"' in error.what
    assert "line 23" not in error.what


def test_one_bad_item_names_its_line() -> None:
    text = "News\n\n  1. News\n\n    A title\n\n    Sometime in 2021\n\n  2. Publication\n    Fine\n    1 May 2021\n"
    good, error = drain(Listing().parse(make_doc(text), make_source()))
    assert [e.title for e in good] == ["Fine"]
    assert error is not None
    assert error.where == "s line 3"
    assert error.what.startswith('no date in this item ("News / A title"): expected a line with a date such as')


@pytest.mark.parametrize(
    ("text", "media_type"),
    [
        ("", "text/plain"),
        ("Just a heading\n\nand a paragraph.\n", "text/plain"),
        ("<html><p>x</p></html>", "text/html"),
    ],
)
def test_a_page_without_items_is_an_error(text: str, media_type: str) -> None:
    with pytest.raises(SourceError, match=r"^s: no items found"):
        read(make_doc(text or "\n", media_type))


def test_an_unknown_charset_is_a_source_error() -> None:
    doc = Document(content=b"  1. News\n  T\n  1 May 2021\n", url="file:///x", charset="no-such-charset")
    with pytest.raises(SourceError, match=r"^s: cannot decode the document"):
        read(doc)


# --- options --------------------------------------------------------------------------------------


def test_check_options() -> None:
    listing = Listing()
    assert listing.check_options({}) == []
    assert listing.check_options({"type": "News"}) == []
    [(key, what)] = listing.check_options({"kind": "article"})
    assert key == "kind" and "unknown option" in what and "type" in what
    [(key, what)] = listing.check_options({"type": 3})
    assert key == "type" and "non-empty string" in what


def test_config_rejects_unknown_listing_options() -> None:
    with pytest.raises(ConfigError) as caught:
        make_source(colour="red")
    assert caught.value.problems[0][0] == "sources[0].options.colour"


# --- the sample documents the default config publishes -------------------------------------------


def test_sample_coop_africa_listing() -> None:
    source = make_source(time_zone="Africa/Abidjan")
    entries = read(Document(content=(ROOT / "sources" / "coop-africa.txt").read_bytes(), url="file:///s"), source)
    assert [(e.labels, e.published.date().isoformat()) for e in entries] == [
        (("News",), "2022-01-10"),
        (("News",), "2021-12-17"),
        (("News",), "2021-12-15"),
        (("Publication",), "2021-12-13"),
        (("Publication",), "2021-11-25"),
        (("News",), "2021-11-09"),
        (("News",), "2021-10-29"),
        (("Spotlight Interviews with Co-operators",), "2021-10-28"),
        (("Publication",), "2021-10-26"),
        (("News",), "2021-10-25"),
    ]
    assert entries[7].match_key == "2021-10-28/sunghokiminternationalcooperationdepartmentkfcc"
    assert entries[0].summary == ""
    assert all(e.summary for e in entries[1:])


def test_sample_publications_page() -> None:
    doc = Document(
        content=(ROOT / "sources" / "publications.html").read_bytes(), url="file:///s", media_type="text/html"
    )
    entries = read(doc)
    assert [e.published.date().isoformat() for e in entries] == [
        "2021-12-13",
        "2021-11-25",
        "2021-10-26",
        "2019-02-04",
        "2020-08-25",
    ]
    assert all(e.labels == ("Publication",) for e in entries)
    assert all(e.id == e.link and e.link.startswith("https://www.ilo.org/global/topics/cooperatives/") for e in entries)


# --- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 January 2022", (2022, 1, 10)),
        ("09 November 2021", (2021, 11, 9)),
        ("4 février 2019", (2019, 2, 4)),
        ("4 FEVRIER 2019", (2019, 2, 4)),
        ("1er mars 2020", (2020, 3, 1)),
        ("lundi 4 février 2019", (2019, 2, 4)),
        ("25 de agosto de 2020", (2020, 8, 25)),
        ("martes, 25 de agosto del 2020", (2020, 8, 25)),
        ("1.º de marzo de 2020", (2020, 3, 1)),
        ("17 diciembre 2021", (2021, 12, 17)),
        ("3 août 2021", (2021, 8, 3)),
        ("3 aout 2021", (2021, 8, 3)),
        ("January 10, 2022", (2022, 1, 10)),
        ("Sept. 3, 2021", (2021, 9, 3)),
        ("26 Oct 2021", (2021, 10, 26)),
        ("29.10.2021", (2021, 10, 29)),
        ("2022-01-10", (2022, 1, 10)),
    ],
)
def test_parse_date_reads_three_languages(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_date(text, ZURICH) == datetime(*expected, tzinfo=ZURICH)


def test_parse_date_keeps_the_instant_of_an_iso_datetime() -> None:
    value = parse_date("2022-01-10T09:30:00Z", ZURICH)
    assert value == datetime(2022, 1, 10, 9, 30, tzinfo=UTC)
    assert value.tzinfo is ZURICH
    assert parse_date("2022-01-10T09:30", ZURICH) == datetime(2022, 1, 10, 9, 30, tzinfo=ZURICH)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("31 February 2021", "no day 31"),
        ("10 Janvary 2022", '"janvary" is not a month name'),
        ("10 May 0200", "year 200"),
        ("29.13.2021", "no month 13"),
        ("News 10 January 2022", "is not a date such as"),
        ("Winter 2021", "is not a date such as"),
        ("2022-02-30", "not a valid date"),
    ],
)
def test_parse_date_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_date(text, ZURICH)


def test_date_shapes_and_type_lines() -> None:
    assert looks_like_date("31 February 2021") and looks_like_date("10 Janvary 2022")
    assert not looks_like_date("News 10 January 2022") and not looks_like_date("Cooperatives in 2021")
    assert split_type_date("News | 10 January 2022") == ("News", "10 January 2022")
    assert split_type_date("Article |22 July 2020") == ("Article", "22 July 2020")
    assert split_type_date("Cooperatives | the future") is None
    assert split_type_date("a | b | 2020") is None


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("Published on 2 June 2022", "2 June 2022"),
        ("Posted on May 12th, 2022", "May 12th, 2022"),
        ("Publication date: 14 March 2023", "14 March 2023"),
        ("Publié le 3 mars 2021", "3 mars 2021"),
        ("Publicado el 2 de febrero de 2023", "2 de febrero de 2023"),
        ("Fecha: 9 de enero de 2023", "9 de enero de 2023"),
        ("Published reports of 2022", "Published reports of 2022"),  # no day or month follows: a title
        ("Dated and signed", "Dated and signed"),
    ],
)
def test_words_before_a_date_come_off(text: str, rest: str) -> None:
    assert strip_date_prefix(text) == rest


# --- text helpers ---------------------------------------------------------------------------------


def test_match_key() -> None:
    day = datetime(2021, 10, 28, tzinfo=ZURICH)
    assert match_key("Sung Ho Kim, International Cooperation Department, KFCC", day) == (
        "2021-10-28/sunghokiminternationalcooperationdepartmentkfcc"
    )
    # honorifics, case, accents, quotes and spacing do not count
    assert match_key("Mr  Sung Ho KIM \u2013 International Coöperation Department (KFCC)", day) == match_key(
        "Sung Ho Kim, International Cooperation Department, KFCC", day
    )
    assert match_key("Dr. “Équipe” d'été", day) == "2021-10-28/equipedete"
    assert match_key("“Mr Smith”", day) == "2021-10-28/smith"
    # the calendar date as printed, not the UTC one
    assert match_key("X", datetime(2021, 10, 28, tzinfo=ZoneInfo("Pacific/Auckland"))).startswith("2021-10-28/")
    assert match_key("X", day) != match_key("X", datetime(2021, 10, 29, tzinfo=ZURICH))


def test_strip_honorific() -> None:
    assert strip_honorific("Mr Alexandre Soho") == "Alexandre Soho"
    assert strip_honorific("Ms. Amina Diallo") == "Amina Diallo"
    assert strip_honorific("Mrinal Sen") == "Mrinal Sen"
    assert strip_honorific("Mr") == "Mr"


def test_clean_text() -> None:
    assert clean_text("  a\x00b\x0bc \t\n d\ufffe\x85e\u00a0 f ") == "abc de f"


def test_blocks_html_escapes_and_groups_bullets() -> None:
    html = blocks_html([("h3", "Why <b>?"), ("li", "one & two"), ("li", "three"), ("p", 'say "hi"'), ("li", "x")])
    assert (
        html == '<h3>Why &lt;b&gt;?</h3><ul><li>one &amp; two</li><li>three</li></ul><p>say "hi"</p><ul><li>x</li></ul>'
    )


def test_html_type_label_after_the_date() -> None:
    html = (
        '<ul><li><h3><a href="https://x.example.org/1">A title</a></h3><time datetime="2021-01-02">2 Jan 2021</time>'
        '<span class="type">News</span><p>The summary.</p></li></ul>'
    )
    [entry] = read(make_doc(html, "text/html"))
    assert (entry.title, entry.labels, entry.summary) == ("A title", ("News",), "The summary.")
    assert entry.published == datetime(2021, 1, 2, tzinfo=ZURICH)
