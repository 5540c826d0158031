"""The `listing` adapter: a page of numbered or bulleted news items (type, title, date, summary) as text or HTML."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from lxml.html import HtmlElement

from feeds.adapters.common import Problems, blocks_html, day_text, is_type_label, match_key
from feeds.adapters.dates import (
    EXPECTED,
    is_month_heading,
    looks_like_date,
    parse_date,
    split_date_place,
    split_type_date,
    strip_date_prefix,
)
from feeds.adapters.lines import Line, html_lines, parse_html, read_text, text_lines
from feeds.config import SourceConfig
from feeds.errors import SourceError, SourceWarning
from feeds.model import UNDATED, Document, Entry, slugify

OPTIONS = {"type": "a type label for items that show none"}
# "  1. News" or "  3. Cooperative society … is established": the number, then a type label or a title.
_MARKER = re.compile(r"^(\d{1,4})[.)](?:\s+(.*))?$")
# Item numbers only count when they follow on (a gap of a few is a missing item); a number further
# ahead, like "2021." opening a summary line, is text.
_MAX_GAP = 10
_FIRST_MAX = 1000
# "•" glued to its text, or "-" / "*" and a space: an item of a bulleted listing (HTML keeps the mark in the text).
_BULLET = re.compile(r"^(?:[•◦▪‣·]\s*|[*-]\s+)(?=\S)")
# A photo credit printed over an item: "© A. Photographer / ILO 2024", "(c) ILO", "Photo: ILO/M. Crozet".
_CREDIT = re.compile(
    r"^(?:©|\((?:c|C)\)|copyright\b|(?:photo|foto|image)s?(?:\s+credits?)?\s*[:©]|credits?\s*(?:photo\s*)?:"
    r"|cr[ée]dits?\s+photo\b)",
    re.IGNORECASE,
)
# A link to the item's own page under its teaser ("Read more", "Lire la suite", "Leer más"): never summary.
_MORE = (
    r"(?:read|learn|see|find\s+out)\s+more|continue\s+reading|lire\s+la\s+suite|en\s+savoir\s+plus|lire\s+plus"
    r"|leer\s+m[aá]s|seguir\s+leyendo|ver\s+m[aá]s|m[aá]s\s+informaci[oó]n"
)
# As a link it may go on ("Read more about …", for screen readers); as plain text, or a bare "More", it is the
# whole line ("More women lead …" is a title).
_MORE_LINK = re.compile(rf"^(?:{_MORE})(?:\W|$)", re.IGNORECASE)
_MORE_LINE = re.compile(rf"^(?:{_MORE}|more|plus|m[aá]s)\W*$", re.IGNORECASE)
# A pager under the last item ("Page 1 of 6   Next", "« précédent 1 2 3 suivant »"): a line of these words,
# page numbers and arrows (guillemets, angle quotes) only, with a word or two numbers in it (so that a lone
# year is not one).
_PAGER_WORDS = frozenset({
    "page", "pages", "pagina", "página", "of", "de", "sur", "next", "previous", "prev", "first", "last", "older",
    "newer", "entries", "posts", "suivant", "suivante", "précédent", "précédente", "première", "dernière",
    "siguiente", "anterior", "primera", "última", "ultima",
})  # fmt: skip
_PAGER_MARKS = "«»\u2039\u203a<>←→…|."
# Site chrome around an HTML listing: never an item, never an item's text.
_CHROME = frozenset({"header", "footer", "aside"})
# Class or id words of the blocks a site puts beside or under its list: a "most read" or "related" box
# holds dated items of its own, and a pager's numbers are no items.
_CHROME_CLASS = re.compile(
    r"breadcrumb|(?:^|[\s_-])(?:sidebar|most-?(?:read|viewed|popular)|popular|related|see-?also|pager|pagination)",
    re.IGNORECASE,
)
# A summary line this short that names a year is a date the page gave in words ("Autumn 2021"), not a summary.
_VAGUE_DATE = re.compile(r"(?<!\d)(?:1[89]|2\d)\d\d(?!\d)")
_VAGUE_WORDS = 4
_DATED_LINE_WORDS = 10  # a line this short ending in a date is a date line, however worded
_TYPE_WORDS = 3


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
            items, outside = _html_items(root, base)
        else:
            items, outside = _split_items(text_lines(read_text(doc, source.name)))
        if not items:
            shape = (
                "<article> elements or <li> items with dates"
                if doc.is_html
                else 'numbered items ("  1. News") or bulleted ones ("- News")'
            )
            raise SourceError(source.name, f"no items found: expected a heading, then {shape}")
        default = source.options.get("type")
        default_type = default.strip() if isinstance(default, str) else ""
        problems = Problems()
        # Item-like lines no item took: what a layout this adapter misreads would leave behind.
        unread = [line.number for line in outside if _item_like(line)]
        found: list[_Item | _Undated] = []
        for number, lines in items:
            try:
                found.append(_read_item(number, lines, source.time_zone))
            except _Unreadable as exc:
                problems.add(exc.line, exc.what)
        if not problems and not any(isinstance(item, _Item) for item in found):
            # Numbered or bulleted prose is not a listing: a listing dates at least one of its items.
            raise SourceError(source.name, "no items found: no numbered or bulleted item has a date")
        # An undated item's first line is its type when the page's dated items use that label.
        labels = {_label_key(item.label) for item in found if isinstance(item, _Item) and item.label}
        for item in found:
            try:
                dated = item if isinstance(item, _Item) else _undated_item(item, labels)
            except _Unreadable as exc:
                problems.add(exc.line, exc.what)
                continue
            unread.extend(dated.unread)
            yield _entry(dated, source, default_type)
        if problems:
            error = problems.error(source.name)
            if unread:
                raise SourceError(error.where, f"{error.what}; also left unread: {_lines_text(unread)}")
            raise error
        if unread:
            unread = sorted(set(unread))
            raise SourceWarning(
                source.name,
                f"{len(unread)} item-like line{'s' * (len(unread) > 1)} left unread (a date, an item number or a "
                f"bullet that no item took): {_lines_text(unread)}",
            )


def _lines_text(numbers: list[int]) -> str:
    numbers = sorted(set(numbers))
    return ("line " if len(numbers) == 1 else "lines ") + ", ".join(map(str, numbers))


@dataclass(frozen=True, slots=True)
class _Item:
    title: str
    published: datetime
    label: str
    summary: str
    link: str
    unread: tuple[int, ...] = ()  # item-like lines inside the item that are not its date
    undated: bool = False


@dataclass(frozen=True, slots=True)
class _Undated:
    """An item without a date line, read once the labels of the page's dated items are known."""

    number: int
    lines: list[Line]


class _Unreadable(Exception):
    """One item that cannot be read; collected, so it never leaves this module."""

    def __init__(self, line: int, what: str) -> None:
        super().__init__(what)
        self.line = line
        self.what = what


def _split_items(lines: list[Line]) -> tuple[list[tuple[int, list[Line]]], list[Line]]:
    """Group lines into items at each item number, else at each bullet; the lines of no item come apart.

    What comes before the first item is the heading. A month heading ("February 2024") closes the
    item above it, and the numbering may start again under it.
    """
    items, outside = _split(lines, numbered=True)
    if not items:
        items, outside = _split(lines, numbered=False)
    return items, outside


def _split(lines: list[Line], *, numbered: bool) -> tuple[list[tuple[int, list[Line]]], list[Line]]:
    items: list[tuple[int, list[Line]]] = []
    outside: list[Line] = []
    current: list[Line] | None = None
    last: int | None = None
    for line in lines:
        if line.kind != "type" and is_month_heading(line.text):
            current, last = None, None
            outside.append(line)
            continue
        if numbered:
            marker = _MARKER.match(line.text) if line.kind != "item" else None
            if marker:
                number = int(marker[1])
                if (number <= _FIRST_MAX) if last is None else (last < number <= last + _MAX_GAP):
                    last = number
                    rest = marker[2]
                    current = [Line(line.number, rest)] if rest else []
                    items.append((line.number, current))
                    continue
        elif (text := _bullet_text(line)) is not None:
            current = [Line(line.number, text)]
            items.append((line.number, current))
            continue
        (outside if current is None else current).append(line)
    return items, outside


def _bullet_text(line: Line) -> str | None:
    """The text of a bulleted line without its bullet; None for another line.

    The text rendering has taken the bullet off already; in HTML it is still in a paragraph's text.
    An HTML <li> is no bullet here: a list whose items hold dates is read as a list before this.
    """
    if line.kind == "item" and not line.tag:
        return line.text
    if line.text[0] in _BULLET_FIRST and (bullet := _BULLET.match(line.text)):
        return line.text[bullet.end() :]
    return None


_BULLET_FIRST = "•◦▪‣·*-"


def _item_like(line: Line, dated: bool | None = None) -> bool:
    """Whether a line looks like an item or an item's date: dated, numbered or bulleted.

    `dated`: whether it is a date line (_date_texts), when the caller knows already.
    """
    if dated is None:
        dated = _date_texts(line) is not None
    if dated or _bullet_text(line) is not None:
        return True
    marker = _MARKER.match(line.text)
    return marker is not None and int(marker[1]) <= _FIRST_MAX


def _html_items(root: HtmlElement, base: str) -> tuple[list[tuple[int, list[Line]]], list[Line]]:
    """The items of an HTML listing: <li>s of the lists that hold dates or titled items, else the innermost <article>s,
    else the rows of tables that hold dates.

    A page with neither is read like the text rendering (numbered or bulleted paragraphs). The
    site's header, footer, asides and breadcrumbs are no part of it. The lines outside every item
    come second.
    """
    _drop_chrome(root)
    lists: list[HtmlElement] = []
    found: list[tuple[HtmlElement, list[Line]]] = []  # each <li> of the chosen lists, with its lines
    for element in root.iter("ol", "ul"):
        if any(outer is chosen for outer in element.iterancestors() for chosen in lists):
            continue
        children = [(child, html_lines(child, base)) for child in element if child.tag == "li"]
        # A list of announced items has no date, but its items have titles or types marked up, as a menu's do not.
        dated = any(_dated(lines) for _, lines in children)
        if dated or (children and all(_item_shaped(lines) for _, lines in children)):
            lists.append(element)
            found.extend(children)
    if not found:
        articles = [a for a in root.iter("article") if next(a.iterdescendants("article"), None) is None]
        found = [(article, html_lines(article, base)) for article in articles]
    if not found:
        # A listing set out as a table: each row an item, its cells the date, the type and the title. A table
        # that holds another lays the page out.
        for table in root.iter("table"):
            if next(table.iterdescendants("table"), None) is not None:
                continue
            rows = [(row, html_lines(row, base)) for row in table.iter("tr") if next(row.iter("td"), None) is not None]
            if any(_dated(lines) for _, lines in rows):
                found.extend(rows)
    if not found:
        return _split_items(html_lines(root, base))
    items = [(_sourceline(element), lines) for element, lines in found]
    for element, _ in found:
        element.drop_tree()
    return items, html_lines(root, base)


def _drop_chrome(root: HtmlElement) -> None:
    """Remove the site's header, footer, asides and breadcrumbs; an item's own <header> or <footer> stays."""
    chrome = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        role = (element.get("role") or "").lower()
        marks = f"{element.get('class') or ''} {element.get('id') or ''}"
        is_chrome = (
            element.tag in _CHROME or role in _CHROME_ROLES or bool(_CHROME_CLASS.search(marks) and _box(element))
        )
        if is_chrome and not any(outer.tag in ("article", "li") for outer in element.iterancestors()):
            chrome.append(element)
    for element in chrome:
        if element.getparent() is not None:
            element.drop_tree()


_CHROME_ROLES = frozenset({"banner", "contentinfo", "complementary", "navigation"})


def _box(element: HtmlElement) -> bool:
    """Whether an element named like a sidebar is a box beside the page, not a wrapper ("layout-sidebar-first")."""
    if element.tag in ("html", "body", "main"):
        return False
    return next(element.iterdescendants("main", "h1"), None) is None and not element.xpath(".//*[@role='main']")


def _sourceline(element: HtmlElement) -> int:
    number = element.sourceline
    return number if isinstance(number, int) and number > 0 else 1


def _item_shaped(lines: list[Line]) -> bool:
    return any(line.kind in ("heading", "type") for line in lines)


def _dated(lines: list[Line]) -> bool:
    return any(_date_texts(line) is not None for line in lines)


def _date_texts(line: Line) -> tuple[list[str], str, str] | None:
    """The texts that may hold this line's date, best first, the type label beside it and the place after it.

    None if the line is no date line. A place follows the date after a comma ("01 June 2022, Vientiane");
    words may stand before it ("Published on 2 June 2022").
    """
    text, place = strip_date_prefix(line.text), ""
    placed = _place_split(text) if "," in text else None
    if placed is not None:
        text, place = placed
    split = split_type_date(text)
    label = line.label or (split[0] if split else "")
    if split:
        text = strip_date_prefix(split[1])
    if line.when:
        return [line.when, text], label, place
    if split or placed is not None:
        return [text], label, place
    if looks_like_date(text):
        return [text], line.label, place
    return None


def _place_split(text: str) -> tuple[str, str] | None:
    """A date line without its place, and the place: "News | 1 May 2022, Lima" → ("News | 1 May 2022", "Lima")."""
    label, bar, rest = text.rpartition("|")
    placed = split_date_place(strip_date_prefix(rest.strip()))
    if placed is None:
        return None
    return f"{label}{bar} {placed[0]}" if bar else placed[0], placed[1]


def _is_credit(line: Line) -> bool:
    return line.tag == "figcaption" or _CREDIT.match(line.text) is not None


def _is_pager(line: Line) -> bool:
    if line.kind == "heading":
        return False
    words = numbers = 0
    for token in line.text.casefold().split():
        token = token.strip(_PAGER_MARKS)
        if token in _PAGER_WORDS:
            words += 1
        elif token.isdigit() and len(token) <= 4:
            numbers += 1
        elif token:
            return False
    return words > 0 or numbers > 1


def _is_more(line: Line) -> bool:
    if _MORE_LINE.match(line.text):
        return True
    return bool(line.href) and line.kind != "heading" and _MORE_LINK.match(line.text) is not None


def _read_item(number: int, lines: list[Line], tz: tzinfo) -> _Item | _Undated:
    # A photo credit is never the item's type, title or summary, wherever the page prints it.
    lines = [line for line in lines if not (_is_credit(line) or _is_more(line) or _is_pager(line))]
    found: tuple[int, datetime, str, str] | None = None
    bad: tuple[Line, str] | None = None
    dated: list[bool] = []  # of the lines looked at, up to the date's: which are date lines
    for index, line in enumerate(lines):
        candidate = _date_texts(line)
        dated.append(candidate is not None)
        if candidate is None:
            continue
        texts, label, place = candidate
        for text in texts:
            try:
                found = (index, parse_date(text, tz), label, place)
                break
            except ValueError as exc:
                bad = bad or (line, str(exc))
        if found:
            break
    if found is None:
        if bad is not None:
            raise _Unreadable(bad[0].number, f"cannot read the date: {bad[1]}; expected {EXPECTED}")
        return _Undated(number, lines)
    index, published, date_label, place = found

    typed, rest, after = _around(lines, index)
    label = typed[0].text if typed else ""
    linked = next((line for line in rest if line.kind == "heading" or line.href), None)
    if linked is not None:
        title_lines = [linked]
        position = next(i for i, line in enumerate(rest) if line is linked)
        leading = rest[:position]
        if not label and leading and is_type_label(leading[0].text):
            label = leading[0].text
        # A card's teaser may stand between its title and a date printed at its foot.
        after = rest[position + 1 :] + after
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
        if linked is None and len(after) >= 2 and after[0].tag == "td" and len(after[0].text.split()) <= _TYPE_WORDS:
            position = 1  # a table row's short cell between its date and its title is its type column
        # Between the date and a linked title ("date | type | title" in a table row): a type, else summary.
        leading = after[:position]
        if not label and not date_label and leading and is_type_label(leading[0].text):
            label, leading = leading[0].text, leading[1:]
        title_lines, after = [after[position]], leading + after[position + 1 :]
    title = " ".join([line.text for line in title_lines])
    link = next((line.href for line in (*title_lines, *lines) if line.href), "")
    summary = " ".join([line.text for line in _before_next_list(after)])
    if place:  # a dateline: "Vientiane, Lao People's Democratic Republic — The workshop …"
        summary = f"{place} — {summary}" if summary else place
    unread = tuple(
        line.number
        for position, line in enumerate(lines)
        if position != index and _item_like(line, dated[position] if position < len(dated) else None)
    )
    return _Item(title=title, published=published, label=label or date_label, summary=summary, link=link, unread=unread)


def _undated_item(item: _Undated, labels: set[str]) -> _Item:
    """An announced item: a type (marked up, or a label the page's dated items use), a title, a summary.

    A short line that names a year ("Autumn 2021") is a date this adapter cannot read, not a summary.
    """
    lines = item.lines
    typed = [line for line in lines if line.kind == "type"]
    rest = [line for line in lines if line.kind != "type"]
    label = typed[0].text if typed else ""
    shown = " / ".join(line.text for line in lines[:2])
    shown = f' ("{shown[:80]}")' if shown else ""
    no_date = _Unreadable(
        item.number, f'no date in this item{shown}: expected a line with {EXPECTED}, or "News | 10 January 2022"'
    )
    if not rest:
        raise no_date
    position = next((i for i, line in enumerate(rest) if line.kind == "heading" or line.href), None)
    if position is not None:
        if not label and position and is_type_label(rest[0].text):
            label = rest[0].text
    elif not label and len(rest) >= 2 and is_type_label(rest[0].text):
        # Without a date to end the title, a first line is a type when the page's dated items use it
        # as one, or when it is as short as a type ("Event") and no title is.
        first = rest[0].text
        position = 1 if _label_key(first) in labels or len(first.split()) <= _TYPE_WORDS else 0
        label = first if position else ""
    else:
        position = 0
    title, after = rest[position], rest[position + 1 :]
    if any(len(line.text.split()) <= _VAGUE_WORDS and _VAGUE_DATE.search(line.text) for line in after):
        raise no_date
    if worded := next((line for line in after if _ends_in_date(line.text)), None):
        # "Last updated 2 June 2022": a date behind words this adapter does not know, not a summary.
        raise _Unreadable(
            worded.number, f'cannot tell the date from the words before it ("{worded.text[:80]}"); expected {EXPECTED}'
        )
    return _Item(
        title=title.text,
        published=UNDATED,
        label=label,
        summary=" ".join([line.text for line in _before_next_list(after)]),
        link=title.href or next((line.href for line in lines if line.href), ""),
        unread=tuple(line.number for line in lines if _item_like(line)),
        undated=True,
    )


def _before_next_list(after: list[Line]) -> list[Line]:
    """An item's summary lines up to a numbered line no item took, and the short heading over it.

    Numbering that starts again under the last item is another list ("Most read", "Related"), reported as
    unread; neither it nor what follows it is the item's summary.
    """
    for cut, line in enumerate(after):
        marker = _MARKER.match(line.text)
        if marker is not None and int(marker[1]) <= _FIRST_MAX:
            heading = cut > 0 and is_type_label(after[cut - 1].text)
            return after[: cut - 1] if heading else after[:cut]
    return after


def _ends_in_date(text: str) -> bool:
    """Whether a short line ends in a date: its last two to six words are one."""
    words = text.split()
    if len(words) > _DATED_LINE_WORDS or not words[-1][-4:].isdigit():
        return False
    return any(looks_like_date(" ".join(words[-count:])) for count in range(2, min(6, len(words) - 1) + 1))


def _label_key(label: str) -> str:
    """A type label with case, punctuation and spacing left out: "Co-operators" and "cooperators" are one."""
    return "".join(filter(str.isalnum, label.casefold()))


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
    # An undated item's key holds no date: the store dates it when first seen, and the id must not move.
    day = "undated" if item.undated else day_text(item.published)
    key = f"{day}/{slugify(item.title, 60)}"
    return Entry(
        id=item.link or source.tag(key),
        title=item.title,
        link=item.link,
        published=item.published,
        updated=item.published,
        source=source.name,
        summary=item.summary,
        content_html=blocks_html([("p", item.summary)]) if item.summary else "",
        labels=(label,) if label else (),
        match_key="" if item.undated else match_key(item.title, item.published),
        undated=item.undated,
    )
