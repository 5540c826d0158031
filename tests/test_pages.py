"""The hand-written pages: entry pages read back as a browser reads them."""

from __future__ import annotations

import ast
import html
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from feeds.model import Author, Entry
from feeds.pages import _PLAIN_PARAGRAPHS, _markup, _reparsed, render_entry_page

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
    page = render_entry_page(entry, site_title="ILO Cooperatives", language="fr")
    assert page.startswith(b"<!DOCTYPE html>")
    doc = lxml.html.document_fromstring(page)
    assert doc.get("lang") == "fr"
    assert doc.findtext("head/title") == '<script>alert("t")</script> & Co — ILO Cooperatives'
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
    doc = lxml.html.document_fromstring(render_entry_page(entry, site_title="S", language="en"))
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
    doc = lxml.html.document_fromstring(render_entry_page(entry, site_title="Site", language="en"))
    assert doc.findtext(".//h1") == "Markup"


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
