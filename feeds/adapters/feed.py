"""The `feed` adapter: entries from an existing RSS 0.9x/1.0/2.0 or Atom feed, read with feedparser."""

from __future__ import annotations

import codecs
import html
import re
import time
import xml.sax
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import feedparser

from feeds.adapters.common import clean_text
from feeds.config import SourceConfig
from feeds.errors import SourceError, SourceWarning
from feeds.model import Author, Document, Enclosure, Entry, byte_order_mark, slugify
from feeds.sanitize import html_to_text, sanitize_html
from feeds.urls import iri, web_url

OPTIONS = frozenset({"include", "exclude", "include_categories", "exclude_categories"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# An id that already is an absolute URI (http:, urn:, tag:) is kept as it is; anything else is not
# a valid atom:id and is only unique within its own feed.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_TITLE_FROM_TEXT = 80
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_XML_ENCODING = re.compile(r"""\s*<\?xml\b[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
# "2021-09-01" or "2021-09-01T10:00:00" (a dc:date, an Atom date missing its offset): no zone of its own.
_ZONELESS = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")


class _Unreadable(Exception):
    """One feed entry that cannot become an Entry; the others go on."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Filters:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_categories: frozenset[str] = frozenset()
    exclude_categories: frozenset[str] = frozenset()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> _Filters:
        def words(key: str) -> tuple[str, ...]:
            return tuple(word.casefold() for word in options.get(key, ()) if word.strip())

        return cls(
            include=words("include"),
            exclude=words("exclude"),
            include_categories=frozenset(words("include_categories")),
            exclude_categories=frozenset(words("exclude_categories")),
        )

    def keep(self, entry: Entry) -> bool:
        text = f"{entry.title} {entry.summary}".casefold()
        labels = {tag.casefold() for tag in entry.tags}
        if self.include and not any(_has_word(text, word) for word in self.include):
            return False
        if any(_has_word(text, word) for word in self.exclude):
            return False
        if self.include_categories and not labels & self.include_categories:
            return False
        return not labels & self.exclude_categories


def _has_word(text: str, word: str) -> bool:
    # Whole words, so "art" does not pick up "start"; a keyword may itself hold spaces or hyphens.
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) is not None


class ExistingFeed:
    """Keeps each entry's own id, dates, authors, categories and enclosures.

    Options: `include` / `exclude` (keywords, whole words, case-insensitive, against title and summary)
    and `include_categories` / `exclude_categories` (against the entry's categories). Every option
    given must hold: an entry needs one `include` word and one `include_categories` label, and no
    `exclude` word or `exclude_categories` label.
    """

    def check_options(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key, value in options.items():
            if key not in OPTIONS:
                problems.append((key, f"unknown option for the feed adapter (known: {', '.join(sorted(OPTIONS))})"))
            elif not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
                problems.append((key, f'must be a list of non-empty strings, such as ["cooperative"], got {value!r}'))
        return problems

    def parse(self, doc: Document, source: SourceConfig) -> Iterator[Entry]:
        if problems := self.check_options(source.options):
            listed = "; ".join(f"options.{key} {what}" for key, what in problems)
            raise SourceError(source.name, f"cannot use the feed adapter: {listed}")
        if not doc.content.strip():
            raise SourceError(source.name, f"{doc.url}: the feed is empty")
        try:
            parsed = _feedparser(doc)
        except (UnicodeDecodeError, LookupError, ValueError) as exc:
            # feedparser looks up an XML declaration's encoding label as given: undecodable bytes, an
            # unknown name or a NUL in it escape from its codec lookup.
            raise SourceError(source.name, f"{doc.url}: not a readable feed ({exc})") from exc
        raw_entries: list[Any] = list(parsed.get("entries", []))
        misread = _misread(doc, parsed)
        if not raw_entries:
            if _malformed(parsed):
                raise SourceError(source.name, f"{doc.url}: not a readable feed ({_reason(parsed)})")
            if not parsed.get("version"):
                raise SourceError(source.name, f"{doc.url}: not an RSS or Atom feed (no rss, rdf:RDF or feed element)")
            if misread:
                raise SourceWarning(source.name, misread)
            return
        filters = _Filters.from_options(source.options)
        fallback = _feed_date(parsed.get("feed", {})) or doc.date()
        bad: list[tuple[int, str]] = []
        for number, raw in enumerate(raw_entries, start=1):
            try:
                entry = _entry(raw, source, doc.url, fallback)
            except _Unreadable as exc:
                bad.append((number, str(exc)))
                continue
            if filters.keep(entry):
                yield entry
        if bad:
            numbers = ", ".join(str(number) for number, _ in bad)
            reasons = "; ".join(f"entry {number}: {why}" for number, why in bad)
            noun = "entry" if len(bad) == 1 else "entries"
            malformed = f"; the feed is not well-formed ({_reason(parsed)})" if _malformed(parsed) else ""
            raise SourceError(
                source.name, f"{doc.url}: {noun} {numbers} of {len(raw_entries)} cannot be read ({reasons}){malformed}"
            )
        if misread:
            raise SourceWarning(source.name, misread)


def _feedparser(doc: Document) -> Any:
    # Always bytes: given a str, feedparser would treat it as a URL or a file name and open it.
    # fetch.py already decided the charset; an XML media type makes feedparser follow it rather than
    # read text/xml as US-ASCII (RFC 3023) or flag text/html as "not XML".
    content_type = "application/xml" + (f"; charset={doc.charset}" if doc.charset else "")
    headers = {"content-type": content_type, "content-location": doc.url}
    return feedparser.parse(doc.content, response_headers=headers)


def _malformed(parsed: Any) -> bool:
    """Whether feedparser found the feed broken; a wrong encoding declaration it read past is not."""
    return bool(parsed.get("bozo")) and not isinstance(
        parsed.get("bozo_exception"), feedparser.CharacterEncodingOverride
    )


def _misread(doc: Document, parsed: Any) -> str:
    """What to warn of when the feed was read in another encoding than it declares (or, declaring none, UTF-8)."""
    used = str(parsed.get("encoding") or "")
    if not used or not parsed.get("version"):
        return ""
    marked = byte_order_mark(doc.content)
    head = doc.content[len(marked[0]) if marked else 0 :][:1024].decode(used, errors="replace")
    if label := _charset_param(doc.headers.get("content-type", "")):
        said = f'the server declared charset "{label}"'
    elif found := _XML_ENCODING.match(head):
        label, said = found[1], f'the XML declaration says "{found[1]}"'
    elif marked:
        return ""  # the byte order mark says it all
    else:
        label, said = "utf-8", "no encoding is declared (so UTF-8 is meant)"
    if _family(label) == _family(used):
        return ""
    return f"{doc.url}: {said}, but the document is not {label}: read as {used}"


def _charset_param(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'")
    return ""


def _family(label: str) -> str:
    """The encoding a label names, with the names for one encoding made one: "UTF-16" and "utf-16le"."""
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return label.casefold()
    if name in ("ascii", "iso8859-1", "cp1252"):
        return "cp1252"  # what servers and feeds that say "latin-1" or "ascii" mean (WHATWG Encoding)
    return name[:6] if name.startswith(("utf-16", "utf-32")) else name


def _reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "unknown reason"
    # Only the SAX message: its line and column count the text feedparser rewrote (an XML declaration
    # added, entity declarations removed), not the document the operator can open.
    message = exc.getMessage() if isinstance(exc, xml.sax.SAXParseException) else str(exc)
    return f"{message or type(exc).__name__}"


def _entry(raw: Any, source: SourceConfig, doc_url: str, fallback: datetime | None) -> Entry:
    base = str(_detail(raw, "title_detail").get("base") or doc_url)
    summary = _detail_text(_detail(raw, "summary_detail"), raw.get("summary", ""))
    content_html = _content_html(raw, base)
    enclosures = _enclosures(raw.get("enclosures") or [], base)
    # RSS needs only a title or a description: an item of an image or a file alone is named by what it has.
    own_title = _detail_text(_detail(raw, "title_detail"), raw.get("title", ""))
    title = own_title or _shorten(summary) or _file_name(enclosures)
    link = web_url(str(raw.get("link") or ""), base)

    own_published = _when(raw, "published", source.time_zone)
    own_updated = _when(raw, "updated", source.time_zone)
    published = own_published or own_updated or fallback
    if published is None:
        raise _Unreadable(f'"{title}" has no date, and neither has the feed' if title else "no title, text or date")
    title = title or _day(published)
    updated = max(own_updated or published, published)

    own_date = own_published or own_updated
    key = f"{own_date:%Y-%m-%dT%H:%M:%SZ}:{slugify(title)}" if own_date else slugify(title)
    try:
        return Entry(
            id=_id(str(raw.get("id") or "").strip(), link, source, key),
            title=title,
            link=link,
            published=published,
            updated=updated,
            source=source.name,
            summary=summary,
            content_html=content_html,
            authors=_people(raw.get("authors") or ([raw["author_detail"]] if raw.get("author_detail") else [])),
            contributors=_people(raw.get("contributors") or []),
            tags=_unique(html_to_text(str(tag.get("label") or tag.get("term") or "")) for tag in raw.get("tags") or []),
            enclosures=enclosures,
        )
    except ValueError as exc:
        raise _Unreadable(str(exc)) from exc


def _id(given: str, link: str, source: SourceConfig, key: str) -> str:
    """The feed's own id when it is a URI (kept as written when valid, so other sources with it dedupe), else ours."""
    if given and _URI.match(given):
        if not given.startswith(("http:", "https:")):
            return iri(given)
        # A permalink as a guid: made valid as the link is, so the two stay equal.
        if url := web_url(given):
            return url
    if given:
        return source.tag("guid:" + quote(given, safe=""))
    return link or source.tag(key)


def _detail(raw: Any, key: str) -> Mapping[str, Any]:
    detail = raw.get(key)
    return detail if isinstance(detail, Mapping) else {}


def _detail_text(detail: Mapping[str, Any], value: Any) -> str:
    text = str(detail.get("value", value) or "")
    if detail.get("type", "text/html") in _HTML_TYPES:
        return html_to_text(text)
    return clean_text(text)


def _content_html(raw: Any, base: str) -> str:
    """The richest HTML the entry has: its content, else a summary that is HTML, sanitized."""
    for content in raw.get("content") or []:
        value = str(content.get("value") or "")
        if not value.strip():
            continue
        where = str(content.get("base") or base)
        if content.get("type") in _HTML_TYPES:
            return sanitize_html(value, where)
        return sanitize_html(f"<p>{html.escape(value)}</p>", where)
    summary = _detail(raw, "summary_detail")
    value = str(summary.get("value") or "")
    if summary.get("type") in _HTML_TYPES and "<" in value:
        return sanitize_html(value, str(summary.get("base") or base))
    return ""


def _people(people: Iterable[Any]) -> tuple[Author, ...]:
    found: dict[tuple[str, str, str], Author] = {}
    for person in people:
        if not isinstance(person, Mapping):
            continue
        email = clean_text(str(person.get("email") or ""))
        name = clean_text(str(person.get("name") or "")) or email
        uri = web_url(str(person.get("href") or ""))
        if name:
            found.setdefault((name, uri, email), Author(name=name, uri=uri, email=email))
    return tuple(found.values())


def _enclosures(enclosures: Iterable[Any], base: str) -> tuple[Enclosure, ...]:
    found: dict[str, Enclosure] = {}
    for enclosure in enclosures:
        url = web_url(str(enclosure.get("href") or ""), base)
        if not url:
            continue
        length = str(enclosure.get("length") or "").strip()
        media_type = clean_text(str(enclosure.get("type") or "")) or "application/octet-stream"
        found.setdefault(url, Enclosure(url=url, length=int(length) if length.isdigit() else 0, type=media_type))
    return tuple(found.values())


def _unique(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text for text in texts if text))


def _file_name(enclosures: tuple[Enclosure, ...]) -> str:
    for enclosure in enclosures:
        if name := clean_text(unquote(urlsplit(enclosure.url).path.rpartition("/")[2])):
            return name
    return ""


def _day(when: datetime) -> str:
    """ "5 March 2024": a date in words, the same in every locale."""
    return f"{when.day} {_MONTHS[when.month - 1]} {when.year}"


def _shorten(text: str) -> str:
    if len(text) <= _TITLE_FROM_TEXT:
        return text
    return text[:_TITLE_FROM_TEXT].rsplit(" ", 1)[0] + "…"


def _when(raw: Any, key: str, zone: tzinfo) -> datetime | None:
    """The entry's date `key`; one written without a zone is in the source's zone, not UTC as feedparser has it."""
    text = str(_plain(raw, key) or "").strip()
    if _ZONELESS.match(text):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=zone)
        except ValueError:
            pass  # feedparser may still make sense of it
    return _struct_time(_plain(raw, f"{key}_parsed"))


def _struct_time(value: Any) -> datetime | None:
    # feedparser normalizes every date it reads to a UTC struct_time.
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except ValueError:
        return None


def _feed_date(feed: Any) -> datetime | None:
    return _struct_time(_plain(feed, "updated_parsed")) or _struct_time(_plain(feed, "published_parsed"))


def _plain(raw: Any, key: str) -> Any:
    # FeedParserDict answers a missing "updated" with "published" and a DeprecationWarning;
    # the plain dict lookup keeps the two dates apart.
    return dict.get(raw, key) if isinstance(raw, dict) else None
