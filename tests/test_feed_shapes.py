"""Feeds as they are found, through the command line: URLs to escape, odd encodings, untitled items, many tags."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from feeds.config import Config

DATA = Path(__file__).parent / "data" / "feeds"
SHAPES: dict[str, Any] = json.loads((DATA / "shapes.expected.json").read_text(encoding="utf-8"))
ATOM = "{http://www.w3.org/2005/Atom}"
# RFC 3986 characters, "%" only before two hex digits, no "[" or "]" (the fixtures' hosts are names):
# the published form of every URL the fixtures hold, whatever the source wrote.
URL = re.compile(r"https?://(?:[A-Za-z0-9\-._~:/?#@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+")


def feeds(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feeds", *argv], capture_output=True, text=True, timeout=300, check=False
    )


def source_table(name: str, extra: str = "") -> str:
    # Named as in test_adapters_feed, so ids made from the source's name are the expected ones.
    return f'[[sources]]\nname = "coop"\nadapter = "feed"\nlocation = "{name}"\n{extra}\n'


def feed_files(out: Path) -> set[str]:
    return {p.name for p in out.glob("*") if p.suffix in (".atom", ".rss", ".json")}


def urls_of(out: Path) -> list[str]:
    """Every id, link, enclosure and content href/src of the Atom feeds."""
    found: list[str] = []
    for path in out.glob("*.atom"):
        root = etree.parse(str(path)).getroot()
        for entry in root.iter(f"{ATOM}entry"):
            found.append(entry.findtext(f"{ATOM}id") or "")
            found.extend(link.get("href", "") for link in entry.iter(f"{ATOM}link"))
            content = entry.findtext(f"{ATOM}content") or ""
            found.extend(re.findall(r'(?:href|src)="([^"]*)"', content))
    return found


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_shape_builds_and_validates(make_config: Callable[..., Config], name: str) -> None:
    config = make_config(source_table(name), {name: DATA / name})
    built = feeds("build", "--config", str(config.path))
    expected = SHAPES[name]
    if "warning" in expected:
        # Whether a warning fails its source is the pipeline's to say; it is reported, and nothing is lost.
        what = expected["warning"].split(": ", 2)[2]  # after "source: url: "; the URL here is a file's
        assert what in built.stdout
    else:
        assert built.returncode == 0, built.stdout + built.stderr
    assert "Traceback" not in built.stderr
    checked = feeds("validate", "--config", str(config.path))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.rstrip().endswith(", 0 problems")

    out = config.site.output
    assert feed_files(out) == {"all.atom", "all.rss", "all.json"}  # a feed's tags make no feed of their own
    for fmt in ("atom", "rss"):
        parsed = feedparser.parse((out / f"all.{fmt}").read_bytes())
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert sorted(e.title for e in parsed.entries) == sorted(e["title"] for e in expected["entries"])
    items = json.loads((out / "all.json").read_text(encoding="utf-8"))["items"]
    assert sorted(item["id"] for item in items) == sorted(e["id"] for e in expected["entries"])
    for url in urls_of(out):
        assert url.startswith("tag:") or URL.fullmatch(url), url


def test_tags_are_shown_and_join_only_the_categories_the_config_maps(make_config: Callable[..., Config]) -> None:
    mapped = '[[categories]]\nslug = "youth"\ntitle = "Youth"\ntypes = ["youth"]\n\n' + source_table(
        "tags.xml", 'categories = { "Energy" = "energy" }'
    )
    config = make_config(mapped, {"tags.xml": DATA / "tags.xml"})
    assert feeds("build", "--config", str(config.path)).returncode == 0
    out = config.site.output
    assert feed_files(out) == {
        f"{slug}.{fmt}" for slug in ("all", "energy", "youth") for fmt in ("atom", "rss", "json")
    }

    tagged = {e["id"]: e["tags"] for e in SHAPES["tags.xml"]["entries"]}
    energy = feedparser.parse((out / "energy.atom").read_bytes())
    assert sorted(e.id for e in energy.entries) == sorted(i for i, tags in tagged.items() if "Energy" in tags)
    youth = json.loads((out / "youth.json").read_text(encoding="utf-8"))["items"]
    assert sorted(item["id"] for item in youth) == sorted(i for i, tags in tagged.items() if "Youth" in tags)
    # Every tag stays on its entry, as plain text, in each format; a mapped one once, as our category.
    for item in json.loads((out / "all.json").read_text(encoding="utf-8"))["items"]:
        assert sorted(item["tags"]) == sorted(tagged[item["id"]])
    for entry in feedparser.parse((out / "all.rss").read_bytes()).entries:
        terms = [tag.term for tag in entry.tags]
        assert len(terms) == len(tagged[entry.id])
        assert not any("<" in term for term in terms)
    assert feeds("validate", "--config", str(config.path)).returncode == 0


def test_a_build_whose_reader_has_gone_ends_quietly(make_config: Callable[..., Config]) -> None:
    config = make_config(source_table("tags.xml"), {"tags.xml": DATA / "tags.xml"})
    read, write = os.pipe()
    os.close(read)  # `feeds build | head -c1`, the reader gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, "-m", "feeds", "build", "--config", str(config.path)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 128 + 13  # as a shell reports a command that SIGPIPE ended
    assert (config.site.output / "all.atom").exists()  # the build itself was done
