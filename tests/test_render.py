"""Atom, RSS and JSON Feed read back the way readers and validators read them."""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser
import lxml.etree
import lxml.html
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from feeds import __version__
from feeds.errors import RenderError
from feeds.model import Author, Category, Enclosure, Entry
from feeds.pages import render_entry_page
from feeds.render import (
    FeedMeta,
    atom_document,
    clean,
    entry_fragments,
    json_document,
    render_atom,
    render_json,
    render_rss,
    rss_document,
)

BASE = "https://feeds.example.org/"
ATOM = "{http://www.w3.org/2005/Atom}"
ZURICH = ZoneInfo("Europe/Zurich")
NEWS = Category(slug="news", title="News", description="News from the unit")
ALL = Category(slug="all", title="Everything")
INTERVIEWS = Category(slug="interviews", title="Spotlight Interviews with Co-operators")

CONTENT = '<p>Members pooled savings &amp; opened a <a href="https://example.org/x?a=1&amp;b=2">shop</a> — “Çà va”</p>'
ENTRIES = (
    # A permalink entry: its id is its link, so the RSS guid is a permalink.
    Entry(
        id="https://www.ilo.org/coop/news/2022/savings-groups",
        title="Savings groups <grow> & “thrive” in Région Nord",
        link="https://www.ilo.org/coop/news/2022/savings-groups",
        published=datetime(2022, 1, 10, tzinfo=ZURICH),
        updated=datetime(2022, 1, 12, 9, 30, tzinfo=ZURICH),
        source="news",
        summary="A short plain-text summary with <angle brackets> & ampersands.",
        content_html=CONTENT,
        authors=(Author(name="ILO Cooperatives Unit", uri="https://www.ilo.org/coop"),),
        contributors=(Author(name="Ana Pérez", email="ana@example.org"),),
        categories=(NEWS, ALL),
        enclosures=(
            Enclosure(url="https://www.ilo.org/coop/audio/savings.mp3", length=123456, type="audio/mpeg"),
            Enclosure(url="https://www.ilo.org/coop/pdf/savings.pdf", type="application/pdf"),
        ),
    ),
    # No permalink: a tag: id and a page of ours; control characters in title and summary.
    Entry(
        id="tag:feeds.example.org,2021:interviews/maria-ochoa",
        title="Interview\x00 with Maria\x0b Ochoa\ud800\ufffe",
        link=BASE + "entries/interviews/maria-ochoa.html",
        published=datetime(2021, 7, 22, 8, 0, tzinfo=timezone(timedelta(hours=-5))),
        updated=datetime(2021, 7, 22, 8, 0, tzinfo=timezone(timedelta(hours=-5))),
        source="interviews",
        summary="Bell\x07 and escape\x1b removed; tab\tand newline\nkept.",
        authors=(Author(name="Interview desk", email="desk@example.org"), Author(name="Second Writer")),
        contributors=(Author(name="Maria Ochoa"),),
        categories=(INTERVIEWS, ALL),
    ),
    # Content without summary, no authors, UTC.
    Entry(
        id="tag:feeds.example.org,2020:news/only-content",
        title="Only content",
        link=BASE + "entries/news/only-content.html",
        published=datetime(2020, 3, 1, 12, 0, tzinfo=UTC),
        updated=datetime(2020, 3, 2, 12, 0, tzinfo=UTC),
        source="news",
        content_html="<p>Body only: 5 &lt; 6 &amp; &quot;quoted&quot;</p>",
        categories=(NEWS,),
    ),
)
CLEAN_TITLES = [
    "Savings groups <grow> & “thrive” in Région Nord",
    "Interview with Maria Ochoa",
    "Only content",
]
META = FeedMeta(
    slug="news",
    title="ILO Cooperatives — News",
    description="",
    base_url=BASE,
    author="ILO Cooperatives Unit",
    language="en",
    updated=max(e.updated for e in ENTRIES),
    ttl_minutes=30,
    hubs=("https://hub.example.org/", "https://pubsubhubbub.example.com/"),
)


def utc(parsed: object) -> datetime:
    """A feedparser *_parsed struct_time (always UTC) as an aware datetime."""
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def rfc822(moment: datetime) -> str:
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return f"{days[moment.weekday()]}, {moment:%d} {months[moment.month - 1]} {moment:%Y %H:%M:%S %z}"


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


# --- Atom -----------------------------------------------------------------------------------------


def test_atom_round_trips_through_feedparser() -> None:
    parsed = feedparser.parse(render_atom(META, ENTRIES))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    feed = parsed.feed
    assert feed.id == META.url("atom") == BASE + "news.atom"
    assert feed.title == META.title
    assert feed.subtitle == META.title  # empty description: the title stands in
    assert utc(feed.updated_parsed) == ENTRIES[0].updated
    assert feed.author == "ILO Cooperatives Unit"
    assert feed.language == "en"
    assert feed.generator_detail == {"name": "feeds", "version": __version__}
    assert [(link.rel, link.href) for link in feed.links] == [
        ("self", BASE + "news.atom"),
        ("hub", "https://hub.example.org/"),
        ("hub", "https://pubsubhubbub.example.com/"),
        ("alternate", BASE + "news.html"),
    ]
    assert feed.links[0].type == "application/atom+xml"

    assert [e.id for e in parsed.entries] == [e.id for e in ENTRIES]
    assert [e.title for e in parsed.entries] == CLEAN_TITLES
    assert [e.link for e in parsed.entries] == [e.link for e in ENTRIES]
    assert [utc(e.published_parsed) for e in parsed.entries] == [e.published for e in ENTRIES]
    assert [utc(e.updated_parsed) for e in parsed.entries] == [e.updated for e in ENTRIES]

    first, second, third = parsed.entries
    assert first.summary == ENTRIES[0].summary
    assert first.summary_detail.type == "text/plain"
    assert first.content[0].type == "text/html"
    assert first.content[0].value == CONTENT
    assert [(t.term, t.label, t.scheme) for t in first.tags] == [("news", "News", BASE), ("all", "Everything", BASE)]
    assert first.authors == [{"name": "ILO Cooperatives Unit", "href": "https://www.ilo.org/coop"}]
    assert first.contributors == [{"name": "Ana Pérez", "email": "ana@example.org"}]
    assert [(link.rel, link.href, link.get("type"), link.get("length")) for link in first.links] == [
        ("alternate", ENTRIES[0].link, "text/html", None),
        ("enclosure", "https://www.ilo.org/coop/audio/savings.mp3", "audio/mpeg", "123456"),
        ("enclosure", "https://www.ilo.org/coop/pdf/savings.pdf", "application/pdf", None),
    ]
    assert second.summary == "Bell and escape removed; tab\tand newline\nkept."
    assert [a.name for a in second.authors] == ["Interview desk", "Second Writer"]
    assert [c.name for c in second.contributors] == ["Maria Ochoa"]
    assert third.content[0].value == "<p>Body only: 5 &lt; 6 &amp; &quot;quoted&quot;</p>"


def test_atom_entry_links_keep_rel_and_type() -> None:
    """feedgen 1.0.0 drops rel/type/length from entry links (upstream #135); the wrapper puts them back."""
    root = lxml.etree.fromstring(render_atom(META, ENTRIES))
    first = root.find(f"{ATOM}entry")
    assert first is not None
    links = [dict(link.attrib) for link in first.iter(f"{ATOM}link")]
    assert links == [
        {"href": ENTRIES[0].link, "rel": "alternate"},
        {"href": "https://www.ilo.org/coop/audio/savings.mp3", "rel": "enclosure", "type": "audio/mpeg",
         "length": "123456"},
        {"href": "https://www.ilo.org/coop/pdf/savings.pdf", "rel": "enclosure", "type": "application/pdf"},
    ]  # fmt: skip
    for entry in root.iter(f"{ATOM}entry"):
        assert all(link.get("rel") for link in entry.iter(f"{ATOM}link"))
    last = root.findall(f"{ATOM}entry")[-1]
    assert last.find(f"{ATOM}summary") is None  # no summary given: none invented


def rfc4287_problems(document: bytes) -> list[str]:
    """The RFC 4287 essentials, checked on the XML itself rather than through a lenient parser."""
    root = lxml.etree.fromstring(document)
    problems = []
    if root.tag != f"{ATOM}feed":
        return [f"root is {root.tag}"]

    def one(parent: lxml.etree._Element, name: str, where: str) -> None:
        found = parent.findall(f"{ATOM}{name}")
        if len(found) != 1:
            problems.append(f"{where}: {len(found)} atom:{name}")
        elif name in ("updated", "published") and not RFC3339.match(found[0].text or ""):
            problems.append(f"{where}: atom:{name} {found[0].text!r} is not RFC 3339")
        elif name in ("id", "title") and not (found[0].text or "").strip():
            problems.append(f"{where}: empty atom:{name}")

    for name in ("id", "title", "updated"):
        one(root, name, "feed")
    if not any(link.get("rel") == "self" for link in root.findall(f"{ATOM}link")):
        problems.append("feed: no rel=self link")
    if len([lk for lk in root.findall(f"{ATOM}link") if lk.get("rel", "alternate") == "alternate"]) > 1:
        problems.append("feed: more than one alternate link")
    feed_author = root.find(f"{ATOM}author/{ATOM}name") is not None
    ids = set()
    for n, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"entry {n}"
        for name in ("id", "title", "updated"):
            one(entry, name, where)
        if entry.find(f"{ATOM}published") is not None:
            one(entry, "published", where)
        alternates = [lk for lk in entry.findall(f"{ATOM}link") if lk.get("rel", "alternate") == "alternate"]
        if not alternates and entry.find(f"{ATOM}content") is None:
            problems.append(f"{where}: neither an alternate link nor content")
        if not all(lk.get("href", "").startswith("https://") for lk in entry.findall(f"{ATOM}link")):
            problems.append(f"{where}: a link that is not absolute")
        if not feed_author and entry.find(f"{ATOM}author/{ATOM}name") is None:
            problems.append(f"{where}: no author and the feed has none")
        content = entry.find(f"{ATOM}content")
        if content is not None and content.get("type") not in ("text", "html", "xhtml"):
            problems.append(f"{where}: content type {content.get('type')!r}")
        entry_id = entry.findtext(f"{ATOM}id")
        if entry_id in ids:
            problems.append(f"{where}: duplicate id {entry_id}")
        ids.add(entry_id)
    return problems


@pytest.mark.parametrize("author", ["ILO Cooperatives Unit", ""])
def test_atom_meets_rfc4287_essentials(author: str) -> None:
    meta = FeedMeta(**{**_fields(META), "author": author})
    assert rfc4287_problems(render_atom(meta, ENTRIES)) == []


def test_rfc4287_check_can_fail() -> None:
    broken = render_atom(META, ENTRIES).replace(f"<id>{ENTRIES[0].id}</id>".encode(), b"")
    assert rfc4287_problems(broken) == ["entry 0: 0 atom:id"]


# --- RSS ------------------------------------------------------------------------------------------


def test_rss_round_trips_through_feedparser() -> None:
    parsed = feedparser.parse(render_rss(META, ENTRIES))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    feed = parsed.feed
    assert feed.title == META.title
    assert feed.link == BASE + "news.html"  # the channel <link> is the HTML page, not the feed
    assert feed.subtitle == META.title
    assert feed.ttl == "30"
    assert feed.language == "en"
    assert utc(feed.updated_parsed) == ENTRIES[0].updated
    assert sorted((link.rel, link.href, link.get("type")) for link in feed.links) == [
        ("alternate", BASE + "news.html", "text/html"),
        ("hub", "https://hub.example.org/", "text/html"),  # feedparser's default type, not ours
        ("hub", "https://pubsubhubbub.example.com/", "text/html"),
        ("self", BASE + "news.rss", "application/rss+xml"),
    ]

    assert [e.id for e in parsed.entries] == [e.id for e in ENTRIES]
    assert [e.title for e in parsed.entries] == CLEAN_TITLES
    assert [e.link for e in parsed.entries] == [e.link for e in ENTRIES]
    assert [utc(e.published_parsed) for e in parsed.entries] == [e.published for e in ENTRIES]

    first, second, third = parsed.entries
    # <description> is HTML to readers: the plain-text summary arrives escaped, meaning itself.
    assert first.summary == "A short plain-text summary with &lt;angle brackets&gt; &amp; ampersands."
    assert first.content[0].value == CONTENT
    assert [(t.term, t.scheme) for t in first.tags] == [("News", BASE), ("Everything", BASE)]
    assert first.authors == [{"name": "ILO Cooperatives Unit"}]  # dc:creator: name-only survives
    assert first.contributors == [{"name": "Ana Pérez"}]
    assert first.enclosures == [
        {"href": "https://www.ilo.org/coop/audio/savings.mp3", "length": "123456", "type": "audio/mpeg"}
    ]
    assert [a.name for a in second.authors] == ["Interview desk", "Second Writer"]
    assert third.summary == "<p>Body only: 5 &lt; 6 &amp; &quot;quoted&quot;</p>"  # no summary: content instead
    assert "content" not in third


def test_rss_guids_are_permalinks_only_when_the_id_is_the_link() -> None:
    root = lxml.etree.fromstring(render_rss(META, ENTRIES))
    guids = [(g.text, g.get("isPermaLink")) for g in root.iter("guid")]
    assert guids == [
        (ENTRIES[0].id, "true"),
        (ENTRIES[1].id, "false"),
        (ENTRIES[2].id, "false"),
    ]
    assert root.find("channel/ttl").text == "30"
    assert [c.text for c in root.iter("{http://purl.org/dc/elements/1.1/}creator")] == [
        "ILO Cooperatives Unit", "Interview desk", "Second Writer",
    ]  # fmt: skip
    assert root.find("channel/item/author") is None  # dc:creator only: no duplicate semantics


def test_rss_without_ttl_has_none() -> None:
    root = lxml.etree.fromstring(render_rss(FeedMeta(**{**_fields(META), "ttl_minutes": None}), ENTRIES))
    assert root.find("channel/ttl") is None


# --- time and bytes -------------------------------------------------------------------------------


def test_no_build_time_anywhere() -> None:
    """Every date in every file comes from the entries: feedgen's now() defaults never show."""
    this_year = str(datetime.now(UTC).year).encode()
    atom, rss, data = render_atom(META, ENTRIES), render_rss(META, ENTRIES), render_json(META, ENTRIES)
    for document in (atom, rss, data):
        assert this_year not in document
    root = lxml.etree.fromstring(atom)
    assert root.findtext(f"{ATOM}updated") == META.updated.isoformat()
    channel = lxml.etree.fromstring(rss).find("channel")
    assert channel is not None
    assert channel.findtext("lastBuildDate") == rfc822(META.updated) == "Wed, 12 Jan 2022 09:30:00 +0100"
    assert [d.text for d in channel.iter("pubDate")] == [rfc822(e.published) for e in ENTRIES]


def test_empty_feed_uses_the_given_updated() -> None:
    meta = FeedMeta(**{**_fields(META), "updated": datetime(2000, 1, 1, tzinfo=UTC)})
    atom = feedparser.parse(render_atom(meta, []))
    rss = feedparser.parse(render_rss(meta, []))
    assert atom.bozo == 0 and rss.bozo == 0
    assert atom.entries == [] and rss.entries == []
    assert utc(atom.feed.updated_parsed) == utc(rss.feed.updated_parsed) == meta.updated
    assert json.loads(render_json(meta, []))["items"] == []


def test_same_input_same_bytes() -> None:
    first = [render(META, ENTRIES) for render in (render_atom, render_rss, render_json)]
    second = [render(META, ENTRIES) for render in (render_atom, render_rss, render_json)]
    assert first == second


def test_fragments_rendered_once_give_every_feed_the_bytes_of_its_own_rendering() -> None:
    """A pass renders each entry once and splices it into every feed it is in, in any order; no feed can tell."""
    rendered = dict(zip((e.id for e in ENTRIES), entry_fragments(ENTRIES, META.base_url, "entries"), strict=True))
    everything = FeedMeta(**{**_fields(META), "slug": "all", "title": "Everything"})
    for meta, entries in ((META, ENTRIES), (everything, ENTRIES[::-1]), (META, [ENTRIES[0], ENTRIES[2]])):
        fragments = [rendered[e.id] for e in entries]
        assert atom_document(meta, [f.atom for f in fragments]) == render_atom(meta, entries)
        assert rss_document(meta, [f.rss for f in fragments]) == render_rss(meta, entries)
        assert json_document(meta, [f.json for f in fragments]) == render_json(meta, entries)


def test_fragments_follow_the_feeds_base_url() -> None:
    other = FeedMeta(**{**_fields(META), "base_url": "https://mirror.example.net/"})
    schemes = {c.get("scheme") for c in lxml.etree.fromstring(render_atom(other, ENTRIES)).iter(f"{ATOM}category")}
    assert schemes == {"https://mirror.example.net/"}


def _canonical(document: bytes) -> bytes:
    """The document as lxml pretty-prints its tree from scratch: what feedgen's own serialization gives."""
    tree = lxml.etree.fromstring(document, lxml.etree.XMLParser(remove_blank_text=True))
    return lxml.etree.tostring(tree.getroottree(), encoding="UTF-8", xml_declaration=True, pretty_print=True)


@pytest.mark.parametrize("archive", [False, True])
def test_entries_spliced_into_a_feed_are_what_serializing_the_whole_tree_gives(archive: bool) -> None:
    """Each entry is serialized once and its lines spliced into the document: byte for byte the same."""
    history = (("current", "news"), ("prev-archive", "archive/news/1")) if archive else ()
    meta = FeedMeta(**{**_fields(META), "archive": archive, "history": history, "path": "archive/news/2"})
    for render in (render_atom, render_rss):
        for entries in (ENTRIES, ENTRIES[::-1], ENTRIES[1:], ()):
            document = render(meta, entries)
            assert document == _canonical(document)
            assert len(
                lxml.etree.fromstring(document).xpath("//*[local-name()='entry' or local-name()='item']")
            ) == len(entries)


def test_canonical_check_can_fail() -> None:
    document = render_atom(META, ENTRIES)
    assert _canonical(document.replace(b"\n  <entry>", b"\n <entry>", 1)) != document.replace(
        b"\n  <entry>", b"\n <entry>", 1
    )


def _digests() -> list[str]:
    return [hashlib.sha256(render(META, ENTRIES)).hexdigest() for render in (render_atom, render_rss, render_json)]


def test_same_bytes_in_another_process_with_another_hash_seed() -> None:
    script = "import sys; sys.path.insert(0, sys.argv[1]); import test_render; print(*test_render._digests())"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == _digests()


def test_rss_dates_are_never_formatted_from_two_threads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """feedgen switches the process locale around each RSS date; the wrapper lets one thread at a time do it."""
    import feedgen.entry
    import feedgen.feed

    original = feedgen.entry.formatRFC2822
    active: list[int] = []
    overlaps: list[int] = []
    guard = threading.Lock()

    def watched(moment: datetime) -> str:
        with guard:
            active.append(1)
            overlaps.append(len(active))
        time.sleep(0.001)  # widen the window a second thread would have to slip into
        with guard:
            active.pop()
        return str(original(moment))

    monkeypatch.setattr(feedgen.entry, "formatRFC2822", watched)
    monkeypatch.setattr(feedgen.feed, "formatRFC2822", watched)
    expected = render_rss(META, ENTRIES)
    results: list[bytes] = []

    def work() -> None:
        for _ in range(5):
            results.append(render_rss(META, ENTRIES))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 20
    assert overlaps and max(overlaps) == 1


# --- JSON Feed ------------------------------------------------------------------------------------


def test_json_feed_has_what_the_spec_requires() -> None:
    document = render_json(META, ENTRIES)
    assert document.endswith(b"}\n")
    feed = json.loads(document.decode("utf-8"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == META.title
    assert feed["home_page_url"] == BASE + "news.html"
    assert feed["feed_url"] == BASE + "news.json"
    assert feed["description"] == META.title
    assert feed["authors"] == [{"name": "ILO Cooperatives Unit"}]
    assert feed["language"] == "en"
    assert feed["hubs"] == [
        {"type": "WebSub", "url": "https://hub.example.org/"},
        {"type": "WebSub", "url": "https://pubsubhubbub.example.com/"},
    ]
    items = feed["items"]
    assert [i["id"] for i in items] == [e.id for e in ENTRIES]
    assert all(isinstance(i["id"], str) for i in items)
    assert [i["title"] for i in items] == CLEAN_TITLES
    assert [i["url"] for i in items] == [e.link for e in ENTRIES]
    for item, entry in zip(items, ENTRIES, strict=True):
        assert "content_html" in item or "content_text" in item
        for key, moment in (("date_published", entry.published), ("date_modified", entry.updated)):
            assert RFC3339.match(item[key]), item[key]
            assert datetime.fromisoformat(item[key]) == moment
    first, second, third = items
    assert first["content_html"] == CONTENT
    assert first["summary"] == ENTRIES[0].summary
    assert first["tags"] == ["News", "Everything"]
    assert first["authors"] == [{"name": "ILO Cooperatives Unit", "url": "https://www.ilo.org/coop"}]
    assert first["attachments"] == [
        {"url": "https://www.ilo.org/coop/audio/savings.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 123456},
        {"url": "https://www.ilo.org/coop/pdf/savings.pdf", "mime_type": "application/pdf"},
    ]
    assert first["_feeds"] == {"contributors": [{"name": "Ana Pérez", "url": "mailto:ana@example.org"}]}
    assert second["content_text"] == "Bell and escape removed; tab\tand newline\nkept."
    assert "content_html" not in second
    assert "summary" not in third and third["content_html"].startswith("<p>Body only")


# --- failures and arbitrary text ------------------------------------------------------------------


def test_an_entry_that_cannot_render_names_itself() -> None:
    bad = Entry(
        id="tag:x,2020:no-link", title="t", link="", published=ENTRIES[2].published,
        updated=ENTRIES[2].updated, source="s",
    )  # fmt: skip
    for render, ext in ((render_atom, "atom"), (render_rss, "rss")):
        with pytest.raises(RenderError) as caught:
            render(META, (*ENTRIES, bad))
        assert caught.value.where == f"news.{ext}"
        assert "entry tag:x,2020:no-link" in caught.value.what


def test_clean_keeps_every_wanted_character() -> None:
    wanted = "\t\n\r ~\xa0\ud7ff\ue000\ufffd\U00010000\U0010fffd é “”"
    assert clean(wanted) == wanted
    assert clean("a\x00b\x08c\x0bd\x0ce\x0ef\x1fg\ud800h\udfffi\ufffej\uffffk") == "abcdefghijk"
    assert clean("a\x7fb\x85c\x9fd\ufdd0e\U0001fffef\U0010ffffg") == "abcdefg"  # discouraged by XML 1.0


ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=()),  # includes lone surrogates and controls
        st.sampled_from("<>&\"'\x00\x0b\x1f\ufffe\uffff\ud800]]>"),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=ANY_TEXT, summary=ANY_TEXT, content=ANY_TEXT, name=ANY_TEXT, label=ANY_TEXT)
def test_arbitrary_text_always_renders_well_formed(
    title: str, summary: str, content: str, name: str, label: str
) -> None:
    entry = Entry(
        id="tag:feeds.example.org,2020:fuzz",
        title=title,
        link=BASE + "entries/fuzz.html",
        published=datetime(2020, 1, 1, tzinfo=UTC),
        updated=datetime(2020, 1, 2, tzinfo=UTC),
        source="fuzz",
        summary=summary,
        content_html=content,
        authors=(Author(name=name),),
        categories=(Category(slug="news", title=label),),
    )
    meta = FeedMeta(**{**_fields(META), "title": title, "description": summary, "author": name})
    # Not even RenderError: cleaning must leave nothing that fails the feed.
    atom, rss, data = render_atom(meta, [entry]), render_rss(meta, [entry]), render_json(meta, [entry])
    expected_title = clean(title).strip() or "(untitled)"
    atom_root = lxml.etree.fromstring(atom)
    assert atom_root.findtext(f"{ATOM}entry/{ATOM}title") == expected_title
    assert lxml.etree.fromstring(rss).findtext("channel/item/title") == expected_title
    assert json.loads(data)["items"][0]["title"] == expected_title
    assert feedparser.parse(atom).bozo == 0
    assert feedparser.parse(rss).bozo == 0
    assert (
        lxml.html.document_fromstring(render_entry_page(entry, site_title=name, language="en", base_url=BASE))
        is not None
    )


@settings(max_examples=100, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.timezones()))
@example(moment=datetime(2012, 3, 11, 2, 0, tzinfo=ZoneInfo("America/Adak")))  # inside a DST gap
def test_any_aware_datetime_renders_as_rfc3339_and_rfc822(moment: datetime) -> None:
    entry = Entry(
        id="tag:feeds.example.org,2020:when", title="When", link=BASE + "entries/when.html",
        published=moment, updated=moment, source="s",
    )  # fmt: skip
    meta = FeedMeta(**{**_fields(META), "updated": moment})
    atom = feedparser.parse(render_atom(meta, [entry]))
    rss = feedparser.parse(render_rss(meta, [entry]))
    assert atom.bozo == 0 and rss.bozo == 0
    item = json.loads(render_json(meta, [entry]))["items"][0]
    assert RFC3339.match(item["date_published"]), item["date_published"]
    # Instants compared as timestamps: Python never calls a time in a DST gap or fold equal across zones.
    assert datetime.fromisoformat(item["date_published"]).timestamp() == moment.timestamp()
    assert utc(atom.entries[0].updated_parsed).timestamp() == moment.replace(microsecond=0).timestamp()
    assert utc(rss.entries[0].published_parsed).timestamp() == moment.replace(microsecond=0).timestamp()


def _fields(meta: FeedMeta) -> dict[str, object]:
    return {name: getattr(meta, name) for name in FeedMeta.__dataclass_fields__}
