"""The floor for rendering: plain feedgen writing Atom and RSS for the same feeds, with no wrapper around it.

`feedgen_alone` is what a feedgen user who knows the library would write for the same output: one
generator per feed serving both formats (the cheapest way to get both), entries appended in order,
dates set, authors, contributors, categories and enclosures through feedgen's own calls, Dublin Core
creators in RSS. No character cleaning, no link repairs, no JSON Feed: that is the wrapper's work,
which bench/build.py measures against this.

Run alone: python bench/render_alone.py [--entries 10000] [--categories 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from feedgen.feed import FeedGenerator

from feeds.model import Author, Category, Enclosure, Entry

BASE_URL = "https://feeds.example.org/"


def _feed(slug: str, entries: Sequence[Entry]) -> FeedGenerator:
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.id(f"{BASE_URL}{slug}.atom")
    fg.title(f"Bench — {slug}")
    fg.subtitle(f"Bench — {slug}")
    fg.author({"name": "Bench"})
    fg.link(href=f"{BASE_URL}{slug}.atom", rel="self", type="application/atom+xml")
    fg.link(href=f"{BASE_URL}{slug}.html", rel="alternate", type="text/html")
    fg.language("en")
    fg.ttl(60)
    fg.updated(max((e.updated for e in entries), default=datetime(2000, 1, 1, tzinfo=UTC)))
    for entry in entries:
        fe = fg.add_entry(order="append")
        fe.guid(entry.id, permalink=entry.id == entry.link)
        fe.title(entry.title)
        fe.link(href=entry.link)
        fe.updated(entry.updated)
        fe.published(entry.published)
        if entry.summary:
            fe.summary(entry.summary)
        if entry.content_html:
            fe.content(entry.content_html, type="html")
        for author in entry.authors:
            fe.author(name=author.name)
            fe.dc.dc_creator(author.name)
        for contributor in entry.contributors:
            fe.contributor(name=contributor.name)
            fe.dc.dc_contributor(contributor.name)
        for category in entry.categories:
            fe.category(term=category.slug, label=category.title, scheme=BASE_URL)
        for enclosure in entry.enclosures:
            fe.enclosure(enclosure.url, str(enclosure.length), enclosure.type)
    return fg


def feedgen_alone(entries_by_feed: Mapping[str, Sequence[Entry]]) -> float:
    """Seconds plain feedgen takes to build and serialize Atom and RSS for every feed given (slug → entries)."""
    started = time.perf_counter()
    for slug, entries in entries_by_feed.items():
        fg = _feed(slug, entries)
        fg.atom_str(pretty=True)
        fg.rss_str(pretty=True)
    return time.perf_counter() - started


def synthetic(entries: int, categories: int) -> dict[str, list[Entry]]:
    """`entries` entries spread over `categories` feeds plus `all`, newest first, in the listing shapes."""
    start = datetime(2015, 1, 1, tzinfo=UTC)
    cats = [Category(slug=f"topic-{c}", title=f"Topic {c}") for c in range(categories)]
    everything = Category(slug="all", title="All")
    by_feed: dict[str, list[Entry]] = {c.slug: [] for c in cats}
    all_entries = []
    for n in range(entries):
        day = start + timedelta(hours=7 * n)
        cat = cats[n % categories]
        entry = Entry(
            id=f"tag:feeds.example.org,2015:bench/{n}",
            title=f"Item {n}: cooperatives, savings groups and the “social economy” in region {n % 97}",
            link=f"{BASE_URL}entries/bench/{n}.html",
            published=day,
            updated=day,
            source="bench",
            summary=f"Summary of item {n}. Members pooled their savings & opened a shared workshop.",
            content_html=f"<p>Item {n} &amp; its <em>story</em>.</p>" if n % 3 == 0 else "",
            authors=(Author(name="ILO Cooperatives Unit"),) if n % 2 else (),
            contributors=(Author(name=f"Interviewee {n}"),) if n % 10 == 0 else (),
            categories=(cat, everything),
            enclosures=(Enclosure(url=f"{BASE_URL}media/{n}.mp3", length=1000 + n, type="audio/mpeg"),)
            if n % 7 == 0
            else (),
        )
        by_feed[cat.slug].append(entry)
        all_entries.append(entry)
    out = {slug: entries_[::-1] for slug, entries_ in by_feed.items()}
    out["all"] = all_entries[::-1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--categories", type=int, default=20)
    args = parser.parse_args()
    by_feed = synthetic(args.entries, args.categories)
    print(f"feedgen alone: {feedgen_alone(by_feed):.2f} s for {sum(map(len, by_feed.values()))} feed entries")


if __name__ == "__main__":
    main()
