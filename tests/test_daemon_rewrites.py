"""A poll that reads a change rewrites the files that change and no other."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from daemon_helpers import TWO_FILES, TWO_SOURCES, Run, snapshot, wait_for


def test_a_change_rewrites_only_the_files_it_touches(start_daemon: Callable[..., Run]) -> None:
    run = start_daemon(TWO_SOURCES, TWO_FILES)
    before = snapshot(run.out)
    assert {"news.atom", "publications.atom", "all.atom", "index.html"} <= before.keys()
    time.sleep(1.2)  # one round of polls that read nothing new
    assert snapshot(run.out) == before

    run.append_news()
    wait_for(lambda: b"Fishers" in (run.out / "news.atom").read_bytes())
    run.stop()  # waits for the poll to finish its writes
    after = snapshot(run.out)

    changed = {name for name, seen in after.items() if before.get(name) != seen}
    for ext in ("atom", "rss", "json"):
        assert {f"news.{ext}", f"news.{ext}.gz", f"all.{ext}", f"all.{ext}.gz"} <= changed
    untouched = [name for name in before if name.startswith("publications.")]
    assert len(untouched) >= 8  # three feeds and a page, each with its .gz
    assert not changed & set(untouched)
    unexpected = [n for n in changed if not re.match(r"(news|all)\.|index\.html|entries/", n)]
    assert unexpected == []
