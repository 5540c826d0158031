"""Hand-written HTML and OPML: the index, category, entry and status pages, and the feeds list."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any, cast

import lxml.html  # type: ignore[import-untyped, unused-ignore]
from lxml import etree
from lxml.html import builder as E

from feeds.model import FORMATS, Author, Entry
from feeds.sanitize import xml_safe

if TYPE_CHECKING:
    from feeds.cluster import ClusterStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedLink:
    """A category's feeds as the index and OPML list them."""

    slug: str
    title: str
    description: str
    entries: int


def html_document(tree: etree._Element) -> bytes:
    """An lxml.html tree as a UTF-8 HTML5 document."""
    body: bytes = lxml.html.tostring(tree, encoding="utf-8", pretty_print=True)
    return b"<!DOCTYPE html>\n" + body


def index_html(*, site_title: str, base_url: str, language: str, feeds: Sequence[FeedLink]) -> bytes:
    """The landing page: every feed, with autodiscovery links and one subscribe link per format."""
    head = E.HEAD(
        E.META(charset="utf-8"),
        E.META(name="viewport", content="width=device-width, initial-scale=1"),
        E.TITLE(site_title),
        *(
            E.LINK(rel="alternate", type=media, title=f"{feed.title} ({label})", href=f"{base_url}{feed.slug}.{ext}")
            for feed in feeds
            for ext, media, label in FORMATS
        ),
        E.LINK(rel="outline", type="text/x-opml", title="All feeds (OPML)", href=f"{base_url}feeds.opml"),
        E.STYLE(_CSS),
    )
    rows = []
    for feed in feeds:
        links = [E.A(label, href=f"{base_url}{feed.slug}.{ext}", type=media) for ext, media, label in FORMATS]
        spaced: list[object] = []
        for link in links:
            spaced.extend((link, " "))
        rows.append(
            E.LI(
                E.H2(E.A(feed.title, href=f"{base_url}{feed.slug}.html")),
                E.P(feed.description) if feed.description else "",
                E.P(
                    f"{feed.entries} {'entry' if feed.entries == 1 else 'entries'} · subscribe: ",
                    *spaced[:-1],
                    **{"class": "subscribe"},
                ),
                id=f"feed-{feed.slug}",
            )
        )
    body = E.BODY(
        E.H1(site_title),
        E.P(
            "Subscribe to a feed in your reader, or import ",
            E.A("every feed as OPML", href=f"{base_url}feeds.opml"),
            ".",
        ),
        E.UL(*rows, **{"class": "feeds"}),
    )
    return html_document(E.HTML(head, body, lang=language))


def opml(*, site_title: str, base_url: str, feeds: Sequence[FeedLink]) -> bytes:
    """OPML 2.0 listing every Atom feed, for importing into a reader at once."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = site_title
    body = etree.SubElement(root, "body")
    for feed in feeds:
        etree.SubElement(
            body,
            "outline",
            type="rss",
            text=feed.title,
            title=feed.title,
            xmlUrl=f"{base_url}{feed.slug}.atom",
            htmlUrl=f"{base_url}{feed.slug}.html",
            description=feed.description,
        )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


_CSS = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
ul.feeds, ol.entries { list-style: none; padding: 0; }
ul.feeds li, ol.entries li { border-top: 1px solid #ddd; padding: .75rem 0; }
h2 { font-size: 1.2rem; margin: 0; }
.subscribe a { margin-right: .25rem; }
time, .meta { color: #666; font-size: .9rem; }
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class PageEntry:
    """What a category page shows of one entry."""

    title: str
    link: str
    published_iso: str
    published_text: str
    summary: str


def category_html(*, site_title: str, base_url: str, language: str, feed: FeedLink, items: Sequence[bytes]) -> bytes:
    """A readable page of one category's entries (each `entry_item`), with autodiscovery links to its feeds."""
    head = E.HEAD(
        E.META(charset="utf-8"),
        E.META(name="viewport", content="width=device-width, initial-scale=1"),
        E.TITLE(f"{feed.title} · {site_title}"),
        *(
            E.LINK(rel="alternate", type=media, title=f"{feed.title} ({label})", href=f"{base_url}{feed.slug}.{ext}")
            for ext, media, label in FORMATS
        ),
        E.STYLE(_CSS),
    )
    subscribe: list[object] = []
    for ext, media, label in FORMATS:
        subscribe.extend((E.A(label, href=f"{base_url}{feed.slug}.{ext}", type=media), " "))
    body = E.BODY(
        E.P(E.A(f"← {site_title}", href=f"{base_url}index.html")),
        E.H1(feed.title),
        E.P(feed.description) if feed.description else "",
        E.P("Subscribe: ", *subscribe[:-1], **{"class": "subscribe"}),
        E.OL(**{"class": "entries"}) if items else E.P("No entries yet."),
    )
    page = html_document(E.HTML(head, body, lang=language))
    # The items are written as text and put in the empty list: building thousands of elements for
    # lxml to write out again took most of a long page's time. Only the list's own tag can match.
    empty = b'<ol class="entries"></ol>'
    return page.replace(empty, b'<ol class="entries">\n' + b"".join(items) + b"</ol>", 1) if items else page


def entry_item(entry: PageEntry) -> bytes:
    """An entry as its category's page lists it (UTF-8): made once per version of the entry, kept in the store."""
    summary = f"<p>{escape(entry.summary, quote=False)}</p>\n" if entry.summary else ""
    return (
        f'<li>\n<h2><a href="{escape(entry.link)}">{escape(entry.title, quote=False)}</a></h2>\n'
        f'<p class="meta"><time datetime="{escape(entry.published_iso)}">{escape(entry.published_text, quote=False)}'
        f"</time></p>\n{summary}</li>\n"
    ).encode()


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def format_day(moment: datetime) -> str:
    """ "10 January 2022": how pages show a date."""
    # Not strftime("%B"): that follows the process locale, and the page bytes must not.
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


# --- entry pages ----------------------------------------------------------------------------------

_UNTITLED = "(untitled)"


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _text(text: str) -> str:
    return xml_safe(text).strip()


def _moment(value: datetime) -> datetime:
    # An offset with seconds (a historic local mean time) has no RFC 3339 spelling: said in UTC instead.
    offset = value.utcoffset()
    if offset is not None and (offset.seconds % 60 or offset.microseconds):
        return value.astimezone(UTC)
    return value


def _names(people: tuple[Author, ...], css: str) -> str:
    links = []
    for p in people:
        if not (name := _esc(_text(p.name))):
            continue  # a nameless author says nothing
        if not (uri := _text(p.uri)):
            links.append(f"<span>{name}</span>")
        else:
            rel = ' rel="author"' if css == "authors" else ""
            links.append(f'<a href="{_esc(uri)}"{rel}>{name}</a>')
    return f'<p class="{css}">{", ".join(links)}</p>\n' if links else ""


# Paragraphs of text and nothing else (a listing item's content): no tag can stray, and lxml would
# write them out again byte for byte; most entry pages are these, and parsing was half their cost.
# Possessive: a run of text is taken whole, never given back a character at a time, since what may
# follow it ("&", "</p>") cannot start inside it; a long interview's text is read in one step.
_PLAIN_PARAGRAPHS = re.compile(r"(?:<p>(?:[^<>&\x00-\x08\x0b-\x1f\x7f]++|&(?:amp|lt|gt);)*+</p>[ \t\n]*+)*+")


def _markup(fragment: str) -> str:
    """The sanitized fragment, safe to place in a page: a stray closing tag cannot end the page early."""
    return fragment if _PLAIN_PARAGRAPHS.fullmatch(fragment) else _reparsed(fragment)


def _reparsed(fragment: str) -> str:
    """The fragment parsed and written out again."""
    try:
        parts = cast(list[Any], lxml.html.fragments_fromstring(fragment))  # a list, whatever the stubs say
    except (etree.ParserError, AssertionError, ValueError):
        # lxml gives up on whole-document markup (a lone "<html>" or doctype); show it as text instead.
        return _esc(fragment)
    return "".join(_esc(p) if isinstance(p, str) else lxml.html.tostring(p, encoding="unicode") for p in parts)


def render_entry_page(entry: Entry, *, site_title: str, language: str, base_url: str) -> bytes:
    """An HTML5 page for an entry that has no permalink of its own: its text escaped, its HTML re-parsed.

    It has the category pages' style, links back to the page of the entry's first category (the
    index when it has none), and shows the entry's type or series above its date.
    """
    # Written with html.escape on every value, not lxml's builders: with those, a site of listing
    # items (one page each) spent more on its entry pages than on rendering all its feeds.
    site = _esc(_text(site_title))
    lang = _esc(_text(language))
    title = _esc(_text(entry.title) or _UNTITLED)
    link = _text(entry.link)
    summary = _text(entry.summary)
    content = _text(entry.content_html)
    published = _moment(entry.published)
    labels = ", ".join(_esc(label) for label in map(_text, entry.labels) if label)
    out = [
        "<!DOCTYPE html>\n",
        f'<html lang="{lang}">\n' if lang else "<html>\n",
        '<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>{title} · {site}</title>\n" if site else f"<title>{title}</title>\n",
    ]
    if link:
        out.append(f'<link rel="canonical" href="{_esc(link)}">\n')
    out.append(f"<style>{_CSS}</style>\n</head>\n<body>\n")
    slug, category = _category(entry)
    back, back_text = (f"{base_url}{slug}.html", _esc(category)) if slug else (f"{base_url}index.html", site)
    out.append(f'<p><a href="{_esc(back)}">← {back_text or _esc(base_url)}</a></p>\n')
    out.append(f"<article>\n<h1>{title}</h1>\n")
    kind = f'<span class="type">{labels}</span> · ' if labels else ""
    out.append(f'<p class="meta">{kind}<time datetime="{published.isoformat()}">{format_day(published)}</time></p>\n')
    out.append(_names(entry.authors, "authors"))
    out.append(_names(entry.contributors, "contributors"))
    # A listing item's content is its summary as a paragraph: say it once.
    if summary and html.escape(summary, quote=False) not in content:
        out.append(f'<p class="summary">{_esc(summary)}</p>\n')
    if content:
        out.append(f'<div class="content">{_markup(content)}</div>\n')
    out.append("</article>\n</body>\n</html>\n")
    return "".join(out).encode("utf-8")


def _category(entry: Entry) -> tuple[str, str]:
    """The slug and title of the category an entry's page leads back to; ("", "") when it has none."""
    for category in entry.categories:
        if slug := _text(category.slug):
            return slug, _text(category.title) or slug
    return "", ""


# --- the status page ------------------------------------------------------------------------------


def status_html(
    *,
    site_title: str,
    base_url: str,
    sources: Sequence[tuple[str, str, str, str, str, str, str]],
    feeds: Sequence[tuple[str, str, str]],
    cluster: ClusterStatus | None = None,
) -> bytes:
    """The operator's page: every source's last fetch and next run, every feed's size and last change.

    `sources` holds a row per source (name, last fetch, result, next run, entries, error, warning) and `feeds`
    a row per feed file (name, entries, last change), as the daemon gathers them. With many nodes on one
    store, `cluster` adds the nodes, the poll jobs and which node polled each source.
    """
    table = E.TABLE(
        E.THEAD(E.TR(*(E.TH(h) for h in ("Source", "Last fetch (UTC)", "Result", "Next run (UTC)", "Entries")))),
        E.TBODY(
            *(
                E.TR(
                    E.TD(name),
                    E.TD(last),
                    E.TD(result, title=error) if error else _result_cell(result, warning),
                    E.TD(nxt),
                    E.TD(count),
                    **{"class": "failing" if error else ("warning" if warning else "ok")},
                )
                for name, last, result, nxt, count, error, warning in sources
            )
        ),
        id="sources",
    )
    files = E.TABLE(
        E.THEAD(E.TR(*(E.TH(h) for h in ("Feed", "Entries", "Last change (UTC)")))),
        E.TBODY(
            *(E.TR(E.TD(E.A(name, href=base_url + name)), E.TD(count), E.TD(changed)) for name, count, changed in feeds)
        ),
        id="feeds",
    )
    page = E.HTML(
        E.HEAD(
            E.META(charset="utf-8"),
            E.TITLE(f"Status · {site_title}"),
            E.STYLE(
                "body{font:15px/1.4 system-ui,sans-serif;margin:2rem}td,th{padding:.2rem .6rem;"
                "text-align:left;border-bottom:1px solid #ddd}tr.failing td{color:#a00}tr.warning td{color:#850}"
            ),
        ),
        E.BODY(
            E.H1(f"Status · {site_title}"),
            E.P(E.A("Feeds", href=base_url + "index.html")),
            E.H2("Sources"),
            table,
            E.H2("Feeds"),
            files,
            *(_cluster_sections(cluster) if cluster is not None else ()),
        ),
        lang="en",
    )
    return html_document(page)


def _cluster_sections(cluster: ClusterStatus) -> list[E.HtmlElement]:
    nodes = E.TABLE(
        E.THEAD(E.TR(*(E.TH(h) for h in ("Node", "URL", "Started (UTC)", "Last heartbeat (UTC)", "State")))),
        E.TBODY(
            *(
                E.TR(
                    E.TD(n.name),
                    E.TD(n.url),
                    E.TD(_utc(n.started)),
                    E.TD(_utc(n.heartbeat)),
                    E.TD("live" if n.live else "silent"),
                    **{"class": "ok" if n.live else "failing"},
                )
                for n in cluster.nodes
            )
        ),
        id="nodes",
    )
    jobs = E.P(", ".join(f"{status}: {count}" for status, count in sorted(cluster.jobs.items())), id="jobs")
    polls = E.TABLE(
        E.THEAD(E.TR(*(E.TH(h) for h in ("Source", "Last poll (UTC)", "Node")))),
        E.TBODY(*(E.TR(E.TD(s), E.TD(_utc(when)), E.TD(node)) for s, (when, node) in sorted(cluster.polls.items()))),
        id="polls",
    )
    return [E.H2("Nodes"), nodes, E.H2("Poll jobs"), jobs, E.H2("Polls"), polls]


def _utc(stamp: str) -> str:
    return stamp.replace("T", " ").removesuffix("+00:00")


def _result_cell(result: str, warning: str) -> E.HtmlElement:
    """A source's result, and what its last read left unread, in full: an operator acts on the line numbers."""
    if not warning:
        return E.TD(result)
    return E.TD(result, *(E.DIV(E.SMALL(line)) for line in warning.splitlines()))
