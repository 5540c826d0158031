"""Turning a document, plain text or HTML, into the numbered lines the page adapters read."""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from lxml.html import HtmlElement

from feeds.adapters.common import clean_text, html_tree, strip_unwanted
from feeds.errors import SourceError
from feeds.model import Document
from feeds.urls import web_url

Kind = Literal["text", "heading", "item", "type"]


class Line(NamedTuple):
    """One line of reading matter and what the markup said about it.

    A named tuple rather than a frozen dataclass: as immutable, and cheaper to build, which counts
    at one per line of every page read.
    """

    number: int  # 1-based line in the document; for HTML, the line the element starts on
    text: str  # clean: XML-legal, whitespace collapsed, never empty
    kind: Kind = "text"  # heading (h1 to h6), item (a bullet or <li>), type (marked up as a type label)
    tag: str = ""  # the HTML element it came from
    href: str = ""  # absolute http(s) link that the whole line is (a linked title)
    when: str = ""  # a <time datetime> value inside the line
    label: str = ""  # the text of a type-label element inside the line


# "•" marks a bullet even when glued to its text; "-" and "*" only with a space ("-5 %" is not a bullet).
_BULLET = re.compile(r"^(?:[•◦▪‣·]\s*|[*-]\s+)(?=\S)")
_BULLET_FIRST = "•◦▪‣·*-"  # the characters a bullet starts with: other lines skip the pattern


# Their text is code, controls or site chrome, never the page's reading matter.
_SKIP = frozenset({
    "script", "style", "noscript", "template", "nav", "form", "button", "select", "textarea", "svg",
    "iframe", "object", "head", "title", "meta", "link", "menu",
})  # fmt: skip
# An element with one of these as a child holds several lines; one without is a line itself.
_BLOCK = frozenset({
    "html", "body", "main", "div", "section", "article", "header", "footer", "aside", "ul", "ol", "dl",
    "li", "dt", "dd", "figure", "figcaption", "blockquote", "table", "thead", "tbody", "tfoot", "tr",
    "td", "th", "details", "summary", "center", "address", "hgroup", "p", "pre", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6",
})  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_TYPE_CLASS = re.compile(r"(?:^|[\s_-])(?:type|label|category|kicker|badge|eyebrow|tag)(?:$|[\s_-])")
_SEPARATORS = " \t\u2013\u2014-|·•,:;/"  # what sits between a type, a title and a date
_MAX_DEPTH = 200  # deeper markup is read as one line rather than walked (keeps recursion bounded)


def read_text(doc: Document, source: str) -> str:
    """The document's text, with the characters XML cannot carry removed; decoding trouble is a SourceError."""
    try:
        return strip_unwanted(doc.text())
    except (LookupError, UnicodeError) as exc:  # an unknown or unusable declared charset
        raise SourceError(source, f"cannot decode the document as {doc.charset!r}: {exc}") from exc


def text_lines(text: str) -> list[Line]:
    """The non-blank lines of a plain-text rendering; a leading bullet ("  •  ") makes the line an item."""
    lines: list[Line] = []
    # Only CR/LF end lines, so line numbers agree with what an editor shows.
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        cleaned = clean_text(raw)
        if not cleaned:
            continue
        if cleaned[0] in _BULLET_FIRST and (bullet := _BULLET.match(cleaned)):
            lines.append(Line(number, cleaned[bullet.end() :], "item"))
        else:
            lines.append(Line(number, cleaned))
    return lines


def parse_html(doc: Document, source: str) -> tuple[HtmlElement, str]:
    """The document parsed by lxml.html and stripped of what is not reading matter, with its base URL.

    A page lxml cannot make a tree of is a SourceError.
    """
    root = html_tree(read_text(doc, source), source)
    base = doc.url
    for element in root.iter("base"):
        if href := clean_text(element.get("href") or ""):
            base = web_url(href, doc.url) or doc.url
            break
    for element in list(root.iter()):
        skipped = not isinstance(element.tag, str) or element.tag in _SKIP
        if skipped and element.getparent() is not None:
            element.drop_tree()  # keeps the text that follows it
    for br in root.iter("br"):  # a line break separates words that text_content() would run together
        br.tail = " " + (br.tail or "")
    return root, base


def html_lines(element: HtmlElement, base: str) -> list[Line]:
    """The lines of `element`, in document order: its own children are read even when they are inline.

    A child holding blocks is walked; any other child (a paragraph, a heading, a <time>, a <span>) is
    one line. Text between children is a line of its own, without the separators around it.
    """
    lines: list[Line] = []
    _walk(element, base, lines, 0)
    return lines


def _walk(element: HtmlElement, base: str, lines: list[Line], depth: int) -> None:
    _loose_text(element.text, _number(element), lines)
    for child in element:
        if isinstance(child.tag, str):
            if depth < _MAX_DEPTH and any(isinstance(c.tag, str) and c.tag in _BLOCK for c in child):
                _walk(child, base, lines, depth + 1)
            elif line := _line(child, base):
                lines.append(line)
        _loose_text(child.tail, _number(child), lines)


def _loose_text(text: str | None, number: int, lines: list[Line]) -> None:
    cleaned = clean_text(text or "").strip(_SEPARATORS)
    if cleaned:
        lines.append(Line(number, cleaned))


def _number(element: HtmlElement) -> int:
    number = element.sourceline
    return number if isinstance(number, int) and number > 0 else 1


def _line(element: HtmlElement, base: str) -> Line | None:
    text = _text(element)
    if not text:
        return None
    tag: str = element.tag
    kind: Kind = "text"
    if tag in _HEADINGS:
        kind = "heading"
    elif tag == "li":
        kind = "item"
    elif _is_type(element):
        kind = "type"
    return Line(_number(element), text, kind, tag, _href(element, text, base), _when(element), _label(element))


def _text(element: HtmlElement) -> str:
    return clean_text(element.text_content())


def _is_type(element: HtmlElement) -> bool:
    return bool(_TYPE_CLASS.search((element.get("class") or "").lower()))


def _href(element: HtmlElement, text: str, base: str) -> str:
    """The link the line stands for: its own, a heading's first, that of one link spanning all of its text,
    or that of a link around it (a card whose whole face is one <a>).

    A link inside running text ("read the <a>report</a>") does not make a paragraph a title.
    """
    anchors = [element] if element.tag == "a" else [a for a in element.iter("a") if a.get("href")]
    for anchor in anchors[:1]:
        href = clean_text(anchor.get("href") or "")
        whole = anchor is element or element.tag in _HEADINGS or _text(anchor) == text
        if href and not href.startswith("#") and whole:
            return web_url(href, base)
    if not anchors:
        around = next((a for a in element.iterancestors("a") if a.get("href")), None)
        href = clean_text(around.get("href") or "") if around is not None else ""
        if href and not href.startswith("#"):
            return web_url(href, base)
    return ""


def _when(element: HtmlElement) -> str:
    for node in element.iter("time"):
        value = clean_text(node.get("datetime") or "")
        if value:
            return value
    return ""


def _label(element: HtmlElement) -> str:
    for node in element.iter():
        if _is_type(node):
            return _text(node)
    return ""
