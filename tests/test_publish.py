"""write_files: new directories that appear whole, failures that keep previous files, flushes before renames."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from site_helpers import contents

from feeds import publish
from feeds.errors import PublishError


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


@pytest.mark.usefixtures("strict_umask")
def test_the_files_of_new_directories_are_readable_and_a_name_written_twice_keeps_the_last(tmp_path: Path) -> None:
    writes = [
        publish.Write("entries/a/0.html", b"written, then again", gzip=False, durable=False),
        *pages("entries/a", 40),
        *pages("entries/b/deeper", 30),
        publish.Write("entries/a/0.html", b"the last bytes", gzip=False, durable=False),
    ]
    written = publish.write_files(tmp_path, writes)
    expected = {w.name: w.data for w in writes}  # a name written twice keeps the last bytes
    assert written == set(expected)
    assert contents(tmp_path) == expected
    assert {p.stat().st_mode & 0o777 for p in tmp_path.rglob("*.html")} == {0o644}
    assert {p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_dir()} == {0o755}
    assert hidden(tmp_path) == []


def test_a_file_that_cannot_be_written_fails_the_call_and_keeps_every_previous_file(tmp_path: Path) -> None:
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
    assert info.value.where.endswith("/" + too_long.rpartition("/")[2])
    assert info.value.what == (
        "cannot write (File name too long); previous files are intact; check that the output directory is writable"
    )
    assert contents(tmp_path) == {"index.html": b"the index before"}
    assert hidden(tmp_path) == []


def test_an_error_while_rendering_shows_nothing(tmp_path: Path) -> None:
    def writes() -> Iterator[publish.Write]:
        yield from pages("entries/a", 50)
        yield publish.Write("all.atom", b"<feed/>")
        raise RuntimeError("a renderer failed")

    with pytest.raises(RuntimeError, match="a renderer failed"):
        publish.write_files(tmp_path, writes())
    assert contents(tmp_path) == {}
    assert hidden(tmp_path) == []


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
