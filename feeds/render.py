"""Feed documents: Atom and RSS through feedgen, JSON Feed by hand."""

from __future__ import annotations

import html
import itertools
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

import lxml.etree  # type: ignore[import-untyped, unused-ignore]
import lxml.html  # type: ignore[import-untyped, unused-ignore]
from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator

from feeds import __version__
from feeds.errors import RenderError
from feeds.model import ATOM, JSON_FEED, JSON_FEED_VERSION, RSS, Author, Category, Enclosure, Entry
from feeds.sanitize import xml_safe as clean  # lxml refuses a whole document over one such character

GENERATOR = "feeds"
# The version of what entries render as. Raise it when a change here changes an entry's bytes in any
# format: every entry is then rendered again. A release that renders the same bytes keeps it.
RENDER_VERSION = 1

_ATOM_NS = "http://www.w3.org/2005/Atom"
_DC_NS = "http://purl.org/dc/elements/1.1/"
_FH_NS = "http://purl.org/syndication/history/1.0"
_EXT = "feeds_ext"  # the attribute feedgen gives our extension on each generator and entry
_UNTITLED = "(untitled)"

# feedgen's formatRFC2822 sets the process-wide locale to "C" and back around every RSS date. Two
# threads doing that at once can restore each other's "C" as the "old" locale, or format a date while
# the other has put the original locale back (German day names in <pubDate>). Only RSS rendering
# formats dates that way, so it alone holds this lock.
_RSS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedMeta:
    """What a feed says about itself."""

    slug: str  # "news", "all"
    title: str
    description: str  # subtitle / RSS description; the title stands in when empty
    base_url: str  # ends with "/"
    author: str  # site author or organisation; "" allowed (the title stands in where Atom needs one)
    language: str  # "en"; "" leaves it out
    updated: datetime  # the newest entry's `updated`, never the build time
    ttl_minutes: int | None = None
    hubs: tuple[str, ...] = ()  # WebSub hubs
    alternate_url: str = ""  # the HTML page; base_url + slug + ".html" when empty
    path: str = ""  # where the document lives under base_url, without extension; the slug when empty
    # RFC 5005 links as (rel, path without extension); each format links to documents of its own format.
    history: tuple[tuple[str, str], ...] = ()
    archive: bool = False  # an archive document (fh:archive): its entries never change

    def __post_init__(self) -> None:
        if self.updated.tzinfo is None or self.updated.utcoffset() is None:
            raise ValueError(f"feed {self.slug}: updated must be timezone-aware, got {self.updated!r}")
        if not self.base_url.endswith("/"):
            raise ValueError(f"feed {self.slug}: base_url must end with '/', got {self.base_url!r}")

    def url(self, ext: str) -> str:
        """The public URL of this feed in one format ("atom", "rss", "json"): its rel=self."""
        return f"{self.base_url}{self.path or self.slug}.{ext}"

    def history_links(self, ext: str) -> list[tuple[str, str]]:
        return [(rel, f"{self.base_url}{path}.{ext}") for rel, path in self.history]

    @property
    def alternate(self) -> str:
        """The feed's HTML page: its rel=alternate."""
        return self.alternate_url or f"{self.base_url}{self.slug}.html"


# --- entries, cleaned once per render -------------------------------------------------------------


class _Person(NamedTuple):
    name: str
    uri: str
    email: str


class _Attachment(NamedTuple):
    url: str
    type: str
    length: int


class _Item(NamedTuple):
    id: str
    title: str
    link: str
    summary: str
    content_html: str
    published: datetime
    updated: datetime
    authors: tuple[_Person, ...]
    contributors: tuple[_Person, ...]
    categories: tuple[tuple[str, str], ...]  # (slug, title)
    enclosures: tuple[_Attachment, ...]
    tags: tuple[str, ...]  # the source's own categories that are not among `categories`


# The same few authors and categories recur on thousands of entries: clean each once.
@lru_cache(maxsize=1024)
def _person(author: Author) -> _Person | None:
    name = clean(author.name).strip()
    # Atom requires a name and RSS's dc:creator is nothing but one: a nameless author says nothing.
    return _Person(name, clean(author.uri).strip(), clean(author.email).strip()) if name else None


@lru_cache(maxsize=1024)
def _category(category: Category) -> tuple[str, str] | None:
    slug = clean(category.slug).strip()
    return (slug, clean(category.title).strip() or slug) if slug else None


def _people(people: tuple[Author, ...]) -> tuple[_Person, ...]:
    return tuple(p for p in map(_person, people) if p is not None)


def _attachments(enclosures: tuple[Enclosure, ...]) -> tuple[_Attachment, ...]:
    out = []
    for e in enclosures:
        if url := clean(e.url).strip():
            out.append(_Attachment(url, clean(e.type).strip() or "application/octet-stream", max(e.length, 0)))
    return tuple(out)


def _moment(value: datetime) -> datetime:
    # An offset with seconds (a historic local mean time) has no RFC 3339 or RFC 822 spelling.
    offset = value.utcoffset()
    if offset is not None and (offset.seconds % 60 or offset.microseconds):
        return value.astimezone(UTC)
    return value


def _tags(tags: tuple[str, ...], categories: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    shown = {title.casefold() for _, title in categories}
    cleaned = (" ".join(clean(tag).split()) for tag in tags)
    return tuple(dict.fromkeys(tag for tag in cleaned if tag and tag.casefold() not in shown))


def _item(entry: Entry) -> _Item:
    categories = tuple(c for c in map(_category, entry.categories) if c is not None) if entry.categories else ()
    return _Item(
        clean(entry.id),
        clean(entry.title).strip() or _UNTITLED,
        clean(entry.link).strip(),
        clean(entry.summary).strip(),
        clean(entry.content_html).strip(),
        _moment(entry.published),
        _moment(entry.updated),
        _people(entry.authors) if entry.authors else (),
        _people(entry.contributors) if entry.contributors else (),
        categories,
        _attachments(entry.enclosures) if entry.enclosures else (),
        _tags(entry.tags, categories) if entry.tags else (),
    )


# --- feedgen, typed at the boundary ---------------------------------------------------------------


class _FgEntry(Protocol):
    def id(self, id: str) -> object: ...
    def guid(self, guid: str, permalink: bool) -> object: ...
    def title(self, title: str) -> object: ...
    def link(self, link: list[dict[str, str]]) -> object: ...
    def updated(self, updated: datetime) -> object: ...
    def published(self, published: datetime) -> object: ...
    def author(self, author: list[dict[str, str]]) -> object: ...
    def contributor(self, contributor: list[dict[str, str]]) -> object: ...
    def category(self, category: list[dict[str, str]]) -> object: ...
    def summary(self, summary: str) -> object: ...
    def content(self, content: str, *, type: str) -> object: ...
    def atom_entry(self) -> object: ...
    def rss_entry(self) -> object: ...
    def register_extension(
        self, namespace: str, extension_class_entry: type[object], *, atom: bool, rss: bool
    ) -> object: ...


class _FgFeed(Protocol):
    def id(self, id: str) -> object: ...
    def title(self, title: str) -> object: ...
    def subtitle(self, subtitle: str) -> object: ...
    def description(self, description: str) -> object: ...
    def link(self, link: list[dict[str, str]]) -> object: ...
    def updated(self, updated: datetime) -> object: ...
    def author(self, author: list[dict[str, str]]) -> object: ...
    def language(self, language: str) -> object: ...
    def generator(self, generator: str, *, version: str | None = None) -> object: ...
    def ttl(self, ttl: int) -> object: ...
    def register_extension(
        self, namespace: str, feed_class: type[object], entry_class: type[object], *, atom: bool, rss: bool
    ) -> object: ...
    def atom_str(self, *, pretty: bool) -> bytes: ...
    def rss_str(self, *, pretty: bool) -> bytes: ...


class _FeedExt:
    """Feed-level additions feedgen cannot make: WebSub hubs in RSS (it keeps only the self link)."""

    __slots__ = ("archive", "hubs", "links", "namespaces")

    def __init__(self) -> None:
        self.hubs: tuple[str, ...] = ()
        self.links: list[tuple[str, str]] = []  # (rel, href) atom:links RSS has no element for
        self.archive = False
        self.namespaces: dict[str, str] = {}

    def extend_ns(self) -> dict[str, str]:
        return self.namespaces

    def extend_atom(self, feed: Any) -> Any:
        if self.archive:
            feed.append(feed.makeelement(f"{{{_FH_NS}}}archive", {}))
        return feed

    def extend_rss(self, rss: Any) -> Any:
        channel = rss[0]
        for hub in self.hubs:
            channel.append(channel.makeelement(f"{{{_ATOM_NS}}}link", {"href": hub, "rel": "hub"}))
        for rel, href in self.links:
            channel.append(channel.makeelement(f"{{{_ATOM_NS}}}link", {"href": href, "rel": rel}))
        if self.archive:
            channel.append(channel.makeelement(f"{{{_FH_NS}}}archive", {}))
        return rss


class _EntryExt:
    """Entry-level additions and repairs: feedgen's entry links lose rel/type/length (upstream #135)."""

    __slots__ = ("contributors", "creators", "enclosures")

    def __init__(self) -> None:
        self.enclosures: tuple[_Attachment, ...] = ()
        self.creators: tuple[str, ...] = ()
        self.contributors: tuple[str, ...] = ()

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_atom(self, entry: Any) -> Any:
        # feedgen wrote the alternate link as a bare href; the enclosures go right after it.
        alternate = next(entry.iterchildren("link"), None)  # no path to parse, unlike find()
        if alternate is None:
            return entry
        alternate.set("rel", "alternate")
        at = entry.index(alternate)
        for n, enc in enumerate(self.enclosures, start=1):
            attrib = {"href": enc.url, "rel": "enclosure", "type": enc.type}
            if enc.length:
                attrib["length"] = str(enc.length)
            entry.insert(at + n, entry.makeelement("link", attrib))
        return entry

    def extend_rss(self, item: Any) -> Any:
        # RSS allows one enclosure: the first, with length "0" when unknown (RSS Best Practices).
        if self.enclosures:
            enc = self.enclosures[0]
            attrib = {"url": enc.url, "length": str(enc.length), "type": enc.type}
            item.append(item.makeelement("enclosure", attrib))
        for tag, names in (("creator", self.creators), ("contributor", self.contributors)):
            for name in names:
                node = item.makeelement(f"{{{_DC_NS}}}{tag}", {})
                node.text = name
                item.append(node)
        return item


# The namespaces feedgen declares on an RSS root (ours, then its own): an item spliced into a
# document must be written with the prefixes that document declares.
_RSS_NSMAP = {"dc": _DC_NS, "atom": _ATOM_NS, "content": "http://purl.org/rss/1.0/modules/content/"}


def _line_start(text: bytes, at: int) -> int:
    return text.rindex(b"\n", 0, at) + 1


_BATCH = 200  # entries serialized in one call

# Where a built entry sits in a pretty-printed document: its parent's closing tag, and the start of its
# own line, which nothing else in the document can hold: every "<" of an entry's text is escaped, and
# no element inside an entry is named like the entry.
_PLACES = {"atom": (b"</feed>", b"\n  <entry"), "rss": (b"</channel>", b"\n    <item")}


def _serialize(elements: Sequence[Any], fmt: str) -> list[bytes]:
    """Built entries as the lines each takes in a pretty-printed document of its format.

    They are written together inside a stand-in of the document's root (its namespaces, at the
    entries' depth), so the bytes are those the whole document would hold, and then cut apart: an
    entry is serialized once however many feeds show it, and one call serves a whole batch.
    """
    if fmt == "atom":
        root = parent = lxml.etree.Element("feed")
    else:
        root = lxml.etree.Element("rss", nsmap=_RSS_NSMAP)
        parent = lxml.etree.SubElement(root, "channel")
    parent.extend(elements)
    text: bytes = lxml.etree.tostring(root, encoding="UTF-8", xml_declaration=False, pretty_print=True)
    closing, opening = _PLACES[fmt]
    starts = []
    at = 0
    for _ in elements:
        at = text.index(opening, at) + 1
        starts.append(at)
    starts.append(_line_start(text, text.rindex(closing)))
    return [text[a:b] for a, b in itertools.pairwise(starts)]


def _splice(envelope: bytes, closing: bytes, fragments: Sequence[bytes]) -> bytes:
    """A feed document: feedgen's document without entries, with the entries' lines before its last closing tag.

    feedgen appends entries after every other child of the feed (or channel), extensions included,
    so that is where they go.
    """
    at = _line_start(envelope, envelope.rindex(closing))
    return b"".join((envelope[:at], *fragments, envelope[at:]))


class Fragments(NamedTuple):
    """What one entry renders as: its lines in Atom and in RSS documents (pretty-printed), its JSON Feed line."""

    atom: bytes
    rss: bytes
    json: bytes


def entry_fragments(entries: Sequence[Entry], base_url: str, where: str) -> list[Fragments]:
    """Each entry's fragments in every format, built through feedgen (Atom and RSS from one feedgen entry).

    A document is its envelope with its entries' fragments spliced in (atom_document, rss_document,
    json_document), so an entry is rendered once however many feeds and passes show it. `where` names
    the document or batch in a RenderError.
    """
    out: list[Fragments] = []
    # In batches: one serialization serves a batch, and a long feed's built elements are not all held at once.
    for start in range(0, len(entries), _BATCH):
        items = [_item(entry) for entry in entries[start : start + _BATCH]]
        built = [_elements(item, base_url, where) for item in items]
        try:
            atom = _serialize([pair[0] for pair in built], "atom")
            rss = _serialize([pair[1] for pair in built], "rss")
        except (ValueError, TypeError, UnicodeError) as exc:
            raise RenderError(where, str(exc)) from exc
        out += [Fragments(a, r, _json_line(item)) for item, a, r in zip(items, atom, rss, strict=True)]
    return out


def _elements(item: _Item, base_url: str, where: str) -> tuple[Any, Any]:
    try:
        return _build(item, base_url)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise RenderError(where, f"entry {item.id}: {exc}") from exc


def _generator(*, atom: bool) -> _FgFeed:
    gen: _FgFeed = FeedGenerator()
    gen.register_extension(_EXT, _FeedExt, _EntryExt, atom=atom, rss=not atom)
    return gen


def _feed_ext(gen: _FgFeed) -> _FeedExt:
    ext: _FeedExt = getattr(gen, _EXT)
    return ext


def _entry_ext(fe: _FgEntry) -> _EntryExt:
    ext: _EntryExt = getattr(fe, _EXT)
    return ext


def _person_dicts(people: tuple[_Person, ...]) -> list[dict[str, str]]:
    out = []
    for p in people:
        d = {"name": p.name}
        if p.uri:
            d["uri"] = p.uri
        if p.email:
            d["email"] = p.email
        out.append(d)
    return out


def _envelope(where: str, whole: Callable[[], bytes]) -> bytes:
    try:
        return whole()
    except (ValueError, TypeError, UnicodeError) as exc:
        raise RenderError(where, str(exc)) from exc


# --- what each format says of an entry, through feedgen -----------------------------------------


def _build(item: _Item, base_url: str) -> tuple[Any, Any]:
    """The entry's Atom and RSS elements, built through one feedgen entry.

    What both formats say is set once. RSS is built first, before the authors: feedgen would write
    an RSS <author> for each that has an e-mail address, and RSS names them as dc:creator instead.
    """
    if not item.link:
        raise ValueError("no link (every entry needs an absolute URL)")
    fe: _FgEntry = FeedEntry()
    fe.register_extension(_EXT, _EntryExt, atom=True, rss=True)
    fe.title(item.title)
    fe.link([{"href": item.link}])
    fe.published(item.published)
    if item.content_html:
        fe.content(item.content_html, type="html")
    if item.categories or item.tags:
        # Our categories name feeds under base_url; the source's own tags are plain terms of no scheme.
        ours = [{"term": slug, "label": label, "scheme": base_url} for slug, label in item.categories]
        fe.category(ours + [{"term": tag} for tag in item.tags])
    ext = _entry_ext(fe)
    ext.enclosures = item.enclosures

    fe.guid(item.id, permalink=item.id == item.link)
    if item.summary:
        # <description> is HTML to every reader; the summary is plain text.
        fe.summary(html.escape(item.summary, quote=False))
    # dc:creator, not <author>: RSS's author must be an e-mail address and name-only ones vanish.
    ext.creators = tuple(p.name for p in item.authors)
    ext.contributors = tuple(p.name for p in item.contributors)
    with _RSS_LOCK:
        rss = fe.rss_entry()

    fe.id(item.id)
    fe.updated(item.updated)
    if item.authors:
        fe.author(_person_dicts(item.authors))
    if item.contributors:
        fe.contributor(_person_dicts(item.contributors))
    if item.summary:
        fe.summary(item.summary)
    return fe.atom_entry(), rss


# --- Atom -----------------------------------------------------------------------------------------


def render_atom(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    """An Atom 1.0 document of `entries`, in the given order."""
    fragments = entry_fragments(entries, meta.base_url, f"{meta.slug}{ATOM.suffix}")
    return atom_document(meta, [f.atom for f in fragments])


def atom_document(meta: FeedMeta, fragments: Sequence[bytes]) -> bytes:
    """An Atom 1.0 document of entries already rendered (their `Fragments.atom`), in the given order."""
    where = f"{meta.slug}{ATOM.suffix}"
    gen = _generator(atom=True)
    title = clean(meta.title).strip() or meta.slug
    self_url = clean(meta.url(ATOM.ext))
    gen.id(self_url)
    gen.title(title)
    gen.subtitle(clean(meta.description).strip() or title)
    gen.updated(_moment(meta.updated))
    # RFC 4287 wants a feed author unless every entry has one; the feed's title stands in.
    gen.author([{"name": clean(meta.author).strip() or title}])
    gen.link(
        [
            {"href": self_url, "rel": "self", "type": ATOM.media_type},
            *({"href": clean(hub), "rel": "hub"} for hub in meta.hubs),
            *({"href": clean(href), "rel": rel, "type": ATOM.media_type} for rel, href in meta.history_links(ATOM.ext)),
            {"href": clean(meta.alternate), "rel": "alternate", "type": "text/html"},
        ]
    )
    if meta.archive:
        ext = _feed_ext(gen)
        ext.archive = True
        ext.namespaces = {"fh": _FH_NS}
    if language := clean(meta.language).strip():
        gen.language(language)
    gen.generator(GENERATOR, version=__version__)

    return _splice(_envelope(where, lambda: gen.atom_str(pretty=True)), b"</feed>", fragments)


# --- RSS ------------------------------------------------------------------------------------------


def render_rss(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    """An RSS 2.0 document of `entries`, in the given order, with Dublin Core creators."""
    fragments = entry_fragments(entries, meta.base_url, f"{meta.slug}{RSS.suffix}")
    return rss_document(meta, [f.rss for f in fragments])


def rss_document(meta: FeedMeta, fragments: Sequence[bytes]) -> bytes:
    """An RSS 2.0 document of items already rendered (their `Fragments.rss`), in the given order."""
    where = f"{meta.slug}{RSS.suffix}"
    gen = _generator(atom=False)
    title = clean(meta.title).strip() or meta.slug
    gen.title(title)
    gen.description(clean(meta.description).strip() or title)
    # The channel <link> is the last link added, so self goes first and the HTML page last.
    gen.link(
        [
            {"href": clean(meta.url(RSS.ext)), "rel": "self", "type": RSS.media_type},
            {"href": clean(meta.alternate), "rel": "alternate", "type": "text/html"},
        ]
    )
    ext = _feed_ext(gen)
    ext.hubs = tuple(clean(hub) for hub in meta.hubs)
    ext.links = [(rel, clean(href)) for rel, href in meta.history_links(RSS.ext)]
    ext.archive = meta.archive
    ext.namespaces = {"dc": _DC_NS, **({"fh": _FH_NS} if meta.archive else {})}
    gen.updated(_moment(meta.updated))  # lastBuildDate, which feedgen would otherwise set to now
    if language := clean(meta.language).strip():
        gen.language(language)
    gen.generator(f"{GENERATOR} {__version__}")
    if meta.ttl_minutes is not None:
        gen.ttl(meta.ttl_minutes)

    with _RSS_LOCK:
        envelope = _envelope(where, lambda: gen.rss_str(pretty=True))
    return _splice(envelope, b"</channel>", fragments)


# --- JSON Feed ------------------------------------------------------------------------------------


_compact = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


def _json_people(people: tuple[_Person, ...]) -> list[dict[str, str]]:
    out = []
    for p in people:
        d = {"name": p.name}
        # JSON Feed authors have no e-mail field; the spec allows a mailto: URL instead.
        if url := p.uri or (f"mailto:{p.email}" if p.email else ""):
            d["url"] = url
        out.append(d)
    return out


def _json_item(item: _Item) -> dict[str, object]:
    out: dict[str, object] = {"id": item.id}
    if item.link:
        out["url"] = item.link
    out["title"] = item.title
    if item.summary:
        out["summary"] = item.summary
    if item.content_html:
        out["content_html"] = item.content_html
    else:
        # The spec requires one of the two; an item with no summary still says what it is.
        out["content_text"] = item.summary or item.title
    out["date_published"] = item.published.isoformat()
    out["date_modified"] = item.updated.isoformat()
    if item.authors:
        out["authors"] = _json_people(item.authors)
    if item.categories or item.tags:
        out["tags"] = [label for _, label in item.categories] + list(item.tags)
    if item.enclosures:
        out["attachments"] = [
            {"url": e.url, "mime_type": e.type, **({"size_in_bytes": e.length} if e.length else {})}
            for e in item.enclosures
        ]
    if item.contributors:
        out["_feeds"] = {"contributors": _json_people(item.contributors)}
    return out


def render_json(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    """A JSON Feed 1.1 document of `entries`, in the given order."""
    return json_document(meta, [_json_line(_item(e)) for e in entries])


def json_document(meta: FeedMeta, items: Sequence[bytes]) -> bytes:
    """A JSON Feed 1.1 document of items already rendered (their `Fragments.json`), in the given order."""
    title = clean(meta.title).strip() or meta.slug
    feed: dict[str, object] = {
        "version": JSON_FEED_VERSION,
        "title": title,
        "home_page_url": clean(meta.alternate),
        "feed_url": clean(meta.url(JSON_FEED.ext)),
        "description": clean(meta.description).strip() or title,
    }
    if author := clean(meta.author).strip():
        feed["authors"] = [{"name": author}]
    if language := clean(meta.language).strip():
        feed["language"] = language
    if meta.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": clean(hub)} for hub in meta.hubs]
    # One member, and one item, a line: json's indent= switches to its pure-Python encoder, which
    # took longer than everything else in the JSON Feed. Key order is fixed above, so bytes are too.
    # In bytes: a long feed's items are joined once, and never widened to one text and encoded again.
    head = ",\n".join(f"  {_compact(key)}: {_compact(value)}" for key, value in feed.items()).encode("utf-8")
    if not items:
        return b"{\n" + head + b',\n  "items": []\n}\n'
    return b"".join((b"{\n", head, b',\n  "items": [\n', b",\n".join(items), b"\n  ]\n}\n"))


def _json_line(item: _Item) -> bytes:
    """An item as its line in a JSON Feed's items, indented, in UTF-8."""
    return b"    " + _compact(_json_item(item)).encode("utf-8")
