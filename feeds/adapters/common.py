"""Text and markup helpers the page adapters share: cleaning, parsing HTML, match keys, errors, safe HTML fragments."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import lxml.html
from lxml import etree
from lxml.html import HtmlElement

from feeds.errors import SourceError
from feeds.sanitize import xml_safe

# Honorifics are dropped from match keys because a listing often omits the "Mr" its page prints.
_HONORIFIC = re.compile(r"^(?:mr|mrs|ms|mx|dr|prof|mme|mlle|m\.|sr|sra|srta)\.?\s+", re.IGNORECASE)
_LEADING_MARKS = re.compile(r"^[\W_]+")
# What str.isalnum refuses, character by character: re's \w is exactly isalnum() or "_".
_NOT_ALNUM = re.compile(r"[\W_]+")
_ASCII_NOT_ALNUM = bytes(code for code in range(128) if not chr(code).isalnum())
TYPE_MAX = 60  # a type label is short; longer lines are titles


strip_unwanted = xml_safe  # the adapters' name for it: line breaks kept

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));?")


def clean_text(text: str) -> str:
    """`text` without XML-illegal characters, every run of whitespace one space, no space at either end."""
    if not text.isprintable():
        return " ".join(strip_unwanted(text).split())
    # Printable text has nothing to strip and no whitespace but the plain space, so most lines need no
    # more than their ends trimmed (and clean text, a Line's or a title, is returned as it is).
    trimmed = text.strip()
    return trimmed if "  " not in trimmed else " ".join(trimmed.split())


def html_tree(text: str, source: str, url: str = "") -> HtmlElement:
    """Decoded HTML parsed by lxml.html as a whole document; what lxml cannot make a tree of is a SourceError.

    The unwanted characters go first, and so do character references to them: lxml would put a
    `&#xFFFF;` in the tree and then refuse to move it. So does an XML declaration: lxml refuses
    decoded text that declares an encoding. `url`, when given, opens the error message.
    """
    text = _CHAR_REF.sub(_legal_reference, _XML_DECLARATION.sub("", strip_unwanted(text), count=1))
    try:
        root: HtmlElement = lxml.html.document_fromstring(text)
    except (etree.LxmlError, ValueError) as exc:
        at = f"{url}: " if url else ""
        raise SourceError(source, f"{at}cannot parse the HTML: {exc or type(exc).__name__}") from exc
    return root


def _legal_reference(match: re.Match[str]) -> str:
    hexa, decimal = match.groups()
    code = int(hexa, 16) if hexa else int(decimal)
    if code > 0x10FFFF or (strip_unwanted(chr(code)) == "" and chr(code) not in "\t\n\r"):
        return ""
    return match.group(0)


def strip_honorific(name: str) -> str:
    """ "Mr Alexandre Soho" → "Alexandre Soho"; a name without an honorific is returned unchanged."""
    name = name.strip()
    while match := _HONORIFIC.match(name):
        if not name[match.end() :].strip():
            break  # the honorific is the whole name: keep it rather than return nothing
        name = name[match.end() :]
    return name


def match_key(title: str, published: datetime) -> str:
    """The key that joins a listing item to the page it announces: letters and digits of the title, and the date.

    Case, accents, punctuation, spacing and a leading honorific do not count, so "Mr Sung Ho Kim, KFCC"
    on a page and "Sung Ho Kim, KFCC" in a listing meet. The date is the calendar date in the entry's
    own zone, as the page printed it.
    """
    # Leading quotes and dashes would hide an honorific; they are dropped from the key anyway.
    folded = strip_honorific(_LEADING_MARKS.sub("", clean_text(title))).casefold()
    decomposed = folded if folded.isascii() else unicodedata.normalize("NFKD", folded)
    return f"{day_text(published)}/{_alnum(decomposed)}"


def _alnum(text: str) -> str:
    """The letters and digits of `text`, in order: `"".join(filter(str.isalnum, text))`."""
    if text.isascii():  # most titles: bytes.translate deletes in one C pass, where the pattern matches run by run
        return text.encode("ascii").translate(None, _ASCII_NOT_ALNUM).decode("ascii")
    return _NOT_ALNUM.sub("", text)


def day_text(when: datetime) -> str:
    """ "2022-01-10": the calendar date of `when` in its own zone, as `f"{when:%Y-%m-%d}"` writes it."""
    # strftime goes through the C library and is slow; isoformat writes the same for four-digit years
    # (strftime may not pad shorter ones).
    return when.date().isoformat() if when.year >= 1000 else f"{when:%Y-%m-%d}"


def is_type_label(text: str) -> bool:
    """Whether a line is short enough to be a type label ("News", "Spotlight Interviews with Co-operators")."""
    return 0 < len(text) <= TYPE_MAX and len(text.split()) <= 8 and not text.endswith((".", "?", "!", ":", ";"))


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


Block = tuple[Literal["p", "h3", "li"], str]


def blocks_html(blocks: Iterable[Block]) -> str:
    """An HTML fragment of paragraphs, headings and lists, every text escaped.

    Consecutive "li" blocks share one <ul>. Written as text: the markup is fixed and the cleaned
    text holds nothing an HTML serializer would write otherwise than escape(), and lxml's
    elements cost as much as the rest of reading a listing item.
    """
    out: list[str] = []
    in_list = False
    for kind, text in blocks:
        text = clean_text(text)
        if not text:
            continue
        if (kind == "li") != in_list:
            out.append("<ul>" if kind == "li" else "</ul>")
            in_list = kind == "li"
        out.append(f"<{kind}>{html.escape(text, quote=False)}</{kind}>")
    if in_list:
        out.append("</ul>")
    return "".join(out)


class Problems:
    """The lines an adapter could not read, gathered so the good items still come through first."""

    def __init__(self) -> None:
        self._found: list[tuple[int, str]] = []

    def add(self, line: int, what: str) -> None:
        self._found.append((line, what))

    def __bool__(self) -> bool:
        return bool(self._found)

    def error(self, source: str) -> SourceError:
        """One SourceError naming the first bad line in `where` and every bad line in `what`."""
        first, what = self._found[0]
        if len(self._found) == 1:
            return SourceError(f"{source} line {first}", what)
        listed = "; ".join(f"line {line}: {what}" for line, what in self._found)
        return SourceError(f"{source} line {first}", f"{len(self._found)} items cannot be read: {listed}")
