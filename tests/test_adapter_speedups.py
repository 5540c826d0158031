"""The adapters' shortcuts and caches answer exactly as the plain computations they stand in for."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from feeds.adapters import common, dates, lines, listing
from feeds.adapters.common import Block, blocks_html, clean_text, day_text, strip_unwanted
from feeds.adapters.dates import looks_like_date, parse_date
from feeds.adapters.lines import text_lines
from feeds.model import slugify
from feeds.sanitize import xml_safe

FAST = settings(max_examples=300, deadline=None)

# Characters the shortcuts have to get right: XML-illegal ones, odd spaces and line breaks, letters and digits
# that fold or decompose into ASCII (superscript, fullwidth, ligature, squared), and marks that vanish when folded.
TRICKY = st.sampled_from([
    "\x00", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", " ", "\x7f", "\x85", "\x9f", "\xa0", "\xad",
    "\u2028", "\u2029", "\u3000", "\u200b", "\ufeff", "\ufdd0", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff",
    "\ud800", "²", "\uff12", "\u0662", "\U0001d7d0", "①", "ﬁ", "㎅", "Ǆ", "ß", "é", "\u0301", "“", "—", "_", "-",
    "|", "•", ".",
])  # fmt: skip
TEXT = st.lists(st.one_of(TRICKY, st.text(max_size=6), st.sampled_from(["0", "2022", "mai", "Jan"])), max_size=14).map(
    "".join
)
DATE_LIKE = st.builds(
    lambda weekday, day, month, year: f"{weekday}{day} {month} {year}",
    st.sampled_from(["", "Lundi ", "mon., ", "Funday "]),
    st.sampled_from(["1", "1er", "31", "²", "\uff11\uff10", "\u0663"]),
    st.sampled_from(["January", "FÉVR.", "de agosto de", "Febuary", "\uff4d\uff41\uff59"]),
    st.sampled_from(
        ["2022", "1799", "²⁰²²", "\uff12\uff10\uff12\uff12", "\u0662\u0660\u0662\u0662", "2022\u0301", "20221"]
    ),
)
ZONES = [ZoneInfo("Europe/Zurich"), UTC, timezone(timedelta(hours=1), "CET"), ZoneInfo("Pacific/Kiritimati")]


def _old_slugify(text: str, limit: int = 80) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^\w]+", "-", ascii_text.lower()).replace("_", "-").strip("-")
    slug = re.sub(r"-{2,}", "-", slug)
    return slug[:limit].rstrip("-") or "item"


def _old_looks_like_date(text: str) -> bool:
    cleaned = " ".join(xml_safe(text).split())
    folded = unicodedata.normalize("NFKD", cleaned.casefold()).encode("ascii", "ignore").decode("ascii")
    for pattern in (dates._DAY_MONTH_YEAR, dates._MONTH_DAY_YEAR):
        match = pattern.match(folded)
        if match and (match["weekday"] is None or match["weekday"] in dates.WEEKDAYS):
            return True
    return dates._ISO.match(cleaned) is not None or dates._DOTTED.match(cleaned) is not None


def _unwanted(char: str) -> bool:
    """The characters xml_safe drops, one by one: outside XML's Char, C0/C1 controls but tab, LF, CR,
    DEL, and the Unicode noncharacters."""
    code = ord(char)
    return (
        (code < 0x20 and char not in "\t\n\r")
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or 0xFDD0 <= code <= 0xFDEF
        or code & 0xFFFE == 0xFFFE
    )


ASTRAL = st.sampled_from(["\U0001fffe", "\U0001ffff", "\U00020000", "\U0002fffd", "\U0010ffff", "\U0001f600"])


@FAST
@given(st.lists(st.one_of(TEXT, ASTRAL, st.text(st.characters(codec=None)))).map("".join))
@example("a\r\x00\nb")
@example("\U0002fffd\U0002fffe\U00030000\x85")
def test_xml_safe_is_the_plain_computation(text: str) -> None:
    assert xml_safe(text) == "".join(ch for ch in text if not _unwanted(ch))


@FAST
@given(TEXT)
@example("  two  spaces ")
def test_clean_text_is_the_plain_computation(text: str) -> None:
    assert clean_text(text) == " ".join(xml_safe(text).split())


@FAST
@given(st.one_of(TEXT, st.text()), st.sampled_from([80, 60, 1, 0]))
@example("Spotlight Interviews with Co-operators", 80)
@example("a__b -_- c", 80)
def test_slugify_is_the_plain_computation(text: str, limit: int) -> None:
    assert slugify(text, limit) == _old_slugify(text, limit)


@FAST
@given(st.datetimes(timezones=st.sampled_from([None, *ZONES])))
@example(datetime(999, 1, 2))
def test_day_text_is_strftime(when: datetime) -> None:
    assert day_text(when) == f"{when:%Y-%m-%d}"


@FAST
@given(st.one_of(TEXT, DATE_LIKE, DATE_LIKE.map(lambda date: date + "\x00")))
@example("10 January ²⁰²²")
@example("Item 7: region 12")
def test_looks_like_date_is_the_plain_computation(text: str) -> None:
    expected = _old_looks_like_date(text)
    assert looks_like_date(text) is expected
    assert looks_like_date(text) is expected  # the second answer comes from the cache


@FAST
@given(st.one_of(TEXT, DATE_LIKE), st.sampled_from(ZONES), st.sampled_from(ZONES))
@example("10 January 2022", ZONES[0], ZONES[2])
@example("31 Febuary 2021", ZONES[0], ZONES[1])
def test_a_date_read_again_is_read_the_same_in_any_zone(text: str, first: tzinfo, second: tzinfo) -> None:
    try:
        before = parse_date(text, first)
    except ValueError as exc:
        with pytest.raises(ValueError) as again:
            parse_date(text, second)
        assert str(again.value) == str(exc)
        return
    after = parse_date(text, second)
    assert after.tzinfo is second
    if not dates._ISO.match(clean_text(text)):  # the same midnight, on the same calendar day
        assert after.replace(tzinfo=None) == before.replace(tzinfo=None)


@FAST
@given(st.lists(st.one_of(TEXT, st.sampled_from(["", "\r", "\n", "\r\n", "\r\r\n", "  •  item"])), max_size=12))
def test_text_lines_are_numbered_as_an_editor_shows_them(parts: list[str]) -> None:
    text = "".join(parts)
    raw_lines = re.split(r"\r\n|\r|\n", strip_unwanted(text))
    expected = [(number, clean_text(raw)) for number, raw in enumerate(raw_lines, start=1) if clean_text(raw)]
    lines = text_lines(strip_unwanted(text))
    assert [line.number for line in lines] == [number for number, _ in expected]
    for line, (_, cleaned) in zip(lines, expected, strict=True):
        assert line.text == cleaned or (line.kind == "item" and cleaned.endswith(line.text))


def _blocks_as_elements(blocks: list[Block]) -> str:
    """blocks_html as lxml builds and writes it: elements, consecutive items in one <ul>."""
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
    return "".join(etree.tostring(e, method="html", encoding="unicode") for e in elements)


BLOCKS = st.lists(
    st.tuples(st.sampled_from(["p", "h3", "li"]), st.one_of(TEXT, st.text(), st.sampled_from(["<&>'\""])))
)


@FAST
@given(BLOCKS)
@example([("li", "a & <b>"), ("li", "\xa0"), ("p", "x"), ("li", "y")])
def test_blocks_html_is_what_lxml_writes(blocks: list[Block]) -> None:
    assert blocks_html(blocks) == _blocks_as_elements(blocks)


# Every code point but the surrogates, which no cleaned text holds: the character classes compared in full.
EVERY_CHARACTER = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF)


def test_the_alnum_pattern_refuses_what_isalnum_refuses() -> None:
    assert common._NOT_ALNUM.sub("", EVERY_CHARACTER) == "".join(filter(str.isalnum, EVERY_CHARACTER))


@FAST
@given(st.one_of(TEXT, st.text(), st.text(st.characters(codec=None))))
@example("item 500: the “social economy” in region 15")
@example("\ud800\udc00a_b")
def test_alnum_is_the_plain_computation(text: str) -> None:
    assert common._alnum(text) == "".join(filter(str.isalnum, text))


def test_a_bullet_opens_with_what_its_shortcut_looks_for() -> None:
    bullet_firsts = {char for char in EVERY_CHARACTER if lines._BULLET.match(char + " x")}
    assert bullet_firsts == set(lines._BULLET_FIRST)


@FAST
@given(st.lists(st.one_of(TEXT, st.sampled_from(["  •  item", "•x", "- a", "-5 %", "* b", "·", "12. Title", "٣) x"]))))
def test_text_lines_are_the_plain_computation(parts: list[str]) -> None:
    text = strip_unwanted("\n".join(parts))
    plain_lines = []
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        cleaned = clean_text(raw)
        if cleaned:
            bullet = lines._BULLET.match(cleaned)
            plain_lines.append(
                lines.Line(number, cleaned[bullet.end() :], "item") if bullet else lines.Line(number, cleaned)
            )
    assert text_lines(text) == plain_lines


LINES = st.lists(
    st.builds(
        lines.Line,
        st.integers(1, 9),
        st.sampled_from(["News", "10 January 2022", "A title"]),
        st.sampled_from(["text", "heading", "item", "type"]),
    ),
    max_size=8,
)


@FAST
@given(LINES, st.integers(0, 7))
def test_the_lines_around_a_date_are_the_plain_computation(item: list[lines.Line], index: int) -> None:
    if index >= len(item):
        index = len(item) - 1
    if index < 0:
        return
    typed = [line for line in item if line.kind == "type" and line is not item[index]]
    before = [line for line in item[:index] if line.kind != "type"]
    after = [line for line in item[index + 1 :] if line.kind != "type"]
    assert listing._around(item, index) == (typed, before, after)
