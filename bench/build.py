"""Benchmark the build: a full build, an unchanged rebuild and feedgen alone, in one run.

Run: python bench/build.py [--entries 10000] [--categories 20]

Synthetic listing sources (plain text, as the `listing` adapter reads them) hold the entries,
spread over the categories by type label; every feed is uncapped so each entry is rendered in its
category feed and in `all`. "feedgen alone" renders Atom and RSS for the same feeds with plain
feedgen calls and nothing else, the floor any feedgen-based publisher pays.
Goals: full build <= 2x feedgen alone; unchanged rebuild <= 5% of the full build.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from render_alone import feedgen_alone

from feeds import collate, pipeline
from feeds.config import load
from feeds.publish import format_day

SOURCES = 10


def write_sources(root: Path, entries: int, categories: int) -> None:
    """Listing documents in the shape of the ILO pages, with invented titles and summaries."""
    (root / "sources").mkdir()
    per_source = entries // SOURCES
    start = datetime(2015, 1, 1, tzinfo=UTC)
    for s in range(SOURCES):
        lines = [f"Synthetic listing number {s}", ""]
        for i in range(per_source):
            n = s * per_source + i
            day = start + timedelta(hours=7 * n)
            lines += [
                f"  {i + 1}. Topic {n % categories}",
                "",
                f"    Item {n}: cooperatives, savings groups and the “social economy” in region {n % 97}",
                "",
                f"    {format_day(day)}",
                "",
                f"    Summary of item {n}. Members pooled their savings & opened a shared workshop; "
                f"the report describes what changed for {n % 50 + 2} families over {n % 9 + 1} years.",
                "",
            ]
        (root / "sources" / f"listing-{s}.txt").write_text("\n".join(lines), encoding="utf-8")
    cats = "".join(
        f'\n[[categories]]\nslug = "topic-{c}"\ntitle = "Topic {c}"\ntypes = ["Topic {c}"]\n' for c in range(categories)
    )
    srcs = "".join(
        f'\n[[sources]]\nname = "listing-{s}"\nadapter = "listing"\nlocation = "sources/listing-{s}.txt"\n'
        for s in range(SOURCES)
    )
    (root / "config.toml").write_text(
        f'[site]\ntitle = "Bench"\nbase_url = "https://feeds.example.org/"\nentries_per_feed = {entries}\n{cats}{srcs}',
        encoding="utf-8",
    )


def creation_cost(where: Path, count: int = 1000) -> float:
    """Seconds this disk takes to create one empty file, measured here, now, with nothing else running."""
    probe = where / "probe"
    probe.mkdir()
    started = time.perf_counter()
    for n in range(count):
        (probe / f"{n}.tmp").touch()
    cost = (time.perf_counter() - started) / count
    for n in range(count):
        (probe / f"{n}.tmp").unlink()
    probe.rmdir()
    return cost


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (the build's second writer)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(__file__).parent / "out",
        help="where to build (default: bench/out, on the project's disk like output/; a crowded /tmp "
        "can make every file creation a hundred times slower and the figures meaningless)",
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        write_sources(root, args.entries, args.categories)
        config = load(root / "config.toml")
        now = datetime(2026, 11, 25, tzinfo=UTC)
        base_rss = peak_mib()
        per_file = creation_cost(root)

        started, cpu = time.perf_counter(), cpu_seconds()
        report = pipeline.build(config, now)
        full, full_cpu = time.perf_counter() - started, cpu_seconds() - cpu
        peak = peak_mib()
        assert not report.failed, [s.error for s in report.sources if s.failed]
        files = sum(1 for _ in (root / "output").rglob("*") if _.is_file())

        mtimes = {p: p.stat().st_mtime_ns for p in (root / "output").rglob("*") if p.is_file()}
        started = time.perf_counter()
        pipeline.build(config, now + timedelta(hours=1))
        rebuild = time.perf_counter() - started
        touched = sum(1 for p, m in mtimes.items() if p.stat().st_mtime_ns != m)

        with pipeline.open_store(config) as store:
            merged = collate.merge(store.items())
        # The entries as the build published them: with their categories, and their page as link.
        links = pipeline.page_links((m.entry for m in merged), config.site.base_url)
        feeds = collate.categorize(merged, config.categories, config.sources, links=links)
        by_feed = {slug: collate.order(entries, args.entries) for slug, entries in feeds.items()}
        rendered = sum(len(v) for v in by_feed.values())
        cpu = cpu_seconds()
        alone = feedgen_alone(by_feed)
        alone_cpu = cpu_seconds() - cpu

    print(
        f"entries: {args.entries} in {args.categories} categories; {rendered} feed entries per format; "
        f"{files} files written"
    )
    print(f"full build:        {full:8.2f} s   ({full_cpu:.2f} s CPU over every thread and process)")
    print(f"                   peak RSS {peak:.0f} MiB (interpreter and imports: {base_rss:.0f} MiB)")
    print(f"unchanged rebuild: {rebuild:8.2f} s   files rewritten: {touched}")
    print(f"feedgen alone:     {alone:8.2f} s   ({alone_cpu:.2f} s CPU; Atom + RSS of the same feeds, no files)")
    creating = per_file * files
    print(f"full build / feedgen alone:   {full / alone:.2f}x wall, {full_cpu / alone_cpu:.2f}x CPU  (goal <= 2)")
    print(
        f"creating {files} files here costs {creating:.2f} s ({per_file * 1e6:.0f} us each, measured apart; "
        "the build creates most of them in a second process)"
    )
    print(f"rebuild / full build:         {100 * rebuild / full:.1f}%  (goal <= 5%)")


if __name__ == "__main__":
    main()
