"""Property tests for the html and feed adapters: only SourceError escapes, and entries are XML-safe and sanitized."""

from __future__ import annotations

from pathlib import Path

import lxml.html
from hypothesis import given, settings
from hypothesis import strategies as st
from test_adapters_property import DATES, HREFS, NOISE, TAGS, WORDS, assert_well_formed, run

from feeds.adapters.feed import ExistingFeed
from feeds.adapters.html import CssSelectors
from feeds.config import SourceConfig, parse
from feeds.fetch import decide_charset
from feeds.model import Document, Entry
from feeds.urls import web_url

FAST = settings(max_examples=150, deadline=None)
MEDIA_TYPES = st.sampled_from(["text/html", "application/xml", "application/rss+xml", "text/plain", ""])
CHARSETS = st.sampled_from([None, "utf-8", "latin-1", "utf-16", "utf-32-le", "utf-32-be", "no-such-charset"])
HEADERS = st.sampled_from([{}, {"last-modified": "Wed, 03 Nov 2021 10:00:00 GMT"}, {"date": "garbage"}])
SCHEMES = ["javascript:", "JaVaScRiPt:", "java\tscript:", "vbscript:", "data:text/html,", ""]
# Addresses a feed or page holds as written, which must be escaped or dropped before they are published.
TO_ESCAPE = st.one_of(
    st.sampled_from([
        "https://www.example.org/a b/ü[1]|x?q=a b#f g", "/p/é è.pdf", "pics/a\"b<c>.jpg", "https://:443/x",
        "http:///", "https:///path", "https://www.example.org/%zz%4", "https://exa mple.org/", "//www.example.org/ x",
    ]),
    WORDS.map(lambda word: f"https://www.example.org/{word}"),
)  # fmt: skip
ENCODINGS = st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "cp1252"])


def source(adapter: str, options: dict[str, object]) -> SourceConfig:
    raw = {
        "site": {"title": "P", "base_url": "https://feeds.example.org/"},
        "sources": [{"name": "s", "adapter": adapter, "location": "x.html", "options": options}],
    }
    return parse(raw, Path("/nonexistent/config.toml")).sources[0]


HTML_SOURCES = [
    source("html", {"item": "article"}),
    source("html", {"item": ".post", "title": "h2", "link": "a", "date": "time", "summary": "p", "content": ".c"}),
    source("html", {"item": "li", "date": ".d", "date_format": "%d %B %Y", "category": ".t", "author": ".by"}),
]
FEED_SOURCES = [source("feed", {}), source("feed", {"include": ["news"], "exclude_categories": ["x"]})]

HOSTILE_HTML = st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '<a href="javascript:alert(1)">j</a>',
    '<p style="x:expression(1)">s</p>', "<iframe srcdoc='<script>1</script>'>", "<svg><script>1</script></svg>",
    "<object data=x>", "<embed src=x>", "<form><input></form>", "<base href='https://evil.example.net/'>",
    "<!--", "<![CDATA[", "<math><mtext><style><img src=x onerror=1>", "\x00", "\x85", "\u2028",
])  # fmt: skip
PIECES = st.one_of(HOSTILE_HTML, TAGS, WORDS)
FRAGMENT = st.lists(PIECES, max_size=8).map("".join)
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


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


RSS_ITEM = st.builds(
    lambda title, link, date, body, cat: (
        f"<item><title>{_xml(title)}</title><link>{_xml(link)}</link><pubDate>{date}</pubDate>"
        f"<description>{_xml(body)}</description><category>{_xml(cat)}</category>"
        f'<enclosure url="{_xml(link)}" length="x" type="audio/mpeg"/></item>'
    ),
    WORDS, st.one_of(HREFS, TO_ESCAPE, st.sampled_from(SCHEMES).map(lambda s: s + "x")),
    st.sampled_from(["Wed, 03 Nov 2021 10:00:00 GMT", "", "garbage", "2021-11-03", "Sun, 31 Feb 2021 25:00:00 +9999"]),
    FRAGMENT, WORDS,
)  # fmt: skip
ATOM_ENTRY = st.builds(
    lambda title, link, date, body, kind: (
        f'<entry><title type="html">{_xml(title)}</title><id>{_xml(link) or "urn:x:1"}</id>'
        f'<link href="{_xml(link)}"/><updated>{date}</updated><content type="{kind}">{_xml(body)}</content></entry>'
    ),
    WORDS, st.one_of(HREFS, TO_ESCAPE, st.sampled_from(SCHEMES).map(lambda s: s + "x")),
    st.sampled_from(["2021-11-03T10:00:00Z", "2021-11-03", "", "9999-99-99T99:99:99Z"]),
    FRAGMENT, st.sampled_from(["html", "text", "xhtml", "application/octet-stream"]),
)  # fmt: skip
RSS_FEED = st.lists(RSS_ITEM, max_size=4).map(
    lambda items: f'<?xml version="1.0"?><rss version="2.0"><channel>{"".join(items)}</channel></rss>'
)
ATOM_FEED = st.lists(ATOM_ENTRY, max_size=4).map(
    lambda entries: f'<feed xmlns="http://www.w3.org/2005/Atom">{"".join(entries)}</feed>'
)
FEED_SOUP = st.lists(
    st.one_of(TAGS, WORDS, st.sampled_from(["<rss>", "<item>", "<feed>", "<entry>", "<!DOCTYPE x [", "]>"])),
    max_size=20,
).map("".join)
FEEDS = st.one_of(RSS_FEED, ATOM_FEED, FEED_SOUP)
BANNED = {"script", "iframe", "object", "embed", "form", "style", "base", "svg", "math", "input", "meta"}


def assert_sanitized(content_html: str) -> None:
    if not content_html.strip():
        return
    root = lxml.html.fragment_fromstring(content_html, create_parent="div")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        assert element.tag not in BANNED, content_html
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), content_html
            if name in ("href", "src"):
                assert value.startswith(("http://", "https://", "mailto:")), content_html
                assert_valid_url(value)


def assert_valid_url(url: str) -> None:
    """Nothing left to escape: no space or control character, and making it valid again changes nothing."""
    assert not any(char.isspace() or not char.isprintable() for char in url), url
    schemes = ("http", "https", "mailto")
    assert web_url(url, schemes=schemes) == url, url


def check(doc: Document, sources: list[SourceConfig], adapter: CssSelectors | ExistingFeed) -> None:
    for src in sources:
        for entry in run(adapter, doc, src):
            assert entry.title
            assert_sanitized(entry.content_html)
            assert not entry.link or entry.link.startswith(("http://", "https://"))
            assert_urls(entry)


def assert_urls(entry: Entry) -> None:
    for url in (entry.link, *(enclosure.url for enclosure in entry.enclosures)):
        if url:
            assert_valid_url(url)
    if entry.id.startswith(("http://", "https://")):
        assert_valid_url(entry.id)
    assert not any(char.isspace() for char in entry.id), entry.id


@FAST
@given(content=st.binary(max_size=600), media_type=MEDIA_TYPES, charset=CHARSETS, headers=HEADERS)
def test_html_adapter_arbitrary_bytes(content: bytes, media_type: str, charset: str | None, headers: dict) -> None:
    doc = Document(
        content=content, url="https://www.example.org/p.htm", media_type=media_type, charset=charset, headers=headers
    )
    check(doc, HTML_SOURCES, CssSelectors())


@FAST
@given(text=HTML_PAGES, charset=CHARSETS, headers=HEADERS)
def test_html_adapter_plausible_pages(text: str, charset: str | None, headers: dict) -> None:
    content = text.encode("utf-8", "surrogatepass")
    doc = Document(
        content=content, url="https://www.example.org/p.htm", media_type="text/html", charset=charset, headers=headers
    )
    for src in HTML_SOURCES:
        for entry in run(CssSelectors(), doc, src):
            assert_well_formed_loose(entry)
            assert_sanitized(entry.content_html)


@FAST
@given(content=st.binary(max_size=600), media_type=MEDIA_TYPES, charset=CHARSETS, headers=HEADERS)
def test_feed_adapter_arbitrary_bytes(content: bytes, media_type: str, charset: str | None, headers: dict) -> None:
    doc = Document(
        content=content, url="https://www.example.org/f.xml", media_type=media_type, charset=charset, headers=headers
    )
    check(doc, FEED_SOURCES, ExistingFeed())


@FAST
@given(text=FEEDS, headers=HEADERS)
def test_feed_adapter_plausible_feeds(text: str, headers: dict) -> None:
    content = text.encode("utf-8", "surrogatepass")
    doc = Document(content=content, url="https://www.example.org/f.xml", media_type="application/xml", headers=headers)
    for src in FEED_SOURCES:
        for entry in run(ExistingFeed(), doc, src):
            assert_well_formed_loose(entry)
            assert_sanitized(entry.content_html)
            assert_urls(entry)


@FAST
@given(text=st.one_of(RSS_FEED, ATOM_FEED), encoding=ENCODINGS, declared=st.booleans(), headers=HEADERS)
def test_feed_adapter_feeds_in_odd_encodings(text: str, encoding: str, declared: bool, headers: dict) -> None:
    """A feed in UTF-16 or UTF-32 (no byte order mark) or windows-1252, declared or not, reads as its UTF-8 twin."""
    plain = text.removeprefix('<?xml version="1.0"?>')
    label = encoding.removesuffix("-le").removesuffix("-be")
    declaration = f'<?xml version="1.0" encoding="{label}"?>' if declared else ""
    content = (declaration + plain).encode(encoding, "replace")  # windows-1252 has no "?" for some
    charset = decide_charset(content, "application/xml")[0]  # as fetch.py hands documents on
    odd = Document(content=content, url="https://www.example.org/f.xml", charset=charset, headers=headers)
    written = content.decode(encoding).removeprefix(declaration)
    twin = Document(content=written.encode("utf-8"), url="https://www.example.org/f.xml", headers=headers)
    if encoding == "cp1252" and not declared and content != twin.content and _is_utf8(content):
        return  # windows-1252 bytes that are UTF-8 too are read as UTF-8, as they should be
    for src in FEED_SOURCES:
        expected = [(e.id, e.title, e.link) for e in run(ExistingFeed(), twin, src)]
        got = [(e.id, e.title, e.link) for e in run(ExistingFeed(), odd, src)]
        assert got == expected


def _is_utf8(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def assert_well_formed_loose(entry: object) -> None:
    """assert_well_formed, less its listing-specific `updated == published` (feeds carry their own `updated`)."""
    from dataclasses import replace

    assert_well_formed(replace(entry, updated=entry.published, contributors=()))  # type: ignore[type-var]
