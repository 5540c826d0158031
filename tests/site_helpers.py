"""The test site: its [site] table, a fixed clock, the fixture directory, and readers of an output tree."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

SITE = """
[site]
title = "Test Site"
base_url = "https://feeds.example.org/"
author = "Test Unit"
language = "en"
time_zone = "Europe/Zurich"
entries_per_feed = 50
"""


def files(out: Path) -> list[Path]:
    """Every file under `out`, hidden ones too, in order."""
    return sorted(p for p in out.rglob("*") if p.is_file())


def contents(out: Path) -> dict[str, bytes]:
    """Every file under `out` by its path relative to `out`, with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in files(out)}
