"""Property tests for the html adapter: only SourceError escapes, and entries are XML-safe and sanitized."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    DATES,
    DECLARED_CHARSETS,
    DECLARED_MEDIA_TYPES,
    FRAGMENT,
    HEADERS,
    HREFS,
    NOISE,
    SCHEMES,
    TO_ESCAPE,
    WORDS,
    assert_sanitized,
    assert_well_formed_loose,
    check_sanitized,
    run,
    unchecked_source,
)

from feeds.adapters.html import CssSelectors
from feeds.model import Document

FAST = settings(max_examples=150, deadline=None)

HTML_SOURCES = [
    unchecked_source("html", {"item": "article"}),
    unchecked_source(
        "html", {"item": ".post", "title": "h2", "link": "a", "date": "time", "summary": "p", "content": ".c"}
    ),
    unchecked_source(
        "html", {"item": "li", "date": ".d", "date_format": "%d %B %Y", "category": ".t", "author": ".by"}
    ),
]
HTML_ITEM = st.builds(
    lambda title, href, date, summary, content, noise: (
        f'<article class="post"><h2><a href="{href}">{title}</a></h2><time datetime="{date}">{date}</time>'
        f'<p>{summary}</p><div class="c">{content}</div><span class="t">{noise}</span></article>'
        f'<li><span class="d">{date}</span><a href="{href}">{title}</a><span class="by">{noise}</span></li>'
    ),
    WORDS, st.one_of(HREFS, TO_ESCAPE, st.sampled_from(SCHEMES).map(lambda s: s + "alert(1)")), DATES, FRAGMENT,
    FRAGMENT, NOISE,
)  # fmt: skip
HTML_PAGES = st.lists(HTML_ITEM, max_size=5).map(lambda items: f"<html><body><ul>{''.join(items)}</ul></body></html>")


@FAST
@given(content=st.binary(max_size=600), media_type=DECLARED_MEDIA_TYPES, charset=DECLARED_CHARSETS, headers=HEADERS)
def test_html_adapter_arbitrary_bytes(content: bytes, media_type: str, charset: str | None, headers: dict) -> None:
    doc = Document(
        content=content, url="https://www.example.org/p.htm", media_type=media_type, charset=charset, headers=headers
    )
    check_sanitized(doc, HTML_SOURCES, CssSelectors())


@FAST
@given(text=HTML_PAGES, charset=DECLARED_CHARSETS, headers=HEADERS)
def test_html_adapter_plausible_pages(text: str, charset: str | None, headers: dict) -> None:
    content = text.encode("utf-8", "surrogatepass")
    doc = Document(
        content=content, url="https://www.example.org/p.htm", media_type="text/html", charset=charset, headers=headers
    )
    for src in HTML_SOURCES:
        for entry in run(CssSelectors(), doc, src):
            assert_well_formed_loose(entry)
            assert_sanitized(entry.content_html)
