"""The structured log line that the daemon and the WebSub pinger both write."""

from __future__ import annotations

from feeds.logfmt import logfmt


def test_plain_values_are_bare_and_keep_their_order() -> None:
    assert logfmt(event="write", path="news.atom", entries=3) == "event=write path=news.atom entries=3"


def test_values_that_need_it_are_quoted_and_escaped() -> None:
    line = logfmt(error='said "no"\nthen left', empty="", eq="a=b", back="c:\\d e")
    assert line == r'error="said \"no\"\nthen left" empty="" eq="a=b" back="c:\\d e"'
