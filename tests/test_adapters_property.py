"""Property tests: whatever the page adapters are given, only SourceError escapes, and what comes out is XML-safe."""

from __future__ import annotations

import html
import re
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import DATES, HREFS, LINES, NOISE, TAGS, TYPES, WORDS, assert_well_formed, run

from feeds.adapters import Adapter
from feeds.adapters.interview import Interview
from feeds.adapters.listing import Listing
from feeds.config import SourceConfig, parse_schedule
from feeds.errors import SourceError, SourceWarning
from feeds.model import Document, Entry

ADAPTERS: list[Adapter] = [Listing(), Interview()]
SOURCES = [
    SourceConfig(
        name="s",
        adapter="listing",
        location="x",
        time_zone=ZoneInfo(zone),
        schedule=parse_schedule("every 1h"),
        id_prefix="tag:feeds.example.org,2026:s:",
    )
    for zone in ("Europe/Zurich", "Pacific/Kiritimati", "Etc/GMT+12")
]
FAST = settings(max_examples=200, deadline=None)

MEDIA_TYPES = st.sampled_from(["text/plain", "text/html", "application/octet-stream", "application/xhtml+xml"])
CHARSETS = st.sampled_from([None, "utf-8", "latin-1", "utf-16", "utf-32-le", "utf-32-be", "cp1252", "no-such-charset"])
URLS = st.sampled_from(["file:///data/page.txt", "https://www.ilo.org/global/page.htm", "", "http://[::1"])

TEXT_DOCUMENTS = st.lists(LINES, max_size=25).map("\n".join)
SOUP = st.lists(st.one_of(TAGS, LINES), max_size=40).map("".join)
HTML_ITEM = st.builds(
    lambda kind, href, title, iso, date, summary, noise: (
        f'<li><span class="type">{kind}</span><h2><a href="{href}">{title}</a></h2>'
        f'<time datetime="{iso}">{date}</time><p>{summary}</p>{noise}</li>'
    ),
    TYPES, HREFS, WORDS, st.one_of(DATES, WORDS), DATES, WORDS, NOISE,
)  # fmt: skip
HTML_LISTING = st.lists(HTML_ITEM, max_size=6).map(lambda items: f"<html><body><h1>L</h1><ol>{''.join(items)}</ol>")
HTML_BODY = st.one_of(
    st.builds("<h3>{}?</h3>".format, WORDS),
    st.builds("<p>{}</p>".format, WORDS),
    st.lists(WORDS, max_size=3).map(lambda items: "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"),
    NOISE,
)
HTML_PAGE = st.builds(
    lambda series, stand, kind, date, body: (
        f'<html><body><main><h1>{series}</h1><p>{stand}</p><p class="meta">{kind} | <time>{date}</time></p>'
        f"{''.join(body)}</main></body></html>"
    ),
    st.one_of(TYPES, WORDS), LINES, TYPES, DATES, st.lists(HTML_BODY, max_size=8),
)  # fmt: skip
# Interview and article pages as a site serves them: every piece of chrome carries CHROME, which must never
# come through; the questions come in each markup the site uses.
CHROME = "Sitechrome"
SAFE_WORDS = WORDS.map(html.escape)
CHROME_PIECES = st.sampled_from([
    f"<header><h1>{CHROME} name</h1><nav><a href='/'>{CHROME} menu?</a></nav></header>",
    f'<nav aria-label="breadcrumb"><ol class="breadcrumb"><li>{CHROME} home</li></ol></nav>',
    f'<div role="banner"><h1>{CHROME} banner</h1></div>', f'<div role="navigation">{CHROME} topics?</div>',
    f"<aside><h2>{CHROME} related?</h2><p>• {CHROME} item</p></aside>",
    f'<div class="related-content"><h3>{CHROME} see also</h3><ul><li>{CHROME} link?</li></ul></div>',
    f"<footer><p>© {CHROME} 2024</p></footer>", f'<div role="contentinfo">{CHROME} legal</div>',
    f'<p class="caption">{CHROME} loose caption</p>', f'<a class="skip-link" href="#m">{CHROME} skip</a>',
])  # fmt: skip
META_TYPES = st.sampled_from(["Article", "Artículo", "Entrevista", "Entretien", "News", "ILO COOP 100 Interview"])
VALID_DATES = st.sampled_from(["10 January 2022", "4 février 2019", "1er mars 2020", "26 de febrero de 2020"])
QUESTIONS = st.one_of(
    st.builds("<h2>{}?</h2>".format, SAFE_WORDS),
    st.builds("<h3>{}?</h3>".format, SAFE_WORDS),
    st.builds("<h4>{}?</h4>".format, SAFE_WORDS),
    st.builds("<p><strong>{}?</strong></p>".format, SAFE_WORDS),
    st.builds("<p><b>{}?</b> {}</p>".format, SAFE_WORDS, SAFE_WORDS),
    st.builds("<p>{}. {}?</p>".format, st.integers(1, 12), SAFE_WORDS),
    st.builds('<ol start="{}"><li>{}?</li></ol>'.format, st.integers(1, 12), SAFE_WORDS),
)
ANSWERS = st.one_of(
    st.builds("<p>{}</p>".format, SAFE_WORDS),
    st.builds("<p>• {}</p>".format, SAFE_WORDS),
    st.builds("<p>© ILO / {} 2024</p>".format, SAFE_WORDS),
    st.builds('<figure><img src="{}" alt="{}"><figcaption>{}</figcaption></figure>'.format, HREFS, SAFE_WORDS,
              SAFE_WORDS),
    CHROME_PIECES,
)  # fmt: skip
CHROME_PAGE = st.builds(
    lambda top, kicker, h1, stand, meta, body, bottom: (
        f"<html><body>{''.join(top)}<main><article>{kicker}<h1>{h1}</h1><p>{stand}</p><p>{meta}</p>"
        f"{''.join(body)}</article></main>{''.join(bottom)}</body></html>"
    ),
    st.lists(CHROME_PIECES, max_size=4),
    st.one_of(st.just(""), st.builds('<p class="series">{}</p>'.format, st.one_of(TYPES, SAFE_WORDS))),
    st.one_of(SAFE_WORDS, st.builds(lambda w: f"Ms {w}, role", SAFE_WORDS)),
    st.one_of(SAFE_WORDS, st.builds(lambda w: f"Mr {w}, role", SAFE_WORDS)),
    st.one_of(st.builds("{} | {}".format, META_TYPES, DATES), SAFE_WORDS),
    st.lists(st.one_of(QUESTIONS, ANSWERS), max_size=8),
    st.lists(CHROME_PIECES, max_size=3),
)  # fmt: skip
HTML_DOCUMENTS = st.one_of(SOUP, HTML_LISTING, HTML_PAGE, CHROME_PAGE)


def check(doc: Document) -> None:
    for adapter in ADAPTERS:
        for source in SOURCES:
            for entry in run(adapter, doc, source):
                assert_well_formed(entry)


@FAST
@given(text=st.text(), media_type=MEDIA_TYPES)
def test_arbitrary_text(text: str, media_type: str) -> None:
    check(Document(content=text.encode("utf-8"), url="file:///x", media_type=media_type))


@FAST
@given(content=st.binary(max_size=600), media_type=MEDIA_TYPES, charset=CHARSETS, url=URLS)
def test_arbitrary_bytes(content: bytes, media_type: str, charset: str | None, url: str) -> None:
    check(Document(content=content, url=url, media_type=media_type, charset=charset))


@FAST
@given(text=TEXT_DOCUMENTS, url=URLS)
def test_plausible_text_pages(text: str, url: str) -> None:
    check(Document(content=text.encode("utf-8", "surrogatepass"), url=url, media_type="text/plain"))


@FAST
@given(text=HTML_DOCUMENTS, url=URLS, charset=CHARSETS)
def test_plausible_html_pages(text: str, url: str, charset: str | None) -> None:
    content = text.encode("utf-8", "surrogatepass")
    check(Document(content=content, url=url, media_type="text/html", charset=charset))


def test_generated_pages_do_reach_entries() -> None:
    """The strategies are only worth something if documents like theirs produce entries."""
    listing = (
        "Heading\n  1. News\nA title & <more>\n4 février 2019\nSummary \x00 text\n  2. News | 10 January 2022\nT2\n"
    )
    html = (
        '<ol><li><span class="type">News</span><a href="news/1.htm">T</a><time datetime="2021-10-28">x</time></li></ol>'
    )
    for text, media_type in ((listing, "text/plain"), (html, "text/html")):
        doc = Document(content=text.encode(), url="https://www.ilo.org/global/page.htm", media_type=media_type)
        entries = run(Listing(), doc, SOURCES[0])
        assert entries
        for entry in entries:
            assert_well_formed(entry)


@FAST
@given(page=CHROME_PAGE, url=URLS)
def test_site_chrome_never_comes_through(page: str, url: str) -> None:
    doc = Document(content=page.encode("utf-8", "surrogatepass"), url=url, media_type="text/html")
    for source in SOURCES:
        for entry in run(Interview(), doc, source):
            assert_well_formed(entry)
            for text in (entry.title, entry.summary, entry.content_html, *entry.labels):
                assert CHROME not in text


HEADLINES = st.sampled_from([
    "Ms Ana Ruiz, President of a workers' cooperative",
    "Sung Ho Kim, International Cooperation Department, KFCC",
    "Cooperatives in the care economy: three lessons from a study of twenty countries",
])  # fmt: skip


# --- generated listings in the live site's layouts: every item is read, or the pass says which lines were not ----

VOCABULARY = st.sampled_from([
    "cooperative", "members", "savings", "rural", "workshop", "report", "women", "youth", "housing", "energy",
    "statistics", "governance", "finance", "fishers", "dairy", "training", "launch", "forum", "Dakar", "Lima",
])  # fmt: skip
GEN_TITLES = st.lists(VOCABULARY, min_size=5, max_size=9).map(lambda words: " ".join(words).capitalize())
GEN_SUMMARIES = st.one_of(st.just(""), GEN_TITLES.map(lambda text: text + " and more, as planned."))
CREDITS = st.sampled_from(["", "© A. Photographer / ILO 2024", "© ILO 2023", "(c) ILO/J. Doe", "Photo: ILO/M. Crozet"])
PLACES = st.sampled_from(["", ",", ", Vientiane", ", Vientiane, Lao People's Democratic Republic"])
GEN_DATES = st.sampled_from(["10 January 2022", "4 février 2019", "25 de agosto de 2020", "28 October 2021", ""])
GEN_ITEM = st.fixed_dictionaries({
    "credit": CREDITS, "type": st.sampled_from(["", "News", "Publication", "Event"]), "title": GEN_TITLES,
    "date": GEN_DATES, "place": PLACES, "summary": GEN_SUMMARIES,
})  # fmt: skip
HEADINGS = st.sampled_from(["February 2024", "décembre 2023", "diciembre de 2023", "March 2021"])
# Numbering starts again under each month heading; the first group may have none.
GROUPS = st.tuples(
    st.tuples(st.one_of(st.just(""), HEADINGS), st.lists(GEN_ITEM, min_size=1, max_size=4)),
    st.lists(st.tuples(HEADINGS, st.lists(GEN_ITEM, min_size=1, max_size=4)), max_size=2),
).map(lambda first_and_rest: [first_and_rest[0], *first_and_rest[1]])


def _text_listing(groups: list[tuple[str, list[dict[str, str]]]], marks: str) -> str:
    out = ["Cooperatives news"]
    for heading, items in groups:
        if heading:
            out.append(heading)
        for number, item in enumerate(items, start=1):
            mark = f"  {number}." if marks == "numbers" else marks
            lines = [item["credit"], item["type"], item["title"]]
            if item["date"]:
                lines.append(item["date"] + item["place"])
            lines.append(item["summary"])
            first, *rest = [line for line in lines if line]
            out.append(f"{mark} {first}")
            out.extend(f"     {line}" if marks == "numbers" else line for line in rest)
    return "\n".join(out) + "\n"


def _html_listing(groups: list[tuple[str, list[dict[str, str]]]]) -> str:
    body = ""
    for heading, items in groups:
        body += f"<h2>{heading}</h2><ul>" if heading else "<ul>"
        for item in items:
            body += "<li>"
            if item["credit"]:
                body += f"<figure><img src='x.jpg'><figcaption>{item['credit']}</figcaption></figure>"
            if item["type"]:
                body += f'<span class="type">{item["type"]}</span>'
            body += f"<h3>{item['title']}</h3>"
            if item["date"]:
                body += f"<p>{item['date']}{item['place']}</p>"
            body += f"<p>{item['summary']}</p></li>" if item["summary"] else "</li>"
        body += "</ul>"
    return f"<html><body><header><a href='/'>Site</a></header><main><h1>News</h1>{body}</main><footer>© ILO</footer>"


@FAST
@given(groups=GROUPS, marks=st.sampled_from(["numbers", "-", "•", "*"]), html=st.booleans())
def test_generated_layouts_are_read_in_full(
    groups: list[tuple[str, list[dict[str, str]]]], marks: str, html: bool
) -> None:
    items = [item for _, group in groups for item in group]
    dated = [item for item in items if item["date"]]
    text = _html_listing(groups) if html else _text_listing(groups, marks)
    doc = Document(content=text.encode(), url="file:///x", media_type="text/html" if html else "text/plain")
    entries: list[Entry] = []
    try:
        entries.extend(Listing().parse(doc, SOURCES[0]))
    except SourceError as exc:
        # Only a page whose items all lack a date may be refused: it is no listing.
        assert not dated and "no items found" in exc.what, exc
        return
    for entry in entries:
        assert_well_formed(entry)
    assert len(entries) == len(items)
    assert [e.title for e in entries] == [item["title"] for item in items]
    assert [e.undated for e in entries] == [not item["date"] for item in items]
    assert [e.labels for e in entries] == [(item["type"],) if item["type"] else () for item in items]
    for entry, item in zip(entries, items, strict=True):
        assert item["summary"] in entry.summary and "©" not in entry.summary and "Photo" not in entry.summary
        assert (item["place"].strip(", ") in entry.summary) if item["date"] else True


@FAST
@given(
    top=st.lists(CHROME_PIECES, max_size=4),
    kicker=st.one_of(st.just(""), st.builds('<p class="series">{}</p>'.format, TYPES)),
    headline=HEADLINES,
    # A standfirst that reads as a date line ("0|0") would be one: those are left out here.
    stand=st.one_of(SAFE_WORDS, st.builds(lambda w: f"Mr {w}, role", SAFE_WORDS)).filter(
        lambda w: "|" not in w and not any(ch.isdigit() for ch in w)
    ),
    meta=st.builds("{} | {}".format, META_TYPES, VALID_DATES),
    body=st.lists(st.one_of(QUESTIONS, ANSWERS), max_size=6),
)
def test_the_headline_is_the_title(
    top: list[str], kicker: str, headline: str, stand: str, meta: str, body: list[str]
) -> None:
    page = (
        f"<html><body>{''.join(top)}<main>{kicker}<h1>{html.escape(headline)}</h1><p>{stand}</p><p>{meta}</p>"
        f"{''.join(body)}</main></body></html>"
    )
    doc = Document(content=page.encode("utf-8", "surrogatepass"), url="https://www.ilo.org/p", media_type="text/html")
    [entry] = Interview().parse(doc, SOURCES[0])
    assert entry.title == headline
    assert CHROME not in entry.summary and CHROME not in entry.content_html


@FAST
@given(
    groups=GROUPS,
    extra=st.sampled_from(["10 January 2022", "  7. News", "- News", "Noticia | 25 de agosto de 2020"]),
    at=st.integers(0, 40),
)
def test_a_generated_listing_with_a_stray_item_line_is_read_or_warned_about(
    groups: list[tuple[str, list[dict[str, str]]]], extra: str, at: int
) -> None:
    """An item-like line put anywhere is an item, an item's date, or named in a warning or an error."""
    lines = _text_listing(groups, "numbers").splitlines()
    at = 1 + at % len(lines)
    lines.insert(at, extra)
    doc = Document(content="\n".join(lines).encode(), url="file:///x")
    entries: list[Entry] = []
    try:
        entries.extend(Listing().parse(doc, SOURCES[0]))
    except SourceError as exc:
        assert exc.where.startswith("s")
        # Warned: the lines named are item-like lines of the document, the stray one or the one it displaced.
        if isinstance(exc, SourceWarning) or "left unread" in exc.what:
            named = [int(n) for n in re.findall(r"\d+", exc.what.rpartition("unread")[2].rpartition(":")[2])]
            assert named and all(1 <= n <= len(lines) for n in named)
        elif "no items found" in exc.what:  # only a page none of whose items has a date is no listing
            assert not any(item["date"] for _, group in groups for item in group)
        else:  # an error: the stray line broke an item, and the error names it
            assert "line" in exc.where
        return
    items = [item for _, group in groups for item in group]
    # Nothing warned: the line was read as an item or as the date of one.
    assert len(entries) >= len(items)
