"""The `listing` adapter: a page of numbered news items (type, title, date, summary) as text or HTML."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from lxml.html import HtmlElement

from feeds.adapters.common import Problems, blocks_html, day_text, is_type_label, match_key
from feeds.adapters.dates import EXPECTED, looks_like_date, parse_date, split_type_date
from feeds.adapters.lines import Line, html_lines, parse_html, read_text, text_lines
from feeds.config import SourceConfig
from feeds.errors import SourceError
from feeds.model import Document, Entry, slugify

OPTIONS = {"type": "a type label for items that show none"}
# "  1. News" or "  3. Cooperative society … is established": the number, then a type label or a title.
_MARKER = re.compile(r"^(\d{1,4})[.)](?:\s+(.*))?$")
# Item numbers only count when they follow on (a gap of a few is a missing item); a number further
# ahead, like "2021." opening a summary line, is text.
_MAX_GAP = 10
_FIRST_MAX = 1000


class Listing:
    """Reads listing pages: a heading, then numbered items of an optional type, a title, a date and a summary."""

    def check_options(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key, value in options.items():
            if key not in OPTIONS:
                known = "; ".join(f"{name}: {what}" for name, what in OPTIONS.items())
                problems.append((key, f"unknown option for the listing adapter (known: {known})"))
            elif not isinstance(value, str) or not value.strip():
                problems.append((key, f'must be a non-empty string such as "News", got {value!r}'))
        return problems

    def parse(self, doc: Document, source: SourceConfig) -> Iterator[Entry]:
        if doc.is_html:
            root, base = parse_html(doc, source.name)
            items = _html_items(root, base)
        else:
            items = _numbered_items(text_lines(read_text(doc, source.name)))
        if not items:
            shape = "<article> elements or <li> items with dates" if doc.is_html else 'numbered items ("  1. News")'
            raise SourceError(source.name, f"no items found: expected a heading, then {shape}")
        default = source.options.get("type")
        default_type = default.strip() if isinstance(default, str) else ""
        problems = Problems()
        for number, lines in items:
            try:
                item = _read_item(number, lines, source.time_zone)
            except _Unreadable as exc:
                problems.add(exc.line, exc.what)
                continue
            yield _entry(item, source, default_type)
        if problems:
            raise problems.error(source.name)


@dataclass(frozen=True, slots=True)
class _Item:
    title: str
    published: datetime
    label: str
    summary: str
    link: str


class _Unreadable(Exception):
    """One item that cannot be read; collected, so it never leaves this module."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


def _numbered_items(lines: list[Line]) -> list[tuple[int, list[Line]]]:
    """Group lines into items at each item number; what comes before the first one is the heading."""
    items: list[tuple[int, list[Line]]] = []
    last: int | None = None
    for line in lines:
        marker = _MARKER.match(line.text) if line.kind != "item" else None
        if marker:
            number = int(marker[1])
            if (number <= _FIRST_MAX) if last is None else (last < number <= last + _MAX_GAP):
                last = number
                rest = marker[2]
                items.append((line.number, [Line(line.number, rest)] if rest else []))
                continue
        if items:
            items[-1][1].append(line)
    return items


def _html_items(root: HtmlElement, base: str) -> list[tuple[int, list[Line]]]:
    """The items of an HTML listing: <li>s of the lists that hold dates, else the innermost <article>s.

    A page with neither is read like the text rendering (numbered paragraphs).
    """
    lists: list[HtmlElement] = []
    for element in root.iter("ol", "ul"):
        if any(outer is chosen for outer in element.iterancestors() for chosen in lists):
            continue
        if any(_dated(html_lines(child, base)) for child in element if child.tag == "li"):
            lists.append(element)
    elements = [child for element in lists for child in element if child.tag == "li"]
    if not elements:
        elements = [a for a in root.iter("article") if next(a.iterdescendants("article"), None) is None]
    if not elements:
        return _numbered_items(html_lines(root, base))
    return [(_sourceline(element), html_lines(element, base)) for element in elements]


def _sourceline(element: HtmlElement) -> int:
    number = element.sourceline
    return number if isinstance(number, int) and number > 0 else 1


def _dated(lines: list[Line]) -> bool:
    return any(line.when or looks_like_date(line.text) or split_type_date(line.text) for line in lines)


def _date_texts(line: Line) -> tuple[list[str], str] | None:
    """The texts that may hold this line's date, best first, and the type label beside it; None if no date line."""
    split = split_type_date(line.text)
    if line.when:
        return [line.when, split[1] if split else line.text], line.label or (split[0] if split else "")
    if split:
        return [split[1]], line.label or split[0]
    if looks_like_date(line.text):
        return [line.text], line.label
    return None


def _read_item(number: int, lines: list[Line], tz: tzinfo) -> _Item:
    found: tuple[int, datetime, str] | None = None
    bad: tuple[Line, str] | None = None
    for index, line in enumerate(lines):
        candidate = _date_texts(line)
        if candidate is None:
            continue
        texts, label = candidate
        for text in texts:
            try:
                found = (index, parse_date(text, tz), label)
                break
            except ValueError as exc:
                bad = bad or (line, str(exc))
        if found:
            break
    if found is None:
        if bad is not None:
            raise _Unreadable(bad[0].number, f"cannot read the date: {bad[1]}; expected {EXPECTED}")
        shown = " / ".join(line.text for line in lines[:2])
        shown = f' ("{shown[:80]}")' if shown else ""
        raise _Unreadable(
            number, f'no date in this item{shown}: expected a line with {EXPECTED}, or "News | 10 January 2022"'
        )
    index, published, date_label = found

    typed, rest, after = _around(lines, index)
    label = typed[0].text if typed else ""
    linked = next((line for line in rest if line.kind == "heading" or line.href), None)
    if linked is not None:
        title_lines = [linked]
        leading = rest[: next(i for i, line in enumerate(rest) if line is linked)]
        if not label and leading and is_type_label(leading[0].text):
            label = leading[0].text
    elif len(rest) >= 2 and not label and is_type_label(rest[0].text):
        # A type line is short and followed by the title; the title is the line right before the date.
        label, title_lines = rest[0].text, rest[1:]
    elif rest:
        title_lines = rest
    else:
        # Nothing before the date ("  8. News | 09 November 2021"): the title comes after it.
        if not after:
            raise _Unreadable(number, "no title: expected a title line next to the date")
        linked = next((line for line in after if line.kind == "heading" or line.href), None)
        position = next((i for i, line in enumerate(after) if line is linked), 0)
        title_lines, after = [after[position]], after[position + 1 :]
    title = " ".join([line.text for line in title_lines])
    link = next((line.href for line in (*title_lines, *lines) if line.href), "")
    summary = " ".join([line.text for line in after])
    return _Item(title=title, published=published, label=label or date_label, summary=summary, link=link)


def _around(lines: list[Line], index: int) -> tuple[list[Line], list[Line], list[Line]]:
    """The type-label lines other than the date line, then the other lines before it and after it.

    Lines marked up as type labels may sit anywhere in an HTML item; they are never title or summary.
    """
    # One pass, where three comprehensions over slices went over the lines again.
    typed: list[Line] = []
    before: list[Line] = []
    after: list[Line] = []
    for position, line in enumerate(lines):
        if line.kind == "type":
            if position != index:
                typed.append(line)
        elif position < index:
            before.append(line)
        elif position > index:
            after.append(line)
    return typed, before, after


def _entry(item: _Item, source: SourceConfig, default_type: str) -> Entry:
    label = item.label or default_type
    return Entry(
        id=item.link or source.tag(f"{day_text(item.published)}/{slugify(item.title, 60)}"),
        title=item.title,
        link=item.link,
        published=item.published,
        updated=item.published,
        source=source.name,
        summary=item.summary,
        content_html=blocks_html([("p", item.summary)]) if item.summary else "",
        labels=(label,) if label else (),
        match_key=match_key(item.title, item.published),
    )
