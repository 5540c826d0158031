"""sanitize_html against a hostile corpus; html_to_text and xml_safe."""

from __future__ import annotations

import lxml.html
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from feeds import render
from feeds.sanitize import TAGS, html_to_text, sanitize_html, xml_safe

BASE = "https://example.org/news/item/"


@pytest.mark.parametrize(
    ("hostile", "expected"),
    [
        ("<p>hi<script>alert(1)</script></p>", "<p>hi</p>"),
        ("<script src='https://evil.example.net/x.js'></script>after", "after"),
        ('<img src="a.png" onerror="alert(1)">', '<img src="https://example.org/news/item/a.png">'),
        ('<a href="javascript:alert(1)">x</a>', "<a>x</a>"),
        ('<a href="  JaVaScRiPt:alert(1)">x</a>', "<a>x</a>"),
        ('<a href="java&#x09;script:alert(1)">x</a>', "<a>x</a>"),
        ('<a href="vbscript:msgbox(1)">x</a>', "<a>x</a>"),
        ('<img src="data:image/png;base64,iVBORw0KGgo=">', "<img>"),
        ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "<a>x</a>"),
        ('<iframe src="https://evil.example.net/"></iframe>text', "text"),
        ("<style>body { display: none }</style>text", "text"),
        ('<p style="width: expression(alert(1))">x</p>', "<p>x</p>"),
        ('<p style="background: url(javascript:alert(1))">x</p>', "<p>x</p>"),
        ("<object data='x.swf'><embed src='x.swf'></object>", ""),
        ("<form action='https://evil.example.net/'><input name='q'><button>go</button></form>", "go"),
        ('<svg onload="alert(1)"><circle r="1"/></svg>', ""),
        ("<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", ""),
        ('<div onclick="x()" class="c" id="i">text</div>', "text"),
        ("<p>open <b>bold <i>both</b> italic</i></p>", "<p>open <b>bold <i>both</i></b><i> italic</i></p>"),
        ("<ul><li>one<li>two</ul>", "<ul><li>one</li><li>two</li></ul>"),
        ("<!-- <script>alert(1)</script> -->kept", "kept"),
        # HTML has no CDATA outside SVG/MathML: "<![CDATA[<script>" is a bogus comment, the rest is text.
        ("<![CDATA[<script>alert(1)</script>]]>after", "alert(1)]]&gt;after"),
        ("<p>a\x00b\x0bc\x1fd\ufffee</p>", "<p>abcde</p>"),
        (
            '<a href="mailto:coop@example.org" title="write">mail</a>',
            '<a href="mailto:coop@example.org" title="write">mail</a>',
        ),
        ('<a href="../other" target="_blank" rel="opener">rel</a>', '<a href="https://example.org/news/other">rel</a>'),
        ('<a href="/root?a=1&amp;b=2#frag">q</a>', '<a href="https://example.org/root?a=1&amp;b=2#frag">q</a>'),
        (
            '<img src="//cdn.example.org/i.png" alt="x" width="10" height="20" style="x">',
            '<img src="https://cdn.example.org/i.png" alt="x" width="10" height="20">',
        ),
        ('<a href="https://example.net/abs">abs</a>', '<a href="https://example.net/abs">abs</a>'),
        ('<a href="http://[::1">broken</a>', "<a>broken</a>"),
    ],
)
def test_hostile_markup_is_neutralized(hostile: str, expected: str) -> None:
    assert sanitize_html(hostile, BASE) == expected


def test_allowed_structure_survives() -> None:
    fragment = (
        "<h2>Title</h2><h3>Sub</h3><p><em>e</em> <strong>s</strong> <u>u</u> <code>c</code> <sub>1</sub><sup>2</sup>"
        ' <abbr title="International Labour Organization">ILO</abbr> <span>s</span></p>'
        "<blockquote><p><q>q</q> <cite>c</cite></p></blockquote><pre>pre</pre><hr>"
        "<dl><dt>t</dt><dd>d</dd></dl><ol><li>1</li></ol>"
        '<table><caption>c</caption><thead><tr><th colspan="2">h</th></tr></thead>'
        "<tbody><tr><td>a</td><td>b</td></tr></tbody></table>"
        '<figure><img src="https://example.org/i.png" alt="i"><figcaption>f</figcaption></figure>'
    )
    assert sanitize_html(fragment) == fragment


def test_tags_off_the_list_are_unwrapped_keeping_their_text() -> None:
    assert sanitize_html("<h1>Big</h1><div><section>inside <font>old</font></section></div>") == "Biginside old"


def test_relative_urls_without_a_base_are_dropped() -> None:
    # A reader would resolve them against the feed's own URL, which points somewhere else.
    assert sanitize_html('<a href="/x">x</a><img src="i.png">') == "<a>x</a><img>"


def test_relative_urls_against_a_file_base_are_dropped() -> None:
    assert sanitize_html('<a href="x.html">x</a>', "file:///srv/sources/page.html") == "<a>x</a>"


def test_output_escapes_text() -> None:
    assert sanitize_html('5 < 6 & 7 > 3 "q"') == '5 &lt; 6 &amp; 7 &gt; 3 "q"'


def test_html_to_text() -> None:
    assert html_to_text("<p>One&amp;two</p><p>three<br>four</p><script>x()</script> <b>five</b>") == (
        "One&two three four five"
    )
    assert html_to_text("5 &lt; 6 &amp;&amp; 7 &gt; 3") == "5 < 6 && 7 > 3"
    assert html_to_text("<style>p {}</style>\n\n  spaced\t out  ") == "spaced out"


def test_xml_safe_keeps_tab_and_line_breaks() -> None:
    assert xml_safe("a\tb\nc\rd\x00e\x08f\x7fg\x85h\ud800i\U0001fffej") == "a\tb\nc\rdefghij"


ALLOWED = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}, "abbr": {"title"},
           "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan", "scope"}}  # fmt: skip

markup = st.lists(
    st.one_of(
        st.text(),
        st.sampled_from([
            "<script>", "</script>", "<a href='", "javascript:", "'>", "<img src=x onerror=", "<iframe>",
            "<style>", "<p>", "</p>", "<b>", "<!--", "-->", "&", "&amp;", "&nbsp;", "<svg onload=x>", '"',
            "data:", "<a href=/rel>", "</a>", "<table><tr><td>", "\x00", "\ud800", "<math>",
        ]),
    ),
).map("".join)  # fmt: skip


@given(markup)
def test_any_markup_keeps_only_allowed_tags_attributes_and_schemes(text: str) -> None:
    cleaned = sanitize_html(text, BASE)
    assert xml_safe(cleaned) == cleaned
    # The output is an HTML fragment (renderers embed it as escaped text): read it back as HTML.
    root = lxml.html.fragment_fromstring(cleaned, create_parent="div")
    for element in root.iterdescendants():
        assert element.tag in TAGS
        assert set(element.attrib) <= ALLOWED.get(element.tag, set())
        for name in ("href", "src"):
            if name in element.attrib:
                assert element.attrib[name].startswith(("https://", "http://", "mailto:"))


# One code point of every class the rule tells apart, and the edges between classes.
CODE_POINTS = {
    "NUL": 0x00, "C0 control": 0x01, "tab": 0x09, "line feed": 0x0A, "vertical tab": 0x0B, "carriage return": 0x0D,
    "last C0 control": 0x1F, "space": 0x20, "tilde": 0x7E, "DEL": 0x7F, "C1 control": 0x80, "NEL": 0x85,
    "last C1 control": 0x9F, "no-break space": 0xA0, "last before surrogates": 0xD7FF, "high surrogate": 0xD800,
    "low surrogate": 0xDFFF, "private use": 0xE000, "before noncharacters": 0xFDCF, "noncharacter": 0xFDD0,
    "last BMP noncharacter run": 0xFDEF, "after noncharacters": 0xFDF0, "replacement character": 0xFFFD,
    "U+FFFE": 0xFFFE, "U+FFFF": 0xFFFF, "first astral": 0x10000, "astral letter": 0x1FFFD,
    "astral noncharacter": 0x1FFFE, "astral noncharacter pair": 0x1FFFF, "next plane": 0x20000,
    "last character": 0x10FFFD, "last noncharacter": 0x10FFFE, "last code point": 0x10FFFF,
}  # fmt: skip
# Allowed by XML 1.0's Char production but discouraged by it (section 2.2), and never a reader's text.
DISCOURAGED = {
    "DEL", "C1 control", "NEL", "last C1 control", "noncharacter", "last BMP noncharacter run",
    "astral noncharacter", "astral noncharacter pair", "last noncharacter", "last code point",
}  # fmt: skip


def lxml_accepts(char: str) -> bool:
    """Whether lxml takes `char` in text and in an attribute and reads the document back."""
    element = etree.Element("e")
    try:
        element.text = f"a{char}b"
        element.set("v", f"a{char}b")
        return etree.fromstring(etree.tostring(element)).text == f"a{char}b"
    except (ValueError, UnicodeError):
        return False


@pytest.mark.parametrize(("name", "code"), CODE_POINTS.items(), ids=list(CODE_POINTS))
def test_one_definition_of_unwanted_characters_agrees_with_lxml(name: str, code: int) -> None:
    char = chr(code)
    text = f"a{char}b"
    assert render.clean(text) == xml_safe(text)  # one rule for source text and for what a feed carries
    kept = xml_safe(text) == text
    if not lxml_accepts(char):
        assert not kept, f"{name} (U+{code:04X}) is refused by lxml but kept"
    else:
        assert kept is (name not in DISCOURAGED), f"{name} (U+{code:04X})"
