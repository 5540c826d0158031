"""Writing output/: atomic replacement, gzip siblings, the index page and the OPML list."""

from __future__ import annotations

import errno
import gzip
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from lxml.html import builder as E
from lxml.html import tostring

from feeds.errors import PublishError

FORMATS: tuple[tuple[str, str, str], ...] = (
    ("atom", "application/atom+xml", "Atom"),
    ("rss", "application/rss+xml", "RSS"),
    ("json", "application/feed+json", "JSON Feed"),
)


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` unless it already holds exactly those bytes; True when written.

    Readers see the old file or the new one, never a mix: the bytes go to a hidden temporary
    file in the same directory, are flushed to disk, then renamed over the target.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise PublishError(str(path), f"cannot read the current file: {exc.strerror}") from exc
    tmp_name = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except OSError as exc:
        if tmp_name:
            with _quietly():
                os.unlink(tmp_name)
        hint = (
            "the disk is full; free space, then run feeds build again"
            if exc.errno == errno.ENOSPC
            else ("check that the output directory is writable")
        )
        raise PublishError(str(path), f"cannot write ({exc.strerror}); the previous file is intact; {hint}") from exc
    return True


class _quietly:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


def write_feed_file(path: Path, data: bytes) -> bool:
    """Write a file and its precompressed `.gz` sibling (deterministic: no name, mtime 0)."""
    written = write_atomic(path, data)
    gz = path.with_name(path.name + ".gz")
    if written or not gz.exists():
        write_atomic(gz, gzip.compress(data, compresslevel=9, mtime=0))
    return written


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedLink:
    """A category's feeds as the index and OPML list them."""

    slug: str
    title: str
    description: str
    entries: int


def html_document(tree: etree._Element) -> bytes:
    """An lxml.html tree as a UTF-8 HTML5 document."""
    body: bytes = tostring(tree, encoding="utf-8", pretty_print=True)
    return b"<!DOCTYPE html>\n" + body


def index_html(*, site_title: str, base_url: str, language: str, feeds: Sequence[FeedLink]) -> bytes:
    """The landing page: every feed, with autodiscovery links and one subscribe link per format."""
    head = E.HEAD(
        E.META(charset="utf-8"),
        E.META(name="viewport", content="width=device-width, initial-scale=1"),
        E.TITLE(site_title),
        *(
            E.LINK(rel="alternate", type=media, title=f"{feed.title} ({label})", href=f"{base_url}{feed.slug}.{ext}")
            for feed in feeds
            for ext, media, label in FORMATS
        ),
        E.LINK(rel="outline", type="text/x-opml", title="All feeds (OPML)", href=f"{base_url}feeds.opml"),
        E.STYLE(_CSS),
    )
    rows = []
    for feed in feeds:
        links = [E.A(label, href=f"{base_url}{feed.slug}.{ext}", type=media) for ext, media, label in FORMATS]
        spaced: list[object] = []
        for link in links:
            spaced.extend((link, " "))
        rows.append(
            E.LI(
                E.H2(E.A(feed.title, href=f"{base_url}{feed.slug}.html")),
                E.P(feed.description) if feed.description else "",
                E.P(f"{feed.entries} entries · subscribe: ", *spaced[:-1], **{"class": "subscribe"}),
                id=f"feed-{feed.slug}",
            )
        )
    body = E.BODY(
        E.H1(site_title),
        E.P(
            "Subscribe to a feed in your reader, or import ",
            E.A("every feed as OPML", href=f"{base_url}feeds.opml"),
            ".",
        ),
        E.UL(*rows, **{"class": "feeds"}),
    )
    return html_document(E.HTML(head, body, lang=language))


def opml(*, site_title: str, base_url: str, feeds: Sequence[FeedLink]) -> bytes:
    """OPML 2.0 listing every Atom feed, for importing into a reader at once."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = site_title
    body = etree.SubElement(root, "body")
    for feed in feeds:
        etree.SubElement(
            body,
            "outline",
            type="rss",
            text=feed.title,
            title=feed.title,
            xmlUrl=f"{base_url}{feed.slug}.atom",
            htmlUrl=f"{base_url}{feed.slug}.html",
            description=feed.description,
        )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
ul.feeds, ol.entries { list-style: none; padding: 0; }
ul.feeds li, ol.entries li { border-top: 1px solid #ddd; padding: .75rem 0; }
h2 { font-size: 1.2rem; margin: 0; }
.subscribe a { margin-right: .25rem; }
time, .meta { color: #666; font-size: .9rem; }
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PageEntry:
    """What a category page shows of one entry."""

    title: str
    link: str
    published_iso: str
    published_text: str
    summary: str


def category_html(
    *, site_title: str, base_url: str, language: str, feed: FeedLink, entries: Sequence[PageEntry]
) -> bytes:
    """A readable page of one category's entries, with autodiscovery links to its feeds."""
    head = E.HEAD(
        E.META(charset="utf-8"),
        E.META(name="viewport", content="width=device-width, initial-scale=1"),
        E.TITLE(f"{feed.title} · {site_title}"),
        *(
            E.LINK(rel="alternate", type=media, title=f"{feed.title} ({label})", href=f"{base_url}{feed.slug}.{ext}")
            for ext, media, label in FORMATS
        ),
        E.STYLE(_CSS),
    )
    items = [
        E.LI(
            E.H2(E.A(entry.title, href=entry.link)),
            E.P(E.TIME(entry.published_text, datetime=entry.published_iso), **{"class": "meta"}),
            E.P(entry.summary) if entry.summary else "",
        )
        for entry in entries
    ]
    subscribe: list[object] = []
    for ext, media, label in FORMATS:
        subscribe.extend((E.A(label, href=f"{base_url}{feed.slug}.{ext}", type=media), " "))
    body = E.BODY(
        E.P(E.A(f"← {site_title}", href=f"{base_url}index.html")),
        E.H1(feed.title),
        E.P(feed.description) if feed.description else "",
        E.P("Subscribe: ", *subscribe[:-1], **{"class": "subscribe"}),
        E.OL(*items, **{"class": "entries"}) if items else E.P("No entries yet."),
    )
    return html_document(E.HTML(head, body, lang=language))
