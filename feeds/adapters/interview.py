"""The `interview` adapter: one interview or article page (title, standfirst, "Type | date", body) as text or HTML."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from lxml import etree
from lxml.html import HtmlElement

from feeds.adapters.common import Block, blocks_html, clean_text, is_http, is_type_label, match_key, strip_honorific
from feeds.adapters.dates import (
    EXPECTED,
    looks_like_date,
    parse_date,
    split_date_place,
    split_type_date,
    strip_date_prefix,
)
from feeds.adapters.lines import Line, html_lines, parse_html, read_text, text_lines
from feeds.config import SourceConfig
from feeds.errors import SourceError
from feeds.model import Author, Document, Entry, slugify
from feeds.sanitize import sanitize_html

KINDS = ("auto", "interview", "article")
OPTIONS = {"kind": f"what the page is: {', '.join(KINDS)} (auto: an interview when its body asks questions)"}
META_EXAMPLE = '"Type | date" line (such as "Article | 22 July 2020")'
# A question line is a heading in all but name; a paragraph that merely ends with "?" is longer.
_QUESTION_MAX = 300
_NAME_MAX = 80
_CLOSERS = "\"'\u201d\u2019»)] "  # closing quotes and brackets after a question mark
# "1. What brought you …?": the number is the page's numbering, not part of the question.
_NUMBERED = re.compile(r"^\(?\d{1,2}[.)]\s+(?=\S)")
# "Q: How did it begin?" / "A: With thirty neighbours.": questions and answers marked by a letter or a word
# (French "Q." / "R.", Spanish "P." / "R."). The marks count only when the page uses both kinds.
_QA_MARK = re.compile(
    r"^(?:(?P<q>q|p|question|pregunta)|(?P<a>a|r|answer|r[ée]ponse|respuesta))(?:\s*:\s*|\.\s+|\)\s+|\s+[\u2013-]\s+)(?=\S)",
    re.IGNORECASE,
)
# In HTML a bullet is often typed into its own paragraph ("<p>• text</p>") rather than marked up as <li>.
_BULLET = re.compile(r"^[•◦▪‣·]\s*(?=\S)")
# A photo credit ("© ILO / A. Photographer 2024", "Photo: …") is never reading matter, nor a caption glued to one.
_CREDIT = re.compile(r"^(?:©|\(c\)\s|copyright\b|photos?\s*(?:credit)?\s*:|cr[ée]dits?\s+photo|foto\s*:)", re.I)
_CREDIT_TAIL = re.compile(r"(?:^|\s)©\s*[^©]{0,80}$")
_CAPTION_MAX = 300
_PLACE_WORDS = 8

# Site chrome: what the site wraps around every page. None of it is the page's reading matter.
_CHROME_TAGS = frozenset({"nav", "aside", "header", "footer", "menu"})
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "menubar", "toolbar"})
# Class and id words that name chrome: prefixes ("related-content", "breadcrumbs", "social-share") and whole
# words ("nav", "menu"); a page's own "article-header" is not among them.
_CHROME_NAME = re.compile(
    r"(?:^|[\s_-])(?:breadcrumb|related|see-?also|share|sharing|social|sidebar|skip|cookie|navbar|masthead|newsletter"
    r"|subscribe|logo|brand|(?:site|global)-?(?:header|footer|name|title))"
    r"|(?:^|[\s_-])(?:nav|navigation|menu|banner|toolbar)(?:$|[\s_-])"
)
_CAPTION_NAME = re.compile(r"(?:^|[\s_-])(?:caption|credits?|photo-?credit|wp-caption-text)(?:$|[\s_-])")
# The stand-in text of a figure's line ("[figure 0]"); its picture and caption are kept aside by number.
_FIGURE_LINE = re.compile(r"^\[figure (\d{1,6})\]$")
_TABLE_LINE = re.compile(r"^\[table (\d{1,6})\]$")
# A table holding any of these lays a page out rather than holding data: it is read line by line.
_LAYOUT = frozenset({"h1", "h2", "h3", "h4", "h5", "h6", "table", "article", "main", "section", "figure", "form"})


@dataclass(frozen=True, slots=True)
class _Figure:
    src: str
    alt: str
    caption: str


@dataclass(slots=True)
class _Page:
    """The lines of a page and what its markup said about them (nothing, for plain text)."""

    lines: list[Line]
    title_at: int | None = None  # index of the page's <h1> in `lines`
    figures: tuple[_Figure, ...] = ()
    base: str = ""
    tables: tuple[str, ...] = ()  # sanitized HTML of each data table, by number


class Interview:
    """Reads interview and article pages into one entry each; interviews get question headings."""

    def check_options(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key, value in options.items():
            if key not in OPTIONS:
                known = "; ".join(f"{name}: {what}" for name, what in OPTIONS.items())
                problems.append((key, f"unknown option for the interview adapter (known: {known})"))
            elif value not in KINDS:
                problems.append((key, f"must be one of {', '.join(repr(k) for k in KINDS)}, got {value!r}"))
        return problems

    def parse(self, doc: Document, source: SourceConfig) -> Iterator[Entry]:
        if doc.is_html:
            root, base = parse_html(doc, source.name)
            page = _html_page(root, base)
        else:
            page = _Page(text_lines(read_text(doc, source.name)))
        kind = source.options.get("kind", "auto")
        yield _read_page(page, doc.url, source, kind if kind in KINDS else "auto")


# --- HTML: the page without its chrome -----------------------------------------------------------


def _html_page(root: HtmlElement, base: str) -> _Page:
    """The page's reading matter: chrome removed, figures set aside, read from the part that holds its <h1>."""
    headline = _headline(root)
    keep = set(headline.iterancestors()) | {headline} if headline is not None else set()
    for element in list(root.iter()):
        if element not in keep and element.getparent() is not None and _is_chrome(element, headline):
            element.drop_tree()
    figures = _set_figures_aside(root, base)
    tables = _set_tables_aside(root, base)
    _split_bold_questions(root)
    container = _container(root, headline)
    lines = html_lines(container, base)
    title_at = None
    if headline is not None:
        # Minified pages put every element on line 1: the text tells the headline from another <h1> there.
        number, text = headline.sourceline, clean_text(headline.text_content())
        title_at = next(
            (i for i, line in enumerate(lines) if line.tag == "h1" and line.number == number and line.text == text),
            None,
        )
    if title_at is None:
        title_at = next((i for i, line in enumerate(lines) if line.tag == "h1"), None)
    return _Page(lines, title_at, figures, base, tables=tables)


def _is_chrome(element: HtmlElement, headline: HtmlElement | None = None) -> bool:
    tag = element.tag
    if not isinstance(tag, str):
        return False
    if tag in _CHROME_TAGS:
        if tag != "header" or not any(a.tag in ("article", "main") for a in element.iterancestors()):
            return True
        # A <header> inside the article is the page's own (its kicker, headline, standfirst, date), unless
        # it holds a heading besides the page's headline (a site's name), or comes after a headline.
        return any(h1 is not headline for h1 in element.iter("h1")) or bool(element.xpath("preceding::h1[1]"))
    if (element.get("role") or "").strip().lower() in _CHROME_ROLES:
        return True
    if "breadcrumb" in (element.get("aria-label") or "").lower():
        return True
    names = f"{element.get('class') or ''} {element.get('id') or ''}".lower()
    if not names.strip():
        return False
    if _CHROME_NAME.search(names):
        return True
    # A caption outside a figure is loose chrome; inside one it goes with the figure's picture.
    return bool(_CAPTION_NAME.search(names)) and not any(a.tag == "figure" for a in element.iterancestors())


def _in_chrome(h1: HtmlElement) -> bool:
    """Whether the site's chrome holds this <h1>, were it the page's headline."""
    return any(_is_chrome(a, h1) for a in (h1, *h1.iterancestors()))


def _headline(root: HtmlElement) -> HtmlElement | None:
    """The page's own <h1>: the one in <main> or <article>, never one the site's chrome holds (its name)."""
    candidates = [h for h in root.iter("h1") if not _in_chrome(h) and clean_text(h.text_content())]
    for inside in ("main", "article"):
        for h1 in candidates:
            if any(a.tag == inside for a in h1.iterancestors()):
                return h1
    return candidates[0] if candidates else None


def _container(root: HtmlElement, headline: HtmlElement | None) -> HtmlElement:
    """<main> when it holds the headline (or there is none), else the whole body (chrome is gone already)."""
    main = next(root.iter("main"), None)
    if main is not None and (headline is None or main in set(headline.iterancestors())):
        return main
    body: HtmlElement = next(root.iter("body"), root)
    return body


def _set_figures_aside(root: HtmlElement, base: str) -> tuple[_Figure, ...]:
    """Each <figure> becomes one stand-in line, so its caption is never read as a paragraph."""
    figures: list[_Figure] = []
    for figure in list(root.iter("figure")):
        if figure.getparent() is None:
            continue
        image = next((img for img in figure.iter("img") if (img.get("src") or "").strip()), None)
        caption_element = next(figure.iter("figcaption"), None)
        # A caption of several paragraphs (text, then credit) reads as one line, its parts spaced apart.
        caption = (
            " ".join(line.text for line in html_lines(caption_element, base)) if caption_element is not None else ""
        )
        tail = figure.tail
        figure.clear()  # drops its children and tail too
        figure.tail = tail
        if image is None:
            continue  # a caption without a picture is nothing to show
        figure.text = f"[figure {len(figures)}]"
        alt = clean_text(image.get("alt") or "")
        figures.append(_Figure(clean_text(image.get("src") or ""), alt, caption))
    return tuple(figures)


def _set_tables_aside(root: HtmlElement, base: str) -> tuple[str, ...]:
    """Each data table becomes one stand-in line, so that its rows stay rows rather than a paragraph a cell."""
    tables: list[str] = []
    for table in [t for t in root.iter("table") if not any(a.tag == "table" for a in t.iterancestors())]:
        if table.getparent() is None or any(
            isinstance(d.tag, str) and d.tag in _LAYOUT for d in table.iterdescendants()
        ):
            continue
        cleaned = sanitize_html(etree.tostring(table, method="html", encoding="unicode", with_tail=False), base)
        tail = table.tail
        table.clear()
        table.tail = tail
        if "<td" in cleaned or "<th" in cleaned:
            table.text = f"[table {len(tables)}]"
            tables.append(cleaned)
    return tuple(tables)


def _split_bold_questions(root: HtmlElement) -> None:
    """ "<p><strong>Question?</strong> Answer</p>" becomes a question paragraph and an answer paragraph."""
    for paragraph in list(root.iter("p")):
        first = paragraph[0] if len(paragraph) else None
        if first is None or first.tag not in ("strong", "b") or clean_text(paragraph.text or ""):
            continue
        question = clean_text(first.text_content())
        if not question.rstrip(_CLOSERS).endswith("?") or len(question) > _QUESTION_MAX:
            continue
        if not clean_text(paragraph.text_content())[len(question) :].strip():
            continue  # the whole paragraph is the question
        heading = paragraph.makeelement("p", {})
        heading.text = question
        heading.sourceline = paragraph.sourceline
        paragraph.addprevious(heading)
        paragraph.text = first.tail
        paragraph.remove(first)  # lxml's remove() takes the tail with it: it was moved to the text above


# --- both: the parts of a page --------------------------------------------------------------------


def _is_meta(line: Line) -> bool:
    return bool(line.when) or split_type_date(line.text) is not None or _meta_parts(line.text) is not None


def _meta_parts(text: str) -> tuple[str, str, str] | None:
    """The type label, date and place of a "Type | date" line or a date line; None for another line.

    The date may follow words ("Published on …") and be followed by a place ("3 mars 2021, Abidjan, Côte
    d'Ivoire"), as in a dateline. It is returned unparsed, so that a mistyped one is reported.
    """
    label, bar, rest = text.rpartition("|")
    when, place = strip_date_prefix(clean_text(rest)), ""
    if placed := split_date_place(when):
        when, place = placed
        if place and not _is_place(place):
            return None  # "10 January 2022, the members met …" opens a paragraph of the body
    elif not looks_like_date(when):
        return None
    if not bar:
        return "", when, place
    split = split_type_date(f"{label}|{when}")
    return (split[0], split[1], place) if split else None


def _is_credit(line: Line) -> bool:
    """A photo credit, or a caption ending in one: not reading matter."""
    text = line.text
    return bool(_CREDIT.match(text)) or (len(text) <= _CAPTION_MAX and bool(_CREDIT_TAIL.search(text)))


def _figure_number(line: Line) -> int | None:
    match = _FIGURE_LINE.match(line.text) if line.tag == "figure" else None
    return int(match[1]) if match else None


def _table_number(line: Line) -> int | None:
    match = _TABLE_LINE.match(line.text) if line.tag == "table" else None
    return int(match[1]) if match else None


def _is_figure(line: Line) -> bool:
    """Whether the line stands in for a figure or a table, which are never a title, a standfirst or a date."""
    return _figure_number(line) is not None or _table_number(line) is not None


def _is_question(line: Line) -> bool:
    return line.kind != "item" and len(line.text) <= _QUESTION_MAX and line.text.rstrip(_CLOSERS).endswith("?")


def _question_text(text: str) -> str:
    return _NUMBERED.sub("", text, count=1)


def _names_someone(text: str) -> bool:
    """Whether a line opens with a person's name: "Ms Amina Diallo, President …", "Sung Ho Kim, KFCC"."""
    first = text.split(",")[0].strip()
    if strip_honorific(first) != first:
        return True
    words = first.split()
    return (
        "," in text
        and 2 <= len(words) <= 5
        and all(word[:1].isupper() for word in words)
        and not any(ch.isdigit() for ch in first)
    )


def _tidy(lines: list[Line]) -> list[Line]:
    """Credits gone; "•" paragraphs made list items."""
    tidy: list[Line] = []
    for line in lines:
        if _is_credit(line):
            continue
        if line.kind != "item" and (bullet := _BULLET.match(line.text)):
            line = line._replace(text=line.text[bullet.end() :], kind="item")
        tidy.append(line)
    return tidy


def _is_place(text: str) -> bool:
    """Whether the text after a date and a comma names a place ("Vientiane, Lao People's Democratic Republic")."""
    return text[0].isupper() and len(text.split()) <= _PLACE_WORDS and not text.endswith((".", "!", "?", ":", ";"))


def _meta_date(line: Line, tz: tzinfo) -> tuple[datetime, str, str]:
    """The date, type label and place of the "Type | date" line; ValueError if the date cannot be read."""
    parts = _meta_parts(line.text)
    split = split_type_date(line.text)
    label = line.label or (parts[0] if parts else split[0] if split else "")
    texts = [line.when] if line.when else []
    texts.append(parts[1] if parts else split[1] if split else line.text)
    error = ValueError(f'"{line.text}" holds no date')
    for text in texts:
        try:
            return parse_date(text, tz), label, parts[2] if parts else ""
        except ValueError as exc:
            error = exc
    raise error


def _find_meta(lines: list[Line], start: int) -> int | None:
    return next((i for i in range(max(start, 1), len(lines)) if _is_meta(lines[i])), None)


def _read_page(page: _Page, url: str, source: SourceConfig, kind: str) -> Entry:
    name = source.name
    lines = page.lines
    title_at = page.title_at
    if title_at is not None and _is_credit(lines[title_at]):
        headline = lines[title_at]
        raise SourceError(
            f"{name} line {headline.number}", f'the <h1> is a photo credit ("{headline.text}"), not the headline'
        )
    if title_at is not None:
        # What precedes the <h1> inside the page is a series line or a kicker; credits are dropped first.
        before = [line for line in _tidy(lines[:title_at]) if not _is_figure(line)]
        lines = before + lines[title_at:]
        title_at = len(before)
    lines = _tidy(lines)
    if not lines:
        raise SourceError(name, f"the document is empty: expected a title, a standfirst and a {META_EXAMPLE}")
    first = title_at or 0
    at = _find_meta(lines, first + 1)
    if at is None and title_at:
        # Some pages print the type and date above their headline.
        at = next((i for i in range(title_at) if _is_meta(lines[i])), None)
    if at is None:
        if _is_meta(lines[first]):
            raise SourceError(
                f"{name} line {lines[first].number}",
                f"the page opens with its {META_EXAMPLE}: expected the series name or title on a line before it",
            )
        question = next((line for line in lines[first + 1 :] if _is_question(line)), None)
        where = question.number if question else lines[-1].number
        said = "before the body starts" if question else "anywhere in the document"
        raise SourceError(f"{name} line {where}", f"no {META_EXAMPLE} {said}")
    meta = lines[at]
    try:
        published, type_label, place = _meta_date(meta, source.time_zone)
    except ValueError as exc:
        raise SourceError(f"{name} line {meta.number}", f"cannot read the date: {exc}; expected {EXPECTED}") from None

    if at > first:
        head = [line for line in lines[first:at] if not _is_figure(line)]
        body_start = at + 1
    else:  # the meta line sits above the headline: the head runs from the headline to the first body line
        head, body_start = _head_below(lines, first)
    kicker = lines[title_at - 1] if title_at and at != title_at - 1 else None
    if head and head[-1].kind == "type" and not type_label and len(head) > 1:
        type_label = head.pop().text  # a type label printed on its own line above the date
    body, marked = _qa_marked(lines[body_start:])
    interview = kind == "interview" or (
        kind == "auto" and (marked or any(_is_question_at(body, i) for i in range(len(body))))
    )

    series, title_line, standfirst = _split_head(head, kicker, interview, page.title_at is not None)
    title = title_line.text
    contributors: tuple[Author, ...] = ()
    if interview and title_line is not series and _names_someone(title):
        # The interviewee line opens with "Mr Name, role …", and the listing titles the interview the same way.
        person = strip_honorific(title.split(",")[0])
        if person and len(person) <= _NAME_MAX and len(person.split()) <= 6:  # a name, not a sentence
            contributors = (Author(name=person),)
    summary = " ".join(line.text for line in standfirst)
    if interview and not summary:
        summary = title
    # An interview's category follows its series ("ILO COOP 100 Interview"), an article's its type.
    if interview and series is not None:
        labels: tuple[str, ...] = (series.text,)
    else:
        labels = (type_label,) if type_label else ()
    permalink = url if is_http(url) else ""
    return Entry(
        id=permalink or source.tag(f"{published:%Y-%m-%d}/{slugify(title, 60)}"),
        title=title,
        link=permalink,
        published=published,
        updated=published,
        source=name,
        summary=summary,
        # The place of a dateline opens the body, as it opens a listing item's summary.
        content_html=_content([Line(meta.number, place), *body] if place else body, interview, page),
        contributors=contributors,
        labels=labels,
        match_key=match_key(title, published),
    )


def _qa_marked(body: list[Line]) -> tuple[list[Line], bool]:
    """The body with its "Q:" and "A:" marks taken off, each marked question a heading; and whether it had any.

    A marked question is one even when it asks nothing ("Q: Tell us about the members.").
    """
    marks = [(_QA_MARK.match(line.text) if line.kind != "item" else None) for line in body]
    if not any(m is not None and m["q"] for m in marks) or not any(m is not None and m["a"] for m in marks):
        return body, False
    unmarked: list[Line] = []
    for line, mark in zip(body, marks, strict=True):
        if mark is not None:
            line = line._replace(text=line.text[mark.end() :], kind="heading" if mark["q"] else line.kind)
        unmarked.append(line)
    return unmarked, True


def _head_below(lines: list[Line], first: int) -> tuple[list[Line], int]:
    """The headline and the paragraph below it (its standfirst), when the date line is printed above them."""
    head = [lines[first]]
    following = lines[first + 1] if first + 1 < len(lines) else None
    if following is not None and following.kind == "text" and not _is_question(following) and not _is_figure(following):
        head.append(following)
    return head, first + len(head)


def _split_head(
    head: list[Line], kicker: Line | None, interview: bool, from_markup: bool
) -> tuple[Line | None, Line, list[Line]]:
    """The series line (if any), the title line and the standfirst of the lines above the date.

    In plain text the first line is the series (on an interview) or the title; the interviewee line follows
    the series. In HTML the <h1> is the title, and a short line right above it is the series; a page whose
    <h1> is the series name and whose next line names the interviewee is read like the text.
    """
    top = head[0]
    rest = head[1:]
    if from_markup:
        series = kicker if kicker is not None and _is_series(kicker) else None
        if series is not None or not interview or not rest or not _is_series(top) or not _names_someone(rest[0].text):
            return series, top, rest
        return top, rest[0], rest[1:]
    if not interview:
        return None, top, rest
    if not rest:
        return top, top, []  # the series line is all there is to title the page
    if _names_someone(top.text) and not _names_someone(rest[0].text):
        return None, top, rest  # no series line: the page opens with the interviewee
    return top, rest[0], rest[1:]


def _is_series(line: Line) -> bool:
    return is_type_label(line.text) and not _names_someone(line.text) and not _is_meta(line)


def _is_question_at(body: list[Line], i: int) -> bool:
    line = body[i]
    if _is_question(line):
        return True
    # A numbered question marked up as a one-item <ol>, its answer in the paragraphs after it.
    if line.kind != "item" or not line.text.rstrip(_CLOSERS).endswith("?") or len(line.text) > _QUESTION_MAX:
        return False
    before = body[i - 1] if i > 0 else None
    after = body[i + 1] if i + 1 < len(body) else None
    return (before is None or before.kind != "item") and (after is not None and after.kind != "item")


def _content(body: list[Line], interview: bool, page: _Page) -> str:
    """The body as sanitized HTML: questions and headings as <h3>, bullets as a list, figures with their captions,
    tables as tables."""
    parts: list[str] = []
    blocks: list[Block] = []
    for i, line in enumerate(body):
        number, table = _figure_number(line), _table_number(line)
        if number is not None or table is not None:
            parts.append(blocks_html(blocks))
            blocks = []
            if number is not None and number < len(page.figures):
                parts.append(_figure_html(page.figures[number], page.base))
            if table is not None and table < len(page.tables):
                parts.append(page.tables[table])
        elif interview and _is_question_at(body, i):
            blocks.append(("h3", _question_text(line.text)))
        elif line.kind == "heading":
            blocks.append(("h3", line.text))
        elif line.kind == "item":
            blocks.append(("li", line.text))
        else:
            blocks.append(("p", line.text))
    parts.append(blocks_html(blocks))
    return "".join(parts)


def _figure_html(figure: _Figure, base: str) -> str:
    """A figure with its picture (absolute URL) and caption; nothing when the picture has no usable URL."""
    caption = f"<figcaption>{html.escape(figure.caption, quote=False)}</figcaption>" if figure.caption else ""
    fragment = f'<figure><img src="{html.escape(figure.src)}" alt="{html.escape(figure.alt)}">{caption}</figure>'
    cleaned = sanitize_html(fragment, base)
    return cleaned if "<img src=" in cleaned else ""
