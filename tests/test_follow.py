"""Following each listing item to its own page: entries, requests, ids, failures, and the config keys."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import lxml.html
import pytest
from daemon_helpers import Run, metric_samples, wait_for
from follow_helpers import DATA, SIZE_CAP, Site, serve_site
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds import __version__, pipeline
from feeds.config import Config
from feeds.errors import ConfigError
from feeds.fetch import Fetcher, FetchLimits, user_agent
from feeds.store import Store

NOW = datetime(2024, 3, 20, 9, 0, tzinfo=UTC)
EXPECTED = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
LIMITS = FetchLimits(read_timeout=0.5, total_timeout=5, retries=0, max_bytes=SIZE_CAP)


def source_toml(url: str, follow: str | None = "auto", extra: str = "") -> str:
    follow_line = f'follow = "{follow}"\n' if follow else ""
    return f"""
[[categories]]
slug = "news"
title = "News"
types = ["News"]

[[sources]]
name = "coops"
adapter = "listing"
location = "{url}"
{follow_line}{extra}"""


@pytest.fixture
def site() -> Iterator[Site]:
    with serve_site() as running:
        yield running


def forget(tmp_path: Path) -> None:
    """Remove the state and output of an earlier build: the next one starts afresh."""
    for old in ("state", "output"):
        for path in sorted((tmp_path / old).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()


def fetcher() -> Fetcher:
    return Fetcher(user_agent=user_agent(__version__, ""), limits=LIMITS)


def build(config: Config, now: datetime = NOW) -> pipeline.BuildReport:
    with fetcher() as client:
        return pipeline.build(config, now, fetcher=client)


def entries(config: Config) -> list[feedparser.FeedParserDict]:
    parsed = feedparser.parse((config.site.output / "all.atom").read_bytes())
    assert parsed.bozo == 0
    return list(parsed.entries)


def content_of(entry: feedparser.FeedParserDict) -> str:
    return str(entry.content[0].value) if "content" in entry else ""


def by_link(config: Config, site: Site, path: str) -> feedparser.FeedParserDict:
    found = [e for e in entries(config) if e.link == site.url(path)]
    assert len(found) == 1, path
    return found[0]


def test_followed_pages_give_the_entries_their_content(site: Site, make_config: Callable[..., Config]) -> None:
    config = make_config(source_toml(site.url("/listing.html")))
    report = build(config)
    (source,) = report.sources
    assert not source.failed
    assert source.entries == len(EXPECTED["titles"])
    assert sorted(e.title for e in entries(config)) == sorted(EXPECTED["titles"])
    for path, questions in EXPECTED["interview_questions"].items():
        tree = lxml.html.fragment_fromstring(content_of(by_link(config, site, path)), create_parent="div")
        assert [h.text_content() for h in tree.iter("h3")] == questions
        assert [li.text_content() for li in tree.iter("li")] == EXPECTED["list_items"][path]
    article = EXPECTED["article"]
    entry = by_link(config, site, article["path"])
    body = content_of(entry)
    assert all(text in body for text in article["body_has"])
    assert not any(text in body for text in article["chrome_never"])
    assert entry.author == article["author"]
    assert f'src="{site.url(article["image"])}"' in body  # its lead picture, made absolute
    assert "<h1" not in body  # the headline is the title, not a line of the content
    # The listing's summary stays; an item without one takes the page's standfirst.
    jonas = by_link(config, site, "/interviews/jonas-berg.html")
    assert jonas.summary == EXPECTED["jonas_summary"]


def test_a_pdf_becomes_an_enclosure_in_every_format(site: Site, make_config: Callable[..., Config]) -> None:
    config = make_config(source_toml(site.url("/listing.html")))
    build(config)
    pdf_url = site.url("/publications/care-cooperatives.pdf")
    length = str(len(site.pages["/publications/care-cooperatives.pdf"][0]))
    atom = by_link(config, site, "/publications/care-cooperatives.pdf")
    enclosures = [link for link in atom.links if link.rel == "enclosure"]
    assert [(e.href, e.type, e.length) for e in enclosures] == [(pdf_url, "application/pdf", length)]
    rss = feedparser.parse((config.site.output / "all.rss").read_bytes())
    (item,) = [e for e in rss.entries if e.link == pdf_url]
    assert [(e.href, e.type, e.length) for e in item.enclosures] == [(pdf_url, "application/pdf", length)]
    feed = json.loads((config.site.output / "all.json").read_text(encoding="utf-8"))
    (json_item,) = [i for i in feed["items"] if i.get("url") == pdf_url]
    assert json_item["attachments"] == [{"url": pdf_url, "mime_type": "application/pdf", "size_in_bytes": int(length)}]
    # Told by its headers: the item keeps its summary, and no content was made of the PDF's bytes.
    assert content_of(atom) == ""


def test_failing_pages_leave_their_items_from_the_listing_as_warnings(
    site: Site, make_config: Callable[..., Config]
) -> None:
    config = make_config(source_toml(site.url("/listing.html")))
    report = build(config)
    (source,) = report.sources
    assert not source.failed and not report.failed
    warnings = source.warnings.splitlines()
    for path in ("/news/withdrawn-announcement.html", "/news/slow-server.html", "/news/very-long-page.html"):
        assert any(site.url(path) in line for line in warnings), path
        entry = by_link(config, site, path)
        assert content_of(entry) == ""  # its summary, said once
        assert entry.summary
    assert any("404" in line for line in warnings)
    assert any(f"{SIZE_CAP}-byte limit" in line for line in warnings)
    assert source.pages["missing"] == 1
    assert source.pages["ok"] == 3
    assert source.pages["enclosure"] == 1
    assert source.pages["robots"] == 1
    with Store(config.site.state / pipeline.DB_NAME) as store:
        assert store.source("coops").last_warning == source.warnings


def test_a_second_pass_downloads_no_page_body(site: Site, make_config: Callable[..., Config]) -> None:
    config = make_config(source_toml(site.url("/listing.html")))
    build(config)
    first = (config.site.output / "all.atom").read_bytes()
    site.clear()
    build(config, NOW + timedelta(minutes=30))
    # Nothing changed: the listing answers 304, and no page is asked for at all.
    assert [(s.path, s.conditional, s.status) for s in site.seen] == [("/listing.html", True, 304)]
    site.clear()
    # Past follow_refresh every page read before is checked again, conditionally: 304s, no bodies.
    report = build(config, NOW + timedelta(days=8))
    pages = [s for s in site.seen if s.path != "/listing.html"]
    good = {"/interviews/amina-diallo.html", "/interviews/jonas-berg.html", "/news/river-ferry-cooperative.html"}
    good.add("/publications/care-cooperatives.pdf")
    assert {s.path for s in pages if s.status == 304} == good
    assert all(s.conditional and s.body_bytes == 0 for s in pages if s.path in good)
    assert report.sources[0].pages["not-modified"] == len(good)
    assert (config.site.output / "all.atom").read_bytes() == first


def test_a_changed_listing_item_fetches_its_page_again(site: Site, make_config: Callable[..., Config]) -> None:
    config = make_config(source_toml(site.url("/listing.html")))
    build(config)
    body, media_type = site.pages["/listing.html"]
    site.pages["/listing.html"] = (body.replace(b"Boat crews who used", b"Boat crews that used"), media_type)
    site.clear()
    build(config, NOW + timedelta(hours=1))
    ferry = site.requests("/news/river-ferry-cooperative.html")
    assert [(s.conditional, s.status) for s in ferry] == [(True, 304)]
    assert not site.requests("/interviews/amina-diallo.html")  # its item did not change
    assert "bought the boats together" in content_of(by_link(config, site, "/news/river-ferry-cooperative.html"))


def test_a_page_read_before_keeps_its_content_when_it_fails(site: Site, make_config: Callable[..., Config]) -> None:
    config = make_config(source_toml(site.url("/listing.html")))
    build(config)
    before = content_of(by_link(config, site, "/interviews/amina-diallo.html"))
    del site.pages["/interviews/amina-diallo.html"]
    report = build(config, NOW + timedelta(days=8))
    assert not report.failed
    assert any("amina-diallo.html" in line for line in report.sources[0].warnings.splitlines())
    assert content_of(by_link(config, site, "/interviews/amina-diallo.html")) == before


def test_ids_are_the_same_with_and_without_follow(
    site: Site, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    followed = make_config(source_toml(site.url("/listing.html")))
    build(followed)
    with_follow = {e.link: e.id for e in entries(followed)}
    plain = make_config(source_toml(site.url("/listing.html"), follow=None))
    forget(tmp_path)
    build(plain)
    without = {e.link: e.id for e in entries(plain)}
    assert with_follow == without
    assert len(without) == len(EXPECTED["titles"])


def test_robots_txt_is_obeyed_unless_the_source_says_not(
    site: Site, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    path = EXPECTED["robots_disallowed"]
    config = make_config(source_toml(site.url("/listing.html")))
    report = build(config)
    assert not site.requests(path)
    assert [s.status for s in site.requests("/robots.txt")] == [200]  # read once for the pass's many pages
    assert any("robots.txt" in line and path in line for line in report.sources[0].warnings.splitlines())
    assert content_of(by_link(config, site, path)) == ""
    forget(tmp_path)
    own = make_config(source_toml(site.url("/listing.html"), extra="follow_robots = false\n"))
    build(own)
    assert [s.status for s in site.requests(path)] == [200]
    assert "secretariat" in content_of(by_link(own, site, path))


def test_a_missing_page_is_retried_with_backoff_and_dropped_after_three_404s(
    site: Site, make_config: Callable[..., Config]
) -> None:
    path = "/news/withdrawn-announcement.html"
    config = make_config(source_toml(site.url("/listing.html")))
    passes = [NOW, NOW + timedelta(minutes=30), NOW + timedelta(hours=1), NOW + timedelta(hours=2)]
    passes += [NOW + timedelta(hours=3), NOW + timedelta(days=30)]
    asked = []
    for when in passes:
        site.clear()
        report = build(config, when)
        assert not report.failed
        asked.append(len(site.requests(path)))
        assert by_link(config, site, path).summary  # published from the listing all along
    # Asked at once, after an hour, after two more; not before its time, and never again after three 404s.
    assert asked == [1, 0, 1, 0, 1, 0]


def test_follow_limit_leaves_the_rest_for_later_passes(site: Site, make_config: Callable[..., Config]) -> None:
    config = make_config(source_toml(site.url("/listing.html"), extra="follow_limit = 2\n"))
    report = build(config)
    assert sum(report.sources[0].pages.values()) == 2
    # The two newest items were followed first.
    assert site.requests("/interviews/amina-diallo.html") and site.requests("/interviews/jonas-berg.html")
    assert not site.requests("/news/river-ferry-cooperative.html")
    report = build(config, NOW + timedelta(minutes=5))
    assert sum(report.sources[0].pages.values()) == 2
    assert site.requests("/news/river-ferry-cooperative.html")
    assert "bought the boats together" in content_of(by_link(config, site, "/news/river-ferry-cooperative.html"))


def test_build_and_validate_from_the_command_line(site: Site, make_config: Callable[..., Config]) -> None:
    del site.pages["/news/very-long-page.html"]
    site.slow.clear()
    config = make_config(source_toml(site.url("/listing.html")))
    run = [sys.executable, "-m", "feeds"]
    built = subprocess.run([*run, "build", "--config", str(config.path)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    assert "404" in built.stdout  # the gone page is reported, as a warning of its source
    status = subprocess.run([*run, "status", "--config", str(config.path)], capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stdout
    assert "warning: page " in status.stdout and "withdrawn-announcement.html answered HTTP 404" in status.stdout
    checked = subprocess.run(
        [*run, "validate", "--config", str(config.path)], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout
    assert "0 problems" in checked.stdout
    assert "bought the boats together" in content_of(by_link(config, site, "/news/river-ferry-cooperative.html"))


@pytest.mark.parametrize(
    ("extra", "key", "said"),
    [
        ('follow = "everything"\n', "sources[0].follow", "must be one of"),
        ("follow = true\n", "sources[0].follow", "must be a string"),
        ('follow = "auto"\nfollow_limit = 0\n', "sources[0].follow_limit", "at least 1"),
        ('follow = "auto"\nfollow_refresh = "weekly"\n', "sources[0].follow_refresh", '"every N"'),
        ('follow = "auto"\nfollow_refresh = "0 6 * * *"\n', "sources[0].follow_refresh", "not a period"),
        ('follow = "auto"\nfollow_robots = "no"\n', "sources[0].follow_robots", "must be a boolean"),
    ],
)
def test_follow_keys_are_checked(make_config: Callable[..., Config], extra: str, key: str, said: str) -> None:
    body = f'\n[[sources]]\nname = "coops"\nadapter = "listing"\nlocation = "http://127.0.0.1:9/l.html"\n{extra}'
    with pytest.raises(ConfigError) as caught:
        make_config(body)
    assert key in str(caught.value) and said in str(caught.value)


def test_follow_is_only_for_sources_that_link_to_pages(make_config: Callable[..., Config]) -> None:
    body = '\n[[sources]]\nname = "one"\nadapter = "interview"\nlocation = "http://127.0.0.1:9/p.html"\n'
    body += 'follow = "auto"\n'
    with pytest.raises(ConfigError) as caught:
        make_config(body)
    assert "sources[0].follow" in str(caught.value) and '"interview"' in str(caught.value)


def test_follow_defaults(make_config: Callable[..., Config]) -> None:
    config = make_config(source_toml("http://127.0.0.1:9/l.html", follow="article"))
    (source,) = config.sources
    assert (source.follow, source.follow_limit, source.follow_refresh, source.follow_robots) == (
        "article",
        50,
        timedelta(days=7),
        True,
    )


_HTML = st.one_of(
    st.text(max_size=400),
    st.lists(
        st.tuples(
            st.sampled_from(["p", "h1", "h2", "li", "div", "nav", "article", "main", "strong", "script", "table"]),
            st.text(max_size=60),
        ),
        max_size=12,
    ).map(lambda parts: "<html><body>" + "".join(f"<{t}>{x}</{t}>" for t, x in parts) + "</body></html>"),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=_HTML)
def test_any_html_as_a_followed_page_never_fails_the_other_items(
    page: str, site: Site, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    site.pages["/interviews/jonas-berg.html"] = (page.encode("utf-8", "surrogatepass"), "text/html; charset=utf-8")
    site.slow.clear()
    forget(tmp_path)
    config = make_config(source_toml(site.url("/listing.html")))
    report = build(config)
    assert not report.failed
    assert len(entries(config)) == len(EXPECTED["titles"])
    assert "bought the boats together" in content_of(by_link(config, site, "/news/river-ferry-cooperative.html"))
    assert by_link(config, site, "/interviews/jonas-berg.html").id == site.url("/interviews/jonas-berg.html")


def test_the_daemon_follows_pages_and_counts_them_by_result(site: Site, start_daemon: Callable[..., Run]) -> None:
    site.slow.clear()
    sources = f'\n[[sources]]\nname = "coops"\nadapter = "listing"\nlocation = "{site.url("/listing.html")}"\n'
    run = start_daemon(sources + 'follow = "auto"\n', {})

    def counted() -> dict[str, float] | None:
        samples = metric_samples(run.get("metrics").text)
        found = {
            dict(labels)["result"]: value
            for (name, labels), value in samples.items()
            if name == "feeds_page_fetches_total" and dict(labels).get("source") == "coops"
        }
        return found or None

    results = wait_for(counted)
    # Two interviews, the article, its copy no longer slow, and the long page, under the daemon's own size cap.
    assert results["ok"] == 5
    assert results["missing"] == 1 and results["enclosure"] == 1 and results["robots"] == 1
    atom = wait_for(lambda: ((r := run.get("all.atom")).status_code == 200 and r.text) or None)
    assert "What does the union offer its members?" in atom
    assert "secretariat" not in atom
