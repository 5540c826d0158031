"""Listing layouts of the live pages: photo credits, month headings, bullets, places, undated items, spellings.

Each fixture comes as text and as HTML (with the site's header, breadcrumb, figures, asides and footer),
with its expected values beside it; each is also built and validated through the `feeds` command, and a
layout the adapter cannot read in full is reported as a warning with its line numbers, everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from site_helpers import DATA, NOW

from feeds import cli, pipeline
from feeds.adapters.listing import Listing
from feeds.collate import label_key
from feeds.config import Config, SourceConfig, parse
from feeds.errors import SourceError, SourceWarning
from feeds.model import Document, Entry, slugify
from feeds.schedule import Daemon

LAYOUTS = ["credits", "months", "bullets", "places", "undated", "spellings"]
ZONE = "Europe/Zurich"
PAGE_URL = "https://www.ilo.org/topics/cooperatives/news.htm"


def expected(name: str) -> Any:
    return json.loads((DATA / f"listing-{name}.expected.json").read_text(encoding="utf-8"))


def make_source() -> SourceConfig:
    raw = {
        "site": {"title": "T", "base_url": "https://feeds.example.org/"},
        "sources": [{"name": "s", "adapter": "listing", "location": "x.txt", "time_zone": ZONE}],
    }
    return parse(raw, Path("config.toml")).sources[0]


def document(name: str, ext: str) -> Document:
    content = (DATA / f"listing-{name}.{ext}").read_bytes()
    if ext == "html":
        return Document(content=content, url=PAGE_URL, media_type="text/html")
    return Document(content=content, url="file:///data/listing.txt")


def read(doc: Document) -> tuple[list[Entry], SourceError | None]:
    entries: list[Entry] = []
    try:
        for entry in Listing().parse(doc, make_source()):
            entries.append(entry)
    except SourceError as exc:
        return entries, exc
    return entries, None


# --- the adapter, on each layout, as text and as HTML ---------------------------------------------


@pytest.mark.parametrize("ext", ["txt", "html"])
@pytest.mark.parametrize("name", LAYOUTS)
def test_every_item_of_the_layout_is_read(name: str, ext: str) -> None:
    entries, problem = read(document(name, ext))
    assert problem is None, problem
    want = expected(name)["entries"]
    assert [e.title for e in entries] == [w["title"] for w in want]
    assert [list(e.labels) for e in entries] == [w["labels"] for w in want]
    assert [e.summary for e in entries] == [w["summary"] for w in want]
    assert [("" if e.undated else e.published.date().isoformat()) for e in entries] == [w["published"] for w in want]
    if ext == "html":
        assert [e.link for e in entries] == [w["html_link"] for w in want]


def test_credits_are_never_a_type_a_title_or_a_summary() -> None:
    for ext in ("txt", "html"):
        entries, _ = read(document("credits", ext))
        texts = [text for e in entries for text in (e.title, e.summary, *e.labels)]
        assert len(entries) == 4
        assert not [t for t in texts if "©" in t or "(c)" in t or "Photo" in t or "Crozet" in t]


def test_the_place_after_a_date_is_never_in_the_title() -> None:
    for ext in ("txt", "html"):
        entries, _ = read(document("places", ext))
        assert not [e.title for e in entries if "Vientiane" in e.title or "Panamá" in e.title]
        assert entries[0].summary.startswith("Vientiane, Lao People's Democratic Republic — ")


def test_undated_items_have_ids_without_a_date_that_do_not_move() -> None:
    first, _ = read(document("undated", "txt"))
    again, _ = read(document("undated", "txt"))
    undated = [e for e in first if e.undated]
    assert [e.id for e in undated] == [e.id for e in again if e.undated]
    assert undated[1].id == "tag:feeds.example.org,2026:s:undated/regional-forum-on-social-enterprise-finance"
    assert all(e.match_key == "" for e in undated)
    html, _ = read(document("undated", "html"))
    assert next(e.id for e in html if e.undated) == "https://www.ilo.org/events/coop-day-2024"  # a permalink wins


@pytest.mark.parametrize("ext", ["txt", "html"])
def test_a_layout_read_in_part_warns_with_its_line_numbers(ext: str) -> None:
    entries, problem = read(document("unread", ext))
    want = expected("unread")
    assert [e.title for e in entries] == want["titles"][ext]
    assert isinstance(problem, SourceWarning)
    lines = want["unread_lines"][ext]
    assert problem.where == "s"
    assert problem.what.endswith("lines " + ", ".join(map(str, lines)))
    assert problem.what.startswith(f"{len(lines)} item-like lines left unread")


def test_unread_lines_inside_an_item_are_reported_too() -> None:
    text = "Heading\n  1. News\n  A title\n  10 January 2022\n  - a bulleted line in the summary\n  3 May 2021\n"
    entries, problem = read(Document(content=text.encode(), url="file:///x"))
    assert [e.title for e in entries] == ["A title"]
    assert isinstance(problem, SourceWarning) and problem.what.endswith("lines 5, 6")


def test_an_unreadable_item_and_unread_lines_make_one_error() -> None:
    text = "H\n  1. News\n  A\n  31 February 2021\n  2. News\n  B\n  1 May 2021\n  9 May 2021\n"
    entries, problem = read(Document(content=text.encode(), url="file:///x"))
    assert [e.title for e in entries] == ["B"]
    assert problem is not None and not isinstance(problem, SourceWarning)
    assert "no day 31" in problem.what and problem.what.endswith("also left unread: line 8")


@pytest.mark.parametrize(
    "text",
    [
        "Heading\n- a point\n- another point\n",
        "Contents\n  1. Introduction to the report\n  2. Findings of the survey\n",
    ],
)
def test_numbered_or_bulleted_prose_without_a_date_is_no_listing(text: str) -> None:
    with pytest.raises(SourceError, match=r"^s: no items found"):
        list(Listing().parse(Document(content=text.encode(), url="file:///x"), make_source()))


@pytest.mark.parametrize("line", ["Autumn 2021", "Sometime in 2021", "Q3 2021"])
def test_a_date_in_words_is_an_error_not_a_summary(line: str) -> None:
    text = f"H\n  1. News\n  An item\n  {line}\n  2. News\n  Another item\n  1 May 2021\n"
    entries, problem = read(Document(content=text.encode(), url="file:///x"))
    assert [e.title for e in entries] == ["Another item"]
    assert problem is not None and problem.what.startswith('no date in this item ("News / An item")')


# --- one-format shapes: cards, tables, French and Spanish pages, worded dates, a second list ---------

SHAPES: dict[str, dict[str, Any]] = json.loads((DATA / "listing-shapes.expected.json").read_text(encoding="utf-8"))


def shape_document(name: str) -> Document:
    media_type = "text/html" if name.endswith(".html") else "text/plain"
    return Document(content=(DATA / name).read_bytes(), url=SHAPES[name]["url"], media_type=media_type)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_item_of_the_shape_is_read(name: str) -> None:
    entries, problem = read(shape_document(name))
    want = SHAPES[name]
    assert [
        {
            "title": e.title,
            "labels": list(e.labels),
            "published": "" if e.undated else e.published.date().isoformat(),
            "summary": e.summary,
            "link": e.link,
        }
        for e in entries
    ] == want["entries"]
    if "warning" in want:
        assert isinstance(problem, SourceWarning) and problem.what == want["warning"]
    else:
        assert problem is None, problem


def test_the_windows_rendering_really_has_its_bytes() -> None:
    raw = (DATA / "listing-noticias.txt").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert "\u00a0".encode() in raw and b"\t" in raw


def test_sidebars_pagers_and_read_more_links_are_no_content() -> None:
    entries, _ = read(shape_document("listing-cards.html"))
    texts = " ".join(text for e in entries for text in (e.title, e.summary, *e.labels))
    for chrome in ("General Conference", "Most read", "Read more", "Next", "Last", "©", "Skip to"):
        assert chrome not in texts
    # The most-read box repeats an item of the page: it is still one entry.
    assert len([e for e in entries if e.title.startswith("Coffee cooperatives")]) == 1


def test_a_page_wrapper_named_after_its_sidebar_is_not_chrome() -> None:
    page = (
        '<body class="layout-sidebar-first"><div class="page has-sidebar"><main><h1>News</h1><ul><li><h3>'
        '<a href="/a">A title</a></h3><time datetime="2022-06-02">2 June 2022</time></li></ul></main>'
        '<div class="region-sidebar"><ul><li><a href="/b">Most read item</a> 3 June 2022</li></ul></div></div></body>'
    )
    entries, problem = read(Document(content=page.encode(), url=PAGE_URL, media_type="text/html"))
    assert problem is None and [e.title for e in entries] == ["A title"]


def test_a_table_read_from_a_file_keeps_its_types_and_titles() -> None:
    # Without a web address the relative links go, and with them what marked the title cell.
    content = (DATA / "listing-table.html").read_bytes()
    entries, problem = read(Document(content=content, url="file:///data/noticias.html", media_type="text/html"))
    want = SHAPES["listing-table.html"]["entries"]
    assert problem is None
    assert [(e.title, list(e.labels), e.link) for e in entries] == [(w["title"], w["labels"], "") for w in want]


@pytest.mark.parametrize(
    "title",
    ["More women lead savings cooperatives", "Next steps for the cooperative law", "Read more, learn more: a guide"],
)
def test_a_title_that_opens_like_a_link_word_stays_a_title(title: str) -> None:
    page = f'<ul><li><h3><a href="/a">{title}</a></h3><p>A teaser.</p><p>2 June 2022</p></li></ul>'
    entries, problem = read(Document(content=page.encode(), url=PAGE_URL, media_type="text/html"))
    assert problem is None and [(e.title, e.summary) for e in entries] == [(title, "A teaser.")]


@pytest.mark.parametrize(
    "line", ["Last updated 2 June 2022", "Mis à jour le 3 mars 2021", "Actualizado: 2 de junio de 2022"]
)
def test_a_date_behind_unknown_words_is_an_error_not_a_summary(line: str) -> None:
    text = f"H\n  1. News\n  An item\n  {line}\n  2. News\n  Another item\n  1 May 2021\n"
    entries, problem = read(Document(content=text.encode(), url="file:///x"))
    assert [e.title for e in entries] == ["Another item"]
    assert problem is not None and not isinstance(problem, SourceWarning)
    assert problem.where == "s line 4" and problem.what.startswith("cannot tell the date from the words before it")


# --- the whole path: feeds build, feeds validate, feedparser -------------------------------------

CATEGORIES = """
[[categories]]
slug = "spotlight"
title = "Spotlight interviews"
types = ["Spotlight Interviews with Co-operators"]

[[categories]]
slug = "coop-news"
title = "Cooperative news"
types = ["Co-operative news"]
"""


def _sources() -> str:
    body = CATEGORIES
    for name in [*LAYOUTS, "unread"]:
        for ext in ("txt", "html"):
            body += f'\n[[sources]]\nname = "{name}-{ext}"\nadapter = "listing"\nlocation = "listing-{name}.{ext}"\n'
    return body


def _files() -> dict[str, Path | str]:
    return {f"listing-{n}.{ext}": DATA / f"listing-{n}.{ext}" for n in [*LAYOUTS, "unread"] for ext in ("txt", "html")}


def feeds_command(config: Config, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m feeds` as a user runs it (PYTHONPATH is inherited, so this package is the one run)."""
    env = {**os.environ, "PYTHONUTF8": "1"}
    command = [sys.executable, "-m", "feeds", *args, "--config", str(config.path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)


def parsed(path: Path) -> feedparser.FeedParserDict:
    result = feedparser.parse(path.read_bytes())
    assert result.bozo == 0, (path.name, result.get("bozo_exception"))
    return result


def test_every_layout_builds_validates_and_reads_back(make_config: Any) -> None:
    config = make_config(_sources(), _files())
    before = datetime.now(UTC).replace(microsecond=0)
    build = feeds_command(config, "build")
    after = datetime.now(UTC)
    assert build.returncode == 0, build.stdout + build.stderr
    assert "error:" not in build.stdout
    validate = feeds_command(config, "validate")
    assert validate.returncode == 0, validate.stdout
    assert validate.stdout.rstrip().endswith(" 0 problems")

    out = config.site.output
    for path in [*out.glob("*.atom"), *out.glob("*.rss")]:
        parsed(path)
    every = parsed(out / "all.atom").entries
    titles = {e.title for e in every}
    for name in LAYOUTS:
        assert {w["title"] for w in expected(name)["entries"]} <= titles, name
    # The text and the HTML rendering of one item are one entry (same title, same day).
    assert len([e for e in every if e.title == "Savings groups in Savannakhet register as cooperatives"]) == 1

    # Undated items carry the time they were first seen, a time of this build.
    undated = [w["title"] for w in expected("undated")["entries"] if not w["published"]]
    for entry in every:
        if entry.title in undated:
            published = datetime(*entry.published_parsed[:6], tzinfo=UTC)
            assert before <= published <= after, entry.title

    # Spellings of one type join the category that names one of them; credits and other spellings make no feed.
    spotlight = parsed(out / "spotlight.atom").entries
    every_expected = [w for name in LAYOUTS for w in expected(name)["entries"]]
    assert sorted(e.title for e in spotlight) == sorted(
        w["title"] for w in every_expected if w["labels"] and label_key(w["labels"][0]).startswith("spotlight")
    )
    assert len(spotlight) == 4
    assert len(parsed(out / "coop-news.atom").entries) == 2
    claimed = {label_key(t) for t in ("Spotlight Interviews with Co-operators", "Co-operative news")}
    labels = {label for name in LAYOUTS for w in expected(name)["entries"] for label in w["labels"]}
    derived = {slugify(label) for label in labels if label_key(label) not in claimed}
    assert {p.stem for p in out.glob("*.atom")} == {"all", "spotlight", "coop-news", *derived}


def test_every_shape_builds_validates_and_reads_back(make_config: Any) -> None:
    names = sorted(SHAPES)
    body = "".join(
        f'\n[[sources]]\nname = "{name.replace(".", "-")}"\nadapter = "listing"\nlocation = "{name}"\n'
        for name in names
    )
    config = make_config(body, {name: DATA / name for name in names})
    build = feeds_command(config, "build")
    assert build.returncode == 0, build.stdout + build.stderr
    assert "error:" not in build.stdout
    # The one shape read in part says so, with its lines; the others read in full.
    warnings = [line.strip() for line in build.stdout.splitlines() if line.strip().startswith("warning:")]
    assert warnings == [f"warning: listing-mostread-txt: {SHAPES['listing-mostread.txt']['warning']}"]
    validate = feeds_command(config, "validate")
    assert validate.returncode == 0, validate.stdout
    assert validate.stdout.rstrip().endswith(" 0 problems")

    out = config.site.output
    for path in [*out.glob("*.atom"), *out.glob("*.rss")]:
        parsed(path)
    titles = [e.title for e in parsed(out / "all.atom").entries]
    # An item on two pages (a card, and the same news in another rendering) is one entry.
    assert sorted(titles) == sorted({w["title"] for name in names for w in SHAPES[name]["entries"]})


def test_an_undated_item_keeps_its_date_and_id_on_later_builds(make_config: Any) -> None:
    config = make_config(
        '[[sources]]\nname = "events"\nadapter = "listing"\nlocation = "events.txt"\n',
        {"events.txt": DATA / "listing-undated.txt"},
    )
    assert feeds_command(config, "build").returncode == 0
    first = {e.id: e.published for e in parsed(config.site.output / "all.atom").entries}
    # A changed page is read again in full; the announced items are the same items.
    with (config.site.output.parent / "events.txt").open("a", encoding="utf-8") as page:
        page.write("\n  5. News\n\n     A further item\n\n     05 April 2024\n")
    assert feeds_command(config, "build").returncode == 0
    again = {e.id: e.published for e in parsed(config.site.output / "all.atom").entries}
    assert len(again) == len(first) + 1
    assert {i: again[i] for i in first} == first


# --- nothing lost silently: build, check, status, the log, the metric ----------------------------

UNREAD = '[[sources]]\nname = "archive"\nadapter = "listing"\nlocation = "archive.txt"\n'
WARNING = (
    "archive: 4 item-like lines left unread (a date, an item number or a bullet that no item took): "
    "lines 17, 21, 23, 27"
)


def test_the_warning_is_in_build_check_status_and_the_log(
    make_config: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(UNREAD, {"archive.txt": DATA / "listing-unread.txt"})
    caplog.set_level(logging.WARNING, logger="feeds")
    assert cli.main(["build", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "source archive: read, 2 entries" in out
    assert f"  warning: {WARNING}" in out
    assert any(r.levelno == logging.WARNING and WARNING in r.getMessage() for r in caplog.records)

    # An unchanged document still holds the lines: the warning stands, from the store.
    assert cli.main(["build", "--config", str(config.path)]) == 0
    assert f"  warning: {WARNING}" in capsys.readouterr().out

    assert cli.main(["check", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "source archive: ok, 2 entries" in out and f"  warning: {WARNING}" in out

    assert cli.main(["status", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out
    assert "ok, 1 warning" in out and f"    warning: {WARNING}" in out

    # Once the page is repaired, a read of it clears the warning.
    fixed = (DATA / "listing-unread.txt").read_text(encoding="utf-8").replace("Older news", "December 2021")
    (config.path.parent / "archive.txt").write_text(fixed, encoding="utf-8")
    assert cli.main(["build", "--config", str(config.path)]) == 0
    assert "warning" not in capsys.readouterr().out
    with pipeline.open_store(config) as store:
        assert store.source("archive").last_warning == ""


def test_the_daemon_counts_and_shows_the_warning(make_config: Any, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = make_config(
        UNREAD + '\n[[sources]]\nname = "clean"\nadapter = "listing"\nlocation = "clean.txt"\n',
        {"archive.txt": DATA / "listing-unread.txt", "clean.txt": DATA / "listing-months.txt"},
    )
    caplog.set_level(logging.INFO, logger="feeds")
    daemon = Daemon(config.path, port=port, clock=lambda: NOW)
    daemon.start()
    try:
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        status = httpx.get(f"http://127.0.0.1:{port}/status", timeout=10).text
    finally:
        daemon.stop()
    assert 'feeds_source_warnings{source="archive"} 1.0' in metrics
    assert 'feeds_source_warnings{source="clean"} 0.0' in metrics
    assert "ok, 1 warning" in status and "lines 17, 21, 23, 27" in status
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=source_warning ")]
    assert logged == [f'event=source_warning source=archive warning="{WARNING}"']
