"""Shared fixtures: a config written to a temporary directory, and a fixed clock."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings

from feeds.adapters import ADAPTERS
from feeds.config import Config, load

# In CI the property tests draw the same examples on every run, so a run that passed here passes there;
# locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def files(out: Path) -> list[Path]:
    """Every file under `out`, hidden ones too, in order."""
    return sorted(p for p in out.rglob("*") if p.is_file())


def contents(out: Path) -> dict[str, bytes]:
    """Every file under `out` by its path relative to `out`, with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in files(out)}


SITE = """
[site]
title = "Test Site"
base_url = "https://feeds.example.org/"
author = "Test Unit"
language = "en"
time_zone = "Europe/Zurich"
entries_per_feed = 50
"""


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Write a config.toml (the [site] table above plus `body`) into tmp_path, with the given files copied in."""

    def make(body: str, files: dict[str, Path | str] | None = None, site: str = SITE) -> Config:
        for name, content in (files or {}).items():
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_text(content, encoding="utf-8")
        path = tmp_path / "config.toml"
        path.write_text(site + body, encoding="utf-8")
        return load(path, ADAPTERS)

    return make
