"""Shared fixtures: a config written to a temporary directory, a daemon running in this process, WebSub hubs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pg_helpers
import pytest
from daemon_helpers import DAEMON_SITE, Clock, Run
from hub_helpers import Hub
from hypothesis import settings
from serve_helpers import free_port
from site_helpers import SITE

from feeds.adapters import ADAPTERS
from feeds.config import Config, load
from feeds.schedule import Daemon

# In CI the property tests draw the same examples on every run, so a run that passed here passes there;
# locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Write a config.toml (site_helpers.SITE plus `body`) into tmp_path, with the given files copied in."""

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


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], Run]]:
    """Start a daemon in this process on `sources` (TOML) with `files` beside its config; stopped afterwards."""
    runs: list[Run] = []

    def start(sources: str, files: dict[str, str]) -> Run:
        for name, text in files.items():
            (tmp_path / name).write_text(text, encoding="utf-8")
        port = free_port()
        (tmp_path / "config.toml").write_text(DAEMON_SITE.format(port=port) + sources, encoding="utf-8")
        clock = Clock()
        daemon = Daemon(tmp_path / "config.toml", port=port, clock=clock)
        run = Run(daemon=daemon, root=tmp_path, base=f"http://127.0.0.1:{port}/", clock=clock)
        runs.append(run)
        daemon.start()
        return run

    yield start
    for run in runs:
        run.stop()


@pytest.fixture
def make_hub() -> Iterator[Callable[[], Hub]]:
    """Start WebSub hubs on loopback; closed afterwards."""
    hubs: list[Hub] = []

    def make() -> Hub:
        hubs.append(Hub())
        return hubs[-1]

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture
def hub(make_hub: Callable[[], Hub]) -> Hub:
    return make_hub()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped afterwards; skipped without a local server (not in CI)."""
    why = pg_helpers.server_answers()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL does not answer at {pg_helpers.SERVER} ({why}); CI needs it for the store tests")
        pytest.skip(f"PostgreSQL does not answer at {pg_helpers.SERVER} ({why}); start it to run these tests")
    with pg_helpers.database() as url:
        yield url
