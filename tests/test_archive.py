"""RFC 5005 archives: the chain from the current feed holds every entry once, and full pages never change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import feedparser
from site_helpers import NOW, SITE

from feeds import pipeline
from feeds.config import Config

BODY = """
[[sources]]
name = "news"
adapter = "listing"
location = "news.txt"
"""
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September"]


def listing(count: int, edited: int | None = None) -> str:
    lines = ["News", ""]
    for n in range(1, count + 1):
        summary = f"Item {n} in brief." + (" Corrected." if n == edited else "")
        lines += [
            f"  {n}. News",
            "",
            f"    Cooperative story {n}",
            "",
            f"    {n} {MONTHS[n - 1]} 2021",
            "",
            f"    {summary}",
            "",
        ]
    return "\n".join(lines)


def walk(out: Path, base: str, slug: str, ext: str = "atom") -> list[list[str]]:
    """The entry ids of each document from the current one back through prev-archive, with checks."""
    documents: list[list[str]] = []
    url = f"{base}{slug}.{ext}"
    seen: set[str] = set()
    while url:
        assert url not in seen, f"cycle at {url}"
        seen.add(url)
        parsed = feedparser.parse((out / url[len(base) :]).read_bytes())
        assert parsed.bozo == 0
        documents.append([e.id for e in parsed.entries])
        rels = {link.rel: link.href for link in parsed.feed.get("links", [])}
        if len(documents) > 1:
            assert rels["current"] == f"{base}{slug}.{ext}"
        url = rels.get("prev-archive", "")
    return documents


def test_chain_recovers_every_entry_once_and_final_pages_never_change(make_config: Callable[..., Config]) -> None:
    config = make_config(
        BODY, {"news.txt": listing(3)}, site=SITE.replace("entries_per_feed = 50", "entries_per_feed = 2")
    )
    out, base = config.site.output, config.site.base_url
    news = config.path.parent / "news.txt"
    finals: dict[str, bytes] = {}
    for count in range(3, 10):
        news.write_text(listing(count))
        pipeline.build(config, NOW + timedelta(days=count))
        for ext in ("atom", "rss"):
            documents = walk(out, base, "all", ext)
            ids = [i for doc in documents for i in doc]
            assert len(ids) == len(set(ids)) == count, (ext, documents)
            assert len(documents[0]) == 2  # the current document holds the newest two
        pages = sorted((out / "archive" / "all").glob("*.atom"), key=lambda p: int(p.stem))
        for page in pages[:-1]:  # all but the newest are final
            data = page.read_bytes()
            assert finals.setdefault(page.name, data) == data, f"{page.name} changed"
            assert b"<fh:archive/>" in data
    assert len(finals) >= 2
    newest = int(pages[-1].stem)
    first = feedparser.parse((out / "archive/all/1.atom").read_bytes())
    rels = {link.rel: link.href for link in first.feed.links}
    assert rels["next-archive"] == f"{base}archive/all/2.atom"
    assert "prev-archive" not in rels
    assert newest >= 3

    # A correction to an archived entry shows in the current document; the final page keeps its bytes.
    before = (out / "archive/all/1.atom").read_bytes()
    news.write_text(listing(9, edited=1))
    pipeline.build(config, NOW + timedelta(days=30))
    assert (out / "archive/all/1.atom").read_bytes() == before
    current = feedparser.parse((out / "all.atom").read_bytes())
    summaries = {e.title: e.summary for e in current.entries}
    assert summaries["Cooperative story 1"] == "Item 1 in brief. Corrected."
    documents = walk(out, base, "all")
    assert len({i for doc in documents for i in doc}) == 9
