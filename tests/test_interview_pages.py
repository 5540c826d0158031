"""Interview and article pages as the site serves them: chrome, figures, question markup, three languages."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import feedparser
import lxml.html
import pytest
from site_helpers import DATA
from strategies import make_doc, read_one

from feeds.config import Config
from feeds.errors import SourceError
from feeds.model import Entry

EXPECTED: dict[str, dict[str, Any]] = json.loads((DATA / "interview-pages.expected.json").read_text("utf-8"))


def _read(name: str) -> Entry:
    expected = EXPECTED[name]
    media_type = "text/html" if name.endswith(".html") else "text/plain"
    return read_one(make_doc(name, media_type, url=expected.get("url", "file:///data/page")))


def _content(entry: Entry) -> lxml.html.HtmlElement:
    return lxml.html.fragment_fromstring(entry.content_html, create_parent="div")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_page_reads_as_expected(name: str) -> None:
    expected = EXPECTED[name]
    entry = _read(name)
    assert entry.title == expected["title"]
    assert entry.summary == expected["summary"]
    assert entry.published.date() == date.fromisoformat(expected["published"])
    assert list(entry.labels) == expected["labels"]
    assert [person.name for person in entry.contributors] == expected["contributors"]
    content = _content(entry)
    assert [h.text_content() for h in content.iter("h2", "h3", "h4")] == expected["headings"]
    assert [li.text_content() for li in content.iter("li")] == expected["items"]
    figures = [
        [img.get("src"), "".join(cap.text_content() for cap in figure.iter("figcaption"))]
        for figure in content.iter("figure")
        for img in figure.iter("img")
    ]
    assert figures == expected["figures"]
    # Answers are paragraphs directly in the content; a caption is never one of them.
    assert len(content.findall("p")) == expected["paragraphs"]
    reading = " ".join([entry.title, entry.summary, *entry.labels, content.text_content()])
    for text in expected["absent"]:
        assert text not in reading, f"{name}: {text!r} came through"


@pytest.mark.parametrize("name", ["interview-chrome", "interview-numbered", "article-figures"])
def test_text_rendering_reads_like_the_page(name: str) -> None:
    page, text = _read(f"{name}.html"), _read(f"{name}.txt")
    assert (text.title, text.summary, text.published, text.labels, text.contributors) == (
        page.title,
        page.summary,
        page.published,
        page.labels,
        page.contributors,
    )
    assert [li.text_content() for li in _content(text).iter("li")] == [
        li.text_content() for li in _content(page).iter("li")
    ]


def _page(meta: str, h1: str = "Ms Ana Ruiz, a cooperator", chrome: str = "") -> str:
    return (
        f"<html><body><header><h1>Site name</h1><nav>Menu</nav></header>{chrome}<main>"
        f"<h1>{h1}</h1><p>A standfirst about her.</p><p>{meta}</p><h2>Why?</h2><p>Because.</p>"
        "</main><footer>Footer text</footer></body></html>"
    )


@pytest.mark.parametrize(
    ("meta", "label", "day"),
    [
        ("Article | 22 July 2020", "Article", date(2020, 7, 22)),
        ("Article | 4 février 2019", "Article", date(2019, 2, 4)),
        ("Artículo | 26 de febrero de 2020", "Artículo", date(2020, 2, 26)),
        ("Entrevista | 3 de marzo de 2021", "Entrevista", date(2021, 3, 3)),
        ("Entretien | 1er mars 2020", "Entretien", date(2020, 3, 1)),
    ],
)
def test_meta_line_in_three_languages(meta: str, label: str, day: date) -> None:
    for doc in (
        make_doc(_page(meta), "text/html"),
        make_doc(f"Ms Ana Ruiz, a cooperator\nA standfirst.\n{meta}\nWhy?\nBecause.\n"),
    ):
        entry = read_one(doc)
        assert entry.title == "Ms Ana Ruiz, a cooperator"
        assert entry.labels == (label,) and entry.published.date() == day


def test_meta_line_above_the_headline() -> None:
    html = "<main><p>Article | 22 July 2020</p><h1>A headline</h1><p>Its standfirst.</p><p>The body.</p></main>"
    entry = read_one(make_doc(html, "text/html"))
    assert (entry.title, entry.summary, entry.content_html) == ("A headline", "Its standfirst.", "<p>The body.</p>")


def test_a_credit_is_never_the_title() -> None:
    html = _page("Article | 22 July 2020", h1="© ILO / A. Photographer 2024")
    with pytest.raises(SourceError, match=r"^s line 1: the <h1> is a photo credit"):
        read_one(make_doc(html, "text/html"))
    text = "© ILO / A. Photographer 2024\nA headline\nIts standfirst.\nArticle | 22 July 2020\nThe body.\n"
    entry = read_one(make_doc(text))
    assert entry.title == "A headline" and "©" not in entry.content_html


def test_page_without_meta_line_still_names_what_is_missing() -> None:
    html = _page("no date here")
    with pytest.raises(SourceError) as caught:
        read_one(make_doc(html, "text/html"))
    assert caught.value.where.startswith("s line ")
    assert 'no "Type | date" line' in caught.value.what


def test_relative_pictures_are_dropped_without_a_page_url() -> None:
    html = _page("Article | 22 July 2020").replace(
        "<h2>Why?</h2>", '<figure><img src="a.jpg"><figcaption>Caption text.</figcaption></figure><h2>Why?</h2>'
    )
    local = read_one(make_doc(html, "text/html", url="file:///data/page.html"))
    assert "<figure" not in local.content_html and "Caption text." not in local.content_html
    served = read_one(make_doc(html, "text/html", url="https://www.ilo.org/x/page"))
    assert '<img src="https://www.ilo.org/x/a.jpg"' in served.content_html


# --- every fixture through the command line ------------------------------------------------------

BODY = """
[[categories]]
slug = "interviews"
title = "Interviews"
types = ["Spotlight Interviews with Co-operators", "Les entretiens ILO COOP 100", "Entrevista"]

[[categories]]
slug = "articles"
title = "Articles"
types = ["Article"]

[[sources]]
name = "pages"
adapter = "interview"
location = "pages/*.html"

[[sources]]
name = "renderings"
adapter = "interview"
location = "pages/*.txt"
"""


def test_every_fixture_through_build_and_validate(tmp_path: Path, make_config: Callable[..., Config]) -> None:
    config = make_config(BODY, {f"pages/{name}": DATA / name for name in EXPECTED})
    run = [sys.executable, "-m", "feeds"]
    built = subprocess.run([*run, "build", "--config", str(config.path)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stdout + built.stderr
    validated = subprocess.run(
        [*run, "validate", "--config", str(config.path)], capture_output=True, text=True, timeout=120
    )
    assert validated.returncode == 0 and "0 problems" in validated.stdout, validated.stdout + validated.stderr
    titles: list[str] = []
    for feed in ("all", "interviews", "articles"):
        for ext in ("atom", "rss"):
            parsed = feedparser.parse((config.site.output / f"{feed}.{ext}").read_bytes())
            assert parsed.bozo == 0, parsed.get("bozo_exception")
            if feed == "all" and ext == "atom":
                titles = [e.title for e in parsed.entries]
    assert sorted(titles) == sorted({expected["title"] for expected in EXPECTED.values()})


def test_questions_numbered_by_a_list_make_an_interview() -> None:
    html = (
        "<main><h1>Ms Ana Ruiz, a cooperator</h1><p>A standfirst.</p><p>Entrevista | 3 de marzo de 2021</p>"
        "<ol><li>¿Por qué?</li></ol><p>Porque sí.</p><ol start='2'><li>¿Y después?</li></ol><p>Ya veremos.</p>"
        "<ul><li>uno</li><li>¿dos?</li></ul></main>"
    )
    entry = read_one(make_doc(html, "text/html"))
    assert entry.content_html == (
        "<h3>¿Por qué?</h3><p>Porque sí.</p><h3>¿Y después?</h3><p>Ya veremos.</p><ul><li>uno</li><li>¿dos?</li></ul>"
    )
    assert entry.contributors[0].name == "Ana Ruiz"


def test_a_data_table_stays_a_table_and_a_dateline_opens_the_body() -> None:
    entry = _read("article-table.html")
    content = _content(entry)
    [table] = content.iter("table")
    rows = [[cell.text_content() for cell in row] for row in table.iter("tr")]
    assert rows == [
        ["Province", "Cooperatives", "Members"],
        ["Savannakhet", "14", "1,260"],
        ["Champasak", "9", "840"],
        ["Luang Prabang", "6", "515"],
    ]
    paragraphs = [p.text_content() for p in content.findall("p")]
    assert paragraphs[0] == "Vientiane, Lao People's Democratic Republic"
    assert "Savannakhet" not in paragraphs


def test_a_table_that_lays_the_page_out_is_read_line_by_line() -> None:
    html = (
        "<table><tr><td><a href='/'>Home</a></td></tr><tr><td><h1>A headline</h1><p>Its standfirst.</p>"
        "<p>News | 3 May 2021</p><p>The body.</p></td></tr></table>"
    )
    entry = read_one(make_doc(html, "text/html"))
    assert (entry.title, entry.summary, entry.content_html) == ("A headline", "Its standfirst.", "<p>The body.</p>")


@pytest.mark.parametrize(
    ("question", "answer"),
    [("Q:", "A:"), ("Q.", "A."), ("<b>Q:</b>", "<b>A:</b>"), ("P:", "R:"), ("Q :", "R :"), ("Question:", "Answer:")],
)
def test_question_and_answer_marks_come_off(question: str, answer: str) -> None:
    html = (
        "<main><h1>Ms Ana Ruiz, a cooperator</h1><p>A standfirst.</p><p>Entrevista | 3 de marzo de 2021</p>"
        f"<p>{question} Tell us about the cooperative.</p><p>{answer} It has forty members.</p>"
        f"<p>{question} And then?</p><p>{answer} We grew.</p></main>"
    )
    entry = read_one(make_doc(html, "text/html"))
    assert entry.content_html == (
        "<h3>Tell us about the cooperative.</h3><p>It has forty members.</p><h3>And then?</h3><p>We grew.</p>"
    )


def test_a_letter_opening_a_paragraph_is_no_mark_without_questions_marked_so() -> None:
    text = "A headline\nIts standfirst.\nArticle | 3 May 2021\nA. Sen wrote about it first.\nR. Owen founded one.\n"
    entry = read_one(make_doc(text))
    assert entry.content_html == "<p>A. Sen wrote about it first.</p><p>R. Owen founded one.</p>"


@pytest.mark.parametrize(
    ("meta", "day", "place"),
    [
        ("Publié le 3 mars 2021", date(2021, 3, 3), ""),
        ("Posted on June 2, 2022", date(2022, 6, 2), ""),
        ("02 June 2022, Geneva, Switzerland", date(2022, 6, 2), "Geneva, Switzerland"),
        ("Article | 01 June 2022, Vientiane, Lao People's Democratic Republic", date(2022, 6, 1), "Vientiane, Lao"),
    ],
)
def test_a_worded_date_or_a_dateline_is_the_meta_line(meta: str, day: date, place: str) -> None:
    for doc in (make_doc(_page(meta), "text/html"), make_doc(f"A headline\nA standfirst.\n{meta}\nThe body.\n")):
        entry = read_one(doc)
        assert entry.published.date() == day
        # The body follows the meta line; a dateline's place opens it.
        opening = (f"<p>{place}",) if place else ("<h3>Why?</h3>", "<p>The body.</p>")
        assert entry.content_html.startswith(opening), entry.content_html


def test_a_paragraph_opening_with_a_date_is_no_dateline() -> None:
    text = "A headline\nIts standfirst.\n10 January 2022, the members met and elected a board.\nThe body.\n"
    with pytest.raises(SourceError, match=r'no "Type \| date" line'):
        read_one(make_doc(text))
