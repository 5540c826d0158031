"""write_files: the second writer for new directories, and the flushes that run beside the caller."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from site_helpers import contents

from feeds import _writer, publish
from feeds.errors import PublishError


class Spawned:
    """The processes write_files starts, recorded as it starts them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        real = subprocess.Popen

        def popen(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
            process: subprocess.Popen[bytes] = real(*args, **kwargs)  # type: ignore[call-overload]
            self.processes.append(process)
            return process

        monkeypatch.setattr(subprocess, "Popen", popen)


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> Spawned:
    return Spawned(monkeypatch)


@pytest.fixture
def start_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second writer starts after three files, so a test needs few."""
    monkeypatch.setattr(publish._SecondWriter, "START_AFTER", 3)


@pytest.fixture
def strict_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def pages(directory: str, count: int) -> list[publish.Write]:
    return [
        publish.Write(f"{directory}/{n}.html", f"page {n} ".encode() * (n % 7 + 1), gzip=False, durable=False)
        for n in range(count)
    ]


def hidden(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


@pytest.mark.usefixtures("start_soon", "strict_umask")
def test_a_second_process_writes_the_files_of_new_directories(tmp_path: Path, spawned: Spawned) -> None:
    writes = [
        publish.Write("entries/a/0.html", b"written here, then again", gzip=False, durable=False),
        *pages("entries/a", 40),
        *pages("entries/b/deeper", 30),
        publish.Write("entries/a/0.html", b"the last bytes", gzip=False, durable=False),
    ]
    written = publish.write_files(tmp_path, writes)
    assert len(spawned.processes) == 1
    assert spawned.processes[0].returncode == 0
    expected = {w.name: w.data for w in writes}  # a name written twice keeps the last bytes
    assert written == set(expected)
    assert contents(tmp_path) == expected
    assert {p.stat().st_mode & 0o777 for p in tmp_path.rglob("*.html")} == {0o644}
    assert {p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_dir()} == {0o755}
    assert hidden(tmp_path) == []


def test_a_few_new_files_start_no_process(tmp_path: Path, spawned: Spawned) -> None:
    writes = pages("entries/a", publish._SecondWriter.START_AFTER)
    assert publish.write_files(tmp_path, writes) == {w.name for w in writes}
    assert spawned.processes == []
    assert contents(tmp_path) == {w.name: w.data for w in writes}


@pytest.mark.usefixtures("start_soon")
@pytest.mark.parametrize("executable", ["", "true"])
def test_without_a_second_process_the_files_are_written_here(
    tmp_path: Path, spawned: Spawned, monkeypatch: pytest.MonkeyPatch, executable: str
) -> None:
    # No interpreter to start, or a program embedding Python that cannot run the writer.
    monkeypatch.setattr(sys, "executable", shutil.which(executable) if executable else "")
    writes = pages("entries/a", 20)
    assert publish.write_files(tmp_path, writes) == {w.name for w in writes}
    assert len(spawned.processes) == (1 if executable else 0)
    assert all(p.returncode is not None for p in spawned.processes)  # tried once, and reaped
    assert contents(tmp_path) == {w.name: w.data for w in writes}


@pytest.mark.usefixtures("start_soon")
def test_a_file_the_second_process_cannot_write_fails_the_call_and_keeps_every_previous_file(
    tmp_path: Path, spawned: Spawned
) -> None:
    (tmp_path / "index.html").write_bytes(b"the index before")
    too_long = "entries/a/" + "x" * 300 + ".html"
    writes = [
        publish.Write("index.html", b"a new index"),
        *pages("entries/a", 10),
        publish.Write(too_long, b"never", gzip=False, durable=False),
        *pages("entries/b", 10),
    ]
    with pytest.raises(PublishError) as info:
        publish.write_files(tmp_path, writes)
    assert spawned.processes and spawned.processes[0].returncode == 1
    assert info.value.where.endswith("/" + too_long.rpartition("/")[2])
    assert info.value.what == (
        "cannot write (File name too long); previous files are intact; check that the output directory is writable"
    )
    assert contents(tmp_path) == {"index.html": b"the index before"}
    assert hidden(tmp_path) == []


@pytest.mark.usefixtures("start_soon")
def test_an_error_while_rendering_stops_the_second_process_and_shows_nothing(tmp_path: Path, spawned: Spawned) -> None:
    def writes() -> Iterator[publish.Write]:
        yield from pages("entries/a", 50)
        raise RuntimeError("a renderer failed")

    with pytest.raises(RuntimeError, match="a renderer failed"):
        publish.write_files(tmp_path, writes())
    assert len(spawned.processes) == 1
    assert spawned.processes[0].returncode is not None  # stopped and reaped, not left running
    assert contents(tmp_path) == {}
    assert hidden(tmp_path) == []


def run_writer(records: bytes) -> subprocess.CompletedProcess[bytes]:
    program = Path(_writer.__file__)
    return subprocess.run([sys.executable, "-I", "-S", str(program)], input=records, capture_output=True, timeout=30)


def record(path: Path, data: bytes) -> bytes:
    name = os.fsencode(path)
    return _writer.HEADER.pack(len(name), len(data)) + name + data


def test_the_writer_program_writes_what_it_is_sent_and_drops_a_record_cut_short(tmp_path: Path) -> None:
    whole = record(tmp_path / "one.html", b"one") + record(tmp_path / "two.html", b"two")
    done = run_writer(whole)
    assert (done.returncode, done.stdout) == (0, _writer.READY)
    assert contents(tmp_path) == {"one.html": b"one", "two.html": b"two"}
    cut = record(tmp_path / "three.html", b"three")[:-2]
    assert run_writer(cut).returncode == 2
    assert not (tmp_path / "three.html").exists()
    failed = run_writer(record(tmp_path / "missing" / "four.html", b"four"))
    assert failed.returncode == 1
    assert failed.stdout == _writer.READY + b"%d %s" % (errno.ENOENT, os.fsencode(tmp_path / "missing" / "four.html"))


def test_the_writer_program_leaves_signals_to_the_build(tmp_path: Path) -> None:
    program = Path(_writer.__file__)
    with subprocess.Popen(
        [sys.executable, "-I", "-S", str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        assert process.stdout.read(len(_writer.READY)) == _writer.READY
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # Ctrl-C, a service stopping
            process.send_signal(signum)
        process.stdin.write(record(tmp_path / "page.html", b"still written"))
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    assert contents(tmp_path) == {"page.html": b"still written"}


def test_durable_files_are_on_disk_before_any_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flushed: list[str] = []
    renamed: list[tuple[str, int]] = []  # (target, files flushed by then)
    real_flush, real_replace = os.fdatasync, os.replace

    def fdatasync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_flush(fd)

    def replace(src: str, dst: str) -> None:
        renamed.append((os.path.basename(dst), len(flushed)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    monkeypatch.setattr(os, "replace", replace)
    (tmp_path / "entries").mkdir()
    writes = [
        publish.Write("all.atom", b"<feed/>"),
        publish.Write("entries/page.html", b"<p/>", gzip=False, durable=False),
        publish.Write("all.rss", b"<rss/>"),
    ]
    publish.write_files(tmp_path, writes)
    # Temp files are named ".<name>.<pid>-<n>.tmp": the feeds and their .gz were flushed, the page not.
    assert sorted(re.sub(r"^\.|\.\d+-\d+\.tmp$", "", os.path.basename(f)) for f in flushed) == [
        "all.atom",
        "all.atom.gz",
        "all.rss",
        "all.rss.gz",
    ]
    assert sorted(name for name, _ in renamed) == ["all.atom", "all.atom.gz", "all.rss", "all.rss.gz", "page.html"]
    assert all(done == 4 for _, done in renamed)  # every flush finished before the first rename


def test_a_failed_flush_keeps_every_previous_file_and_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_flush = os.fdatasync

    def fdatasync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").rpartition("/")[2].startswith(".all.rss."):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_flush(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    (tmp_path / "all.rss").write_bytes(b"<rss>before</rss>")
    writes = [publish.Write("all.atom", b"<feed/>"), publish.Write("all.rss", b"<rss>after</rss>")]
    with pytest.raises(PublishError) as info:
        publish.write_files(tmp_path, writes)
    assert info.value.where.rpartition("/")[2].startswith(".all.rss.")
    assert info.value.what.startswith("cannot write (Input/output error); previous files are intact")
    assert contents(tmp_path) == {"all.rss": b"<rss>before</rss>"}
    assert hidden(tmp_path) == []
