"""Benchmark how passes grow with a site: a first build, an unchanged pass, a pass after one source gains one item.

Run from the repository root:  python bench/scale.py [--sizes 10000,100000] [--runs 3] [--dir DIR]

For each size, a site of that many entries: `listing` sources of 100 items each (plain text in the
shape of the ILO listing pages, invented by a seeded random, the same every run), in 20 categories
chosen by the items' type labels, with `entries_per_feed = 50` so every category has archive pages.
Every measured pass is its own `feeds build` process, started with this interpreter and the
checkout this script lives in first on PYTHONPATH, so it measures that code:

- the first build, from nothing: wall time, CPU (user + system, of the build and of every process it
  waited for, from wait4) and peak RSS (wait4's ru_maxrss: the largest one process, not a sum; the
  sum over the build's processes, sampled from /proc every 0.1 s, is printed beside it);
- an unchanged pass: the same sources again;
- a pass after one source gained one item, appended to its file with a date newer than any other.

The unchanged and one-item passes are repeated `--runs` times (a different source gains an item in
each run); the median is the figure. Files written are counted by comparing output/ before and
after each pass (new or changed inode, mtime or size).

Goals, at the default sizes:
- a pass after one source gains one item, at 100,000 entries: <= 1.5x an unchanged pass;
- first-build CPU per entry, 100,000 entries vs 10,000: <= 1.3x;
- peak RSS of the first build at 100,000 entries: <= 200 MiB.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))  # the checkout this script measures

from build import creation_cost

from feeds.pages import format_day

CHECKOUT = Path(__file__).resolve().parent.parent
ITEMS_PER_SOURCE = 100
PER_FEED = 50
GOAL_ONE_ITEM = 1.5
GOAL_CPU_PER_ENTRY = 1.3
GOAL_RSS_MIB = 200
FIRST_DAY = date(2004, 1, 1)
LAST_DAY = date(2026, 10, 31)

LABELS = (
    "News",
    "Publication",
    "Spotlight Interviews with Co-operators",
    "ILO COOP 100 Interview",
    "Article",
    "Event",
    "Statement",
    "Working paper",
    "Policy brief",
    "Case study",
    "Meeting report",
    "Press release",
    "Speech",
    "Video",
    "Podcast",
    "Training material",
    "Project update",
    "Guide",
    "Actualité",
    "Noticia",
)
SUBJECTS = (
    "cooperatives",
    "savings groups",
    "credit unions",
    "women's associations",
    "waste pickers",
    "domestic workers",
    "fishers' cooperatives",
    "dairy farmers",
    "platform workers",
    "housing cooperatives",
    "young entrepreneurs",
    "social enterprises",
    "mutual insurers",
    "coffee growers",
    "artisans",
    "worker-owned firms",
    "rural producers",
    "coopératives agricoles",
    "cooperativas de trabajo",
    "community banks",
)
ACTIONS = (
    "organise",
    "pool their savings",
    "open a shared workshop",
    "negotiate better prices",
    "train new members",
    "take over a closing factory",
    "set up a care service",
    "reach social protection",
    "go digital",
    "rebuild after the floods",
    "export for the first time",
    "elect a new board",
    "share what they learned",
    "leave informal work",
    "count their jobs",
)
PLACES = (
    "Senegal",
    "Cameroon",
    "the Philippines",
    "Bolivia",
    "Kenya",
    "Morocco",
    "Ethiopia",
    "the Republic of Korea",
    "Brazil",
    "India",
    "Bénin",
    "Viet Nam",
    "Colombia",
    "Tunisia",
    "Indonesia",
    "Uganda",
    "Peru",
    "Nepal",
    "Jordan",
    "Côte d'Ivoire",
)
FRAMES = (
    "How {s} in {p} {a}",
    "{S} in {p} {a}: a {adj} look",
    "Why {s} {a} in {p}",
    "{P}: {s} {a} with ILO support",
    "When {s} {a}: lessons from {p}",
    "{Adj} evidence on {s} in {p}",
    "Report: {s} of {p} {a}",
)
ADJECTIVES = ("first", "closer", "fresh", "regional", "ten-year", "field", "comparative", "practical", "new", "joint")
SENTENCES = (
    "Members of {n} {s} in {p} describe how they {a}.",
    "The study follows {n} households over {y} years & asks what changed for them.",
    "A {adj} review of the “social and solidarity economy” in {p}, with figures from {y} districts.",
    "Local partners and the ILO worked with {s} to {a}; {n} people took part.",
    "What worked, what did not <and why>, told by the people who ran it.",
    "The paper maps public policy for {s} in {p} and what the pandemic changed.",
    "Interviews with {n} members show how {s} {a} without outside capital.",
)


def _fill(frame: str, rng: random.Random) -> str:
    s, p, adj = rng.choice(SUBJECTS), rng.choice(PLACES), rng.choice(ADJECTIVES)
    return frame.format(
        s=s,
        S=s[0].upper() + s[1:],
        p=p,
        P=p[0].upper() + p[1:],
        a=rng.choice(ACTIONS),
        adj=adj,
        Adj=adj.capitalize(),
        n=rng.randint(3, 900),
        y=rng.randint(2, 15),
    )


class Site:
    """A generated site: its sources on disk, the config naming them, and the text of each item."""

    def __init__(self, root: Path, entries: int) -> None:
        self.root = root
        self.sources = entries // ITEMS_PER_SOURCE
        self.rng = random.Random(entries)
        self.items = [ITEMS_PER_SOURCE] * self.sources
        self.seen: set[tuple[date, str]] = set()
        self.added = 0
        (root / "sources").mkdir(parents=True)
        span = (LAST_DAY - FIRST_DAY).days
        for s in range(self.sources):
            # A listing shows its newest item first.
            days = sorted(
                (FIRST_DAY + timedelta(self.rng.randrange(span)) for _ in range(ITEMS_PER_SOURCE)), reverse=True
            )
            lines = [f"{_fill(self.rng.choice(FRAMES), self.rng)}: latest from the field", ""]
            for number, day in enumerate(days, start=1):
                lines += self._item(number, day)
            self.path(s).write_text("\n".join(lines), encoding="utf-8")
        categories = "".join(
            f'\n[[categories]]\nslug = "type-{c:02d}"\ntitle = "{label}"\ntypes = ["{label}"]\n'
            for c, label in enumerate(LABELS)
        )
        sources = "".join(
            f'\n[[sources]]\nname = "listing-{s:04d}"\nadapter = "listing"\nlocation = "sources/listing-{s:04d}.txt"\n'
            for s in range(self.sources)
        )
        self.config = root / "config.toml"
        self.config.write_text(
            f'[site]\ntitle = "Scale bench"\nbase_url = "https://feeds.example.org/"\n'
            f"entries_per_feed = {PER_FEED}\n{categories}{sources}",
            encoding="utf-8",
        )

    def path(self, source: int) -> Path:
        return self.root / "sources" / f"listing-{source:04d}.txt"

    def _item(self, number: int, day: date) -> list[str]:
        """One numbered item: type line, title, date and (most of the time) a summary of one to three lines."""
        while True:  # one entry per title and day: a repeat would merge two items into one entry
            title = _fill(self.rng.choice(FRAMES), self.rng)
            if (day, title) not in self.seen:
                self.seen.add((day, title))
                break
        lines = [f"  {number}. {self.rng.choice(LABELS)}", "", f"    {title}", "", f"    {format_day(day)}", ""]
        if self.rng.random() < 0.85:
            sentences = [_fill(self.rng.choice(SENTENCES), self.rng) for _ in range(self.rng.randint(1, 3))]
            lines += [f"    {sentence}" for sentence in sentences] + [""]
        return lines

    def add_item(self) -> None:
        """Append one item, newer than any other, to the next source in turn."""
        source = (self.added * 37) % self.sources
        self.added += 1
        self.items[source] += 1
        lines = self._item(self.items[source], LAST_DAY + timedelta(self.added))
        with self.path(source).open("a", encoding="utf-8") as out:
            out.write("\n" + "\n".join(lines))


@dataclass(frozen=True)
class Pass:
    wall: float
    cpu: float
    rss_mib: float  # the largest one process (wait4's ru_maxrss)
    tree_mib: float  # the largest sampled sum over the build and its descendants; 0 when /proc cannot tell
    written: int
    removed: int


def snapshot(output: Path) -> dict[str, tuple[int, int, int]]:
    """Each file under output/ (none when it is missing), by inode, mtime and size."""
    found: dict[str, tuple[int, int, int]] = {}
    stack = [output] if output.exists() else []
    while stack:
        with os.scandir(stack.pop()) as listing:
            for item in listing:
                if item.is_dir(follow_symlinks=False):
                    stack.append(Path(item.path))
                else:
                    st = item.stat(follow_symlinks=False)
                    found[item.path] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def _tree_rss(pid: int, page: int) -> int:
    """Resident bytes of a process and its descendants, as /proc shows them now."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as statm:
                total += int(statm.read().split()[1]) * page
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as children:
                    stack += [int(c) for c in children.read().split()]
        except (OSError, ValueError):
            continue  # ended between two reads
    return total


def feeds_build(site: Site, env: dict[str, str]) -> Pass:
    """One `feeds build` process on the site, measured."""
    output = site.root / "output"
    before = snapshot(output)
    log = site.root / "build.log"
    peak = [0]
    with log.open("w") as out:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "feeds", "build", "--config", str(site.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        done = threading.Event()

        def sample() -> None:
            page = os.sysconf("SC_PAGE_SIZE")
            while not done.wait(0.1):
                peak[0] = max(peak[0], _tree_rss(child.pid, page))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
        raise SystemExit(f"feeds build exited {child.returncode} on {site.config}:\n" + "\n".join(tail))
    after = snapshot(output)
    return Pass(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mib=usage.ru_maxrss / 1024,
        tree_mib=peak[0] / 2**20,
        written=sum(1 for path, key in after.items() if before.get(path) != key),
        removed=len(before.keys() - after.keys()),
    )


@dataclass(frozen=True)
class Size:
    entries: int
    first: Pass
    unchanged: list[Pass]
    one_item: list[Pass]
    per_file: float


def measure(entries: int, where: Path, runs: int, env: dict[str, str]) -> Size:
    with tempfile.TemporaryDirectory(dir=where, prefix=f"scale-{entries}-") as tmp:
        site = Site(Path(tmp), entries)
        per_file = creation_cost(Path(tmp))
        first = feeds_build(site, env)
        unchanged, one_item = [], []
        for _ in range(runs):
            unchanged.append(feeds_build(site, env))
            site.add_item()
            one_item.append(feeds_build(site, env))
        return Size(entries, first, unchanged, one_item, per_file)


def median(passes: list[Pass], field: str) -> float:
    return statistics.median(getattr(p, field) for p in passes)


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def report(sizes: list[Size], runs: int) -> None:
    rows = [("entries", "pass", "wall s", "CPU s", "CPU ms/entry", "peak RSS MiB", "files written")]
    for s in sizes:
        f = s.first
        rows.append(
            (
                f"{s.entries:,}",
                "first build",
                f"{f.wall:.2f}",
                f"{f.cpu:.2f}",
                f"{1000 * f.cpu / s.entries:.3f}",
                f"{f.rss_mib:.0f} (sum {f.tree_mib:.0f})",
                f"{f.written:,}",
            )
        )
        for name, passes in (("unchanged", s.unchanged), ("one source +1 item", s.one_item)):
            rows.append(
                (
                    f"{s.entries:,}",
                    f"{name}, median of {runs}",
                    f"{median(passes, 'wall'):.2f}",
                    f"{median(passes, 'cpu'):.2f}",
                    "",
                    f"{max(p.rss_mib for p in passes):.0f} (sum {max(p.tree_mib for p in passes):.0f})",
                    f"{statistics.median(p.written for p in passes):g}",
                )
            )
    table(rows)
    print()
    for s in sizes:
        for name, passes in (("unchanged", s.unchanged), ("one source +1 item", s.one_item)):
            each = ", ".join(f"{p.wall:.2f} s / {p.cpu:.2f} s CPU / {p.written} written" for p in passes)
            print(f"{s.entries:,} entries, {name}, each run: {each}")
        removed = sum(p.removed for p in (s.first, *s.unchanged, *s.one_item))
        print(
            f"{s.entries:,} entries: creating a file here cost {s.per_file * 1e6:.0f} us (measured apart), "
            f"so the first build's {s.first.written:,} files about {s.per_file * s.first.written:.1f} s; "
            f"files removed over all passes: {removed}"
        )
    print()

    small, large = sizes[0], sizes[-1]
    one, still = median(large.one_item, "wall"), median(large.unchanged, "wall")
    one_cpu, still_cpu = median(large.one_item, "cpu"), median(large.unchanged, "cpu")
    per_small, per_large = small.first.cpu / small.entries, large.first.cpu / large.entries
    table(
        [
            ("measure", "goal", "figure"),
            (
                f"pass after one source gains one item, at {large.entries:,} entries",
                f"<= {GOAL_ONE_ITEM}x an unchanged pass",
                f"{one / still:.2f}x wall ({one:.2f} s / {still:.2f} s); "
                f"{one_cpu / still_cpu:.2f}x CPU ({one_cpu:.2f} s / {still_cpu:.2f} s)",
            ),
            (
                f"first-build CPU per entry, {large.entries:,} vs {small.entries:,} entries",
                f"<= {GOAL_CPU_PER_ENTRY}x",
                f"{per_large / per_small:.2f}x ({1000 * per_large:.3f} / {1000 * per_small:.3f} ms CPU per entry)",
            ),
            (
                f"peak RSS of the first build at {large.entries:,} entries",
                f"<= {GOAL_RSS_MIB} MiB",
                f"{large.first.rss_mib:.0f} MiB (sum over its processes, sampled: {large.first.tree_mib:.0f} MiB)",
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        help="entries per site, comma-separated, each a multiple of 100 (default 10000,100000; "
        "the goals compare the first and the last)",
    )
    parser.add_argument("--runs", type=int, default=3, help="unchanged and one-item passes per size (default 3)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(__file__).parent / "out",
        help="where to build (default: bench/out, on the project's disk like output/)",
    )
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: expected numbers such as 10000,100000, got {args.sizes!r}")
    if not sizes or any(s < ITEMS_PER_SOURCE or s % ITEMS_PER_SOURCE for s in sizes):
        parser.error(f"--sizes: each size must be a positive multiple of {ITEMS_PER_SOURCE}, got {args.sizes!r}")
    if args.runs < 1:
        parser.error("--runs: at least 1")
    args.dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))}
    where = subprocess.run(
        [sys.executable, "-c", "import feeds; print(feeds.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"feeds from {where}; {sys.executable}; {len(os.sched_getaffinity(0))} of {os.cpu_count()} cores usable; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"sizes {', '.join(f'{s:,}' for s in sizes)} entries: listing sources of {ITEMS_PER_SOURCE} items, "
        f"{len(LABELS)} categories, entries_per_feed = {PER_FEED}; {args.runs} run(s) of the later passes; "
        f"building under {args.dir}"
    )
    results = []
    for entries in sizes:
        started = time.perf_counter()
        results.append(measure(entries, args.dir, args.runs, env))
        print(f"  {entries:,} entries measured in {time.perf_counter() - started:.0f} s", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}\n")
    report(results, args.runs)


if __name__ == "__main__":
    main()
