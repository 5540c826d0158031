"""Several `feeds run` nodes on one PostgreSQL store: a source polled once a period, a node killed, the store lost."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pg_helpers
import psycopg
from daemon_helpers import TWO_FILES, TWO_SOURCES, Run, metric_samples, wait_for
from node_helpers import ROOT, Node, Proxy, Sources, wait_started
from serve_helpers import free_port

from feeds import cluster
from feeds.adapters import ADAPTERS
from feeds.config import Config, load
from feeds.store import Store

HEARTBEAT = 1.0  # seconds; a node silent for four of them has its running jobs retried by another
PERIOD = {"every 2s": 2, "every 3s": 3}


def load_text(text: str, directory: Path) -> Config:
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, ADAPTERS)


def running_on(url: str, source: str, *, for_seconds: float) -> int:
    """The procrastinate worker that has run a poll of `source` for `for_seconds` or more; 0 when none has.

    A poll seen just started may be a quick one about to end: a node killed after its end has nothing
    to be retried.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT job.worker_id FROM procrastinate_jobs job "
            "JOIN procrastinate_events event ON event.job_id = job.id AND event.type = 'started' "
            "WHERE job.status = 'doing' AND job.args ->> 'source' = %s "
            "AND event.at < now() - make_interval(secs => %s) ORDER BY event.at DESC LIMIT 1",
            (source, for_seconds),
        ).fetchone()
    return int(row[0]) if row and row[0] else 0


def worker_of(url: str, node: Node) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT worker FROM nodes WHERE url = %s", (f"http://127.0.0.1:{node.port}/",)).fetchone()
    return int(row[0]) if row else 0


def jobs_and_workers(url: str) -> str:
    """The queue as the server holds it, to tell why a test waited in vain."""
    with psycopg.connect(url, autocommit=True) as conn:
        jobs = conn.execute(
            "SELECT id, status, worker_id, task_name, args FROM procrastinate_jobs "
            "WHERE status IN ('todo', 'doing') ORDER BY id"
        ).fetchall()
        workers = conn.execute("SELECT id, now() - last_heartbeat FROM procrastinate_workers").fetchall()
    return f"jobs: {jobs}\nworkers: {workers}"


def tails(nodes: list[Node]) -> str:
    """The last of each node's log, without the lines of its HTTP client and scheduler."""
    parts = []
    for node in nodes:
        lines = [line for line in node.log().splitlines() if "httpx" not in line and "apscheduler" not in line]
        parts.append(f"--- {node.name}\n" + "\n".join(lines)[-4000:])
    return "\n".join(parts)


def test_nodes_poll_each_source_once_a_period_and_outlive_a_killed_node_and_a_lost_store(
    tmp_path: Path, pg_url: str
) -> None:
    names = [f"src{i:02d}" for i in range(50)]
    schedules = {name: "every 2s" if i % 2 == 0 else "every 3s" for i, name in enumerate(names)}
    sources = Sources(names, delay=0.02)
    nodes = [Node(name, free_port(), tmp_path / name) for name in ("a", "b", "c")]
    for node in nodes:
        node.write_config(store=pg_url, sources=sources, schedules=schedules)
        node.start(HEARTBEAT)
    a, b, c = nodes
    try:
        wait_started(nodes)
        wait_for(lambda: all(sources.count(name) for name in names), timeout=30)

        # Once a period across the nodes, not once per node.
        window = 6.0
        since = time.monotonic()
        time.sleep(window)
        until = time.monotonic()
        for name in names:
            periods = math.ceil(window / PERIOD[schedules[name]])
            count = sources.count(name, since) - sources.count(name, until)
            # Not once per node; at least once, though a busy machine may let a poll slip to the next period.
            assert 1 <= count <= periods + 1, (name, count, periods)

        # New items while the nodes run.
        added = names[:10]
        for name in added:
            sources.add_item(name)
        since = time.monotonic()
        wait_for(lambda: all(sources.count(name, since) >= 2 for name in added), timeout=20)

        # A node killed while it polls a slow source: another node retries that poll.
        slow = names[1]
        sources.delay[slow] = 8.0

        def slow_poll_on_a_node() -> Node | None:
            worker = running_on(pg_url, slow, for_seconds=1.0)  # its fetch takes 8 s; the others', 0.02 s
            if not worker:
                return None
            return next((n for n in (a, b, c) if worker_of(pg_url, n) == worker), None)

        victim = wait_for(slow_poll_on_a_node, timeout=20, every=0.1)
        asked = sources.count(slow)
        victim.kill()
        sources.delay[slow] = 0.02
        survivors = [n for n in nodes if n is not victim]
        try:
            wait_for(lambda: any(f"event=stalled source={slow} " in n.log() for n in survivors), timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{jobs_and_workers(pg_url)}\n{tails(survivors)}") from None
        lines = [line for n in survivors for line in n.log().splitlines()]
        assert any(f"event=stalled source={slow} " in line and "result=retried" in line for line in lines)
        wait_for(lambda: sources.count(slow) > asked, timeout=20)
        since = time.monotonic()
        wait_for(lambda: all(sources.count(name, since) for name in names), timeout=20)

        # The store drops every connection, as a restart of the server would.
        assert pg_helpers.terminate(pg_url) > 0
        since = time.monotonic()
        wait_for(lambda: all(sources.count(name, since) >= 2 for name in names), timeout=30)
        assert all(n.alive() for n in survivors)

        # What the operator sees: the live nodes, the jobs, who polled what.
        first = survivors[0]
        base = f"http://127.0.0.1:{first.port}/"

        def two_live() -> bool:
            samples = metric_samples(httpx.get(base + "metrics", timeout=10).text)
            return samples.get(("feeds_nodes", frozenset())) == 2

        wait_for(two_live, timeout=20, every=0.5)
        samples = metric_samples(httpx.get(base + "metrics", timeout=10).text)
        beats = {dict(labels)["node"] for name, labels in samples if name == "feeds_node_heartbeat_timestamp_seconds"}
        assert len(beats) == 3
        assert ("feeds_jobs", frozenset({("status", "failed")})) in samples
        page = httpx.get(base + "status", timeout=10).text
        assert 'id="nodes"' in page and "silent" in page and 'id="polls"' in page
        status = subprocess.run(
            [sys.executable, "-m", "feeds", "status", "--config", str(first.config)],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "", "FEEDS_HEARTBEAT_SECONDS": str(HEARTBEAT)},
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert status.stdout.count(" live ") == 2 and status.stdout.count(" silent ") == 1, status.stdout
        for name in names:
            assert any(line.startswith(name + " ") and ":" in line for line in status.stdout.splitlines())

        for node in survivors:
            assert node.terminate() == 0, node.log()
    finally:
        for node in nodes:
            if node.alive():
                node.kill()
        sources.close()

    for node in survivors:
        text = node.log()
        assert "Traceback" not in text, text
        assert "event=stop" in text
    # Every entry once in the feed, the same on every node that ran to the end: each mirrors the store.
    feeds = {(n.out / "news.atom").read_bytes() for n in survivors}
    assert len(feeds) == 1
    parsed = feedparser.parse(feeds.pop())
    titles = [e.title for e in parsed.entries]
    expected = {f"Item {k} of {name}" for name in names for k in range(1, sources.items[name] + 1)}
    assert len(titles) == len(set(titles)) == len(expected)
    assert set(titles) == expected


def test_every_node_names_a_period_by_the_same_slot(tmp_path: Path) -> None:
    config = load_text(
        '[site]\ntitle = "t"\nbase_url = "https://example.org/"\n'
        '[[categories]]\nslug = "news"\ntitle = "News"\ntypes = ["News"]\n'
        '[[sources]]\nname = "often"\nadapter = "listing"\nlocation = "a.txt"\nschedule = "every 5m"\n'
        '[[sources]]\nname = "daily"\nadapter = "listing"\nlocation = "b.txt"\nschedule = "30 6 * * *"\n',
        tmp_path,
    )
    often, daily = config.sources
    start = cluster.interval_start(often)
    assert cluster.EPOCH <= start < cluster.EPOCH + timedelta(minutes=5)
    fire = start + timedelta(days=20_000, minutes=5 * 7)  # a firing of the trigger, and moments after it
    assert {cluster.slot(often, fire + timedelta(seconds=s)) for s in (0, 1, 60, 299)} == {fire.isoformat()}
    assert cluster.slot(often, fire + timedelta(seconds=300)) == (fire + timedelta(minutes=5)).isoformat()
    cron_fire = datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    assert cluster.slot(daily, cron_fire + timedelta(seconds=40)) == cron_fire.isoformat()


def test_a_burst_of_polls_is_published_by_a_few_publish_jobs_one_at_a_time(tmp_path: Path, pg_url: str) -> None:
    Store(tmp_path / "state.db", url=pg_url).close()  # the store's tables: claims, polls, nodes
    guard = threading.Lock()
    polled: dict[str, float] = {}
    published: list[tuple[float, float]] = []  # each publish job's start and end

    def poll(source: str) -> None:
        time.sleep(0.01)
        with guard:
            polled[source] = time.monotonic()
        node.publish_soon()  # as a poll that recorded a change does

    def publish() -> None:
        started = time.monotonic()
        time.sleep(0.3)
        with guard:
            published.append((started, time.monotonic()))

    node = cluster.Cluster(
        pg_url,
        node="burst:1",
        node_url="http://127.0.0.1:1/",
        poll=poll,
        publish=publish,
        timing=cluster.Timing(heartbeat=0.5, stalled=2.0, sweep=0.5),
    )
    node.start()
    names = [f"src{i:02d}" for i in range(24)]
    try:
        for name in names:
            assert node.claim(name, "2026-12-01T00:00:00+00:00")

        def all_published() -> bool:
            with guard:
                return len(polled) == len(names) and bool(published) and published[-1][0] >= max(polled.values())

        wait_for(all_published, timeout=30)
        time.sleep(1.0)  # a publish job queued after the last poll's would have started by now
    finally:
        node.stop()
    # Every poll is followed by a publish that started after it; one publish waits at a time, so a burst
    # takes a few publishes, not one per poll; and never two at once.
    assert len(published) <= len(names) // 2, published
    starts = sorted(published)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(starts)), starts
    assert starts[-1][0] >= max(polled.values())


def test_a_daemon_without_a_shared_store_shows_no_nodes(start_daemon: Callable[..., Run]) -> None:
    run = start_daemon(TWO_SOURCES, TWO_FILES)
    samples = metric_samples(run.get("metrics").text)
    assert not any(name.startswith(("feeds_nodes", "feeds_jobs", "feeds_node_")) for name, _ in samples)
    page = run.get("status").text
    assert 'id="sources"' in page and 'id="nodes"' not in page and 'id="polls"' not in page


def test_a_node_outlives_the_store_away_and_stops_cleanly_without_it(tmp_path: Path, pg_url: str) -> None:
    names = [f"src{i}" for i in range(5)]
    sources = Sources(names)
    proxy = Proxy(("127.0.0.1", 5432))
    database = pg_url.rsplit("/", 1)[1]
    through = f"postgresql://root:s3cret@127.0.0.1:{proxy.port}/{database}"
    node = Node("a", free_port(), tmp_path / "a")
    node.write_config(store=through, sources=sources, schedules=dict.fromkeys(names, "every 2s"))
    node.start(HEARTBEAT)
    try:
        wait_started([node])
        wait_for(lambda: all(sources.count(name) for name in names), timeout=30)
        proxy.down()

        def unreachable() -> list[str]:
            return [line for line in node.log().splitlines() if "event=store result=unreachable" in line]

        wait_for(unreachable, timeout=40)
        time.sleep(2)
        assert node.alive()
        assert all(f"url=postgresql://root@127.0.0.1:{proxy.port}/{database}" in line for line in unreachable())
        proxy.up()
        since = time.monotonic()
        wait_for(lambda: all(sources.count(name, since) >= 2 for name in names), timeout=40)
        wait_for(lambda: "event=store result=back" in node.log(), timeout=20)  # each part says so when it has
        proxy.down()
        time.sleep(2)
        assert node.terminate() == 0, node.log()
    finally:
        if node.alive():
            node.kill()
        proxy.down()
        sources.close()
    text = node.log()
    assert "s3cret" not in text
    assert "Traceback" not in text, text


def test_a_node_that_starts_late_answers_only_once_it_holds_what_the_store_does(tmp_path: Path, pg_url: str) -> None:
    names = [f"src{i}" for i in range(4)]
    sources = Sources(names)
    try:
        first, late = (Node(name, free_port(), tmp_path / name) for name in ("first", "late"))
        for node in (first, late):
            node.write_config(store=pg_url, sources=sources, schedules=dict.fromkeys(names, "every 1h"))
        first.start(HEARTBEAT)
        wait_started([first])

        def all_published() -> bool:
            feed = first.out / "news.atom"
            return feed.exists() and all(f"Item 2 of {name}".encode() in feed.read_bytes() for name in names)

        wait_for(all_published, timeout=30)
        published = (first.out / "news.atom").read_bytes()

        late.start(HEARTBEAT)

        # The first answer the late node gives, as soon as its port takes a connection, is the whole feed.
        def answer() -> httpx.Response | None:
            assert late.alive(), late.log()
            try:
                return httpx.get(f"http://127.0.0.1:{late.port}/news.atom", timeout=5)
            except httpx.TransportError:
                return None

        first_answer = wait_for(answer, timeout=60, every=0.01)
        assert first_answer.status_code == 200 and first_answer.content == published
        assert first_answer.headers["etag"] == httpx.get(f"http://127.0.0.1:{first.port}/news.atom").headers["etag"]
        assert late.terminate() == 0 and first.terminate() == 0
    finally:
        for node in (first, late):
            if node.alive():
                node.kill()
        sources.close()
