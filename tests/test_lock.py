"""One writer per state directory: a second `feeds run` is refused, `feeds build` waits, `feeds serve` reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from daemon_helpers import ADDED, DAEMON_SITE, NEWS, PUBS, snapshot, source, wait_for
from serve_helpers import free_port

from feeds.lock import LOCK_FILE, StateLock

# Polled only at 06:00: the daemon writes nothing during a test unless told to (a reload).
SOURCES = source("news", "news.txt", "0 6 * * *") + source("pubs", "pubs.txt", "0 6 * * *")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")


@dataclass
class Site:
    root: Path
    port: int
    start: Callable[..., Process]

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def feeds(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `feeds` command that ends by itself."""
        return subprocess.run(
            [sys.executable, "-m", "feeds", *args, "--config", str(self.config)],
            cwd=self.root,
            capture_output=True,
            text=True,
            env=ENV,
            timeout=60,
        )

    def run(self, port: int | None = None) -> Process:
        """`feeds run`, once it has started serving."""
        daemon = self.start("run", "--port", str(port or self.port))

        def started() -> bool:
            assert daemon.proc.poll() is None, daemon.stderr()
            return "event=start" in daemon.stderr()

        wait_for(started)
        return daemon

    def get(self, path: str, port: int | None = None) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{port or self.port}/{path}", timeout=10)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    port = free_port()
    (tmp_path / "news.txt").write_text(NEWS, encoding="utf-8")
    (tmp_path / "pubs.txt").write_text(PUBS, encoding="utf-8")
    (tmp_path / "config.toml").write_text(DAEMON_SITE.format(port=port) + SOURCES, encoding="utf-8")
    started: list[Process] = []

    def start(*args: str) -> Process:
        """A `feeds` command left running; its output goes to files the test reads as it goes."""
        n = len(started)
        out, err = tmp_path / f"{n}.{args[0]}.out", tmp_path / f"{n}.{args[0]}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "feeds", *args, "--config", str(tmp_path / "config.toml")],
                cwd=tmp_path,
                stdout=out_file,
                stderr=err_file,
                env=ENV,
            )
        started.append(Process(proc, out, err))
        return started[-1]

    yield Site(tmp_path, port, start)
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


def _stop(process: Process) -> None:
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(timeout=30) == 0, process.stderr()


def test_a_second_run_is_refused_and_reload_reaches_the_first(site: Site) -> None:
    first = site.run()
    before = snapshot(site.root / "output")

    second = site.feeds("run", "--port", str(free_port()))
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1, second.stderr
    assert f"{site.state}: in use by `feeds run` (pid {first.proc.pid})" in second.stderr
    assert "stop that one first" in second.stderr
    assert "serving" not in second.stdout
    assert snapshot(site.root / "output") == before  # refused before it wrote anything
    assert site.get("healthz").status_code == 200

    # `feeds reload` reaches the daemon that holds the lock, not the one that was refused.
    site.config.write_text(site.config.read_text().replace('title = "News"', 'title = "Headlines"'))
    reload = site.feeds("reload")
    assert reload.returncode == 0, reload.stderr
    assert f"(pid {first.proc.pid})" in reload.stdout
    wait_for(lambda: "Headlines" in site.get("news.atom").text)
    _stop(first)
    assert "event=reload result=ok" in first.stderr()

    gone = site.feeds("reload")
    assert gone.returncode == 1
    assert f"feeds: {site.state}: no daemon holds this state directory; start one with `feeds run`" in gone.stderr


def test_build_waits_for_the_daemon_then_runs(site: Site) -> None:
    daemon = site.run()
    news = site.root / "output" / "news.atom"
    with (site.root / "news.txt").open("a", encoding="utf-8") as f:
        f.write(ADDED)

    hurried = site.feeds("build", "--no-wait")
    assert hurried.returncode == 2, hurried.stderr
    assert hurried.stderr.count("\n") == 1, hurried.stderr
    assert f"{site.state}: in use by `feeds run` (pid {daemon.proc.pid})" in hurried.stderr
    assert "without --no-wait to wait for it" in hurried.stderr
    assert hurried.stdout == ""

    build = site.start("build")
    wait_for(lambda: "waiting for it to finish" in build.stderr())
    assert f"in use by `feeds run` (pid {daemon.proc.pid})" in build.stderr()
    time.sleep(0.5)  # a build that did not wait would have read the new item and written it by now
    assert build.proc.poll() is None, build.stdout()
    assert b"Fishers" not in news.read_bytes()

    _stop(daemon)
    assert build.proc.wait(timeout=60) == 0, build.stderr()
    assert "news.atom: 3 entries, 1 new, 0 updated, written" in build.stdout()
    assert b"Fishers form a marketing cooperative" in news.read_bytes()
    assert (site.state / LOCK_FILE).read_text() == f"{build.proc.pid} build\n"


def test_a_killed_holder_frees_the_lock(site: Site) -> None:
    daemon = site.run()
    daemon.proc.send_signal(signal.SIGKILL)
    assert daemon.proc.wait(timeout=30) == -signal.SIGKILL
    # Its record stays in the file, but no one holds the lock any more.
    assert (site.state / LOCK_FILE).read_text() == f"{daemon.proc.pid} run\n"
    assert "no daemon holds" in site.feeds("reload").stderr

    build = site.feeds("build", "--no-wait")
    assert build.returncode == 0, build.stderr
    again = site.run()
    assert site.get("healthz").status_code == 200
    reload = site.feeds("reload")
    assert reload.returncode == 0, reload.stderr
    assert f"(pid {again.proc.pid})" in reload.stdout


def test_serve_runs_beside_a_daemon(site: Site) -> None:
    site.run()
    port = free_port()
    serve = site.start("serve", "--port", str(port))

    def serving() -> bool:
        assert serve.proc.poll() is None, serve.stderr()
        return "serving" in serve.stdout()

    wait_for(serving)
    served = wait_for(lambda: site.get("news.atom", port=port))
    assert served.status_code == 200
    assert served.content == site.get("news.atom").content


def test_a_build_holding_the_lock_is_named_and_takes_no_reload(site: Site) -> None:
    with StateLock(site.state, "build"):
        mine = f"in use by `feeds build` (pid {os.getpid()})"
        run = site.feeds("run", "--port", str(free_port()))
        assert (run.returncode, run.stdout) == (2, ""), run.stderr
        assert mine in run.stderr
        build = site.feeds("build", "--no-wait")
        assert build.returncode == 2 and mine in build.stderr
        reload = site.feeds("reload")
        assert reload.returncode == 1
        assert f"held by `feeds build` (pid {os.getpid()}), not by a daemon" in reload.stderr
        # Refused before they opened the store or wrote anything.
        assert [p.name for p in site.state.iterdir()] == [LOCK_FILE]
        assert not (site.root / "output").exists()
    assert site.feeds("build", "--no-wait").returncode == 0


def test_a_state_directory_that_cannot_be_made_is_named(site: Site) -> None:
    site.state.write_text("not a directory\n")
    for command in ("run", "build"):
        done = site.feeds(command)
        assert done.returncode == 1
        assert done.stderr.startswith(f"feeds: {site.state}: cannot create the state directory ("), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
    assert not (site.root / "output").exists()
