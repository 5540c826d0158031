"""The daemon behind `feeds run`: APScheduler jobs per source, the feed server, status and metrics."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from feeds import __version__, documents, lock, pages, pipeline, store
from feeds.adapters import ADAPTERS
from feeds.config import Config, SourceConfig, load
from feeds.errors import ConfigError, FeedsError
from feeds.fetch import Fetcher, user_agent
from feeds.logfmt import logfmt
from feeds.model import FEED_SUFFIXES
from feeds.serve import DynamicResponse, ServerThread, StaticFeeds
from feeds.websub import HubPinger

if TYPE_CHECKING:
    from feeds import cluster

log = logging.getLogger("feeds")

MAX_BACKOFF = timedelta(hours=6)
Clock = Callable[[], datetime]


def backoff(schedule_seconds: int, failures: int) -> timedelta:
    """How long a source that failed `failures` times in a row rests: its period doubled per failure, capped."""
    if failures <= 1:
        return timedelta(seconds=schedule_seconds)
    return min(timedelta(seconds=schedule_seconds * 2 ** min(failures - 1, 16)), MAX_BACKOFF)


class Metrics:
    """Prometheus metrics of one daemon (its own registry, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.fetches = Counter(
            "feeds_fetches", "Source fetches by result.", ["source", "result"], registry=self.registry
        )
        self.page_fetches = Counter(
            "feeds_page_fetches",
            "Followed item pages fetched by result: ok, not-modified, enclosure, missing, failed, unreadable, robots.",
            ["source", "result"],
            registry=self.registry,
        )
        self.failures = Counter(
            "feeds_fetch_failures", "Source fetches that failed.", ["source"], registry=self.registry
        )
        self.last_success = Gauge(
            "feeds_source_last_success_timestamp_seconds",
            "When the source was last read successfully.",
            ["source"],
            registry=self.registry,
        )
        self.source_entries = Gauge(
            "feeds_source_entries", "Entries the source gave on its last read.", ["source"], registry=self.registry
        )
        self.source_warnings = Gauge(
            "feeds_source_warnings",
            "Warnings of the source's last read (items left unread, an encoding guessed); the source did not fail.",
            ["source"],
            registry=self.registry,
        )
        self.feed_entries = Gauge(
            "feeds_feed_entries", "Entries in each published feed file.", ["feed"], registry=self.registry
        )
        self.writes = Counter(
            "feeds_files_written", "Output files replaced because their bytes changed.", registry=self.registry
        )
        self.render_seconds = Histogram(
            "feeds_render_seconds", "Time to bring output/ up to date.", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PingCollector(Collector):
    """feeds_websub_pings_total{result}: the pinger's counts, read when scraped."""

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("feeds_websub_pings", "WebSub hub notifications by result.", labels=["result"])
        for result, count in self._stats().items():
            family.add_metric([result], count)
        yield family


class _ClusterCollector(Collector):
    """feeds_nodes, feeds_jobs{status} and feeds_node_heartbeat_timestamp_seconds{node}, read from the store."""

    def __init__(self, url: str, timing: cluster.Timing) -> None:
        self._url = url
        self._timing = timing

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from feeds import cluster

        try:
            status = cluster.read_status(self._url, datetime.now(UTC), self._timing)
        except FeedsError as exc:
            log.error(logfmt(event="metrics", result="failed", error=str(exc)))
            return
        yield GaugeMetricFamily(
            "feeds_nodes", "Nodes whose heartbeat is recent.", value=sum(n.live for n in status.nodes)
        )
        jobs = GaugeMetricFamily("feeds_jobs", "Poll jobs in the shared queue by status.", labels=["status"])
        for name, count in sorted(status.jobs.items()):
            jobs.add_metric([name], count)
        yield jobs
        beats = GaugeMetricFamily(
            "feeds_node_heartbeat_timestamp_seconds", "When each node last said it runs.", labels=["node"]
        )
        for node in status.nodes:
            beats.add_metric([node.name], datetime.fromisoformat(node.heartbeat).timestamp())
        yield beats


class Daemon:
    """Keeps every feed fresh on its sources' schedules and serves output/ until stopped."""

    def __init__(
        self, config_path: Path, *, host: str = "127.0.0.1", port: int = 8080, clock: Clock = lambda: datetime.now(UTC)
    ) -> None:
        self.config_path = config_path
        self.config: Config = load(config_path, ADAPTERS)
        self.clock = clock
        self.metrics = Metrics()
        self._lock = threading.Lock()  # one writer: feedgen switches the process locale, SQLite wants one user
        self._stopping = threading.Event()
        # Polls in progress. stop() waits for them itself, before APScheduler's shutdown: that holds the
        # scheduler's job store lock while it waits for jobs, and a poll that backs off or records its next
        # run asks the scheduler for that lock, so waiting inside shutdown would deadlock.
        self._polls = threading.Condition()
        self._running_polls = 0
        self._site = pipeline.Site(self.config)
        self._fetcher = Fetcher(user_agent=user_agent(__version__, self.config.site.contact_url))
        self._pinger = self._new_pinger(self.config)
        self.metrics.registry.register(_PingCollector(lambda: self._pinger.stats))
        self._feed_entries: dict[str, int] = {}
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            # coalesce: a pause never causes a burst of runs; no grace limit: a late run still happens.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.app = StaticFeeds(
            self.config.site.output,
            max_age=self._max_age,
            hubs=self.config.site.hubs,
            base_url=self.config.site.base_url,
        )
        self.app.add_route("/healthz", self._healthz)
        self.app.add_route("/metrics", self._metrics)
        self.app.add_route("/status", self._status)
        self.server = ServerThread(self.app, host, port)
        # Many nodes on one store: polls run as jobs any node may take (see feeds/cluster.py).
        self._cluster: cluster.Cluster | None = None
        if self.config.store.url:
            from feeds import cluster  # procrastinate is loaded by nodes that share a store only

            self._cluster = cluster.Cluster(
                self.config.store.url,
                node=cluster.node_name(port),
                node_url=f"http://{host}:{port}/",
                poll=self._poll_job,
                publish=self._publish_job,
            )
            self.metrics.registry.register(_ClusterCollector(self.config.store.url, self._cluster.timing))

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Build once, start the scheduler, then the server."""
        self.config.site.output.mkdir(parents=True, exist_ok=True)
        if self._cluster is not None:
            self._start_node(self._cluster)
        else:
            with self._lock:
                now = self.clock()
                report = pipeline.run_pass(self._site, now, fetcher=self._fetcher)
                for source in report.sources:
                    self._note_fetch(source, now, None)  # build() does not time sources one by one
            self._note_files(report.files)
        if self._site.mirror is not None:
            # A node answers only once its output/ holds what the store does (a pass that published did
            # that already; one that had nothing to publish did not); from then on it follows each change.
            self._site.mirror.catch_up()
            self._site.mirror.start()
        self._schedule_all()
        self._scheduler.start()
        if self._cluster is not None:
            # Sources no node polled within their period (a new cluster, or one down for a while) are due now;
            # two nodes starting together claim the same slots, so each source is polled once.
            with self._lock:
                known = {state.name: state for state in self._site.sources()}  # one query, not one a source
            for due in self.config.sources:
                if self._overdue(due, known.get(due.name)):
                    self._claim(due.name)
        self._record_next_runs()
        self.server.start()
        log.info(logfmt(event="start", url=self.server.url, sources=len(self.config.sources), version=__version__))

    def stop(self) -> None:
        """Let the running job finish its write, then stop serving."""
        if self._cluster is not None:
            self._cluster.stop()  # the job it runs ends first; then this node takes no other
        with self._polls:
            self._stopping.set()
            self._polls.wait_for(lambda: self._running_polls == 0)
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self._pinger.close()  # nothing publishes any more; pings still queued are dropped and logged
        self.server.stop()
        if self._site.mirror is not None:
            self._site.mirror.stop()
        self._fetcher.close()
        with self._lock:
            self._site.close()
        log.info(logfmt(event="stop"))

    # The signals `feeds run` acts on. They are blocked in every thread and taken with sigwait in the main
    # thread: a handler would run wherever the main thread happens to be (inside a lock it then asks for
    # again, or never, if the kernel hands the signal to another thread while the main one sleeps).
    SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})

    def run_forever(self) -> None:
        """`feeds run`: start, then stop on SIGTERM/SIGINT and reload on SIGHUP, until stopped.

        The caller blocks SIGNALS before the process starts any thread (threads inherit the mask).
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        faulthandler.enable()  # a daemon killed with SIGABRT prints where each thread was
        self.start()
        try:
            while True:
                received = signal.sigwait(self.SIGNALS)
                log.info(logfmt(event="signal", signal=signal.Signals(received).name))
                if received != signal.SIGHUP:
                    return
                self.reload()
        finally:
            self.stop()

    def reload(self) -> bool:
        """Reread the config; an invalid one is refused and the running one stays."""
        try:
            config = load(self.config_path, ADAPTERS)
        except ConfigError as exc:
            log.error(logfmt(event="reload", result="refused", problems=len(exc.problems), error=str(exc)))
            return False
        if config.site.state != self.config.site.state or config.site.output != self.config.site.output:
            log.error(
                logfmt(
                    event="reload",
                    result="refused",
                    error="site.output and site.state cannot change while running; restart instead",
                )
            )
            return False
        retired: HubPinger | None = None
        with self._lock:
            site, old = config.site, self.config.site
            if (site.hubs, site.contact_url) != (old.hubs, old.contact_url):
                # New hub links change every feed's bytes, so the new pinger hears of every feed below.
                retired, self._pinger = self._pinger, self._new_pinger(config)
            self.config = self._site.config = config
            self.app.set_links(hubs=site.hubs, base_url=site.base_url)
            self._publish(self.clock())  # titles, categories or caps may have changed
        if retired is not None:
            retired.close()  # outside the lock: it may wait for a request in flight
        for job in self._scheduler.get_jobs():
            job.remove()
        self._schedule_all(first_run=datetime.now(UTC))
        self._record_next_runs()
        log.info(logfmt(event="reload", result="ok", sources=len(config.sources)))
        return True

    # -- jobs -------------------------------------------------------------------------------------

    def _schedule_all(self, first_run: datetime | None = None) -> None:
        for source in self.config.sources:
            self._scheduler.add_job(
                self._poll if self._cluster is None else self._claim,
                self._trigger(source),
                args=[source.name],
                id=source.name,
                name=source.name,
                replace_existing=True,
                **({"next_run_time": first_run} if first_run else {}),
            )

    def _trigger(self, source: SourceConfig) -> IntervalTrigger | CronTrigger:
        schedule = source.schedule
        if schedule.interval is not None and self._cluster is not None:
            from feeds import cluster

            # Every node fires at the same moments, so that they all name the period by the same slot.
            return IntervalTrigger(seconds=schedule.seconds, start_date=cluster.interval_start(source), timezone=UTC)
        if schedule.interval is not None:
            seconds = int(schedule.interval.total_seconds())
            # Spread sources that share a period so they do not all hit the network in the same second.
            return IntervalTrigger(
                seconds=seconds, jitter=max(1, seconds // 20) if seconds >= 20 else None, timezone=UTC
            )
        return CronTrigger.from_crontab(schedule.cron or "0 * * * *", timezone=source.time_zone)

    def _poll(self, name: str) -> None:
        """One scheduled run, unless the daemon is stopping; stop() waits for those already running."""
        with self._polls:
            if self._stopping.is_set():
                return
            self._running_polls += 1
        try:
            self._poll_once(name)
        finally:
            with self._polls:
                self._running_polls -= 1
                self._polls.notify_all()

    def _poll_once(self, name: str) -> None:
        """Fetch (outside the lock), then record, then publish (each inside it).

        Recording and publishing take the lock apart, so that polls ending while one publishes record
        theirs first, and the next publish takes them all in: the polls after it find nothing to do. On
        many nodes a publish job publishes, for every poll recorded until it starts.
        """
        try:
            source = self.config.source(name)
        except KeyError:
            return  # removed by a reload while queued
        started = time.perf_counter()
        with self._lock:
            if self._leaving():
                return
            state = self._site.source(name)
            pages = self._site.pages(source)
        # Its followed pages too are fetched here, outside the lock: other sources are never kept waiting.
        fetched = pipeline.fetch(source, state, self._fetcher, pages=pages, now=self.clock())
        with self._lock:
            if self._leaving():
                return
            now = self.clock()
            report = self._site.record(source, fetched, now)
            self._note_fetch(report, now, time.perf_counter() - started)
            failures = self._site.source(name).failures
        if self._cluster is None:
            self._publish_job()
        else:
            with self._lock:
                due = self._site.pending()
            if due:
                self._cluster.publish_soon()
        if report.failed and self._cluster is None:
            self._back_off(source, failures)  # with many nodes, a claim looks at the shared failure count instead
        self._record_next_runs(name)

    # -- many nodes on one store ----------------------------------------------------------------

    def _start_node(self, node: cluster.Cluster) -> None:
        """Join the other nodes: start the worker, publish what the store holds and output/ lacks."""
        node.start()
        self._publish_job()

    def _claim(self, name: str) -> None:
        """A firing of a source's schedule: defer its poll, unless another node did for this slot or it rests."""
        if self._stopping.is_set() or self._cluster is None:
            return
        from feeds import cluster

        try:
            source = self.config.source(name)
        except KeyError:
            return
        now = datetime.now(UTC)
        try:
            with self._lock:
                if self._leaving():
                    return  # claims that waited for the lock while the node stops: none will run here
                state = self._site.source(name)
            if self._resting(source, state, now):
                return
            self._cluster.claim(name, cluster.slot(source, now))
        except FeedsError as exc:
            log.error(logfmt(event="claim", source=name, result="failed", error=str(exc)))
        except Exception as exc:  # the store away: the node's event loop logs it once, in one line
            log.debug(logfmt(event="claim", source=name, result="failed", error=repr(exc)))

    @staticmethod
    def _resting(source: SourceConfig, state: store.SourceState, now: datetime) -> bool:
        """Whether a failing source still rests after its last failure, whichever node saw it fail."""
        if state.failures < 2 or not state.last_attempt:
            return False
        rest = backoff(source.schedule.seconds, state.failures)
        # Half a period's slack: the failure was recorded a moment after the slot it was polled for.
        return datetime.fromisoformat(state.last_attempt) + rest - timedelta(seconds=source.schedule.seconds / 2) > now

    @staticmethod
    def _overdue(source: SourceConfig, state: store.SourceState | None) -> bool:
        last = state.last_attempt if state is not None else ""
        period = timedelta(seconds=source.schedule.seconds)
        return not last or datetime.fromisoformat(last) + period <= datetime.now(UTC)

    def _poll_job(self, name: str) -> None:
        """A poll job from the shared queue: a store that fails is one line, and the next period tries again."""
        try:
            self._poll(name)
        except FeedsError as exc:
            log.error(logfmt(event="poll", source=name, result="failed", error=str(exc)))

    def _publish_job(self) -> None:
        """Publish what is recorded and not yet published, if anything is."""
        with self._lock:
            if not self._leaving() and self._site.pending():
                self._publish(self.clock())

    def _leaving(self) -> bool:
        """Whether this node stops: the jobs it still runs leave the store alone, and end.

        The store may be what is away; each job would wait for it in turn, under the lock, and the node
        would take their sum to stop. What they leave is polled again next period, or published by the
        next publish, on any node.
        """
        return self._cluster is not None and self._cluster.stopping

    def _note_fetch(self, report: pipeline.SourceReport, now: datetime, seconds: float | None) -> None:
        """Metrics and the `event=fetch` log line of one fetch, the first pass's included."""
        name = report.name
        result = "failed" if report.failed else ("unchanged" if report.unchanged else "ok")
        self.metrics.fetches.labels(name, result).inc()
        for page_result, count in report.pages.items():
            self.metrics.page_fetches.labels(name, page_result).inc(count)
        self.metrics.source_entries.labels(name).set(report.entries)
        warnings = report.warnings.splitlines()
        if not report.failed:  # a failed read says nothing of what the document holds
            self.metrics.source_warnings.labels(name).set(len(warnings))
        for warning in warnings:
            log.warning(logfmt(event="source_warning", source=name, warning=warning))
        failures = self.metrics.failures.labels(name)  # present at 0 from the first fetch on, so alerts can rate() it
        if report.failed:
            failures.inc()
            last_success = self._site.source(name).last_success
            if last_success:  # from an earlier run of the daemon
                self.metrics.last_success.labels(name).set(datetime.fromisoformat(last_success).timestamp())
        else:
            self.metrics.last_success.labels(name).set(now.timestamp())
        log.info(
            logfmt(
                event="fetch",
                source=name,
                result=result,
                entries=report.entries,
                seconds="-" if seconds is None else f"{seconds:.3f}",
                error=report.error or "-",
                moved=report.redirect or "-",
            )
        )

    def _publish(self, now: datetime) -> None:
        started = time.perf_counter()
        try:
            files = self._site.publish(now)
        except FeedsError as exc:
            log.error(logfmt(event="write", result="failed", error=str(exc)))
            return
        finally:
            self.metrics.render_seconds.observe(time.perf_counter() - started)
        self._note_files(files)

    def _note_files(self, files: list[documents.FileReport]) -> None:
        changed: list[str] = []
        for file in files:
            is_feed = file.path.endswith(FEED_SUFFIXES)
            if is_feed:
                self._feed_entries[file.path] = file.entries
                self.metrics.feed_entries.labels(file.path).set(file.entries)
            if file.written:
                self.metrics.writes.inc()
                log.info(
                    logfmt(event="write", path=file.path, entries=file.entries, new=file.new, updated=file.updated)
                )
                if is_feed:
                    changed.append(self.config.site.base_url + file.path)
        # publish_all has returned, so the new bytes are in place when a hub comes to fetch them.
        self._pinger.publish(changed)

    @staticmethod
    def _new_pinger(config: Config) -> HubPinger:
        return HubPinger(config.site.hubs, user_agent=user_agent(__version__, config.site.contact_url))

    def _back_off(self, source: SourceConfig, failures: int) -> None:
        job = self._scheduler.get_job(source.name)
        if job is None or failures < 2:
            return
        rest = backoff(source.schedule.seconds, failures)
        next_run = datetime.now(UTC) + rest
        if job.next_run_time is None or next_run > job.next_run_time:
            job.modify(next_run_time=next_run)
            log.warning(
                logfmt(
                    event="backoff",
                    source=source.name,
                    failures=failures,
                    next_run=next_run.isoformat(timespec="seconds"),
                )
            )

    def _record_next_runs(self, name: str | None = None) -> None:
        """Note in the store when schedules fire next, for `feeds status`: one source's, after its poll (the
        only one that moved), or every source's, at start and reload (their states read in one query)."""
        # Also while stopping: a poll that stop() waits for still records its next run, or `feeds status`
        # would show the run that just happened as the next one. The scheduler is shut down only after it.
        with self._lock:
            if name is None:
                jobs = self._scheduler.get_jobs()
                known = {state.name: state.next_run for state in self._site.sources()}
            else:
                job = self._scheduler.get_job(name)
                jobs = [job] if job is not None else []
                known = {name: self._site.source(name).next_run}
            for job in jobs:
                # In UTC: a cron job's time is in its source's zone, and the status page shows UTC.
                stamp = job.next_run_time.astimezone(UTC).isoformat(timespec="seconds") if job.next_run_time else ""
                if known.get(job.id) != stamp:
                    self._site.set_next_run(job.id, stamp)

    def _max_age(self, path: str) -> int:
        return documents.poll_seconds(self.config)

    # -- operator endpoints -----------------------------------------------------------------------

    def _healthz(self) -> DynamicResponse:
        running = self._scheduler.running and not self._stopping.is_set()
        return DynamicResponse(
            status=200 if running else 503,
            body=b"ok\n" if running else b"stopped\n",
            headers=(("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")),
        )

    def _metrics(self) -> DynamicResponse:
        return DynamicResponse(
            body=self.metrics.render(), headers=(("content-type", CONTENT_TYPE_LATEST), ("cache-control", "no-store"))
        )

    def _status(self) -> DynamicResponse:
        nodes = None
        if self._cluster is not None:
            from feeds import cluster

            try:
                nodes = cluster.read_status(self.config.store.url, datetime.now(UTC), self._cluster.timing)
            except FeedsError as exc:
                log.error(logfmt(event="status", result="failed", error=str(exc)))
        with self._lock:
            page = pages.status_html(
                site_title=self.config.site.title,
                base_url=self.config.site.base_url,
                sources=source_rows(self.config, self._site),
                feeds=feed_rows(self._site, self._feed_entries),
                cluster=nodes,
            )
        return DynamicResponse(
            body=page, headers=(("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store"))
        )


def _utc_text(stamp: str) -> str:
    """An ISO time from the store as "YYYY-MM-DD HH:MM:SS" in UTC; "-" when there is none."""
    if not stamp:
        return "-"
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def source_rows(config: Config, site: pipeline.Site) -> list[tuple[str, str, str, str, str, str, str]]:
    """Per source: name, last fetch, result, next run, entries, error, warning: for /status and `feeds status`."""
    rows = []
    for source in config.sources:
        state = site.source(source.name)
        if not state.last_attempt:
            result = "never fetched"
        elif state.last_error:
            result = f"failing ({state.failures} in a row)"
        elif state.last_warning:
            count = len(state.last_warning.splitlines())
            result = f"ok, {count} warning{'s' * (count > 1)}"
        else:
            result = "ok"
        rows.append(
            (
                source.name,
                _utc_text(state.last_attempt),
                result,
                _utc_text(state.next_run),
                str(state.entries),
                state.last_error,
                state.last_warning,
            )
        )
    return rows


def feed_rows(site: pipeline.Site, entries: dict[str, int]) -> list[tuple[str, str, str]]:
    """Per feed file: name, entries (when known), last change."""
    changes = site.output_changes()
    names = sorted(n for n in changes if n.endswith(FEED_SUFFIXES) and "/" not in n)
    return [(n, str(entries[n]) if n in entries else "-", _utc_text(changes[n])) for n in names]


def send_reload(config: Config) -> int:
    """Ask the daemon that holds the state directory's lock to reread its config (SIGHUP); its pid."""
    state = config.site.state
    holding = lock.holder(state)
    if holding is None:
        raise FeedsError(str(state), "no daemon holds this state directory; start one with `feeds run`")
    if holding.command != "run":
        raise FeedsError(str(state), f"held by {holding}, not by a daemon; there is nothing to reload")
    try:
        os.kill(holding.pid, signal.SIGHUP)
    except ProcessLookupError:
        raise FeedsError(str(state), f"the daemon (pid {holding.pid}) has stopped; start it with `feeds run`") from None
    return holding.pid
