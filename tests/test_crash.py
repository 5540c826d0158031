"""Crash safety: a build killed at any moment, or starved of disk, leaves complete files and a sound store."""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import feedparser
import pytest
from lxml import etree, html
from site_helpers import contents, files

from feeds import documents, pipeline
from feeds.adapters import ADAPTERS
from feeds.config import load

pytestmark = pytest.mark.slow

KILLS = 50
SEED = 20261125
SOURCES = ("africa", "asia", "europe")
TYPES = ("News", "Publication", "Spotlight Interviews with Co-operators", "ILO COOP 100 Interview")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def listing(source: str, count: int, version: str, words: int = 8) -> str:
    """A listing page of `count` items; `version` changes every summary but no title, so ids stay."""
    lines = [f"Cooperative news from {source}", ""]
    for i in range(count):
        lines += [
            f"  {i + 1}. {TYPES[i % len(TYPES)]}",
            "",
            f"    {source.title()} item {i} about savings groups and dairy farms",
            "",
            f"    {1 + i % 28} {MONTHS[i % 12]} {2010 + i % 12}",
            "",
            f"    Version {version} of the summary of item {i}: " + "members share a cooling room. " * words,
            "",
        ]
    return "\n".join(lines)


def make_site(root: Path, *, output: str = "output", state: str = "state") -> Path:
    """A config with three listing sources and two categories (the other types get categories of their own)."""
    root.mkdir(parents=True, exist_ok=True)
    body = (
        f'[site]\ntitle = "Crash"\nbase_url = "https://feeds.example.org/"\ntime_zone = "Europe/Zurich"\n'
        f'entries_per_feed = 50\noutput = "{output}"\nstate = "{state}"\n'
    )
    for name in SOURCES:
        body += f'\n[[sources]]\nname = "{name}"\nadapter = "listing"\nlocation = "{name}.txt"\n'
    for slug, label in (("news", "News"), ("publications", "Publication")):
        body += f'\n[[categories]]\nslug = "{slug}"\ntitle = "{label}"\ntypes = ["{label}"]\n'
    config = root / "config.toml"
    config.write_text(body, encoding="utf-8")
    return config


def write_sources(root: Path, version: str, count: int = 100, words: int = 8) -> None:
    for name in SOURCES:
        (root / f"{name}.txt").write_text(listing(name, count, version, words), encoding="utf-8")


def start_build(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "feeds", "build", "--config", str(config)],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def build(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feeds", "build", "--config", str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def build_ok(config: Path) -> None:
    done = build(config)
    assert done.returncode == 0, done.stdout + done.stderr


def is_temp(path: Path) -> bool:
    """A hidden temp file, or a file in the hidden copy of a directory a build was making."""
    return any(part.startswith(".") and part.endswith(".tmp") for part in path.parts)


def complete(name: str, data: bytes) -> None:
    """Assert that `data` is a whole document of the kind its file name says."""
    if name.endswith((".atom", ".rss")):
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0, f"{name}: {parsed.get('bozo_exception')}"
        etree.fromstring(data)
    elif name.endswith(".json"):
        assert json.loads(data)["version"] == "https://jsonfeed.org/version/1.1", name
    elif name.endswith(".opml"):
        etree.fromstring(data)
    elif name.endswith(".html"):
        # lxml's HTML parser repairs a truncated page without complaint: the closing tag proves the end arrived.
        assert data.rstrip().endswith(b"</html>"), f"{name}: truncated"
        assert html.fromstring(data).find(".//body") is not None, name
    else:
        raise AssertionError(f"{name}: unexpected file in output/")


def check_output(out: Path, checked: dict[Path, tuple[int, int, int]]) -> tuple[list[Path], int]:
    """Every published file is complete; return the leftover temp files and the .gz files ahead of their file.

    A .gz is renamed into place just before its file, so a kill between the two renames leaves a .gz
    holding the newer version: acceptable as long as it is itself a complete document.
    `checked` remembers files already found complete: a file replaced since has another inode.
    """
    leftovers: list[Path] = []
    ahead = 0
    for path in files(out):
        if is_temp(path):
            leftovers.append(path)
            continue
        assert not path.name.startswith("."), f"{path}: a hidden file that is not a temp file"
        stat = path.stat()
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        sibling_stamp = None
        if path.suffix == ".gz" and path.with_suffix("").exists():
            sibling = path.with_suffix("").stat()
            sibling_stamp = (sibling.st_ino, sibling.st_mtime_ns, sibling.st_size)
        if checked.get(path) == stamp and (sibling_stamp is None or checked.get(path.with_suffix("")) == sibling_stamp):
            continue
        checked[path] = stamp
        data = path.read_bytes()
        if path.suffix != ".gz":
            complete(path.name, data)
            continue
        sibling = path.with_suffix("")
        unpacked = gzip.decompress(data)  # checks the CRC and length: a truncated .gz raises
        assert sibling.exists(), f"{path}: no uncompressed sibling"
        if unpacked != sibling.read_bytes():
            ahead += 1
            complete(sibling.name, unpacked)
            del checked[path]  # counted again for as long as it stays ahead
    return leftovers, ahead


def check_store(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def feed_entries(out: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Every top-level Atom feed: its entries' ids, titles and summaries, in order."""
    feeds: dict[str, list[tuple[str, str, str]]] = {}
    for path in sorted(out.glob("*.atom")):
        parsed = feedparser.parse(path.read_bytes())
        assert parsed.bozo == 0, f"{path}: {parsed.get('bozo_exception')}"
        feeds[path.name] = [(e.id, e.title, e.get("summary", "")) for e in parsed.entries]
    return feeds


def stamps(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in files(out) if not is_temp(p)}


@dataclass
class CrashRun:
    """What KILLS killed builds left behind."""

    duration: float
    phases: dict[str, int]
    gz_ahead: int = 0
    leftovers: list[Path] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # kills after which the next build left old content


@pytest.fixture(scope="module")
def crash_run(tmp_path_factory: pytest.TempPathFactory) -> CrashRun:
    """Kill KILLS builds at random moments; after each, the files must be complete and the store sound."""
    base = tmp_path_factory.mktemp("crash")
    versions = ("a", "b")
    # What the same history of builds publishes when none is killed. Not a build from scratch: once an
    # archived entry is edited, the current document carries it too (RFC 5005), so history shows.
    shadow = make_site(base / "shadow")
    reference = {}
    for version in ("a", "b", "a"):
        write_sources(shadow.parent, version)
        build_ok(shadow)
        reference[version] = feed_entries(shadow.parent / "output")
    assert reference["a"]["all.atom"] != reference["b"]["all.atom"]
    assert [e[:2] for e in reference["a"]["all.atom"]] == [e[:2] for e in reference["b"]["all.atom"]]
    # A build from scratch publishes the newest of these, the same way.
    fresh = make_site(base / "fresh")
    write_sources(fresh.parent, "a")
    build_ok(fresh)
    assert set(feed_entries(fresh.parent / "output")["all.atom"]) <= set(reference["a"]["all.atom"])

    config = make_site(base / "site")
    root, out, db = config.parent, config.parent / "output", config.parent / "state" / "feeds.db"
    write_sources(root, "a")
    build_ok(config)
    # One full rebuild (every summary changed), timed, to spread the kills across a build's life.
    write_sources(root, "b")
    started = time.monotonic()
    build_ok(config)
    run = CrashRun(
        duration=time.monotonic() - started,
        phases={"finished": 0, "before writing": 0, "staging": 0, "replacing": 0},
    )

    rng = random.Random(SEED)
    checked: dict[Path, tuple[int, int, int]] = {}
    for kill in range(KILLS):
        version = versions[kill % 2]
        write_sources(root, version)
        before = stamps(out)
        temps_before = {p for p in files(out) if is_temp(p)}
        delay = rng.uniform(0, run.duration)
        proc = start_build(config)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        _stdout, stderr = proc.communicate(timeout=60)
        if proc.returncode == 0:
            run.phases["finished"] += 1
        else:
            assert proc.returncode == -signal.SIGKILL, stderr.decode()
            if stamps(out) != before:
                run.phases["replacing"] += 1
            elif {p for p in files(out) if is_temp(p)} - temps_before:
                run.phases["staging"] += 1
            else:
                run.phases["before writing"] += 1

        run.leftovers, ahead = check_output(out, checked)
        run.gz_ahead += ahead
        check_store(db)

        build_ok(config)
        if feed_entries(out) != reference[version]:
            run.stale.append(f"kill {kill} after {delay:.3f}s")
        if check_output(out, checked)[1]:
            run.stale.append(f"kill {kill} after {delay:.3f}s: a .gz still differs from its file")
        check_store(db)

    print(
        f"\ncrash: {KILLS} kills over a {run.duration:.2f}s build: "
        + ", ".join(f"{count} {phase}" for phase, count in run.phases.items())
        + f"; {run.gz_ahead} .gz ahead of their file after a kill; {len(run.leftovers)} temp files left in output/; "
        f"{len(run.stale)} next builds published stale content"
    )
    return run


def test_killed_builds_leave_complete_files_and_a_sound_store(crash_run: CrashRun) -> None:
    phases = crash_run.phases
    assert phases["replacing"] + phases["staging"] > 0, f"no kill landed while files were being written: {phases}"
    assert all(is_temp(p) for p in crash_run.leftovers)


def test_the_build_after_a_kill_publishes_the_current_sources(crash_run: CrashRun) -> None:
    assert crash_run.stale == []


def test_a_build_removes_stale_temp_files(tmp_path: Path) -> None:
    config = make_site(tmp_path)
    write_sources(tmp_path, "a", count=5)
    build_ok(config)
    out = tmp_path / "output"
    stale = [out / ".all.atom.k1ll3d.tmp", out / "entries" / "africa" / ".page.html.k1ll3d.tmp"]
    hour_ago = time.time() - 3600
    for path in stale:
        path.write_bytes(b"<feed")  # what a killed writer leaves: a part of a document
        os.utime(path, (hour_ago, hour_ago))
    # And the hidden copy of a directory a killed first build was making.
    half_made = out / "entries" / ".oceania.k1ll3d.tmp"
    half_made.mkdir()
    (half_made / "page.html").write_bytes(b"<!DOCTYPE html>")
    os.utime(half_made, (hour_ago, hour_ago))
    recent = out / ".index.html.live.tmp"  # a live writer's: younger than STALE_TEMP_SECONDS
    recent.write_bytes(b"<")
    write_sources(tmp_path, "b", count=5)
    build_ok(config)
    assert [p for p in [*stale, half_made] if p.exists()] == []
    assert recent.exists()


def test_a_first_build_killed_while_making_a_directory_shows_none_of_it(tmp_path: Path) -> None:
    """A new directory (entries/ and its sources' pages) is written under a hidden name and appears whole."""
    reference = make_site(tmp_path / "reference")
    write_sources(reference.parent, "a", count=400)
    build_ok(reference)
    pages = {d.name: sorted(p.name for p in d.iterdir()) for d in (reference.parent / "output" / "entries").iterdir()}
    assert set(pages) == set(SOURCES)

    config = make_site(tmp_path / "site")
    write_sources(config.parent, "a", count=400)
    output = config.parent / "output"
    entries = output / "entries"
    proc = start_build(config)
    seen: list[str] = []
    while proc.poll() is None and not seen:
        with contextlib.suppress(FileNotFoundError):
            # On a first build the hidden one is entries/ itself, its sources' directories inside it.
            seen = [d.name for d in os.scandir(output) if d.name.startswith(".entries.") and d.is_dir()]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert seen, "the build ended before a directory was being made"
    for directory in entries.iterdir() if entries.exists() else ():
        if not directory.name.startswith("."):
            assert sorted(p.name for p in directory.iterdir()) == pages[directory.name], directory.name
    leftovers, _ = check_output(config.parent / "output", {})
    assert all(is_temp(p) for p in leftovers)

    build_ok(config)
    assert {d.name: sorted(p.name for p in d.iterdir()) for d in entries.iterdir() if d.name[0] != "."} == pages
    assert feed_entries(config.parent / "output") == feed_entries(reference.parent / "output")


def test_a_build_repairs_a_gz_left_ahead_of_its_file(tmp_path: Path) -> None:
    config = make_site(tmp_path)
    write_sources(tmp_path, "a", count=5)
    build_ok(config)
    out = tmp_path / "output"
    # A kill between the two renames leaves the .gz of the next version beside the file of the last one.
    (out / "all.atom.gz").write_bytes(gzip.compress((out / "news.atom").read_bytes()))
    with pipeline.open_store(load(config, ADAPTERS)) as store:  # as after a killed pass: every file due again
        store.put_setting(documents.SETTINGS, "stale")
    build_ok(config)
    assert gzip.decompress((out / "all.atom.gz").read_bytes()) == (out / "all.atom").read_bytes()


# -- a full disk ---------------------------------------------------------------------------------------


def _mount_refusal() -> str:
    """Why tmpfs cannot be mounted here, or "" when it can."""
    if not sys.platform.startswith("linux"):
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root to mount a small tmpfs"
    return ""


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[Path, str], Path]]:
    """Mount a tmpfs of a given size on a directory; unmount them all afterwards."""
    mounted: list[Path] = []

    def mount(where: Path, size: str) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
        )
        if done.returncode != 0:
            why = f"cannot mount a tmpfs (needs root and mount permission): {done.stderr.strip()}"
            if os.environ.get("CI") == "true":
                pytest.fail(why)
            pytest.skip(why)
        mounted.append(where)
        return where

    refusal = _mount_refusal()
    if refusal:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the full-disk tests {refusal}, and CI runs them")
        pytest.skip(f"the full-disk tests {refusal}")
    try:
        yield mount
    finally:
        for where in reversed(mounted):
            subprocess.run(["umount", str(where)], check=True, capture_output=True)


def fill(directory: Path, spare: int) -> None:
    """Fill the file system of `directory` until it refuses more, then give back `spare` bytes."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    # Unbuffered, so the refusal comes from write() here, not again from close().
    with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(chunk)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - spare))
    with pytest.raises(OSError) as info:
        (directory / "probe").write_bytes(b"\0" * (spare * 4))
    assert info.value.errno == errno.ENOSPC
    (directory / "probe").unlink(missing_ok=True)


@dataclass
class Starved:
    config: Path
    out: Path
    before: dict[str, bytes]
    done: subprocess.CompletedProcess[str]


@pytest.fixture
def starved_output(tmp_path: Path, tmpfs: Callable[[Path, str], Path]) -> Starved:
    """A build that found its output disk full: the files of the build before it, and what it said."""
    out = tmpfs(tmp_path / "output", "4m")
    tmpfs(tmp_path / "state", "32m")
    config = make_site(tmp_path)
    write_sources(tmp_path, "a", count=20)  # about 0.9 MB of output
    build_ok(config)
    before = contents(out)
    fill(out, spare=16384)
    write_sources(tmp_path, "b", count=30, words=40)  # about 2.3 MB: fits once the filler is gone
    done = build(config)
    (out / "filler").unlink()
    return Starved(config=config, out=out, before=before, done=done)


def test_full_output_disk_keeps_previous_files(starved_output: Starved) -> None:
    done, out = starved_output.done, starved_output.out
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"feeds: {out}" in done.stderr, done.stderr  # the output directory, or a file in it
    assert "cannot write (No space left on device); previous files are intact; the disk is full" in done.stderr
    assert contents(out) == starved_output.before  # same files, same bytes, no temp file left behind


def test_the_build_after_a_full_disk_publishes_the_current_sources(starved_output: Starved) -> None:
    build_ok(starved_output.config)
    entries = feed_entries(starved_output.out)["all.atom"]
    assert len(entries) == 50
    assert {f"Asia item {i} about savings groups and dairy farms" for i in range(20, 30)} <= {e[1] for e in entries}
    assert all("Version b" in summary for _id, _title, summary in entries)


def test_full_state_disk_is_reported(tmp_path: Path, tmpfs: Callable[[Path, str], Path]) -> None:
    out = tmpfs(tmp_path / "output", "32m")
    # The state keeps each entry's rendered fragments, and its write-ahead log up to 4 MB before a checkpoint.
    state = tmpfs(tmp_path / "state", "16m")
    config = make_site(tmp_path)
    write_sources(tmp_path, "a", count=20)
    build_ok(config)
    before = contents(out)

    # Room to open the database (its -shm and -wal files), none to record three hundred bigger items.
    fill(state, spare=65536)
    write_sources(tmp_path, "b", count=100, words=40)
    done = build(config)
    (state / "filler").unlink()
    assert contents(out) == before
    check_store(state / "feeds.db")
    assert done.returncode in (1, 2), done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert f"feeds: {state / 'feeds.db'}: " in done.stderr, done.stderr
    assert "database or disk is full" in done.stderr, done.stderr

    build_ok(config)
    assert all("Version b" in summary for _id, _title, summary in feed_entries(out)["all.atom"])
