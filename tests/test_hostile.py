"""Hostile sources of every adapter kind, built through the pipeline: every output file read back and inspected."""

from __future__ import annotations

import gzip
import http.server
import json
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import lxml.html
import pytest
from lxml import etree
from site_helpers import DATA, NOW

from feeds import cli, pipeline
from feeds.config import Config
from feeds.errors import ConfigError, SourceError
from feeds.fetch import FetchLimits
from feeds.store import SourceState

# --- the corpus ----------------------------------------------------------------------------------

# Markup that must never reach a feed as markup; each piece is put into summaries, bodies and content.
HOSTILE_MARKUP = [
    "<script>alert('s1')</script>",
    "<SCRIPT SRC=https://evil.example.net/x.js></SCRIPT>",
    "<scr<script>ipt>alert('s2')</scr</script>ipt>",
    "<img src=x onerror=alert('e1')>",
    "<IMG SRC=x OnErRoR=alert('e2')>",
    "<img src=x ONERROR=alert('e3')>",
    "<body onload=alert('e4')>",
    '<div OnLoAd="alert(5)" onclick="alert(6)" ONCLICK="alert(7)">clickable</div>',
    '<p onmouseover="x()" onfocus="x()">hover</p>',
    '<a href="javascript:alert(1)">js</a>',
    '<a href="JaVaScRiPt:alert(1)">js2</a>',
    '<a href="  javascript:alert(1)">js3</a>',
    '<a href="java\tscript:alert(1)">js4</a>',
    '<a href="java\nscript:alert(1)">js5</a>',
    '<a href="java&#x09;script:alert(1)">js6</a>',
    '<a href="java&#10;script:alert(1)">js7</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">js8</a>',
    '<a href="&#x6A;avascript&colon;alert(1)">js9</a>',
    '<a href="vbscript:msgbox(1)">vb</a>',
    '<a href="VBScript:msgbox(1)">vb2</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">d1</a>',
    '<img src="data:image/svg+xml,&lt;svg onload=alert(1)&gt;">',
    '<img src="DATA:image/png;base64,iVBORw0KGgo=">',
    '<p style="width: expression(alert(1))">css1</p>',
    '<p style="background: url(javascript:alert(1))">css2</p>',
    '<p style="background:URL(&quot;https://evil.example.net/t.png&quot;)">css3</p>',
    "<style>body { background: url(https://evil.example.net/t.png); x: expression(alert(1)) }</style>",
    "<style>@import 'https://evil.example.net/x.css';</style>",
    "<!-- <script>alert('c1')</script> -->",
    "<!--[if IE]><script>alert('c2')</script><![endif]-->",
    "<![CDATA[<script>alert('cd')</script>]]>",
    "<svg><script>alert('svg')</script></svg>",
    '<svg onload="alert(1)"><a xlink:href="javascript:alert(1)"><text>t</text></a></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('m')></style></mglyph></table></mtext></math>",
    '<math href="javascript:alert(1)">m2</math>',
    '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
    '<iframe src="https://evil.example.net/"></iframe>',
    '<object data="https://evil.example.net/x.swf"><param name="x" value="y"></object>',
    '<embed src="https://evil.example.net/x.swf">',
    '<form action="https://evil.example.net/"><input name="q" onfocus="x()">'
    '<button formaction="javascript:x()">go</button></form>',
    '<base href="https://evil.example.net/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example.net/">',
    '<link rel="stylesheet" href="https://evil.example.net/x.css">',
    '<frameset><frame src="javascript:alert(1)"></frameset>',
    '<video poster="javascript:alert(1)"><source src="javascript:alert(1)"></video>',
    '<a href="https://ok.example.org/" target="_blank" rel="opener">ok link</a>',
    "<p>unclosed <b>bold <i>italic",
    "<p>a\x00b\x01c\x08d\x0be\x0cf\x1fg\x7fh\x85i\u2028j\u2029k</p>",
]
HOSTILE = "".join(HOSTILE_MARKUP)
# Closing the page early and unclosed raw-text elements swallow the rest of it (lxml), so they go last.
TRAILER = (
    "</div></div></body></html><p>after closing"
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('m')><textarea><xmp><plaintext><script>"
)
# Every C0 control, DEL, NEL and the Unicode line and paragraph separators, in a title.
CONTROLS = "".join(chr(c) for c in range(0x20)) + "\x7f\x85\u2028\u2029"
TITLE = "Hostile{} title\r\nsecond line"


def _title(n: int) -> str:
    return TITLE.format(n) + CONTROLS


def _xml_text(text: str) -> str:
    """`text` escaped for an XML text node, control characters kept as raw as XML allows (tab, LF, CR) or dropped."""
    allowed = "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)
    return allowed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


LISTING_HTML = f"""<!DOCTYPE html>
<html><head><title>x</title><base href="https://www.ilo.example.org/news/">
<meta http-equiv="refresh" content="0;url=https://evil.example.net/"><script>alert('head')</script></head>
<body onload="alert(1)"><h1>Hostile listing</h1>
<ol>
<li><span class="type">News</span><h2><a href="javascript:alert(1)">{_title(1)}<script>alert(1)</script></a></h2>
<time datetime="2021-10-28">28 October 2021</time><p>Summary one {HOSTILE}</p></li>
<li><span class="type">News</span>
<h2><a href="java&#x09;script:alert(1)">Hostile2 <img src=x onerror=alert(1)> title\x00</a></h2>
<time datetime="2021-10-29">29 October 2021</time><p>Summary two <iframe srcdoc="<script>x</script>"></iframe></p></li>
<li><span class="type">News</span><h2><a href="item/3.htm">Hostile3 linked title</a></h2>
<time datetime="2021-10-30">30 October 2021</time><p style="x:expression(alert(1))">Summary three</p></li>
</ol>{TRAILER}</body></html>
"""

INTERVIEW_HTML = f"""<!DOCTYPE html><html><head><script>alert('h')</script></head><body>
<main><h1>Spotlight Interviews with Co-operators<script>alert(1)</script></h1>
<p>Mr Hostile Person\x01\x7f\u2028, role <img src=x onerror=alert(1)></p>
<p class="meta">Article | <time>22 July 2020</time></p>
<h3>What about <svg onload=alert(1)>this</svg>?</h3>
<p>Answer with {HOSTILE}</p>
<ul><li>• first <a href="vbscript:x">bad</a></li><li>• second<form><input></form></li></ul>
<h3>Another question <math><mi>x</mi></math>?</h3>
<p>Second answer.</p>
</main>{TRAILER}</body></html>
"""

HTML_PAGE = f"""<!DOCTYPE html><html><head><base href="https://blog.example.org/posts/"></head><body>
<div class="post"><h2 class="t">{_title(4)}</h2><a class="l" href="javascript:alert(1)">more</a>
<span class="d">2021-11-03</span><p class="s">Summary {HOSTILE}</p>
<div class="c">{HOSTILE}<p>Kept paragraph <a href="other.html">relative</a></p></div>
<span class="cat">Hostile<script>x</script></span><span class="by">Author<img src=x onerror=y>\x00</span></div>
<div class="post"><h2 class="t"><a href="entry-5.html" onclick="x()">Hostile5 entry</a></h2>
<span class="d">4 November 2021</span><div class="c"><p>fine <b>bold</b></p>{HOSTILE}</div></div>
{TRAILER}</body></html>
"""
HTML_OPTIONS = (
    'item = "div.post"\ntitle = "h2.t"\nlink = "a.l, h2.t a"\ndate = ".d"\nsummary = ".s"\ncontent = ".c"\n'
    'category = ".cat"\nauthor = ".by"\n'
)

RSS = f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Hostile RSS</title><link>https://rss.example.org/</link><description>d</description>
<item><title>{_xml_text(_title(6))} &lt;script&gt;alert(1)&lt;/script&gt;</title>
<link>javascript:alert(1)</link><guid isPermaLink="false">hostile-6</guid>
<pubDate>Wed, 03 Nov 2021 10:00:00 GMT</pubDate>
<description>{_xml_text(HOSTILE)}</description>
<content:encoded><![CDATA[{HOSTILE.replace("]]>", "")}]]></content:encoded>
<dc:creator>Evil &lt;img src=x onerror=alert(1)&gt;</dc:creator>
<category>Cat&lt;script&gt;</category>
<enclosure url="javascript:alert(1)" length="1" type="audio/mpeg"/>
<enclosure url="data:audio/mpeg;base64,AAAA" length="1" type="audio/mpeg"/>
</item>
<item><title>Hostile7 plain</title><link>https://rss.example.org/7</link><guid>https://rss.example.org/7</guid>
<pubDate>Thu, 04 Nov 2021 10:00:00 GMT</pubDate>
<description>{_xml_text("<p onclick='x'>seven</p>" + HOSTILE)}</description>
</item>
</channel></rss>
"""

ATOM = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="javascript:alert(1)//">
<title>Hostile Atom</title><id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
<updated>2021-11-05T10:00:00Z</updated>
<entry><title type="html">{_xml_text("Hostile8 <script>alert(1)</script><b onclick=x>bold</b>" + CONTROLS)}</title>
<id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
<link href="vbscript:x"/><updated>2021-11-05T10:00:00Z</updated>
<author><name>A&lt;script&gt;</name><uri>javascript:alert(1)</uri></author>
<summary type="html">{_xml_text(HOSTILE)}</summary>
<content type="html">{_xml_text(HOSTILE)}</content></entry>
<entry><title>Hostile9 xhtml</title><id>https://atom.example.org/9</id>
<link href="https://atom.example.org/9"/><updated>2021-11-06T10:00:00Z</updated>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p onclick="x()">xhtml body</p>
<script>alert(1)</script><a href="javascript:alert(1)">j</a><iframe src="https://evil.example.net/"/>
<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>
<img src="data:image/png;base64,AAAA"/><p style="background:url(x)">s</p></div></content></entry>
<entry><title>Hostile10 xml:base</title><id>https://atom.example.org/10</id>
<link href="https://atom.example.org/10"/><updated>2021-11-07T10:00:00Z</updated>
<content type="html" xml:base="javascript:alert(1)//">{_xml_text('<a href="x">rel</a><img src="y">')}</content>
</entry>
</feed>
"""

GOOD_LISTING = """Cooperative news

  1. News

    Dairy cooperative opens a cold store

    10 January 2022

    Farmers share a new cooling room.

  2. Publication

    A guide to savings groups

    17 December 2021
"""
GOOD_TITLES = {"Dairy cooperative opens a cold store", "A guide to savings groups"}

INVALID_UTF8 = (
    b"Listing\n  1. News\n    Bad \xff\xfe bytes \xc3\x28 here\x00 and \xed\xa0\x80 surrogate\n    10 January 2022\n"
)
NUL_LISTING = GOOD_LISTING.replace("Dairy", "Dai\x00ry\x00").replace("cooling", "coo\x00ling").encode()
DEEP_DIVS = (
    "<html><body><ol><li><h2><a href='https://deep.example.org/1'>Deep divs</a></h2>"
    "<time datetime='2021-01-01'>1 January 2021</time>" + "<div>" * 100_000 + "deep text"
    "<script>alert(1)</script>" + "</div>" * 100_000 + "</li></ol></body></html>"
)
DEEP_UL = (
    "<html><body><div class='post'><h2><a href='https://deep.example.org/2'>Deep lists</a></h2>"
    "<span class='d'>2 January 2021</span><div class='c'>"
    + "<ul><li>" * 10_000
    + "nested<img src=x onerror=alert(1)>"
    + "</li></ul>" * 10_000
    + "</div></div></body></html>"
)

BODY = """
[[categories]]
slug = "news"
title = "News"
types = ["News"]

[[categories]]
slug = "hostile"
title = "Hostile<script>alert(1)</script>"
description = "Everything hostile"
sources = ["listing-html", "interview-html", "selectors", "rss", "atom"]

[[sources]]
name = "good"
adapter = "listing"
location = "good.txt"

[[sources]]
name = "listing-html"
adapter = "listing"
location = "listing.html"

[[sources]]
name = "interview-html"
adapter = "interview"
location = "interview.html"

[[sources]]
name = "selectors"
adapter = "html"
location = "page.html"
[sources.options]
{html_options}
[[sources]]
name = "rss"
adapter = "feed"
location = "hostile.rss"

[[sources]]
name = "atom"
adapter = "feed"
location = "hostile.atom"

[[sources]]
name = "xxe"
adapter = "feed"
location = "xxe.xml"

[[sources]]
name = "laughs"
adapter = "feed"
location = "billion-laughs.xml"

[[sources]]
name = "invalid-utf8"
adapter = "listing"
location = "invalid.txt"

[[sources]]
name = "nul"
adapter = "listing"
location = "nul.txt"

[[sources]]
name = "deep-divs"
adapter = "listing"
location = "deep-divs.html"

[[sources]]
name = "deep-ul"
adapter = "html"
location = "deep-ul.html"
[sources.options]
item = "div.post"
date = ".d"
content = ".c"

[[sources]]
name = "http-rss"
adapter = "feed"
location = "{base}/hostile.rss"

[[sources]]
name = "http-huge"
adapter = "listing"
location = "{base}/huge"

[[sources]]
name = "http-huge-chunked"
adapter = "listing"
location = "{base}/huge-chunked"
"""

# --- a loopback server: the hostile feed, and 100 MB bodies ---------------------------------------

HUGE = 100 * 1024 * 1024
CHUNK = b"  1. News\n" * 6554  # ~64 KiB of plausible listing text


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, tuple[bytes, str]] = {}
        self.sent: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in self.server.files:
            body, media_type = self.server.files[path]
            self.send_response(200)
            self.send_header("Content-Type", media_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path not in ("/huge", "/huge-chunked"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if path == "/huge":
            self.send_header("Content-Length", str(HUGE))
        else:
            # No length: the client only learns the size by reading, so it must count and stop.
            self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        try:
            while sent < HUGE:
                self.wfile.write(CHUNK)
                sent += len(CHUNK)
                with self.server.lock:
                    self.server.sent[path] = sent
        except OSError:
            pass  # the client hung up: what the size cap is for
        self.close_connection = True


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --- checking output --------------------------------------------------------------------------------

SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
BANNED = frozenset({
    "script", "iframe", "object", "embed", "form", "style", "base", "svg", "math", "frame", "frameset",
    "applet", "input", "button", "textarea", "select", "link", "meta", "video", "audio", "source", "param",
})  # fmt: skip
URL_ATTRIBUTES = frozenset({
    "href", "src", "action", "formaction", "poster", "background", "data", "srcset", "xlink:href", "cite",
    "longdesc", "srcdoc", "dynsrc", "lowsrc",
})  # fmt: skip
LINE_BREAKS = "\t\n\r"


def bad_characters(text: str, *, one_line: bool = False) -> list[str]:
    """The control characters in `text` (Unicode Cc but tab/LF/CR; in one-line texts also breaks and U+2028/9)."""
    found = [ch for ch in text if unicodedata.category(ch) == "Cc" and ch not in LINE_BREAKS]
    if one_line:
        found += [ch for ch in text if ch in "\n\r\u2028\u2029\x85"]
    return found


def check_url(url: str, where: str) -> None:
    scheme = urlsplit(url.strip()).scheme.lower()
    assert scheme in SAFE_SCHEMES, f"{where}: unsafe or relative URL {url!r}"


def check_tree(root: lxml.html.HtmlElement, where: str, *, page: bool = False) -> None:
    """No banned element, no on* attribute, no unsafe URL or style, no control character, anywhere in `root`."""
    for element in root.iter():
        if not isinstance(element.tag, str):
            assert not isinstance(element, etree._ProcessingInstruction), f"{where}: processing instruction"
            continue  # comments: inert
        tag = element.tag.rpartition("}")[2].lower()
        if page and tag in ("meta", "link"):
            # The page's own head: charset, viewport, canonical, feed alternates. Never a refresh.
            assert "http-equiv" not in {k.lower() for k in element.attrib}, f"{where}: <meta http-equiv>"
            if tag == "link":
                check_url(element.get("href", ""), f"{where} <link>")
            continue
        if page and tag == "style" and element.getparent() is not None and element.getparent().tag == "head":
            # The page's own style sheet, written by us: it must still fetch nothing and run nothing.
            assert not re.search(r"expression|url\s*\(|@import", element.text or "", re.I), f"{where}: <style>"
            continue
        assert tag not in BANNED, f"{where}: <{tag}> element: {etree.tostring(element)[:200]!r}"
        for name, value in element.attrib.items():
            local = name.rpartition("}")[2].lower()
            assert not local.startswith("on"), f"{where}: <{tag} {name}>"
            assert local != "style" or not re.search(r"expression|url\s*\(", value, re.I), f"{where}: style {value!r}"
            if local in URL_ATTRIBUTES or name.lower() in URL_ATTRIBUTES:
                check_url(value, f"{where} <{tag} {name}>")
            assert not bad_characters(value), f"{where}: control character in <{tag} {name}={value!r}>"
        for text in (element.text, element.tail):
            assert not bad_characters(text or ""), f"{where}: control character in text {text!r}"


def check_fragment(fragment: str, where: str) -> None:
    if not fragment.strip():
        return
    assert not bad_characters(fragment), f"{where}: control character in {fragment!r}"
    wrapper = lxml.html.fragment_fromstring(fragment, create_parent="div")
    check_tree(wrapper, where)


def check_feed_xml(data: bytes, where: str) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(data, parser)
    assert root.getroottree().docinfo.internalDTD is None, f"{where}: a DTD"
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        local = element.tag.rpartition("}")[2]
        one_line = local in ("title", "name", "category", "guid", "id", "link", "creator", "uri", "email")
        assert not bad_characters(element.text or "", one_line=one_line), f"{where}: <{local}> {element.text!r}"
        for name, value in element.attrib.items():
            assert not bad_characters(value, one_line=True), f"{where}: <{local} {name}={value!r}>"
            if name in ("href", "url") or (local == "link" and name == "href"):
                check_url(value, f"{where} <{local} {name}>")
        permalink = local != "guid" or element.get("isPermaLink", "true") == "true"
        if local in ("link", "guid", "uri", "docs", "comments") and element.text and permalink:
            check_url(element.text, f"{where} <{local}>")
    return root


def check_atom(data: bytes, where: str) -> int:
    root = check_feed_xml(data, where)
    atom = "{http://www.w3.org/2005/Atom}"
    html_parts = 0
    for node in root.iter(f"{atom}content", f"{atom}summary", f"{atom}title", f"{atom}subtitle"):
        kind = node.get("type", "text")
        if kind == "html":
            check_fragment(node.text or "", f"{where} <{node.tag}>")
            html_parts += 1
        elif kind == "xhtml":
            for child in node:
                check_tree(lxml.html.fromstring(etree.tostring(child)), f"{where} xhtml")
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, f"{where}: {parsed.get('bozo_exception')}"
    return html_parts


def check_rss(data: bytes, where: str) -> int:
    root = check_feed_xml(data, where)
    html_parts = 0
    for item in root.iter("item"):
        for node in item:
            local = node.tag.rpartition("}")[2] if isinstance(node.tag, str) else ""
            if local in ("description", "encoded"):
                check_fragment(node.text or "", f"{where} <{local}>")
                html_parts += 1
        for enclosure in item.iter("enclosure"):
            check_url(enclosure.get("url", ""), f"{where} <enclosure>")
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, f"{where}: {parsed.get('bozo_exception')}"
    return html_parts


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def check_json(data: bytes, where: str) -> int:
    document = json.loads(data)
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    for path, text in _strings(document, "$"):
        one_line = path.endswith((".title", ".id", ".url", ".name", ".external_url", ".home_page_url", ".feed_url"))
        assert not bad_characters(text, one_line=one_line), f"{where} {path}: {text!r}"
        if path.endswith((".url", "_url", ".avatar", ".icon", ".favicon")):
            check_url(text, f"{where} {path}")
    html_parts = 0
    for item in document["items"]:
        if "content_html" in item:
            check_fragment(item["content_html"], f"{where} {item['id']} content_html")
            html_parts += 1
    return html_parts


def check_page(data: bytes, where: str) -> lxml.html.HtmlElement:
    text = data.decode("utf-8")  # strict: a page is UTF-8
    assert not bad_characters(text), f"{where}: control character"
    root = lxml.html.document_fromstring(data)
    check_tree(root, where, page=True)
    for anchor in root.iter("a"):
        if anchor.get("href") is not None:  # an <a> whose unsafe href was dropped is inert
            check_url(anchor.get("href", ""), f"{where} <a>")
    return root


def check_output(out: Path) -> dict[str, int]:
    """Read back every file in `out`; the number of HTML fragments inspected per kind of file."""
    seen = {"atom": 0, "rss": 0, "json": 0, "html": 0, "opml": 0, "gz": 0}
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != ".gitkeep")
    assert files
    for path in files:
        where = str(path.relative_to(out))
        data = path.read_bytes()
        if path.suffix == ".gz":
            plain = path.with_suffix("")
            assert plain.exists(), where
            assert gzip.decompress(data) == plain.read_bytes(), f"{where}: differs from its plain sibling"
            seen["gz"] += 1
        elif path.suffix == ".atom":
            seen["atom"] += check_atom(data, where)
        elif path.suffix == ".rss":
            seen["rss"] += check_rss(data, where)
        elif path.suffix == ".json":
            seen["json"] += check_json(data, where)
        elif path.suffix == ".html":
            check_page(data, where)
            seen["html"] += 1
        elif path.suffix == ".opml":
            check_feed_xml(data, where)
            seen["opml"] += 1
        else:
            pytest.fail(f"unexpected output file {where}")
    return seen


# --- the tests ----------------------------------------------------------------------------------------


@pytest.fixture
def hostile_config(make_config: Callable[..., Config], tmp_path: Path, server: _Server) -> Config:
    server.files["/hostile.rss"] = (
        RSS.replace("rss.example.org", "rss-http.example.org").encode(),
        "application/rss+xml",
    )
    binary = {
        "invalid.txt": INVALID_UTF8,
        "nul.txt": NUL_LISTING,
        "deep-divs.html": DEEP_DIVS.encode(),
        "deep-ul.html": DEEP_UL.encode(),
    }
    for name, data in binary.items():
        (tmp_path / name).write_bytes(data)
    body = BODY.format(base=server.base, html_options=HTML_OPTIONS)
    files: dict[str, Path | str] = {
        "good.txt": GOOD_LISTING,
        "listing.html": LISTING_HTML,
        "interview.html": INTERVIEW_HTML,
        "page.html": HTML_PAGE,
        "hostile.rss": RSS,
        "hostile.atom": ATOM,
        "xxe.xml": DATA / "feeds" / "xxe.xml",
        "billion-laughs.xml": DATA / "feeds" / "billion-laughs.xml",
    }
    return make_config(body, files)


def test_hostile_sources_publish_only_safe_output(hostile_config: Config, server: _Server) -> None:
    config = hostile_config
    report = pipeline.build(config, NOW)
    by_name = {s.name: s for s in report.sources}

    # The sources that must not publish fail on their own; the others go on.
    assert by_name["http-huge"].failed and "limit" in by_name["http-huge"].error
    assert by_name["http-huge-chunked"].failed and "limit" in by_name["http-huge-chunked"].error
    # Neither 100 MB body was read to its end: the connection was dropped soon after the 10 MB cap.
    cap = FetchLimits().max_bytes
    assert server.sent.get("/huge", 0) < HUGE // 2, server.sent
    assert server.sent.get("/huge-chunked", 0) < HUGE // 2, server.sent
    assert server.sent.get("/huge-chunked", 0) > cap  # it was the size cap that stopped it, not something earlier
    for name in ("good", "listing-html", "interview-html", "selectors", "rss", "atom", "http-rss", "nul"):
        assert not by_name[name].failed, (name, by_name[name].error)
        assert by_name[name].entries > 0, name
    assert report.failed
    # Undecodable bytes are the source's error, named with the offset; NULs are simply dropped.
    assert by_name["invalid-utf8"].failed and "0xff at offset" in by_name["invalid-utf8"].error

    out = config.site.output
    seen = check_output(out)
    assert seen["html"] > 3 and seen["gz"] > 0 and seen["opml"] == 1
    assert seen["atom"] > 0 and seen["rss"] > 0 and seen["json"] > 0  # the hostile content was actually inspected

    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".gz")
    assert b"root:x:0:0" not in everything  # XXE: /etc/passwd never read into a feed
    assert b"lollollollol" not in everything  # billion laughs: no expansion
    assert b"evil.example.net" not in everything  # every hostile URL was dropped with its element or attribute

    titles = {e.title for e in feedparser.parse((out / "all.atom").read_bytes()).entries}
    assert titles >= GOOD_TITLES
    assert any(t.startswith("Hostile1 title second line") for t in titles), titles
    assert {"Hostile2 title", "Hostile3 linked title"} <= titles
    assert {"Hostile5 entry", "Hostile7 plain", "Hostile9 xhtml"} <= titles
    assert {"Deep divs", "Deep lists"} <= titles  # 100,000 nested <div>s and 10,000 nested <ul>s: read, bounded
    assert by_name["nul"].entries == 2  # the NUL-riddled copy of the good listing: every item read, NULs dropped
    assert any(t.startswith("Hostile6 title") for t in titles), titles
    hostile = json.loads((out / "hostile.json").read_bytes())
    assert len(hostile["items"]) >= 6

    # The command line says a source failed, and a second pass leaves output as valid as the first.
    assert cli.main(["build", "--config", str(config.path)]) == cli.EXIT_SOURCE_FAILED
    check_output(out)


def test_hundred_megabyte_local_file_is_refused_unread(make_config: Callable[..., Config], tmp_path: Path) -> None:
    """A local source file over the fetch size cap is refused before it is read, as an HTTP body would be."""
    config = make_config('[[sources]]\nname = "huge"\nadapter = "listing"\nlocation = "huge.txt"\n')
    with (tmp_path / "huge.txt").open("wb") as handle:
        handle.truncate(HUGE)  # sparse: no 100 MB written to disk
    source = config.source("huge")
    with pytest.raises(SourceError, match="limit"):
        pipeline.fetch_documents(source, SourceState(name=source.name))


def test_control_character_in_category_description_is_a_config_error(
    make_config: Callable[..., Config],
) -> None:
    body = '[[categories]]\nslug = "news"\ntitle = "News"\ndescription = "a \\u0001 b"\n'
    with pytest.raises(ConfigError) as info:
        make_config(body + '[[sources]]\nname = "good"\nadapter = "listing"\nlocation = "good.txt"\n')
    assert str(info.value) == "categories[0].description: contains the control character U+0001; remove it"
