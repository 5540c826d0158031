"""Benchmark the build: a full build, an unchanged rebuild and feedgen alone, in one run.

Run: taskset -c 0 python bench/build.py [--entries 10000] [--categories 20] [--runs 5] [--dir DIR]

Synthetic listing sources (plain text, as the `listing` adapter reads them) hold the entries,
spread over the categories by type label; every feed is uncapped so each entry is rendered in its
category feed and in `all`. "feedgen alone" renders Atom and RSS for the same feeds with plain
feedgen calls and nothing else, the floor any feedgen-based publisher pays. Each of the runs is a
full build from nothing followed by feedgen alone, so each ratio compares two measurements taken
side by side; the median ratio is the figure, since a shared machine moves single runs by a third.
Goals, per core (run it under `taskset -c 0`, so that neither side gets a second core): the full
build's CPU <= 2x feedgen alone's; unchanged rebuild <= 5% of the full build.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from render_alone import feedgen_alone

from feeds import collate, pipeline
from feeds.adapters import ADAPTERS
from feeds.config import load
from feeds.pages import format_day

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
    """CPU time of this process, over all its threads."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--categories", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5, help="full builds, each paired with feedgen alone (default 5)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(__file__).parent / "out",
        help="where to build (default: bench/out, on the project's disk like output/; the cost of creating "
        "a file, printed at the end, differs a hundredfold between file systems in different states)",
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    now = datetime(2026, 11, 25, tzinfo=UTC)
    base_rss = peak_mib()
    pairs: list[tuple[float, float, float, float]] = []  # (full, its CPU, feedgen alone, its CPU) of each run
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for run in range(args.runs):
            # Each run builds from nothing: its own sources, output and state. Kept to the end, since
            # deleting ten thousand files slows the next creations on some file systems.
            root = Path(tmp) / f"run-{run}"
            root.mkdir()
            write_sources(root, args.entries, args.categories)
            config = load(root / "config.toml", ADAPTERS)
            if run == 0:
                per_file = creation_cost(root)

            started, cpu = time.perf_counter(), cpu_seconds()
            report = pipeline.build(config, now)
            full, full_cpu = time.perf_counter() - started, cpu_seconds() - cpu
            assert not report.failed, [s.error for s in report.sources if s.failed]

            if run == 0:
                peak = peak_mib()
                mtimes = {p: p.stat().st_mtime_ns for p in (root / "output").rglob("*") if p.is_file()}
                files = len(mtimes)
                started = time.perf_counter()
                pipeline.build(config, now + timedelta(hours=1))
                rebuild = time.perf_counter() - started
                touched = sum(1 for p, m in mtimes.items() if p.stat().st_mtime_ns != m)
                # The entries as the build published them: with their categories, and their page as link.
                with pipeline.open_store(config) as store:
                    by_feed = {
                        slug: collate.order([e for e, _ in store.published_entries(store.feed_ids(slug))], args.entries)
                        for slug in store.live_slugs()
                    }
                rendered = sum(len(v) for v in by_feed.values())
                rebuild_share = rebuild / full

            cpu = cpu_seconds()
            alone = feedgen_alone(by_feed)
            pairs.append((full, full_cpu, alone, cpu_seconds() - cpu))

    print(
        f"entries: {args.entries} in {args.categories} categories; {rendered} feed entries per format; "
        f"{files} files written; {args.runs} runs, each a full build then feedgen alone"
    )
    for n, (full, full_cpu, alone, alone_cpu) in enumerate(pairs, start=1):
        print(
            f"run {n}: full build {full:5.2f} s ({full_cpu:.2f} s CPU over every thread), "
            f"feedgen alone {alone:5.2f} s ({alone_cpu:.2f} s CPU): {full / alone:.2f}x wall, "
            f"{full_cpu / alone_cpu:.2f}x CPU"
        )
    wall = statistics.median(full / alone for full, _, alone, _ in pairs)
    cpu_ratio = statistics.median(full_cpu / alone_cpu for _, full_cpu, _, alone_cpu in pairs)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"full build / feedgen alone, median of the runs: {wall:.2f}x wall, {cpu_ratio:.2f}x CPU  (goal: CPU <= 2)")
    print(f"usable cores: {cores} (the goal is per core: run under `taskset -c 0`)")
    print(f"peak RSS after the first full build: {peak:.0f} MiB (interpreter and imports: {base_rss:.0f} MiB)")
    print(
        f"unchanged rebuild: {rebuild:.2f} s, {100 * rebuild_share:.1f}% of the full build  (goal <= 5%); "
        f"files rewritten: {touched}"
    )
    print(f"creating {files} files here costs {per_file * files:.2f} s ({per_file * 1e6:.0f} us each, measured apart)")


if __name__ == "__main__":
    main()
