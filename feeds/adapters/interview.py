"""The `interview` adapter: one interview or article page (title, standfirst, "Type | date", body) as text or HTML."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, tzinfo
from typing import Any

from lxml.html import HtmlElement

from feeds.adapters.common import Block, blocks_html, is_http, match_key, strip_honorific
from feeds.adapters.dates import EXPECTED, looks_like_date, parse_date, split_type_date
from feeds.adapters.lines import Line, html_lines, parse_html, read_text, text_lines
from feeds.config import SourceConfig
from feeds.errors import SourceError
from feeds.model import Author, Document, Entry, slugify

KINDS = ("auto", "interview", "article")
OPTIONS = {"kind": f"what the page is: {', '.join(KINDS)} (auto: an interview when its body asks questions)"}
META_EXAMPLE = '"Type | date" line (such as "Article | 22 July 2020")'
# A question line is a heading in all but name; a paragraph that merely ends with "?" is longer.
_QUESTION_MAX = 300
_NAME_MAX = 80
_CLOSERS = "\"'\u201d\u2019»)] "  # closing quotes and brackets after a question mark


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
            lines = _page_lines(root, base)
        else:
            lines = text_lines(read_text(doc, source.name))
        kind = source.options.get("kind", "auto")
        yield _read_page(lines, doc.url, source, kind if kind in KINDS else "auto")


def _page_lines(root: HtmlElement, base: str) -> list[Line]:
    """The page's lines from its <h1> on, read from <main> when there is one (site chrome lives outside it)."""
    container = next(root.iter("main"), None)
    if container is None:
        container = next(root.iter("body"), root)
    lines = html_lines(container, base)
    start = next((i for i, line in enumerate(lines) if line.tag == "h1"), 0)
    return lines[start:]


def _is_meta(line: Line) -> bool:
    return bool(line.when) or split_type_date(line.text) is not None or looks_like_date(line.text)


def _is_question(line: Line) -> bool:
    return line.kind != "item" and len(line.text) <= _QUESTION_MAX and line.text.rstrip(_CLOSERS).endswith("?")


def _meta_date(line: Line, tz: tzinfo) -> tuple[datetime, str]:
    """The date and type label of the "Type | date" line; ValueError if the date cannot be read."""
    split = split_type_date(line.text)
    label = line.label or (split[0] if split else "")
    texts = [line.when] if line.when else []
    texts.append(split[1] if split else line.text)
    error = ValueError(f'"{line.text}" holds no date')
    for text in texts:
        try:
            return parse_date(text, tz), label
        except ValueError as exc:
            error = exc
    raise error


def _read_page(lines: list[Line], url: str, source: SourceConfig, kind: str) -> Entry:
    name = source.name
    if not lines:
        raise SourceError(name, f"the document is empty: expected a title, a standfirst and a {META_EXAMPLE}")
    at = next((i for i, line in enumerate(lines) if i > 0 and _is_meta(line)), None)
    if at is None:
        if _is_meta(lines[0]):
            raise SourceError(
                f"{name} line {lines[0].number}",
                f"the page opens with its {META_EXAMPLE}: expected the series name or title on a line before it",
            )
        question = next((line for line in lines[1:] if _is_question(line)), None)
        where = question.number if question else lines[-1].number
        said = "before the body starts" if question else "anywhere in the document"
        raise SourceError(f"{name} line {where}", f"no {META_EXAMPLE} {said}")
    meta = lines[at]
    try:
        published, type_label = _meta_date(meta, source.time_zone)
    except ValueError as exc:
        raise SourceError(f"{name} line {meta.number}", f"cannot read the date: {exc}; expected {EXPECTED}") from None

    head, standfirst, body = lines[0], lines[1:at], lines[at + 1 :]
    interview = kind == "interview" or (kind == "auto" and any(_is_question(line) for line in body))
    blocks: list[Block] = []
    for line in body:
        if line.kind == "heading" or (interview and _is_question(line)):
            blocks.append(("h3", line.text))
        elif line.kind == "item":
            blocks.append(("li", line.text))
        else:
            blocks.append(("p", line.text))

    title = head.text
    summary = " ".join(line.text for line in standfirst)
    contributors: tuple[Author, ...] = ()
    if interview and standfirst:
        # The standfirst opens with "Mr Name, role …", and the listing titles the interview the same way.
        title = standfirst[0].text
        person = strip_honorific(title.split(",")[0])
        if person and len(person) <= _NAME_MAX and len(person.split()) <= 6:  # a name, not a sentence
            contributors = (Author(name=person),)
        # The title already carries the interviewee line: the summary is the introduction that follows.
        summary = " ".join(line.text for line in standfirst[1:]) or title
    # An interview's category follows its series ("ILO COOP 100 Interview"), an article's its type.
    labels = (head.text,) if interview else (type_label,) if type_label else ()
    permalink = url if is_http(url) else ""
    return Entry(
        id=permalink or source.tag(f"{published:%Y-%m-%d}/{slugify(title, 60)}"),
        title=title,
        link=permalink,
        published=published,
        updated=published,
        source=name,
        summary=summary,
        content_html=blocks_html(blocks),
        contributors=contributors,
        labels=labels,
        match_key=match_key(title, published),
    )
