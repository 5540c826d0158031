"""The data that flows through the pipeline: frozen dataclasses, no I/O, no clock."""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import NamedTuple


class Format(NamedTuple):
    """A feed format we publish: the file suffix (without its dot), the media type, the name readers see."""

    ext: str
    media_type: str
    label: str

    @property
    def suffix(self) -> str:
        return "." + self.ext


ATOM = Format("atom", "application/atom+xml", "Atom")
RSS = Format("rss", "application/rss+xml", "RSS")
JSON_FEED = Format("json", "application/feed+json", "JSON Feed")
FORMATS = (ATOM, RSS, JSON_FEED)  # in the order pages offer them
FEED_SUFFIXES = tuple(f.suffix for f in FORMATS)  # a tuple, for str.endswith
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

# The `published` an adapter gives an undated entry; the store replaces it with when the entry was first seen.
UNDATED = datetime(1970, 1, 1, tzinfo=UTC)


def _aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Author:
    """A person or organisation credited on an entry."""

    name: str
    uri: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Enclosure:
    """A media file attached to an entry (podcast audio, a PDF)."""

    url: str
    length: int = 0
    type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True, kw_only=True)
class Category:
    """A feed of its own: the entries of one topic, or `all`."""

    slug: str
    title: str
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One normalized item, ready to render."""

    id: str  # permanent; becomes atom:id, rss guid, json id
    title: str
    link: str  # absolute; "" when the source has no permalink (we publish a page for it)
    published: datetime  # timezone-aware
    updated: datetime  # moves only when the content changes (the store decides)
    source: str  # name of the source that produced it
    summary: str = ""  # plain text
    content_html: str = ""  # sanitized HTML fragment
    authors: tuple[Author, ...] = ()
    contributors: tuple[Author, ...] = ()  # e.g. the interviewee
    labels: tuple[str, ...] = ()  # the source's own type labels ("News", a series name)
    tags: tuple[str, ...] = ()  # a feed's or page's own categories: shown, a feed only where the config maps them
    categories: tuple[Category, ...] = ()  # the feeds it appears in, set by collate
    enclosures: tuple[Enclosure, ...] = ()
    match_key: str = ""  # joins a listing item to the page it announces
    undated: bool = False  # the source gave no date (an announced event): dated by when it was first seen

    def __post_init__(self) -> None:
        _aware(self.published, f"entry {self.id}: published")
        _aware(self.updated, f"entry {self.id}: updated")
        if not self.id:
            raise ValueError("entry id must not be empty")


# The byte order marks and the codecs they announce; UTF-32's first, as UTF-16's begin them.
BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def byte_order_mark(raw: bytes) -> tuple[bytes, str] | None:
    """(the mark, its codec) when `raw` starts with a byte order mark, else None."""
    for bom, codec in BOMS:
        if raw.startswith(bom):
            return bom, codec
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """A source document as fetched: the bytes and what the transport said about them."""

    content: bytes
    url: str  # final URL after redirects, or file:// URL
    media_type: str = "text/plain"
    charset: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def text(self) -> str:
        """The content decoded with the declared charset (BOM first), UTF-8 by default."""
        raw = self.content
        if marked := byte_order_mark(raw):
            bom, codec = marked
            return raw[len(bom) :].decode(codec, errors="replace")
        return raw.decode(self.charset or "utf-8", errors="replace")

    def decode(self) -> str:
        """The content decoded strictly (BOM first, then the charset, UTF-8 by default).

        Raises ValueError naming the charset, the first bad byte and its offset.
        """
        raw, codec, skip = self.content, self.charset or "utf-8", 0
        if marked := byte_order_mark(raw):
            bom, codec = marked
            raw, skip = raw[len(bom) :], len(bom)
        try:
            return raw.decode(codec)
        except LookupError:
            raise ValueError(f'unknown charset "{codec}"') from None
        except UnicodeDecodeError as exc:
            bad = exc.object[exc.start]
            raise ValueError(f"not valid {codec} (byte 0x{bad:02x} at offset {exc.start + skip})") from exc

    def date(self) -> datetime | None:
        """When the server says the document last changed, else when it sent it; None for neither."""
        for header in ("last-modified", "date"):
            value = self.headers.get(header, "")
            try:
                when = parsedate_to_datetime(value) if value else None
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                return when if when.tzinfo else when.replace(tzinfo=UTC)
        return None

    @property
    def is_html(self) -> bool:
        if self.media_type in ("text/html", "application/xhtml+xml"):
            return True
        head = self.content[:512].lstrip().lower()
        return head.startswith((b"<!doctype html", b"<html"))


# Every ASCII character but letters and digits, as a space: what separates the words of a slug.
_SEPARATORS = str.maketrans({chr(code): " " for code in range(128) if not chr(code).isalnum()})


def slugify(text: str, limit: int = 80) -> str:
    """A lowercase ASCII slug ("Spotlight Interviews with Co-operators" → "spotlight-interviews-with-co-operators")."""
    ascii_text = text
    if not text.isascii():  # ASCII has nothing to decompose: most titles skip the per-character path
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = "-".join(ascii_text.lower().translate(_SEPARATORS).split())
    return slug[:limit].rstrip("-") or "item"
