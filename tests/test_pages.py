"""The hand-written pages: entry pages read back as a browser reads them."""

from __future__ import annotations

import ast
import html
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feeds.model import Author, Category, Entry
from feeds.pages import _PLAIN_PARAGRAPHS, FeedLink, _markup, _reparsed, category_html, render_entry_page

BASE = "https://feeds.example.org/"
ZURICH = ZoneInfo("Europe/Zurich")
CONTENT = '<p>Members pooled savings &amp; opened a <a href="https://example.org/x?a=1&amp;b=2">shop</a> — “Çà va”</p>'


# --- entry pages ----------------------------------------------------------------------------------


def test_entry_page_escapes_text_and_keeps_content_markup() -> None:
    entry = Entry(
        id="tag:feeds.example.org,2021:x",
        title='<script>alert("t")</script> & Co',
        link=BASE + "entries/x.html",
        published=datetime(2021, 7, 22, tzinfo=ZURICH),
        updated=datetime(2021, 7, 22, tzinfo=ZURICH),
        source="interviews",
        summary="Less < more & “quotes”\x00",
        content_html=CONTENT + "</div></article><p>after</p>",
        authors=(Author(name="Desk <b>", uri="https://example.org/desk"),),
        contributors=(Author(name="Maria Ochoa"),),
    )
    page = render_entry_page(entry, site_title="ILO Cooperatives", language="fr", base_url=BASE)
    assert page.startswith(b"<!DOCTYPE html>")
    doc = lxml.html.document_fromstring(page)
    assert doc.get("lang") == "fr"
    assert doc.findtext("head/title") == '<script>alert("t")</script> & Co · ILO Cooperatives'
    assert doc.find("head/meta").get("charset") == "utf-8"
    assert doc.find("head/link[@rel='canonical']").get("href") == entry.link
    assert doc.findtext(".//h1") == '<script>alert("t")</script> & Co'
    assert doc.find(".//script") is None
    assert doc.find(".//time").get("datetime") == "2021-07-22T00:00:00+02:00"
    assert doc.findtext(".//time") == "22 July 2021"
    assert doc.findtext(".//p[@class='summary']") == "Less < more & “quotes”"
    assert doc.find(".//p[@class='authors']/a[@rel='author']").text == "Desk <b>"
    assert doc.findtext(".//p[@class='contributors']/span") == "Maria Ochoa"
    content = doc.find(".//div[@class='content']")
    assert content is not None
    assert content.find("p/a").get("href") == "https://example.org/x?a=1&b=2"
    assert content.find("p").text_content() == "Members pooled savings & opened a shop — “Çà va”"
    # The stray closing tags in the fragment did not close the page's own elements early.
    assert content.findtext("p[2]") == "after"
    assert doc.find("body/article/div[@class='content']") is content


@given(
    st.lists(
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30).map(
            lambda t: f"<p>{html.escape(t, quote=False)}</p>"
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["", "\n", " \n\n"]),
)
@settings(max_examples=1000, deadline=None)
@example(["<p>a &amp; b &lt;c&gt;</p>"], "\n")
def test_plain_paragraphs_are_placed_as_lxml_would_write_them(paragraphs: list[str], gap: str) -> None:
    fragment = gap.join(paragraphs)
    if not _PLAIN_PARAGRAPHS.fullmatch(fragment):
        return  # a character lxml would spell otherwise (">" in text, &nbsp;): re-parsed like any markup
    assert _markup(fragment) == _reparsed(fragment)


# The same paragraphs, in the plain spelling that backtracks: what the possessive pattern must equal.
_BACKTRACKING = re.compile(r"(?:<p>(?:[^<>&\x00-\x08\x0b-\x1f\x7f]|&(?:amp|lt|gt);)*</p>[ \t\n]*)*")


@given(st.lists(st.sampled_from(["<p>", "</p>", "a", " ", "\n", "\t", "&amp;", "&lt;", "&", ";", "<", ">", "\x01"])))
@settings(max_examples=2000, deadline=None)
@example(["<p>", "a", "&amp;", "</p>", "\n", "<p>", "</p>"])
def test_plain_paragraphs_are_recognised_as_the_backtracking_pattern_would(parts: list[str]) -> None:
    fragment = "".join(parts)
    assert bool(_PLAIN_PARAGRAPHS.fullmatch(fragment)) == bool(_BACKTRACKING.fullmatch(fragment))


@pytest.mark.parametrize(
    "fragment", ["<p>a</p></div>", "<p><b>x</b></p>", "<p>1 > 0</p>", "plain text", "<p>a&nbsp;b</p>"]
)
def test_other_markup_is_reparsed(fragment: str) -> None:
    assert not _PLAIN_PARAGRAPHS.fullmatch(fragment)
    assert _markup(fragment) == _reparsed(fragment)


def test_entry_page_says_a_summary_once_when_the_content_repeats_it() -> None:
    summary = "Members pooled savings & opened a <shop>."
    entry = Entry(
        id="tag:feeds.example.org,2021:y", title="Y", link=BASE + "entries/y.html",
        published=datetime(2021, 7, 22, tzinfo=UTC), updated=datetime(2021, 7, 22, tzinfo=UTC), source="news",
        summary=summary, content_html="<p>Members pooled savings &amp; opened a &lt;shop&gt;.</p>",
    )  # fmt: skip
    doc = lxml.html.document_fromstring(render_entry_page(entry, site_title="S", language="en", base_url=BASE))
    assert doc.find(".//p[@class='summary']") is None
    assert doc.findtext(".//div[@class='content']/p") == summary


@settings(max_examples=150, deadline=None)
@given(content=st.text(alphabet=st.sampled_from(list("<>/!?-&;= \"'pdivbhtmlodyDOCTYPE\x00\x85é")), max_size=40))
def test_any_markup_makes_an_entry_page(content: str) -> None:
    entry = Entry(
        id="tag:feeds.example.org,2020:markup", title="Markup", link=BASE + "entries/markup.html",
        published=datetime(2020, 1, 1, tzinfo=UTC), updated=datetime(2020, 1, 1, tzinfo=UTC), source="s",
        content_html=content,
    )  # fmt: skip
    doc = lxml.html.document_fromstring(render_entry_page(entry, site_title="Site", language="en", base_url=BASE))
    assert doc.findtext(".//h1") == "Markup"


def style(page: bytes) -> str:
    styles = lxml.html.document_fromstring(page).xpath("/html/head/style/text()")
    assert len(styles) == 1
    return str(styles[0])


def test_entry_page_has_the_category_pages_style_leads_to_its_category_and_shows_its_type() -> None:
    interviews = Category(slug="interviews", title="Interviews & talks")
    entry = Entry(
        id="tag:feeds.example.org,2021:kim", title="Sung Ho Kim, KFCC", link=BASE + "entries/s/kim.html",
        published=datetime(2021, 10, 28, tzinfo=ZURICH), updated=datetime(2021, 10, 28, tzinfo=ZURICH),
        source="s", labels=("Spotlight Interviews with Co-operators", "Series <two>"),
        categories=(interviews, Category(slug="news", title="News")),
    )  # fmt: skip
    page = render_entry_page(entry, site_title="ILO Cooperatives", language="en", base_url=BASE)
    doc = lxml.html.document_fromstring(page)
    back = doc.find("body/p/a")
    assert back.get("href") == BASE + "interviews.html"  # its first category's page, absolute
    assert back.text == "← Interviews & talks"
    meta = doc.find("body/article/p[@class='meta']")
    assert meta.findtext("span[@class='type']") == "Spotlight Interviews with Co-operators, Series <two>"
    assert meta.findtext("time") == "28 October 2021"
    feed = FeedLink(slug="interviews", title="Interviews", description="", entries=1)
    listing = category_html(site_title="ILO Cooperatives", base_url=BASE, language="en", feed=feed, items=[])
    assert style(page) == style(listing) != ""
    # The category page leads back the same way: a first paragraph holding a "← " link.
    assert lxml.html.document_fromstring(listing).find("body/p/a").text.startswith("← ")


def test_entry_page_without_category_or_type_leads_to_the_index() -> None:
    entry = Entry(
        id="tag:feeds.example.org,2021:z", title="Z", link=BASE + "entries/s/z.html",
        published=datetime(2021, 7, 22, tzinfo=UTC), updated=datetime(2021, 7, 22, tzinfo=UTC), source="s",
        categories=(Category(slug="\x00", title="unprintable"),),
    )  # fmt: skip
    doc = lxml.html.document_fromstring(render_entry_page(entry, site_title="Site", language="en", base_url=BASE))
    back = doc.find("body/p/a")
    assert (back.get("href"), back.text) == (BASE + "index.html", "← Site")
    assert doc.find(".//span[@class='type']") is None
    assert doc.findtext("body/article/p[@class='meta']/time") == "22 July 2021"


def test_pages_stand_beside_render_and_publish() -> None:
    """Hand-written pages import neither the feed renderer nor the writer, and the renderer not the writer."""
    root = Path(__file__).resolve().parent.parent / "feeds"

    def imported(module: str) -> set[str]:
        tree = ast.parse((root / f"{module}.py").read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        return names

    assert not imported("pages") & {"feeds.render", "feeds.publish", "feeds.pipeline"}
    assert not imported("render") & {"feeds.pages", "feeds.publish", "feeds.pipeline"}
    assert not imported("publish") & {"feeds.pages", "feeds.render", "feeds.pipeline"}
