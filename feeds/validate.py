"""Checking a built output directory: feeds, archive chains, pages and OPML, with a file and line per problem."""

from __future__ import annotations

import bisect
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlsplit

import lxml.html
from lxml import etree

from feeds.model import ATOM, JSON_FEED, JSON_FEED_VERSION, RSS

_A = "{http://www.w3.org/2005/Atom}"
_FH_ARCHIVE = "{http://purl.org/syndication/history/1.0}archive"
_UNIQUE_LINKS = ("self", "alternate")  # at most one per type and hreflang (RFC 4287 4.1.1 for alternate)
_ARCHIVE_RELS = ("prev-archive", "next-archive", "current")
_TEXT_TYPES = ("text", "html", "xhtml")

_WEB_URL = re.compile(r"(?i:https?)://[^\s/?#@:\[\]]+(?::\d*)?(?:[/?#]\S*)?")
_SPACE = re.compile(r"\s")
_IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
# RFC 3339 section 5.6; Atom (RFC 4287 3.3) wants "T" and "Z" upper case, which RFC 3339 alone does not.
_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:Z|[+-](\d\d):(\d\d))")
_RFC3339_ANY_CASE = re.compile(_RFC3339.pattern, re.IGNORECASE)
_LXML_WHERE = re.compile(r", line \d+, column \d+$")
_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON = json.JSONDecoder()

# A line number, or how to find it: JSON positions are looked up only for a problem that needs one.
_Line = int | Callable[[], int]


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with one produced file."""

    path: str  # file relative to the checked directory
    line: int  # 1-based line number in the file (0 when not tied to a line)
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def validate_output(root: Path, *, known_ids: set[str] | None = None, base_url: str | None = None) -> list[Problem]:
    """Every problem in the files a build produced under `root`, sorted by file and line.

    `known_ids` (the store's entry ids) makes any other id a problem; `base_url` (the site's, ending
    in "/") ties each self link to its file and each link under it to a file that must exist.
    """
    if not root.is_dir():
        return [Problem(path=".", line=0, message=f"{root}: not a directory")]
    checker = _Checker(root, known_ids, base_url)
    checker.run()
    return sorted(checker.problems, key=lambda p: (p.path, p.line, p.message))


# --- small pure checks ---------------------------------------------------------------------------


def is_web_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host and no whitespace."""
    if _WEB_URL.fullmatch(url):
        return True
    try:  # the rarer shapes: user info, IPv6 hosts
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and not _SPACE.search(url)


def is_rfc3339(text: str, *, upper: bool = True) -> bool:
    """True for an RFC 3339 date-time with an offset ("Z" or ±hh:mm) that names a real moment."""
    m = (_RFC3339 if upper else _RFC3339_ANY_CASE).fullmatch(text)
    if m is None:
        return False
    try:
        datetime.fromisoformat(text)  # C-fast for the usual shapes; leap seconds and long fractions fall through
        return True
    except ValueError:
        pass
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, min(second, 59))  # 60: a leap second
    except ValueError:
        return False
    return m[7] is None or (int(m[7]) < 24 and int(m[8]) < 60)


def rfc822_problem(text: str) -> str:
    """Why `text` is no RFC 822 date with a time zone, or "" when it is one."""
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return "is not an RFC 822 date"
    return "" if moment.tzinfo is not None else "has no time zone"


def _resolve(line: _Line) -> int:
    return line if isinstance(line, int) else line()


def _line(element: etree._Element) -> int:
    line = element.sourceline
    return line if isinstance(line, int) else 0


def _text(element: etree._Element | None) -> str:
    if element is None:
        return ""
    if not len(element):
        return (element.text or "").strip()
    return "".join(t for t in element.itertext() if isinstance(t, str)).strip()


def _children(element: etree._Element) -> dict[str, list[etree._Element]]:
    kids: dict[str, list[etree._Element]] = {}
    for child in element:
        if isinstance(child.tag, str):  # not a comment or processing instruction
            kids.setdefault(child.tag, []).append(child)
    return kids


def _squash(text: str) -> str:
    return " ".join(text.split())


# --- what one feed document says about its entries and its place in an archive chain --------------


@dataclass(slots=True)
class _Doc:
    path: str
    line: int
    self_url: str = ""
    ids: dict[str, tuple[str | None, _Line]] = field(default_factory=dict)  # entry id -> (title, line), first kept
    links: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # archive rel -> [(href, line)]
    archived: bool = False  # carries fh:archive


class _JsonLines:
    """Line numbers in a JSON Feed, found only when a problem needs one (json keeps no positions)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._newlines: list[int] | None = None
        self._feed: dict[str, tuple[int, int]] | None = None
        self._items: list[dict[str, tuple[int, int]]] | None = None
        self._item_starts: list[int] = []

    def at(self, offset: int) -> int:
        if self._newlines is None:
            self._newlines = [i for i, c in enumerate(self.text) if c == "\n"]
        return bisect.bisect_left(self._newlines, offset) + 1

    def member(self, key: str) -> int:
        """The line of a top-level member's key, or 1."""
        self._scan()
        where = (self._feed or {}).get(key)
        return self.at(where[0]) if where else 1

    def item(self, index: int, key: str = "id") -> int:
        """The line of an item's `key` (its id by default), else of the item's start, else 1."""
        self._scan()
        if self._items is None or index >= len(self._items):
            return 1
        where = self._items[index].get(key) or self._items[index].get("id")
        return self.at(where[0] if where else self._item_starts[index])

    def _scan(self) -> None:
        if self._feed is not None:
            return
        self._feed = {}
        try:
            start = _JSON_WS.match(self.text, 0)
            pos = start.end() if start else 0
            if self.text[pos : pos + 1] != "{":
                return
            self._feed = _json_members(self.text, pos)
            items = self._feed.get("items")
            if items is None or self.text[items[1]] != "[":
                return
            self._item_starts = _json_elements(self.text, items[1])
            self._items = [_json_members(self.text, at) if self.text[at] == "{" else {} for at in self._item_starts]
        except (ValueError, IndexError):
            self._items = None  # the document parsed once already; this is only a fallback


def _skip_ws(text: str, pos: int) -> int:
    m = _JSON_WS.match(text, pos)
    return m.end() if m else pos


def _json_members(text: str, pos: int) -> dict[str, tuple[int, int]]:
    """For the object opening at `pos`: each key -> (offset of the key, offset of its value)."""
    members: dict[str, tuple[int, int]] = {}
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "}":
        return members
    while True:
        key_at = pos
        key, pos = _JSON.raw_decode(text, pos)
        pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past the ":"
        members.setdefault(str(key), (key_at, pos))
        _, pos = _JSON.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] != ",":
            return members
        pos = _skip_ws(text, pos + 1)


def _json_elements(text: str, pos: int) -> list[int]:
    """For the array opening at `pos`: the offset of each element."""
    starts: list[int] = []
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "]":
        return starts
    while True:
        starts.append(pos)
        _, pos = _JSON.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] != ",":
            return starts
        pos = _skip_ws(text, pos + 1)


# --- the checker ---------------------------------------------------------------------------------


class _Checker:
    def __init__(self, root: Path, known_ids: set[str] | None, base_url: str | None) -> None:
        self.root = root
        self.known = known_ids
        self.base = base_url or ""
        self.problems: list[Problem] = []
        # No DTD, no entity expansion, no network: a feed is data, and a hostile one must stay inert.
        self.parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)
        self.atom: dict[str, _Doc] = {}  # path -> document, current feeds and archives
        self.titles: dict[str, list[_Doc]] = {}  # slug -> its Atom, RSS and JSON documents, in that order
        self._exists: dict[str, bool] = {}

    def add(self, path: str, line: _Line, message: str) -> None:
        self.problems.append(Problem(path=path, line=_resolve(line), message=message))

    def run(self) -> None:
        top = sorted(p for p in self.root.iterdir() if p.is_file() and not p.name.startswith("."))
        by_ext: dict[str, list[Path]] = {}
        for p in top:
            by_ext.setdefault(p.suffix, []).append(p)
        archive_dir = self.root / "archive"
        archives = (
            sorted(p for p in archive_dir.rglob(f"*{ATOM.suffix}") if p.is_file()) if archive_dir.is_dir() else []
        )
        for path in [*by_ext.get(ATOM.suffix, []), *archives]:
            self.atom_file(path)
        for path in by_ext.get(RSS.suffix, []):
            self.rss_file(path)
        for path in by_ext.get(JSON_FEED.suffix, []):
            self.json_file(path)
        for path in by_ext.get(".html", []):
            self.html_file(path)
        if (self.root / "feeds.opml").is_file():
            self.opml_file(self.root / "feeds.opml")
        self.same_titles()
        self.archive_chains(archives)

    # -- shared --------------------------------------------------------------------------------

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def read(self, path: Path) -> bytes | None:
        """A file's bytes, checked against its precompressed sibling, which servers hand out instead."""
        rel = self.rel(path)
        try:
            data = path.read_bytes()
            gz = path.with_name(path.name + ".gz")
            packed = gz.read_bytes() if gz.is_file() else None
        except OSError as exc:
            self.add(rel, 0, f"cannot read: {exc.strerror or exc}")
            return None
        if packed is not None:
            try:
                same = gzip.decompress(packed) == data
            except (OSError, EOFError, zlib.error):
                same = False
            if not same:
                self.add(rel, 0, f"{path.name}.gz does not hold the same bytes (gzip clients get another file)")
        return data

    def parse_xml(self, path: Path) -> etree._Element | None:
        rel = self.rel(path)
        if (data := self.read(path)) is None:
            return None
        try:
            root = etree.fromstring(data, self.parser)
        except etree.XMLSyntaxError as exc:
            self.add(rel, exc.lineno or 0, f"not well-formed XML: {_LXML_WHERE.sub('', str(exc.msg))}")
            return None
        if root.getroottree().docinfo.internalDTD is not None:
            self.add(rel, 1, "has a document type declaration (feeds need none, and none is loaded)")
        return root

    def file_for(self, url: str, base: str | None = None) -> str | None:
        """The output file a URL under the base URL names, relative to the root; None when not under it."""
        base = self.base if base is None else base
        if not base or not url.startswith(base):
            return None
        path = url[len(base) :]
        if any(c in path for c in "?#%"):
            path = unquote(urlsplit(path).path)
        if path == "" or path.endswith("/"):
            path += "index.html"
        return path

    def exists(self, rel: str) -> bool:
        if rel not in self._exists:
            inside = ".." not in rel.split("/") and not rel.startswith("/")
            self._exists[rel] = inside and (self.root / rel).is_file()
        return self._exists[rel]

    def url(self, path: str, line: _Line, what: str, url: str, *, local: bool = False) -> None:
        """An absolute http(s) URL; with `local`, one under the base URL must name a produced file."""
        if not is_web_url(url):
            self.add(path, line, f'{what} "{url}" is not an absolute http(s) URL')
        elif local and (target := self.file_for(url)) is not None and not self.exists(target):
            self.add(path, line, f'{what} "{url}" names a missing file: {target}')

    def self_url(self, path: str, line: _Line, what: str, url: str) -> None:
        self.url(path, line, what, url)
        if self.base and is_web_url(url) and url != self.base + path:
            self.add(path, line, f'{what} "{url}" is not this file\'s URL "{self.base + path}"')

    def entry_url(self, path: str, line: _Line, what: str, url: str) -> None:
        # Entry links under base_url/entries/ are our own pages; other links may be anyone's pages.
        self.url(path, line, what, url, local=bool(self.base) and url.startswith(self.base + "entries/"))

    def entry_id(self, doc: _Doc, entry_id: str, title: str | None, line: _Line, noun: str) -> None:
        first = doc.ids.get(entry_id)
        if first is not None:
            self.add(doc.path, line, f'duplicate {noun} "{entry_id}" (first on line {_resolve(first[1])})')
            return
        doc.ids[entry_id] = (title, line)
        if self.known is not None and entry_id not in self.known:
            self.add(doc.path, line, f'entry "{entry_id}": id not in the store')

    def slug_doc(self, path: Path, doc: _Doc) -> None:
        if path.parent == self.root:
            self.titles.setdefault(path.stem, []).append(doc)

    # -- Atom (RFC 4287) -------------------------------------------------------------------------

    def atom_file(self, path: Path) -> None:
        rel = self.rel(path)
        feed = self.parse_xml(path)
        if feed is None:
            return
        if feed.tag != _A + "feed":
            self.add(rel, _line(feed), f"root element is <{feed.tag}>, not an Atom <feed>")
            return
        doc = _Doc(rel, _line(feed))
        self.atom[rel] = doc
        self.slug_doc(path, doc)
        kids = _children(feed)
        for name in ("id", "title", "updated"):
            self.exactly_one(rel, feed, kids, name, "feed")
        if feed_id := kids.get(_A + "id"):
            self.iri(rel, feed_id[0], "feed id")
        for name in ("updated", "published"):
            for el in kids.get(_A + name, ()):
                self.atom_date(rel, el, name)
        feed_author = bool(kids.get(_A + "author"))
        for author in kids.get(_A + "author", ()):
            self.person(rel, author)
        self.atom_links(rel, kids.get(_A + "link", ()), doc, feed=True)
        for name in ("icon", "logo"):
            for el in kids.get(_A + name, ()):
                self.url(rel, _line(el), f"atom:{name}", _text(el))
        doc.archived = bool(kids.get(_FH_ARCHIVE))
        for entry in kids.get(_A + "entry", ()):
            self.atom_entry(rel, entry, doc, feed_author)

    def exactly_one(
        self, path: str, parent: etree._Element, kids: dict[str, list[etree._Element]], name: str, noun: str
    ) -> None:
        found = kids.get(_A + name, [])
        if not found:
            self.add(path, _line(parent), f"{noun} has no atom:{name}")
        elif len(found) > 1:
            self.add(path, _line(found[1]), f"{noun} has {len(found)} atom:{name} elements")

    def iri(self, path: str, el: etree._Element, what: str) -> None:
        value = _text(el)
        if not _IRI.fullmatch(value):
            self.add(path, _line(el), f'{what} "{value}" is not an absolute IRI')

    def atom_date(self, path: str, el: etree._Element, name: str) -> None:
        value = _text(el)
        if not is_rfc3339(value):
            self.add(path, _line(el), f'atom:{name} "{value}" is not an RFC 3339 date-time with an offset')

    def person(self, path: str, person: etree._Element) -> None:
        kids = _children(person)
        names = kids.get(_A + "name", [])
        if len(names) != 1 or not _text(names[0]):
            self.add(path, _line(person), f"atom:{person.tag[len(_A) :]} needs exactly one non-empty atom:name")
        for uri in kids.get(_A + "uri", ()):
            self.iri(path, uri, "atom:uri")

    def atom_links(self, path: str, links: Iterable[etree._Element], doc: _Doc | None, *, feed: bool) -> bool:
        """Check a feed's or entry's links; True when one is rel="alternate"."""
        seen: set[tuple[str, str, str]] = set()
        alternate = has_self = False
        for link in links:
            line = _line(link)
            href = link.get("href")
            rel = link.get("rel") or "alternate"
            if href is None:
                self.add(path, line, "atom:link has no href")
                continue
            if rel in _UNIQUE_LINKS:
                key = (rel, link.get("type", ""), link.get("hreflang", ""))
                if key in seen:
                    lang = f' and hreflang "{key[2]}"' if key[2] else ""
                    self.add(path, line, f'more than one rel="{rel}" link with type "{key[1]}"{lang}')
                seen.add(key)
            alternate = alternate or rel == "alternate"
            if feed and rel == "self":
                has_self = True
                self.self_url(path, line, 'rel="self" link', href)
                if doc is not None and not doc.self_url:
                    doc.self_url = href
            elif feed and rel in _ARCHIVE_RELS:
                self.url(path, line, f'rel="{rel}" link', href)  # the chain check follows these
                if doc is not None:
                    doc.links.setdefault(rel, []).append((href, line))
            elif feed:
                self.url(path, line, f'rel="{rel}" link', href, local=rel == "alternate")
            else:
                self.entry_url(path, line, f'rel="{rel}" link', href)
        if feed and doc is not None:
            if not has_self:
                self.add(path, doc.line, 'feed has no rel="self" link')
            if not alternate:
                self.add(path, doc.line, 'feed has no rel="alternate" link')
        return alternate

    def atom_entry(self, path: str, entry: etree._Element, doc: _Doc, feed_author: bool) -> None:
        line = _line(entry)
        kids = _children(entry)
        for name in ("id", "title", "updated"):
            self.exactly_one(path, entry, kids, name, "entry")
        for name in ("updated", "published"):
            for el in kids.get(_A + name, ()):
                self.atom_date(path, el, name)
        authors = kids.get(_A + "author", [])
        for author in authors:
            self.person(path, author)
        if not authors and not feed_author and not self.source_author(kids):
            self.add(path, line, "entry has no atom:author and the feed has none")
        alternate = self.atom_links(path, kids.get(_A + "link", ()), None, feed=False)
        contents = kids.get(_A + "content", [])
        if len(contents) > 1:
            self.add(path, _line(contents[1]), f"entry has {len(contents)} atom:content elements")
        if not alternate and not contents:
            self.add(path, line, 'entry has neither a rel="alternate" link nor atom:content')
        summary = bool(kids.get(_A + "summary"))
        for content in contents[:1]:
            self.atom_content(path, content, summary)
        if ids := kids.get(_A + "id"):
            self.iri(path, ids[0], "entry id")
            titles = kids.get(_A + "title")
            title = self.atom_title(titles[0]) if titles else None
            self.entry_id(doc, _text(ids[0]), title, _line(ids[0]), "entry id")

    def source_author(self, kids: dict[str, list[etree._Element]]) -> bool:
        # RFC 4287 4.2.1: an entry's atom:source may supply the author the entry lacks.
        return any(_children(source).get(_A + "author") for source in kids.get(_A + "source", ()))

    def atom_content(self, path: str, content: etree._Element, summary: bool) -> None:
        line = _line(content)
        kind = content.get("type", "text")
        src = content.get("src")
        if src is not None:
            self.entry_url(path, line, "atom:content src", src)
            if len(content) or (content.text or "").strip():
                self.add(path, line, "atom:content with src must be empty")
            if not summary:
                self.add(path, line, "entry has out-of-line atom:content but no atom:summary")
            return
        if kind == "html" and not (content.text or "").strip():
            self.add(path, line, 'atom:content type="html" is empty')
        elif kind == "xhtml" and len(content) == 0:
            self.add(path, line, 'atom:content type="xhtml" has no XHTML div')
        elif kind not in _TEXT_TYPES and not _xml_media(kind) and not kind.lower().startswith("text/") and not summary:
            self.add(path, line, f'entry has base64 atom:content ("{kind}") but no atom:summary')

    def atom_title(self, title: etree._Element) -> str:
        if title.get("type") == "html" and (markup := (title.text or "").strip()):
            try:
                return _squash(_text(lxml.html.fromstring(markup)))
            except (etree.ParserError, ValueError):
                return _squash(markup)
        return _squash(_text(title))

    # -- RSS 2.0 ---------------------------------------------------------------------------------

    def rss_file(self, path: Path) -> None:
        rel = self.rel(path)
        rss = self.parse_xml(path)
        if rss is None:
            return
        if rss.tag != "rss":
            self.add(rel, _line(rss), f"root element is <{rss.tag}>, not <rss>")
            return
        if (version := rss.get("version")) != "2.0":
            self.add(rel, _line(rss), f'rss version is "{version or ""}", not "2.0"')
        channels = _children(rss).get("channel", [])
        if len(channels) != 1:
            self.add(rel, _line(rss), f"rss has {len(channels)} channel elements, not one")
        if not channels:
            return
        channel = channels[0]
        doc = _Doc(rel, _line(channel))
        self.slug_doc(path, doc)
        kids = _children(channel)
        for name in ("title", "link", "description"):
            if not kids.get(name):
                self.add(rel, doc.line, f"channel has no <{name}>")
        for link in kids.get("link", ()):
            self.url(rel, _line(link), "channel <link>", _text(link), local=True)
        for name in ("pubDate", "lastBuildDate"):
            for el in kids.get(name, ()):
                self.rss_date(rel, el)
        for image in kids.get("image", ()):
            for name in ("url", "link"):
                for el in _children(image).get(name, ()):
                    self.url(rel, _line(el), f"image <{name}>", _text(el))
        has_self = False
        for link in kids.get(_A + "link", ()):
            href = link.get("href", "")
            if link.get("rel") == "self":
                has_self = True
                self.self_url(rel, _line(link), 'atom:link rel="self"', href)
            else:
                self.url(rel, _line(link), f'atom:link rel="{link.get("rel", "alternate")}"', href)
        if not has_self:
            self.add(rel, doc.line, 'channel has no atom:link rel="self"')
        for item in kids.get("item", ()):
            self.rss_item(rel, item, doc)

    def rss_date(self, path: str, el: etree._Element) -> None:
        value = _text(el)
        if why := rfc822_problem(value):
            self.add(path, _line(el), f'<{el.tag}> "{value}" {why}')

    def rss_item(self, path: str, item: etree._Element, doc: _Doc) -> None:
        line = _line(item)
        kids = _children(item)
        titles = kids.get("title", [])
        if not titles and not kids.get("description"):
            self.add(path, line, "item has neither <title> nor <description>")
        for link in kids.get("link", ()):
            self.entry_url(path, _line(link), "item <link>", _text(link))
        for el in kids.get("comments", ()):
            self.url(path, _line(el), "item <comments>", _text(el))
        for enclosure in kids.get("enclosure", ()):
            self.entry_url(path, _line(enclosure), "enclosure url", enclosure.get("url", ""))
        for source in kids.get("source", ()):
            self.url(path, _line(source), "item <source> url", source.get("url", ""))
        for el in kids.get("pubDate", ()):
            self.rss_date(path, el)
        guids = kids.get("guid", [])
        if not guids:
            self.add(path, line, "item has no <guid> (every entry needs its id)")
            return
        guid = guids[0]
        value = _text(guid)
        # RSS 2.0: a guid without isPermaLink is a permalink.
        if guid.get("isPermaLink", "true") == "true" and not is_web_url(value):
            self.add(path, _line(guid), f'guid "{value}" is a permalink but not an absolute http(s) URL')
        self.entry_id(doc, value, _squash(_text(titles[0])) if titles else None, _line(guid), "guid")

    # -- JSON Feed 1.1 ---------------------------------------------------------------------------

    def json_file(self, path: Path) -> None:
        rel = self.rel(path)
        if (data := self.read(path)) is None:
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.add(rel, data.count(b"\n", 0, exc.start) + 1, f"not UTF-8: {exc.reason}")
            return
        try:
            feed = json.loads(text)
        except json.JSONDecodeError as exc:
            self.add(rel, exc.lineno, f"not valid JSON: {exc.msg}")
            return
        if not isinstance(feed, dict):
            self.add(rel, 1, "the top level is not a JSON object")
            return
        lines = _JsonLines(text)
        doc = _Doc(rel, 1)
        self.slug_doc(path, doc)
        if (version := feed.get("version")) != JSON_FEED_VERSION:
            self.add(
                rel, partial(lines.member, "version"), f'version is {json.dumps(version)}, not "{JSON_FEED_VERSION}"'
            )
        title = feed.get("title")
        if not isinstance(title, str) or not title.strip():
            self.add(rel, partial(lines.member, "title"), "feed has no title string")
        if "feed_url" in feed:
            self.json_url(rel, partial(lines.member, "feed_url"), "feed_url", feed["feed_url"], own=True)
        else:
            self.add(rel, 1, "feed has no feed_url")
        for key in ("home_page_url", "next_url", "icon", "favicon"):
            if key in feed:
                self.json_url(rel, partial(lines.member, key), key, feed[key], local=key == "home_page_url")
        self.json_people(rel, partial(lines.member, "authors"), feed)
        for hub in feed.get("hubs", None) or ():
            if isinstance(hub, dict):
                self.json_url(rel, partial(lines.member, "hubs"), "hub url", hub.get("url"))
        items = feed.get("items")
        if not isinstance(items, list):
            self.add(rel, partial(lines.member, "items"), "items is not a list")
            return
        for index, item in enumerate(items):
            self.json_item(rel, index, item, doc, lines)

    def json_url(
        self, path: str, line: _Line, what: str, value: object, *, local: bool = False, own: bool = False
    ) -> None:
        if not isinstance(value, str):
            self.add(path, line, f"{what} is not a string")
        elif own:
            self.self_url(path, line, what, value)
        elif local:
            self.url(path, line, what, value, local=True)
        else:
            self.entry_url(path, line, what, value)

    def json_people(self, path: str, line: _Line, owner: dict[str, object]) -> None:
        people = owner.get("authors")
        if people is None:
            return
        if not isinstance(people, list):
            self.add(path, line, "authors is not a list")
            return
        for person in people:
            url = person.get("url") if isinstance(person, dict) else None
            # An author's url may be a mailto: (JSON Feed has no e-mail field): absolute, any scheme.
            if url is not None and not (isinstance(url, str) and _IRI.fullmatch(url)):
                self.add(path, line, f"author url {json.dumps(url)} is not an absolute URL")

    def json_item(self, path: str, index: int, item: object, doc: _Doc, lines: _JsonLines) -> None:
        if not isinstance(item, dict):
            self.add(path, partial(lines.item, index), f"items[{index}] is not an object")
            return
        item_id = item.get("id")
        if item_id is None:
            self.add(path, partial(lines.item, index), f"items[{index}] has no id")
        elif not isinstance(item_id, str) or not item_id:
            self.add(
                path, partial(lines.item, index), f"items[{index}] id {json.dumps(item_id)} is not a non-empty string"
            )
            item_id = None
        if not isinstance(item.get("content_html"), str) and not isinstance(item.get("content_text"), str):
            self.add(path, partial(lines.item, index), f"items[{index}] has neither content_html nor content_text")
        for key in ("url", "external_url", "image", "banner_image"):
            if key in item:
                self.json_url(path, partial(lines.item, index, key), key, item[key])
        for key in ("date_published", "date_modified"):
            value = item.get(key)
            if key in item and not (isinstance(value, str) and is_rfc3339(value, upper=False)):
                self.add(
                    path,
                    partial(lines.item, index, key),
                    f"{key} {json.dumps(value)} is not an RFC 3339 date-time with an offset",
                )
        for attachment in item.get("attachments", None) or ():
            if isinstance(attachment, dict):
                self.json_url(path, partial(lines.item, index, "attachments"), "attachment url", attachment.get("url"))
        self.json_people(path, partial(lines.item, index, "authors"), item)
        if item_id is not None:
            title = item.get("title")
            self.entry_id(
                doc, item_id, _squash(title) if isinstance(title, str) else None, partial(lines.item, index), "item id"
            )

    # -- pages and the OPML list -----------------------------------------------------------------

    def html_file(self, path: Path) -> None:
        rel = self.rel(path)
        if (data := self.read(path)) is None:
            return
        try:
            page = lxml.html.document_fromstring(data)
        except (etree.ParserError, ValueError) as exc:
            self.add(rel, 1, f"cannot parse HTML: {exc}")
            return
        for link in page.iter("link"):
            href = link.get("href")
            rels = (link.get("rel") or "").lower().split()
            if href is None:
                if "alternate" in rels:
                    self.add(rel, _line(link), '<link rel="alternate"> has no href')
                continue
            what = f'<link rel="{" ".join(rels)}">'
            # Only autodiscovery must name one of our files; a canonical or stylesheet link may be anyone's.
            self.url(rel, _line(link), what, href, local="alternate" in rels or "outline" in rels)

    def opml_file(self, path: Path) -> None:
        rel = self.rel(path)
        opml = self.parse_xml(path)
        if opml is None:
            return
        if opml.tag != "opml":
            self.add(rel, _line(opml), f"root element is <{opml.tag}>, not <opml>")
            return
        for outline in opml.iter("outline"):
            for name in ("xmlUrl", "htmlUrl"):
                if (url := outline.get(name)) is not None:
                    self.url(rel, _line(outline), name, url, local=True)

    # -- across files ----------------------------------------------------------------------------

    def same_titles(self) -> None:
        """The same entry id has the same title in a feed's Atom, RSS and JSON documents."""
        for docs in self.titles.values():
            first: dict[str, tuple[str, str]] = {}  # id -> (title, path)
            for doc in docs:
                for entry_id, (title, line) in doc.ids.items():
                    if title is None:  # no title at all is its own problem, already reported
                        continue
                    seen = first.setdefault(entry_id, (title, doc.path))
                    if seen[0] != title:
                        self.add(doc.path, line, f'entry "{entry_id}": title "{title}" here, "{seen[0]}" in {seen[1]}')

    def archive_chains(self, archives: list[Path]) -> None:
        """RFC 5005 archives: each current feed's prev-archive chain, then files no chain reaches."""
        reached: set[str] = set()
        for path, doc in self.atom.items():
            if "/" in path:
                continue
            if doc.archived:
                self.add(path, doc.line, "current feed carries fh:archive (only archive documents do)")
            if doc.links.get("prev-archive"):
                reached |= self.chain(doc)
        for archive in archives:
            rel = self.rel(archive)
            if rel in reached:
                continue
            parts = rel.split("/")
            current = f"{parts[1]}{ATOM.suffix}" if len(parts) == 3 else ""
            if current and (self.root / current).is_file():
                self.add(rel, 0, f"archive not reached by following prev-archive links from {current}")
            else:
                self.add(rel, 0, "archive of no current feed (expected archive/<slug>/<n>.atom beside <slug>.atom)")

    def chain(self, current: _Doc) -> set[str]:
        """Follow prev-archive links from a current feed; the archive files reached."""
        current_url = current.self_url or self.base + current.path
        # Without a configured base URL, the current feed's own URL says where the site is.
        base = self.base
        if not base and current_url.endswith("/" + current.path):
            base = current_url[: -len(current.path)]
        seen_ids = {entry_id: f"{current.path}:{_resolve(line)}" for entry_id, (_, line) in current.ids.items()}
        reached: set[str] = set()
        doc, doc_url = current, current_url
        while prevs := doc.links.get("prev-archive"):
            if len(prevs) > 1:
                self.add(doc.path, prevs[1][1], f"{len(prevs)} prev-archive links")
            href, line = prevs[0]
            target = self.file_for(href, base)
            if target is None:
                self.add(doc.path, line, f'prev-archive "{href}" is not under the base URL "{base}"')
                return reached
            if target in reached or target == current.path:
                self.add(doc.path, line, f'prev-archive "{href}" makes a cycle')
                return reached
            archive = self.atom.get(target)
            if archive is None:
                if not self.exists(target):
                    self.add(doc.path, line, f'prev-archive "{href}" names a missing file: {target}')
                return reached  # a file that is there but unreadable has its own problem already
            reached.add(target)
            self.archive_links(archive, current_url, doc_url, newest=doc is current)
            for entry_id, (_, entry_line) in archive.ids.items():
                if (other := seen_ids.get(entry_id)) is not None:
                    self.add(target, entry_line, f'entry "{entry_id}" is also in {other}')
                else:
                    seen_ids[entry_id] = f"{target}:{_resolve(entry_line)}"
            doc, doc_url = archive, href
        return reached

    def archive_links(self, archive: _Doc, current_url: str, newer_url: str, *, newest: bool) -> None:
        path = archive.path
        if not archive.archived:
            self.add(path, archive.line, "archive has no fh:archive element")
        currents = archive.links.get("current")
        if not currents:
            self.add(path, archive.line, f'archive has no rel="current" link (expected "{current_url}")')
        elif currents[0][0] != current_url:
            self.add(path, currents[0][1], f'rel="current" link "{currents[0][0]}" is not "{current_url}"')
        nexts = archive.links.get("next-archive")
        if not nexts:
            # The newest archive may leave it out: the current feed is what comes next.
            if not newest:
                self.add(path, archive.line, f'archive has no rel="next-archive" link (expected "{newer_url}")')
        elif nexts[0][0] != newer_url:
            self.add(path, nexts[0][1], f'rel="next-archive" link "{nexts[0][0]}" is not "{newer_url}"')


def _xml_media(kind: str) -> bool:
    kind = kind.lower().split(";")[0].strip()
    return kind.endswith(("+xml", "/xml"))
