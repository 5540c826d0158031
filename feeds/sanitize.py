"""Making source HTML safe to publish: an nh3 allow-list, absolute URLs, XML-legal characters."""

from __future__ import annotations

import html
import re

import nh3

from feeds.urls import web_url

TAGS = frozenset({
    "p", "br", "a", "em", "strong", "b", "i", "u", "blockquote", "q", "cite", "code", "pre",
    "ul", "ol", "li", "h2", "h3", "h4", "h5", "h6",
    "table", "caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr", "th", "td",
    "img", "figure", "figcaption", "hr", "dl", "dt", "dd", "sub", "sup", "abbr", "span",
})  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_URL_ATTRIBUTES = frozenset({"href", "src"})
# Their text is code or markup, never reading matter, so it goes with the tag.
_DROP_WITH_CONTENT = frozenset({"script", "style", "template", "noscript", "textarea", "select"})

# The characters no feed or page of ours carries. First, everything outside the XML 1.0 Char production
# (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF): exactly what lxml, and so feedgen, refuses.
# Then what XML 1.0 allows but discourages (section 2.2): DEL, the C1 controls, the Unicode noncharacters.
# The noncharacters beyond the BMP (U+1FFFE, U+1FFFF, ... U+10FFFF) are caught by one range and told
# apart from the characters between them in `_unwanted`, because a class listing those 32 one by one
# makes every scan of ordinary text slower.
_XML_ILLEGAL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff\U0001fffe-\U0010ffff]"
)
_BLOCK_TAG = re.compile(
    r"<(/?(?:p|div|br|li|ul|ol|h[1-6]|tr|td|th|table|blockquote|pre|dd|dt|dl|section|article|figure"
    r"|figcaption|hr|header|footer|aside|nav|main)\b)",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids or discourages; tab and line breaks are kept.

    The one definition of those characters: the adapters clean source text with it, and render.py
    cleans every value it puts in a feed or page with it.
    """
    # Every unwanted character is unprintable, and the check runs in C: short text skips the regex.
    if text.isprintable() or _XML_ILLEGAL.search(text) is None:
        return text
    return _XML_ILLEGAL.sub(_unwanted, text)


def _unwanted(found: re.Match[str]) -> str:
    char = found[0]
    if char >= "\U00010000" and ord(char) & 0xFFFE != 0xFFFE:
        return char  # a character of an astral plane between two of its noncharacters
    return ""


def sanitize_html(fragment: str, base_url: str = "") -> str:
    """An HTML fragment reduced to the allow-list, with every href/src absolute against `base_url`.

    Relative URLs are dropped when there is no absolute http(s) `base_url` to resolve them against:
    a feed reader would resolve them against the feed's own URL, which is wrong.
    """

    def absolute(tag: str, attribute: str, value: str) -> str | None:
        # nh3 reports an exception raised here through sys.unraisablehook and drops the attribute;
        # keep the decision explicit instead.
        if attribute not in _URL_ATTRIBUTES:
            return value
        return _absolute_url(value, base_url)

    cleaned = nh3.clean(
        xml_safe(fragment),
        tags=set(TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        attribute_filter=absolute,
        url_schemes=set(URL_SCHEMES),
        link_rel=None,  # keep the output to what the source said; no rel the allow-list did not name
        strip_comments=True,
    )
    return xml_safe(cleaned).strip()


def html_to_text(fragment: str) -> str:
    """The readable text of an HTML fragment on one line: tags gone, entities decoded, spaces collapsed."""
    spaced = _BLOCK_TAG.sub(r" <\1", fragment)  # "<p>a</p><p>b</p>" reads "a b", not "ab"
    text = nh3.clean(spaced, tags=set(), clean_content_tags=set(_DROP_WITH_CONTENT), strip_comments=True)
    return _SPACE.sub(" ", xml_safe(html.unescape(text))).strip()


def _absolute_url(value: str, base_url: str) -> str | None:
    return web_url(value, base_url, URL_SCHEMES) or None
