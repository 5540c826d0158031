"""A bounded atheris run over every adapter (slow), and the crash inputs it ever found replayed on every run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from site_helpers import DATA

from feeds.adapters import ADAPTERS
from feeds.config import SourceConfig, parse
from feeds.errors import SourceError
from feeds.model import Document

HARNESS = Path(__file__).parent / "fuzz_adapters.py"
REGRESSIONS = DATA / "fuzz-regressions"
# In CI a fixed seed and a fixed number of runs make the fuzzing the same on every run, so a submission that
# passed once passes again (new crashes are found exploring at a desk, then kept as regressions).
# Locally: a few seconds of fresh exploration per adapter.
CI = os.environ.get("CI") == "true"
BUDGET = 240 if CI else 10
SEEDS = {
    "listing": ["listing*.txt", "listing*.html"],
    "interview": ["interview*.txt", "interview*.html", "article*.txt", "article*.html"],
    "html": ["html/*.html"],
    "feed": ["feeds/*.xml", "feeds/*.rdf"],
}
MEDIA_TYPES = ["text/plain", "text/html", "application/xml", "application/xhtml+xml"]
HTML_OPTIONS = {"item": "article, li, .post", "date": "time, .d", "summary": "p", "content": "div, .c"}


def source_for(adapter: str) -> SourceConfig:
    raw = {
        "site": {"title": "Fuzz", "base_url": "https://feeds.example.org/"},
        "sources": [
            {
                "name": "fuzz",
                "adapter": adapter,
                "location": "page.txt",
                "options": HTML_OPTIONS if adapter == "html" else {},
            }
        ],
    }
    return parse(raw, Path("/nonexistent/config.toml"), ADAPTERS).sources[0]


@pytest.mark.slow
@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_fuzz_adapter(adapter: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for pattern in SEEDS[adapter]:
        for seed in DATA.glob(pattern):
            shutil.copyfile(seed, corpus / seed.name)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    seconds = max(2, BUDGET // len(ADAPTERS))
    command = [
        sys.executable,
        str(HARNESS),
        adapter,
        f"-max_total_time={seconds}",
        *(["-seed=1", "-runs=5000"] if CI else []),
        "-timeout=20",  # one input taking this long is a hang, reported like a crash
        "-rss_limit_mb=2048",
        "-max_len=65536",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"} if CI else None  # same hashing, same paths, same mutations
    run = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False, env=env)
    done = re.search(r"Done (\d+) runs in (\d+) second", run.stderr)
    print(f"fuzz {adapter}: {done[0] if done else 'no summary'}")
    crashes = sorted(artifacts.iterdir())
    for crash in crashes:  # kept, so the regular test replays them from now on
        shutil.copyfile(crash, REGRESSIONS / f"{adapter}-{crash.name}")
    assert run.returncode == 0 and not crashes, f"{adapter}: {[c.name for c in crashes]}\n{run.stderr[-3000:]}"
    assert done is not None and int(done[1]) > 0


def _regressions() -> list[Path]:
    return sorted(p for p in REGRESSIONS.iterdir() if p.is_file() and p.name != ".gitkeep")


@pytest.mark.parametrize("path", _regressions(), ids=lambda p: p.name)
@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_fuzz_regressions_raise_only_source_error(path: Path, adapter: str) -> None:
    content = path.read_bytes()
    source = source_for(adapter)
    for media_type in MEDIA_TYPES:
        for charset in (None, "utf-8", "windows-1252"):
            doc = Document(
                content=content, url="https://www.example.org/page.htm", media_type=media_type, charset=charset
            )
            try:
                for _entry in ADAPTERS[adapter].parse(doc, source):
                    pass
            except SourceError:
                pass
