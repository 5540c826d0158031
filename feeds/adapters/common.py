"""Text and markup helpers the page adapters share: cleaning, match keys, errors, safe HTML fragments."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from lxml import etree

from feeds.errors import SourceError

# Not allowed by the XML 1.0 Char production (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF),
# plus what feed validators flag although XML tolerates it: DEL, C1 controls and the noncharacters.
_UNWANTED = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff"
    "\U0001fffe\U0001ffff\U0002fffe\U0002ffff\U0003fffe\U0003ffff\U0004fffe\U0004ffff"
    "\U0005fffe\U0005ffff\U0006fffe\U0006ffff\U0007fffe\U0007ffff\U0008fffe\U0008ffff"
    "\U0009fffe\U0009ffff\U000afffe\U000affff\U000bfffe\U000bffff\U000cfffe\U000cffff"
    "\U000dfffe\U000dffff\U000efffe\U000effff\U000ffffe\U000fffff\U0010fffe\U0010ffff]"
)
# Honorifics are dropped from match keys because a listing often omits the "Mr" its page prints.
_HONORIFIC = re.compile(r"^(?:mr|mrs|ms|mx|dr|prof|mme|mlle|m\.|sr|sra|srta)\.?\s+", re.IGNORECASE)
_LEADING_MARKS = re.compile(r"^[\W_]+")
TYPE_MAX = 60  # a type label is short; longer lines are titles


def strip_unwanted(text: str) -> str:
    """`text` without the characters XML 1.0 forbids or feed validators reject; line breaks are kept."""
    return _UNWANTED.sub("", text)


def clean_text(text: str) -> str:
    """`text` without XML-illegal characters, every run of whitespace one space, no space at either end."""
    return " ".join(strip_unwanted(text).split())


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
    decomposed = unicodedata.normalize("NFKD", folded)
    letters = "".join(ch for ch in decomposed if ch.isalnum())
    return f"{published:%Y-%m-%d}/{letters}"


def is_type_label(text: str) -> bool:
    """Whether a line is short enough to be a type label ("News", "Spotlight Interviews with Co-operators")."""
    return 0 < len(text) <= TYPE_MAX and len(text.split()) <= 8 and not text.endswith((".", "?", "!", ":", ";"))


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


Block = tuple[Literal["p", "h3", "li"], str]


def blocks_html(blocks: Iterable[Block]) -> str:
    """An HTML fragment of paragraphs, headings and lists, built as elements so text is always escaped.

    Consecutive "li" blocks share one <ul>.
    """
    elements: list[etree._Element] = []
    open_list: etree._Element | None = None
    for kind, text in blocks:
        text = clean_text(text)
        if not text:
            continue
        if kind == "li":
            if open_list is None:
                open_list = etree.Element("ul")
                elements.append(open_list)
            etree.SubElement(open_list, "li").text = text
        else:
            open_list = None
            element = etree.Element(kind)
            element.text = text
            elements.append(element)
    return "".join(_serialize(element) for element in elements)


def _serialize(element: etree._Element) -> str:
    serialized: str = etree.tostring(element, method="html", encoding="unicode")
    return serialized


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
