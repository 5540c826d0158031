"""Collation: merging a listing item with its page, category rules, order and cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feeds.adapters import ADAPTERS
from feeds.collate import ALL, Merged, categorize, category_list, merge, order
from feeds.config import parse
from feeds.model import Entry

DAY = datetime(2021, 10, 28, tzinfo=UTC)
SEEN = datetime(2026, 1, 1, tzinfo=UTC)


def item(**kw: Any) -> Entry:
    base: dict[str, Any] = {
        "id": "tag:e.org,2026:s:x",
        "title": "T",
        "link": "",
        "published": DAY,
        "updated": DAY,
        "source": "s",
    }
    base.update(kw)
    return Entry(**base)


def test_listing_item_and_page_become_one_entry() -> None:
    listed = item(
        id="tag:e.org,2026:news:k",
        source="news",
        summary="Short.",
        labels=("Spotlight",),
        match_key="sunghokim|2021-10-28",
    )
    page = item(
        id="tag:e.org,2026:pages:k",
        source="pages",
        summary="Standfirst.",
        content_html="<h3>Q?</h3><p>A.</p>",
        labels=("Spotlight",),
        match_key="sunghokim|2021-10-28",
    )
    other = item(id="tag:e.org,2026:news:other", source="news", match_key="other|2021-10-28")
    merged = merge([(listed, SEEN), (page, SEEN + timedelta(days=1)), (other, SEEN)])
    assert len(merged) == 2
    one = next(m for m in merged if m.entry.match_key.startswith("sunghokim"))
    assert one.entry.id == listed.id  # the id published first stays
    assert one.entry.content_html == page.content_html  # the page supplies the content
    assert one.sources == {"news", "pages"}


def test_same_id_from_two_feeds_is_published_once() -> None:
    merged = merge([(item(source="a"), SEEN), (item(source="b"), SEEN)])
    assert len(merged) == 1 and merged[0].sources == {"a", "b"}


def config(categories: str) -> Any:
    import tomllib

    raw = tomllib.loads(f"""
[site]
title = "T"
base_url = "https://e.org/"
{categories}
[[sources]]
name = "mapped"
adapter = "listing"
location = "a.txt"
categories = {{ "News" = "news", "Publication" = "reports" }}
[[sources]]
name = "plain"
adapter = "listing"
location = "b.txt"
""")
    return parse(raw, Path("config.toml"), ADAPTERS)


def test_category_rules() -> None:
    cfg = config("""
[[categories]]
slug = "news"
title = "News"
[[categories]]
slug = "labour"
title = "Labour"
keywords = ["child labour"]
[[categories]]
slug = "everything-plain"
title = "Plain"
sources = ["plain"]
""")
    entries = [
        Merged(
            entry=item(id="1", source="mapped", labels=("News",), title="Child labour in mines"),
            sources=frozenset({"mapped"}),
        ),
        Merged(
            entry=item(id="2", source="mapped", labels=("Publication",), summary="On child labourers"),
            sources=frozenset({"mapped"}),
        ),
        Merged(
            entry=item(id="3", source="plain", labels=("Spotlight Interviews with Co-operators",)),
            sources=frozenset({"plain"}),
        ),
        Merged(entry=item(id="4", source="plain"), sources=frozenset({"plain"})),
    ]
    feeds = categorize(entries, cfg.categories, cfg.sources)
    ids = {slug: [e.id for e in es] for slug, es in feeds.items()}
    assert ids == {
        "all": ["1", "2", "3", "4"],
        "news": ["1"],
        "labour": ["1"],  # "child labourers" is not the phrase "child labour"
        "reports": ["2"],
        "everything-plain": ["3", "4"],
        "spotlight-interviews-with-co-operators": ["3"],
    }
    first = feeds["all"][0]
    assert [c.slug for c in first.categories] == ["labour", "news"]
    listed = category_list(cfg.categories, (c for es in feeds.values() for e in es for c in e.categories))
    assert [c.slug for c in listed] == [
        "all",
        "news",
        "labour",
        "everything-plain",
        "reports",
        "spotlight-interviews-with-co-operators",
    ]
    assert listed[0] == ALL
    assert listed[-1].title == "Spotlight Interviews with Co-operators"


def test_categorize_gives_link_less_entries_their_page_link() -> None:
    cfg = config("")
    linked = item(id="1", source="plain", link="https://e.org/own")
    bare = item(id="2", source="plain", link="")
    entries = [Merged(entry=e, sources=frozenset({"plain"})) for e in (linked, bare)]
    pages = {"1": "https://feeds.e.org/entries/plain/1.html", "2": "https://feeds.e.org/entries/plain/2.html"}
    feeds = categorize(entries, cfg.categories, cfg.sources, links=pages)
    assert [e.link for e in feeds["all"]] == ["https://e.org/own", "https://feeds.e.org/entries/plain/2.html"]
    assert [e.link for e in categorize(entries, cfg.categories, cfg.sources)["all"]] == ["https://e.org/own", ""]


def test_order_is_newest_first_and_capped() -> None:
    a = item(id="a", published=DAY)
    b = item(id="b", published=DAY + timedelta(days=1))
    c = item(id="c", published=DAY)
    assert [e.id for e in order([a, b, c], 10)] == ["b", "a", "c"]
    assert [e.id for e in order([c, b, a], 2)] == ["b", "a"]


def test_tags_make_no_feed_unless_the_config_maps_them() -> None:
    import tomllib

    raw = tomllib.loads("""
[site]
title = "T"
base_url = "https://e.org/"
[[categories]]
slug = "housing"
title = "Housing"
types = ["housing"]
[[sources]]
name = "blog"
adapter = "feed"
location = "https://blog.e.org/feed.xml"
[[sources]]
name = "mapped"
adapter = "html"
location = "https://page.e.org/"
categories = { "Energy" = "energy" }
options = { item = "article", category = ".tag" }
[[sources]]
name = "listing"
adapter = "listing"
location = "a.txt"
""")
    cfg = parse(raw, Path("config.toml"))
    tags = ("Housing", "Energy", "Youth", "Week 3")
    entries = [
        Merged(entry=item(id="1", source="blog", tags=tags), sources=frozenset({"blog"})),
        Merged(entry=item(id="2", source="mapped", tags=tags), sources=frozenset({"mapped"})),
        Merged(entry=item(id="3", source="listing", labels=("Spotlight",)), sources=frozenset({"listing"})),
        # Stored before tags had a field of their own: a feed's categories as labels still make no feed.
        Merged(entry=item(id="4", source="blog", labels=("Youth",)), sources=frozenset({"blog"})),
    ]
    feeds = categorize(entries, cfg.categories, cfg.sources)
    assert {slug: [e.id for e in es] for slug, es in feeds.items()} == {
        "all": ["1", "2", "3", "4"],
        "housing": ["1", "2"],
        "energy": ["2"],
        "spotlight": ["3"],
    }
    assert feeds["all"][0].tags == tags  # still on the entry, for the renderer to show


def test_merged_entries_keep_the_tags_of_each() -> None:
    (one,) = merge([(item(source="a", tags=("Housing",)), SEEN), (item(source="b", tags=("Energy", "Housing")), SEEN)])
    assert one.entry.tags == ("Housing", "Energy")


def test_types_and_label_maps_match_other_spellings_of_a_label() -> None:
    cfg = config("""
[[categories]]
slug = "spotlight"
title = "Spotlight"
types = ["Spotlight Interviews with Co-operators"]
[[categories]]
slug = "coops"
title = "Cooperatives"
types = ["co-operative"]
""")
    labels = {
        "1": "Spotlight Interviews with Cooperators",
        "2": "SPOTLIGHT  interviews with co\u2011operators.",  # a non-breaking hyphen, a full stop, two spaces
        "3": "Cooperative",
        "4": "Co-Operative",
        "5": "Spotlight Interviews with Co-operatives",  # another series: no match
    }
    entries = [
        Merged(entry=item(id=i, source="plain", labels=(t,)), sources=frozenset({"plain"})) for i, t in labels.items()
    ]
    mapped = [
        Merged(entry=item(id=f"m{i}", source="mapped", labels=(t,)), sources=frozenset({"mapped"}))
        for i, t in enumerate(["news", "NEWS!", "Pub-lication", "Newsletter"])
    ]
    feeds = categorize([*entries, *mapped], cfg.categories, cfg.sources)
    ids = {slug: [e.id for e in es] for slug, es in feeds.items()}
    assert ids["spotlight"] == ["1", "2"]
    assert ids["coops"] == ["3", "4"]
    # the source's map too: "news", "NEWS!" go where "News" goes; an unmapped label makes no feed
    assert ids["news"] == ["m0", "m1"] and ids["reports"] == ["m2"]
    # a spelling that a configured category claims derives no feed of its own
    assert set(ids) == {"all", "spotlight", "coops", "news", "reports", "spotlight-interviews-with-co-operatives"}
