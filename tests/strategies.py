"""What the adapter tests share: hypothesis strategies for adapter input, the sources and documents they read,
and the checks every entry an adapter yields must pass (only SourceError escapes, XML-safe, sanitized)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import lxml.html
from hypothesis import strategies as st
from lxml import etree
from site_helpers import DATA

from feeds.adapters import ADAPTERS, Adapter
from feeds.adapters.common import clean_text
from feeds.adapters.interview import Interview
from feeds.config import SourceConfig, parse
from feeds.errors import SourceError
from feeds.model import Document, Entry
from feeds.urls import web_url

# --- pieces of real pages, so that generated documents reach deep into the parsers, not just their front door ---

DATES = st.sampled_from([
    "10 January 2022", "09 November 2021", "4 février 2019", "1er mars 2020", "25 de agosto de 2020",
    "31 February 2021", "10 Janvary 2022", "0 May 2020", "1 May 0001", "29.10.2021", "2022-01-10",
    "2022-01-10T09:30:00+14:00", "9999-12-31T23:59:59-12:00", "1800-01-01", "2999-12-31", "lundi 4 février 2019",
])  # fmt: skip
TYPES = st.sampled_from(
    ["News", "Publication", "Spotlight Interviews with Co-operators", "ILO COOP 100 Interview", "Article"]
)
WORDS = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
LINES = st.one_of(
    DATES,
    TYPES,
    WORDS,
    st.builds(lambda n, rest: f"  {n}. {rest}", st.integers(0, 12), st.one_of(TYPES, WORDS)),
    st.builds(lambda t, d: f"{t} | {d}", TYPES, DATES),
    st.builds(lambda w: f"  •  {w}", WORDS),
    st.builds(lambda w: f"{w}?", WORDS),
    st.builds(lambda w: f"Mr {w}, role", WORDS),
    st.sampled_from(["", " ", "\x00", "\x0b", "\ufffe", "\r", "\u2028", "|", "<", "&", "]]>", "\ud7ff"]),
)
TAGS = st.sampled_from([
    "<li>", "</li>", "<ol>", "</ol>", "<ul>", "<article>", "</article>", "<h1>", "</h1>", "<h2>", "<p>", "</p>",
    '<span class="type">', "</span>", '<time datetime="2021-10-28">', '<time datetime="2021-02-31">', "</time>",
    '<a href="news/1.htm">', '<a href="javascript:alert(1)">', '<a href="http://[::1">', "</a>", "<br>",
    "<main>", "<script>", "</script>", "<!--", "-->", '<base href="https://www.ilo.org/x/">', "<html>",
    '<p class="meta">', "<nav>", "</nav>", "<div>" * 30, "&amp;", "&#0;", "&#xFFFF;", "<?xml version='1.0'?>",
])  # fmt: skip
NOISE = st.lists(st.one_of(TAGS, LINES), max_size=3).map("".join)
HREFS = st.sampled_from(["news/1.htm", "https://www.ilo.org/a", "#top", "mailto:x@example.org", "http://[::1", ""])

# --- what the html and feed adapters are handed: others' markup, addresses and headers as written ---------------

DECLARED_MEDIA_TYPES = st.sampled_from(["text/html", "application/xml", "application/rss+xml", "text/plain", ""])
DECLARED_CHARSETS = st.sampled_from([None, "utf-8", "latin-1", "utf-16", "utf-32-le", "utf-32-be", "no-such-charset"])
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
HOSTILE_HTML = st.sampled_from([
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '<a href="javascript:alert(1)">j</a>',
    '<p style="x:expression(1)">s</p>', "<iframe srcdoc='<script>1</script>'>", "<svg><script>1</script></svg>",
    "<object data=x>", "<embed src=x>", "<form><input></form>", "<base href='https://evil.example.net/'>",
    "<!--", "<![CDATA[", "<math><mtext><style><img src=x onerror=1>", "\x00", "\x85", "\u2028",
])  # fmt: skip
FRAGMENT = st.lists(st.one_of(HOSTILE_HTML, TAGS, WORDS), max_size=8).map("".join)
BANNED = {"script", "iframe", "object", "embed", "form", "style", "base", "svg", "math", "input", "meta"}


# --- sources and documents ---------------------------------------------------------------------------------------


def make_source(
    time_zone: str = "Europe/Zurich", name: str = "s", adapter: str = "interview", **options: Any
) -> SourceConfig:
    """A source as a config file gives it, its options checked: the interview adapter's unless told."""
    raw = {
        "site": {"title": "T", "base_url": "https://feeds.example.org/"},
        "sources": [
            {"name": name, "adapter": adapter, "location": "x.txt", "time_zone": time_zone, "options": options}
        ],
    }
    return parse(raw, Path("config.toml"), ADAPTERS).sources[0]


def unchecked_source(adapter: str, options: dict[str, object]) -> SourceConfig:
    """A source "s" whose options are not checked against the adapter's, in the site's default time zone."""
    raw = {
        "site": {"title": "P", "base_url": "https://feeds.example.org/"},
        "sources": [{"name": "s", "adapter": adapter, "location": "x.html", "options": options}],
    }
    return parse(raw, Path("/nonexistent/config.toml")).sources[0]


def make_doc(name_or_text: str, media_type: str = "text/plain", url: str = "file:///data/page") -> Document:
    """The fixture document `name_or_text` names under tests/data, or else that text itself."""
    path = DATA / name_or_text
    content = path.read_bytes() if "\n" not in name_or_text and path.exists() else name_or_text.encode()
    return Document(content=content, url=url, media_type=media_type)


# --- reading and checking entries --------------------------------------------------------------------------------


def read_one(doc: Document, source: SourceConfig | None = None) -> Entry:
    """The one entry the interview adapter reads from `doc`."""
    [entry] = Interview().parse(doc, source or make_source())
    return entry


def run(adapter: Adapter, doc: Document, source: SourceConfig) -> list[Entry]:
    """The entries a parse yields before any SourceError; anything else fails the test."""
    entries: list[Entry] = []
    iterator: Iterator[Entry] = adapter.parse(doc, source)
    try:
        for entry in iterator:
            entries.append(entry)
    except SourceError as exc:
        assert exc.where.startswith("s")
    return entries


def assert_well_formed(entry: Entry) -> None:
    """Build an XML element from every text the entry carries, serialize it and read it back."""
    assert entry.id and entry.title
    assert entry.published.utcoffset() is not None and entry.updated == entry.published
    assert entry.title == clean_text(entry.title) and entry.summary == clean_text(entry.summary)
    root = etree.Element("entry")
    for name, value in (("id", entry.id), ("title", entry.title), ("link", entry.link), ("summary", entry.summary),
                        ("key", entry.match_key)):  # fmt: skip
        etree.SubElement(root, name).text = value
    for label in entry.labels:
        assert label == clean_text(label) and label
        etree.SubElement(root, "label").text = label
    for person in entry.contributors:
        etree.SubElement(root, "contributor").text = person.name
    content = etree.SubElement(root, "content")
    if entry.content_html:
        for part in lxml.html.fragments_fromstring(entry.content_html):
            if isinstance(part, str):
                content.text = (content.text or "") + part
            else:
                content.append(part)
    again = etree.fromstring(etree.tostring(root, encoding="utf-8"))
    assert again.findtext("title") == entry.title
    assert again.findtext("summary") == entry.summary


def assert_well_formed_loose(entry: Entry) -> None:
    """assert_well_formed, less its listing-specific `updated == published` (feeds carry their own `updated`)."""
    assert_well_formed(replace(entry, updated=entry.published, contributors=()))


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


def assert_urls(entry: Entry) -> None:
    for url in (entry.link, *(enclosure.url for enclosure in entry.enclosures)):
        if url:
            assert_valid_url(url)
    if entry.id.startswith(("http://", "https://")):
        assert_valid_url(entry.id)
    assert not any(char.isspace() for char in entry.id), entry.id


def check_sanitized(doc: Document, sources: list[SourceConfig], adapter: Adapter) -> None:
    """What the adapter reads from `doc` for each source has a title, sanitized content and valid addresses."""
    for src in sources:
        for entry in run(adapter, doc, src):
            assert entry.title
            assert_sanitized(entry.content_html)
            assert not entry.link or entry.link.startswith(("http://", "https://"))
            assert_urls(entry)
