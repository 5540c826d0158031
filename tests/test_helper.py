"""The helper process: calls run in a child, failures come back, and rendering with it changes no byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from site_helpers import NOW, SITE, contents

from feeds import helper as helper_module
from feeds import pipeline, render
from feeds.config import Config
from feeds.errors import RenderError
from feeds.helper import HelperGone, HelperProcess, started
from feeds.model import Author, Category, Enclosure, Entry

BASE = "https://feeds.example.org/"
NEWS = Category(slug="news", title="News & “views”")


class Recording(HelperProcess):
    """A helper that keeps the futures of its calls, to tell which calls the child answered."""

    def __init__(self) -> None:
        super().__init__()
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future

    def answered(self) -> int:
        """The calls the child answered."""
        return sum(1 for f in self.futures if f.done() and not f.cancelled() and f.exception() is None)


@pytest.fixture
def helper() -> Any:
    process = Recording()
    yield process
    process.shutdown(wait=True, cancel_futures=True)


def gone(pid: int) -> bool:
    """Whether the process has exited: it no longer exists, or is a zombie its parent has not reaped yet."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rpartition(")")[2].split()[0] == "Z"


# --- the executor ---------------------------------------------------------------------------------


def test_calls_run_in_the_child_and_their_exceptions_come_back(helper: Recording) -> None:
    assert helper.submit(os.getpid).result(timeout=30) != os.getpid()
    assert helper.submit(pow, 2, 10).result(timeout=30) == 1024
    with pytest.raises(ValueError, match="math domain error"):
        helper.submit(__import__("math").sqrt, -1).result(timeout=30)
    # What cannot be pickled fails that call alone.
    with pytest.raises(Exception, match="pickle"):
        helper.submit(lambda: 1).result(timeout=30)
    assert helper.submit(divmod, 7, 2).result(timeout=30) == (3, 1)


def test_what_the_child_prints_goes_to_stderr_not_into_the_replies(helper: Recording) -> None:
    assert helper.submit(print, "noise " * 1000).result(timeout=30) is None
    assert helper.submit(max, 3, 9).result(timeout=30) == 9


def test_a_child_that_dies_fails_the_call_in_flight_the_queued_ones_and_later_ones(helper: Recording) -> None:
    dying = helper.submit(os._exit, 3)
    queued = helper.submit(pow, 2, 2)
    for future in (dying, queued):
        with pytest.raises(HelperGone, match="stopped"):
            future.result(timeout=30)
    with pytest.raises(HelperGone):
        helper.submit(pow, 2, 3)


def test_shutdown_cancels_queued_calls_and_reaps_the_child(helper: Recording) -> None:
    pid = helper.submit(os.getpid).result(timeout=30)
    running = helper.submit(time.sleep, 0.3)
    queued = [helper.submit(pow, 2, n) for n in range(5)]
    time.sleep(0.05)  # the sleep is in the child by now
    helper.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) is None  # a call in flight is finished, not dropped
    assert all(f.cancelled() for f in queued)
    assert gone(pid)
    with pytest.raises(HelperGone, match="shut down"):
        helper.submit(pow, 2, 2)


def test_signals_meant_for_the_build_are_ignored(helper: Recording) -> None:
    pid = helper.submit(os.getpid).result(timeout=30)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        os.kill(pid, signum)
    assert helper.submit(pow, 3, 3).result(timeout=30) == 27


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    """Unlike a spawned ProcessPoolExecutor worker, the child does not import the program's __main__ again."""
    runs = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import os\n"
        "from feeds.helper import HelperProcess\n"
        f"with open({str(runs)!r}, 'a') as f:\n"
        "    f.write('ran\\n')\n"
        "h = HelperProcess()\n"
        "print(h.submit(pow, 2, 5).result(timeout=30))\n"
        "h.shutdown()\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "32\n"
    assert runs.read_text() == "ran\n"


def test_the_child_ends_quietly_when_the_build_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(
        "import os, sys, time\n"
        "from feeds.helper import HelperProcess\n"
        "h = HelperProcess()\n"
        "print(h.submit(os.getpid).result(timeout=30), flush=True)\n"
        "h.submit(time.sleep, 0.5)\n"
        "time.sleep(60)\n",
        encoding="utf-8",
    )
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as err:
        build = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=err)
        assert build.stdout is not None
        child = int(build.stdout.readline())
        time.sleep(0.2)  # the sleep is in the child
        build.kill()
        build.wait(timeout=30)
        build.stdout.close()
    deadline = time.monotonic() + 30
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(child)
    assert "Traceback" not in stderr.read_text()


def test_no_interpreter_means_no_helper(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(OSError):
        HelperProcess(python="/nonexistent/python3")
    monkeypatch.setattr(helper_module, "HelperProcess", lambda: HelperProcess(python="/nonexistent/python3"))
    monkeypatch.setattr(helper_module, "cpus", lambda: 2)
    with started(True) as none:
        assert none is None
    assert "cannot start a helper process" in caplog.text


def test_work_not_worth_it_or_a_single_core_gets_no_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helper_module, "cpus", lambda: 2)
    with started(False) as small:
        assert small is None
    with started(True) as big:
        assert isinstance(big, HelperProcess)
        pid = big.submit(os.getpid).result(timeout=30)
    assert gone(pid)  # shut down at the end
    monkeypatch.setattr(helper_module, "cpus", lambda: 1)
    with started(True) as single:
        assert single is None


# --- rendering with it ----------------------------------------------------------------------------


def entries(count: int) -> list[Entry]:
    """Entries of every shape the renderer knows: with and without content, authors, enclosures, links."""
    start = datetime(2021, 3, 1, 9, 30, tzinfo=UTC)
    out = []
    for n in range(count):
        day = start + timedelta(hours=13 * n)
        own = n % 3 == 0
        out.append(
            Entry(
                id=f"tag:feeds.example.org,2021:news:item-{n}" if own else f"https://coop.example.org/news/{n}",
                title=f"Item {n}: savings <groups> & “shops”" + ("\x0b" if n % 11 == 0 else ""),
                link=f"{BASE}entries/news/item-{n}.html" if own else f"https://coop.example.org/news/{n}",
                published=day,
                updated=day + timedelta(days=n % 4),
                source="news",
                summary=f"What happened to {n} members." if n % 5 else "",
                content_html=f"<p>Report {n} &amp; <em>notes</em></p>" if n % 2 else "",
                authors=(Author(name=f"Writer {n % 4}", email="desk@example.org" if n % 4 == 1 else ""),),
                categories=(NEWS,),
                enclosures=(Enclosure(url=f"https://coop.example.org/{n}.mp3", length=n, type="audio/mpeg"),)
                if n % 7 == 0
                else (),
            )
        )
    return out


META = render.FeedMeta(
    slug="news",
    title="Test Site — News",
    description="",
    base_url=BASE,
    author="Test Unit",
    language="en",
    updated=datetime(2023, 1, 1, tzinfo=UTC),
)


def documents(shared: render.Shared, feeds: list[list[Entry]]) -> list[bytes]:
    return [
        renderer(META, feed, shared)
        for feed in feeds
        for renderer in (render.render_atom, render.render_rss, render.render_json)
    ]


def feeds_of(items: list[Entry]) -> list[list[Entry]]:
    """Overlapping feeds, as a pass has them: everything, then parts, an entry in several."""
    return [items, items[::2], items[100:300], items[-50:]]


def test_a_helper_changes_no_byte_and_does_part_of_the_work(helper: Recording) -> None:
    items = entries(1000)
    feeds = feeds_of(items)
    alone = documents(render.Shared(), feeds)
    shared = render.Shared(helper)
    shared.prepare(BASE, [e for feed in feeds for e in feed])
    assert documents(shared, feeds) == alone
    assert helper.answered() >= 1


def test_an_entry_the_helper_fails_on_is_reported_with_its_feed(helper: Recording) -> None:
    items = entries(600)
    bad = Entry(id="tag:x,2020:no-link", title="t", link="", published=items[0].published,
                updated=items[0].updated, source="s")  # fmt: skip
    items.insert(450, bad)
    shared = render.Shared(helper)
    shared.prepare(BASE, items)
    with pytest.raises(RenderError) as caught:
        render.render_atom(META, items, shared)
    assert caught.value.where == "news.atom"
    assert "entry tag:x,2020:no-link" in caught.value.what


def test_a_helper_that_dies_leaves_the_work_to_this_process(helper: Recording) -> None:
    items = entries(1000)
    feeds = feeds_of(items)
    alone = documents(render.Shared(), feeds)
    helper.submit(os._exit, 1)  # dies before it reaches any of the batches queued behind
    shared = render.Shared(helper)
    shared.prepare(BASE, items)
    assert documents(shared, feeds) == alone
    assert helper.answered() == 0


# --- a whole build with it ------------------------------------------------------------------------

BODY = """
[[sources]]
name = "news"
adapter = "listing"
location = "news.txt"
"""


def listing(count: int) -> str:
    lines = ["News", ""]
    for n in range(1, count + 1):
        lines += [f"  {n}. {'News' if n % 2 else 'Event report'}", "", f"    Cooperative story {n}", ""]
        lines += [f"    {n % 28 + 1} March {2000 + n // 28}", "", f"    Item {n} & its members, in brief.", ""]
    return "\n".join(lines)


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch) -> list[Recording]:
    """The helper processes builds start (on any machine, as if it had two cores), recorded."""
    started: list[Recording] = []

    def recording() -> Recording:
        started.append(Recording())
        return started[-1]

    monkeypatch.setattr(helper_module, "HelperProcess", recording)
    monkeypatch.setattr(helper_module, "cpus", lambda: 2)
    return started


def rebuilt(config: Config) -> tuple[pipeline.BuildReport, dict[str, bytes]]:
    """A first build of `config`, from nothing: its report and every output file."""
    for path in (config.site.output, config.site.state):
        for p in sorted(path.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
    report = pipeline.build(config, NOW)
    return report, contents(config.site.output)


@pytest.mark.parametrize("per_feed", [50, 2000])  # archives and all, or every entry in the current documents
def test_a_build_with_a_helper_renders_what_a_build_without_one_renders(
    make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch, helpers: list[Recording], per_feed: int
) -> None:
    site = SITE.replace("entries_per_feed = 50", f"entries_per_feed = {per_feed}")
    config = make_config(BODY, {"news.txt": listing(900)}, site=site)
    monkeypatch.setattr(render, "HELPER_AFTER", 10**9)
    _, alone = rebuilt(config)
    assert not helpers

    monkeypatch.setattr(render, "HELPER_AFTER", 100)
    assert rebuilt(config)[1] == alone
    assert len(helpers) == 1 and helpers[0].answered() >= 1
    with pytest.raises(HelperGone):  # the build shut it down
        helpers[0].submit(pow, 2, 2)
