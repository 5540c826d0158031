"""The interview adapter: interview and article pages, as plain text and as HTML."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from strategies import make_doc, make_source, read_one

from feeds.adapters.interview import Interview
from feeds.adapters.listing import Listing
from feeds.errors import ConfigError, SourceError
from feeds.model import Author, Document, Entry

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
ZURICH = ZoneInfo("Europe/Zurich")
PREFIX = "tag:feeds.example.org,2026:s:"

DIALLO_TITLE = "Ms Amina Diallo, President of the Union of Shea Producers' Cooperatives, Burkina Faso"
DIALLO_SUMMARY = (
    "The series talks to people who build cooperatives every day. This time we asked a union leader how women"
    " shea producers organise collection, processing & sales."
)
DIALLO_CONTENT = (
    "<h3>How did you first come to cooperatives?</h3>"
    "<p>I grew up in a village where every family gathered shea nuts, but each woman sold alone and at the"
    " trader's price. In 2004 a few of us pooled our nuts to negotiate together, and that small group became our"
    " first cooperative.</p>"
    "<h3>What does the union do for its member cooperatives?</h3>"
    "<ul><li>It buys equipment that no single group could afford, such as presses and roasters;</li>"
    "<li>It trains boards in bookkeeping and in running a general assembly;</li>"
    "<li>It signs contracts with buyers on behalf of all the groups.</li></ul>"
    "<p>The members decide each year which of these services come first.</p>"
    "<h3>What has been the hardest moment?</h3>"
    "<p>When prices fell in 2016 we could not pay members on delivery, and some groups left. Was it a mistake to"
    " promise cash on delivery when we had no reserve fund to back the promise, and should we have told members"
    " earlier how thin our margins had become? We think so. Today a reserve comes before anything else, because"
    " who would sell to a union that cannot pay its own members on time, and who could blame the groups that left"
    " us for traders paying cash the very same day?</p>"
    "<h3>What would you tell a young woman who wants to start a cooperative?</h3>"
    "<p>Start with people you trust, write your rules down, and keep the accounts open to every member.</p>"
)


def test_text_interview() -> None:
    entry = read_one(make_doc("interview.txt"))
    assert entry.title == DIALLO_TITLE
    assert entry.labels == ("Spotlight Interviews with Co-operators",)
    assert entry.contributors == (Author(name="Amina Diallo"),)
    assert entry.published == entry.updated == datetime(2021, 5, 3, tzinfo=ZURICH)
    assert entry.published.tzinfo is ZURICH
    assert entry.summary == DIALLO_SUMMARY
    assert entry.content_html == DIALLO_CONTENT
    assert entry.id == PREFIX + "2021-05-03/ms-amina-diallo-president-of-the-union-of-shea-producers-coo"
    assert entry.link == ""
    assert entry.match_key == "2021-05-03/aminadiallopresidentoftheunionofsheaproducerscooperativesburkinafaso"
    assert entry.source == "s"


def test_html_interview_gives_the_same_entry() -> None:
    text = read_one(make_doc("interview.txt"))
    page = read_one(make_doc("interview.html", "text/html"))
    assert page == text


def test_a_permalink_is_the_id_and_the_link() -> None:
    url = "https://www.ilo.org/global/topics/cooperatives/news/WCMS_000001/lang--en/index.htm"
    page = read_one(make_doc("interview.html", "text/html", url=url))
    assert (page.id, page.link) == (url, url)
    assert dataclasses.replace(page, id="-", link="") == dataclasses.replace(
        read_one(make_doc("interview.txt")), id="-", link=""
    )


def test_article() -> None:
    entry = read_one(make_doc("article.txt"))
    assert entry.title == "Cooperatives & the future of work: five lessons from a century of ILO support"
    assert entry.labels == ("News",)
    assert entry.contributors == ()
    assert entry.published == datetime(2020, 3, 1, tzinfo=ZURICH)
    assert entry.summary == (
        "The Cooperatives Unit looks back at what worked, and what did not, since it opened in 1920."
        " A short reading list closes the piece."
    )
    assert entry.content_html == (
        "<p>A hundred years of technical cooperation leave a long trail of reports, laws and training manuals."
        " Read together, they point to a handful of lessons.</p>"
        "<ul><li>Members, not donors, must own the decision to start a cooperative.</li>"
        "<li>Laws work best when cooperators help to write them.</li>"
        "<li>Training boards pays off longer than buying equipment.</li></ul>"
        "<p>The full series of centenary interviews will appear through the year.</p>"
    )
    assert entry.match_key == "2020-03-01/cooperativesthefutureofworkfivelessonsfromacenturyofilosupport"


ASKING_ARTICLE = """Why cooperatives?
A short explainer.
Article | 22 July 2020
What is a cooperative?
An enterprise its members own and run together.
"""


def test_kind_option_forces_article_or_interview() -> None:
    auto = read_one(make_doc(ASKING_ARTICLE))
    assert (auto.title, auto.labels) == ("A short explainer.", ("Why cooperatives?",))
    assert auto.content_html.startswith("<h3>What is a cooperative?</h3>")

    article = read_one(make_doc(ASKING_ARTICLE), make_source(kind="article"))
    assert (article.title, article.labels, article.contributors) == ("Why cooperatives?", ("Article",), ())
    assert article.summary == "A short explainer."
    assert article.content_html == (
        "<p>What is a cooperative?</p><p>An enterprise its members own and run together.</p>"
    )

    forced = read_one(make_doc("article.txt"), make_source(kind="interview"))
    assert forced.labels == ("Cooperatives & the future of work: five lessons from a century of ILO support",)
    assert forced.title == "The Cooperatives Unit looks back at what worked, and what did not, since it opened in 1920."
    assert forced.contributors == ()  # "The Cooperatives Unit looks back at what worked" is no name


def test_interview_without_intro_uses_the_interviewee_line_as_summary() -> None:
    text = "ILO COOP 100 Interview\nDr Jane Roe, researcher\nArticle | 5 May 2020\nWhy?\nBecause.\n"
    entry = read_one(make_doc(text))
    assert (entry.title, entry.summary) == ("Dr Jane Roe, researcher", "Dr Jane Roe, researcher")
    assert entry.contributors == (Author(name="Jane Roe"),)


def test_missing_type_date_line_names_the_line() -> None:
    with pytest.raises(SourceError) as caught:
        read_one(make_doc("interview-no-meta.txt"))
    assert caught.value.where == "s line 5"
    assert caught.value.what == 'no "Type | date" line (such as "Article | 22 July 2020") before the body starts'


def test_bad_date_names_the_line() -> None:
    with pytest.raises(SourceError) as caught:
        read_one(make_doc("interview-bad-date.txt"))
    assert str(caught.value).startswith('s line 5: cannot read the date: "32 July 2020": there is no day 32')


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("", "s"),
        ("Only a title\n", "s line 1"),
        ("Article | 22 July 2020\nBody.\n", "s line 1"),
    ],
)
def test_pages_that_cannot_be_read(text: str, where: str) -> None:
    with pytest.raises(SourceError) as caught:
        read_one(make_doc(text or "\n"))
    assert caught.value.where == where


@pytest.mark.parametrize("content", [b"", b"  \n", b"<!-- only a comment -->"])
def test_html_lxml_cannot_parse_is_a_source_error(content: bytes) -> None:
    with pytest.raises(SourceError, match=r"^s: cannot parse the HTML: Document is empty$"):
        read_one(Document(content=content, url="file:///x", media_type="text/html"))


def test_check_options() -> None:
    interview = Interview()
    assert interview.check_options({}) == []
    assert interview.check_options({"kind": "article"}) == []
    [(key, what)] = interview.check_options({"type": "News"})
    assert key == "type" and "unknown option" in what and "kind" in what
    [(key, what)] = interview.check_options({"kind": "podcast"})
    assert key == "kind" and "'auto', 'interview', 'article'" in what
    with pytest.raises(ConfigError):
        make_source(kind="podcast")


# --- the sample documents the default config publishes -------------------------------------------


def _sample(name: str) -> Entry:
    path = ROOT / "sources" / "interviews" / name
    return read_one(Document(content=path.read_bytes(), url=path.as_uri()), make_source(name="interviews"))


def test_sample_soho_interview() -> None:
    entry = _sample("soho.txt")
    assert entry.title == (
        "Mr Alexandre Soho, ILO Senior Technical Officer on agriculture and rural economy"
        " in the Fundamentals Branch of the ILO"
    )
    assert entry.labels == ("ILO COOP 100 Interview",)
    assert entry.contributors == (Author(name="Alexandre Soho"),)
    assert entry.published == datetime(2020, 7, 22, tzinfo=ZURICH)
    assert entry.content_html.count("<h3>") == 5
    assert entry.content_html.count("<li>") == 4 and entry.content_html.count("<ul>") == 1


def test_sample_kim_interview_merges_with_its_listing_item() -> None:
    entry = _sample("kim.txt")
    assert entry.title == "Sung Ho Kim, International Cooperation Department, KFCC"
    assert entry.labels == ("Spotlight Interviews with Co-operators",)
    assert entry.contributors == (Author(name="Sung Ho Kim"),)
    assert entry.published == datetime(2021, 10, 28, tzinfo=ZURICH)

    listing_source = make_source(time_zone="Africa/Abidjan", name="coop-africa", adapter="listing")
    path = ROOT / "sources" / "coop-africa.txt"
    items = list(Listing().parse(Document(content=path.read_bytes(), url=path.as_uri()), listing_source))
    [item] = [i for i in items if i.match_key == entry.match_key]
    assert item.title == entry.title and item.labels == entry.labels
    assert item.id != entry.id  # two sources, two ids; the key is what joins them


def test_listing_item_without_honorific_meets_its_page() -> None:
    page = read_one(make_doc("ILO COOP 100 Interview\nMr Alexandre Soho, ILO\nArticle | 22 July 2020\nQ?\nA.\n"))
    listing_doc = make_doc("Interviews\n  1. ILO COOP 100 Interview\n  Alexandre Soho, ILO\n  22 July 2020\n")
    [item] = Listing().parse(listing_doc, make_source(adapter="listing"))
    assert item.match_key == page.match_key == "2020-07-22/alexandresohoilo"
