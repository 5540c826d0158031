"""The `html` adapter: entries from any HTML page, found by CSS selectors in the source's options."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import cssselect
from dateutil import parser as dateutil_parser
from lxml import etree
from lxml.cssselect import CSSSelector
from lxml.html import HtmlElement

from feeds.adapters import dates
from feeds.adapters.common import clean_text, html_tree, strip_unwanted
from feeds.config import SourceConfig
from feeds.errors import SourceError
from feeds.model import Author, Document, Entry, slugify
from feeds.sanitize import html_to_text, sanitize_html
from feeds.urls import web_url

SELECTORS = ("item", "title", "link", "date", "summary", "content", "category", "author")
OPTIONS = frozenset({*SELECTORS, "date_format"})
_HEADINGS = "h1, h2, h3, h4, h5, h6"


class _Unreadable(Exception):
    """One item that cannot become an entry; the reason is gathered, the other items go on."""


@dataclass(frozen=True, slots=True)
class _Selectors:
    """The selectors of one source as written (for messages) and compiled; absent when not given."""

    texts: Mapping[str, str]
    compiled: Mapping[str, CSSSelector]

    def first(self, key: str, element: HtmlElement) -> HtmlElement | None:
        found = self.all(key, element)
        return found[0] if found else None

    def all(self, key: str, element: HtmlElement) -> list[HtmlElement]:
        select = self.compiled.get(key)
        found = select(element) if select else []
        # A CSS selector only ever yields elements; the check keeps the XPath result type honest.
        return [node for node in found if isinstance(node, HtmlElement)] if isinstance(found, list) else []


class CssSelectors:
    """Reads `[sources.options]`: `item` (required) and `title`, `link`, `date`, `date_format`, `summary`,
    `content`, `category`, `author`, each a CSS selector evaluated inside the item (`date_format` is strptime's).
    """

    def check_options(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key in options:
            if key not in OPTIONS:
                problems.append((key, f"unknown option for the html adapter (known: {', '.join(sorted(OPTIONS))})"))
        if "item" not in options:
            problems.append(("item", "is required: a CSS selector matching each entry's element"))
        for key in SELECTORS:
            if key not in options:
                continue
            value = options[key]
            if not isinstance(value, str) or not value.strip():
                problems.append((key, f"must be a CSS selector string, got {value!r}"))
            elif reason := _selector_error(value):
                problems.append((key, f'"{value}" is not a valid CSS selector: {reason}'))
        if "date_format" in options:
            fmt = options["date_format"]
            if not isinstance(fmt, str) or "%" not in fmt:
                problems.append(("date_format", f'must be a strptime format such as "%d %B %Y", got {fmt!r}'))
        return problems

    def parse(self, doc: Document, source: SourceConfig) -> Iterator[Entry]:
        if problems := self.check_options(source.options):
            listed = "; ".join(f"options.{key} {what}" for key, what in problems)
            raise SourceError(source.name, f"cannot use the html adapter: {listed}")
        selectors = _Selectors(
            texts={key: source.options[key] for key in SELECTORS if key in source.options},
            compiled={
                key: CSSSelector(source.options[key], translator="html") for key in SELECTORS if key in source.options
            },
        )
        date_format: str | None = source.options.get("date_format")
        root = _parse_html(doc, source.name)
        base = _base_url(root, doc.url)
        items = selectors.all("item", root)
        if not items:
            raise SourceError(
                source.name, f'{doc.url}: no element matches the item selector "{selectors.texts["item"]}"'
            )
        page_date = None if "date" in selectors.texts else doc.date()
        if "date" not in selectors.texts and page_date is None:
            raise SourceError(
                source.name, f"{doc.url}: the entries have no date: set options.date to a selector for each item's date"
            )
        bad: list[tuple[int, str]] = []
        for number, element in enumerate(items, start=1):
            try:
                entry = _entry(element, selectors, source, base, date_format, page_date)
            except _Unreadable as exc:
                bad.append((number, str(exc)))
                continue
            yield entry
        if bad:
            numbers = ", ".join(str(number) for number, _ in bad)
            reasons = "; ".join(f"item {number}: {why}" for number, why in bad)
            noun = "item" if len(bad) == 1 else "items"
            raise SourceError(source.name, f"{doc.url}: {noun} {numbers} of {len(items)} cannot be read ({reasons})")


def _entry(
    element: HtmlElement,
    selectors: _Selectors,
    source: SourceConfig,
    base: str,
    date_format: str | None,
    page_date: datetime | None,
) -> Entry:
    title_element = _title_element(element, selectors)
    if title_element is None:
        where = f'title selector "{selectors.texts["title"]}"' if "title" in selectors.texts else "no heading or link"
        raise _Unreadable(f"no title ({where} matched nothing)")
    title = _text(title_element)
    if not title:
        raise _Unreadable("the title is empty")

    link = _link(element, title_element, selectors, base)

    own_date = "date" in selectors.texts
    if own_date:
        date_element = selectors.first("date", element)
        if date_element is None:
            raise _Unreadable(f'no date (date selector "{selectors.texts["date"]}" matched nothing) for "{title}"')
        raw_date = clean_text(date_element.get("datetime") or date_element.get("content") or "") or _text(date_element)
        published = parse_date(raw_date, source.time_zone, date_format)
        if published is None:
            how = f'with date_format "{date_format}"' if date_format else "as a date"
            raise _Unreadable(f'cannot read "{raw_date}" {how} for "{title}"')
    else:
        assert page_date is not None  # parse() refuses a page without either
        published = page_date

    summary_element = selectors.first("summary", element)
    content_element = selectors.first("content", element)
    tags = _unique(_text(found) for found in selectors.all("category", element))
    names = _unique(_text(found) for found in selectors.all("author", element))

    # A date taken from the page itself would change the id at every fetch: only the item's own date counts.
    key = f"{published:%Y-%m-%d}:{slugify(title)}" if own_date else slugify(title)
    try:
        return Entry(
            id=link or source.tag(key),
            title=title,
            link=link,
            published=published,
            updated=published,
            source=source.name,
            summary=_text(summary_element) if summary_element is not None else "",
            content_html=sanitize_html(_inner_html(content_element), base) if content_element is not None else "",
            authors=tuple(Author(name=name) for name in names),
            tags=tags,
        )
    except ValueError as exc:  # the model refuses it (e.g. an empty id): still only this item
        raise _Unreadable(str(exc)) from exc


def _title_element(element: HtmlElement, selectors: _Selectors) -> HtmlElement | None:
    if "title" in selectors.texts:
        return selectors.first("title", element)
    for css in (_HEADINGS, "a[href]"):
        found = element.cssselect(css)
        if found:
            return found[0]
    return None


def _link(element: HtmlElement, title_element: HtmlElement, selectors: _Selectors, base: str) -> str:
    if "link" in selectors.texts:
        candidates = [selectors.first("link", element)]
    else:
        # The title's own link, one around it (<a><h2>…</h2></a>), then the item's first link.
        around = next((up for up in title_element.iterancestors("a") if up.get("href")), None)
        candidates = [title_element, around, element]
    for candidate in candidates:
        if candidate is None:
            continue
        href = candidate.get("href") if candidate.tag == "a" else None
        if not href:
            inner = candidate.cssselect("a[href]")
            href = inner[0].get("href") if inner else None
        if href and (url := web_url(href, base)):
            return url
    return ""


def _text(element: HtmlElement) -> str:
    # Through html_to_text, not text_content(): "<p>a</p><p>b</p>" and "a<br>b" read "a b", not "ab".
    return html_to_text(etree.tostring(element, method="html", encoding="unicode", with_tail=False))


def _inner_html(element: HtmlElement) -> str:
    parts = [element.text or ""]
    parts.extend(etree.tostring(child, method="html", encoding="unicode") for child in element)
    return "".join(str(part) for part in parts)


def _unique(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text for text in texts if text))


def _selector_error(selector: str) -> str:
    try:
        cssselect.HTMLTranslator().css_to_xpath(selector)
    except cssselect.SelectorError as exc:
        return str(exc)
    return ""


def _parse_html(doc: Document, source: str) -> HtmlElement:
    try:
        text = doc.decode()
    except ValueError as exc:
        raise SourceError(source, f"{doc.url}: {exc}") from exc
    if not strip_unwanted(text).strip():
        raise SourceError(source, f"{doc.url}: the page is empty")
    return html_tree(text, source, doc.url)


def _base_url(root: HtmlElement, url: str) -> str:
    base = root.find(".//base[@href]")
    if base is None:
        return url
    return web_url(str(base.get("href")), url) or url


# --- dates ------------------------------------------------------------------------------------

# dateutil fills what a string lacks from a default date: demand a year so "Monday" is no date at all.
_HAS_YEAR = re.compile(r"(?<!\d)\d{4}(?!\d)|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2}\b")
_UTC_NAMES = frozenset({"UTC", "GMT", "UT", "Z"})


def parse_date(text: str, zone: tzinfo, date_format: str | None = None) -> datetime | None:
    """An aware datetime from a date as a page prints it; date-only and naive values take `zone`.

    With `date_format`, only strptime with that format (month names in English: the C locale).
    Without, the project's reader of English, French and Spanish dates and ISO 8601 (dates.parse_date;
    words before the date and a place after it are left out), then python-dateutil for the rest
    ("Thu, 28 Oct 2021 10:00:00 GMT", "2021/10/28"). None when nothing reads it.
    """
    text = clean_text(text)
    if not text:
        return None
    parsed: datetime | None
    if date_format:
        try:
            parsed = datetime.strptime(text, date_format)
        except ValueError:
            return None
    else:
        parsed = _site_date(text, zone) or _dateutil(text)
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _site_date(text: str, zone: tzinfo) -> datetime | None:
    """The date as the page adapters read it, also behind words ("Published on …") or before a place ("…, Lima")."""
    text = dates.strip_date_prefix(text)
    placed = dates.split_date_place(text)
    for candidate in (text, placed[0]) if placed else (text,):
        try:
            return dates.parse_date(candidate, zone)
        except ValueError:
            continue
    return None


def _dateutil(text: str) -> datetime | None:
    if not _HAS_YEAR.search(text):
        return None
    try:
        return dateutil_parser.parse(text, default=datetime(2000, 1, 1), tzinfos=_zone_for)
    except (ValueError, OverflowError, TypeError):
        return None


def _zone_for(name: str | None, offset: int | None) -> tzinfo | None:
    # A callable keeps dateutil from warning about zone names it does not know; those stay naive
    # and take the source's zone.
    if offset is not None:
        return timezone(timedelta(seconds=offset))
    if name and name.upper() in _UTC_NAMES:
        return UTC
    return None
