"""The store on either backend: a site built on SQLite and on PostgreSQL publishes the same bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from serve_helpers import free_port
from site_helpers import NOW, SITE, contents

from feeds import pipeline
from feeds.adapters import ADAPTERS
from feeds.config import Config, load

BODY = """
[[categories]]
slug = "news"
title = "News"
types = ["News"]

[[categories]]
slug = "publications"
title = "Publications"
types = ["Publication"]

[[categories]]
slug = "dairy"
title = "Dairy"
keywords = ["dairy", "milk"]

[[sources]]
name = "africa"
adapter = "listing"
location = "africa.txt"

[[sources]]
name = "asia"
adapter = "listing"
location = "asia.txt"

[[sources]]
name = "pages"
adapter = "interview"
location = "pages/*.txt"
"""

INTERVIEW = """Spotlight Interviews with Co-operators

{name}, Secretary, {place} Dairy Cooperative

A conversation about milk and members.

Article | {day}

What does your cooperative do?

It collects milk from {members} members and sells it in town.
"""


def listing(heading: str, items: list[tuple[str, str, str, str]]) -> str:
    lines = [heading, ""]
    for n, (kind, title, day, summary) in enumerate(items, start=1):
        lines += [f"  {n}. {kind}" if kind else f"  {n}.", "", f"    {title}", "", f"    {day}", ""]
        if summary:
            lines += [f"    {summary}", ""]
    return "\n".join(lines)


def africa(count: int, edited: int = -1) -> str:
    items = [
        (
            "News" if n % 3 else "Publication",
            f"Africa item {n}: {'dairy' if n % 2 else 'credit'} cooperatives",
            f"{1 + n % 28} January 2022",
            f"Summary {n}{' (corrected)' if n == edited else ''}." if n % 4 else "",
        )
        for n in range(count)
    ]
    return listing("Cooperative news from Africa", items)


def asia(count: int) -> str:
    items = [
        ("Spotlight" if n % 2 else "News", f"Asia item {n}", f"{1 + n} March 2023", f"Milk and savings {n}.")
        for n in range(count)
    ]
    return listing("Cooperative news from Asia", items)


def site(root: Path, store: str) -> Config:
    root.mkdir()
    (root / "pages").mkdir()
    (root / "config.toml").write_text(
        SITE.replace("entries_per_feed = 50", "entries_per_feed = 3") + store + BODY, encoding="utf-8"
    )
    return load(root / "config.toml", ADAPTERS)


# Each pass changes what one of the store's paths handles: new items, archive pages frozen, an archived
# entry corrected, an item gone from its page, an entry with a page of ours, a pass with nothing new.
KIM = INTERVIEW.format(name="Kim", place="Hill", day="2 May 2022", members=40)
LEE = INTERVIEW.format(name="Lee", place="Lake", day="3 May 2022", members=90)
PASSES: list[dict[str, str]] = [
    {"africa.txt": africa(4), "asia.txt": asia(2), "pages/kim.txt": KIM},
    {"africa.txt": africa(9)},
    {"africa.txt": africa(9, edited=1), "asia.txt": asia(5)},
    {"asia.txt": asia(5)[: asia(5).index("  4.")], "africa.txt": africa(12, edited=1)},
    {"pages/lee.txt": LEE, "pages/kim.txt": KIM.replace("40 members", "45 members")},
    {},
]


def test_a_site_built_on_postgresql_is_byte_identical_to_one_built_on_sqlite(tmp_path: Path, pg_url: str) -> None:
    on_sqlite = site(tmp_path / "sqlite", "")
    on_postgresql = site(tmp_path / "postgresql", f'\n[store]\nurl = "{pg_url}"\n')
    for number, files in enumerate(PASSES):
        now = NOW + timedelta(hours=number)
        for config in (on_sqlite, on_postgresql):
            for name, text in files.items():
                (config.path.parent / name).write_text(text, encoding="utf-8")
            report = pipeline.build(config, now)
            assert not report.failed, (number, config.path)
        assert contents(on_postgresql.site.output) == contents(on_sqlite.site.output), f"pass {number}"
    output = contents(on_sqlite.site.output)
    assert any(path.startswith("archive/") for path in output)  # the archives' paths were taken
    assert any(path.startswith("entries/") for path in output)
    assert not (on_postgresql.site.state / pipeline.DB_NAME).exists()


def test_build_with_an_unreachable_store_is_a_one_line_error_without_the_password(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "news.txt").write_text(africa(2), encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        SITE
        + f'\n[store]\nurl = "postgresql://feeds:s3cret@127.0.0.1:{port}/feeds"\n'
        + '\n[[sources]]\nname = "news"\nadapter = "listing"\nlocation = "news.txt"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "feeds", "build", "--config", str(tmp_path / "config.toml")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == (
        f"feeds: store.url: cannot connect to postgresql://feeds@127.0.0.1:{port}/feeds (connection refused); "
        "check that PostgreSQL runs and store.url is right\n"
    )
    assert "s3cret" not in done.stdout
