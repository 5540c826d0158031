"""Property tests for the feed adapter: only SourceError escapes, entries are XML-safe and sanitized, and a feed
reads the same in any encoding."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    DECLARED_CHARSETS,
    DECLARED_MEDIA_TYPES,
    FRAGMENT,
    HEADERS,
    HREFS,
    SCHEMES,
    TAGS,
    TO_ESCAPE,
    WORDS,
    assert_sanitized,
    assert_urls,
    assert_well_formed_loose,
    check_sanitized,
    run,
    unchecked_source,
)

from feeds.adapters.feed import ExistingFeed
from feeds.fetch import decide_charset
from feeds.model import Document

FAST = settings(max_examples=150, deadline=None)
ENCODINGS = st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "cp1252"])
FEED_SOURCES = [
    unchecked_source("feed", {}),
    unchecked_source("feed", {"include": ["news"], "exclude_categories": ["x"]}),
]


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


@FAST
@given(content=st.binary(max_size=600), media_type=DECLARED_MEDIA_TYPES, charset=DECLARED_CHARSETS, headers=HEADERS)
def test_feed_adapter_arbitrary_bytes(content: bytes, media_type: str, charset: str | None, headers: dict) -> None:
    doc = Document(
        content=content, url="https://www.example.org/f.xml", media_type=media_type, charset=charset, headers=headers
    )
    check_sanitized(doc, FEED_SOURCES, ExistingFeed())


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
