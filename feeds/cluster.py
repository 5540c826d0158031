"""Many `feeds run` nodes on one PostgreSQL store: polls as procrastinate jobs, each period claimed once, nodes seen."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import procrastinate
import psycopg
from procrastinate import exceptions as job_errors
from procrastinate.jobs import Job, Status
from procrastinate.schema import SchemaManager
from procrastinate.worker import Worker

from feeds.config import SourceConfig
from feeds.errors import StoreError
from feeds.logfmt import logfmt
from feeds.postgres import CONNECT_SECONDS, WHERE, _reason, shown

log = logging.getLogger("feeds")

QUEUE = "feeds"
TASK = "feeds.poll"
# Also the publish job's queueing lock and lock: across the nodes, one publish waits while one runs, and
# the one waiting takes in every poll recorded until it starts. Polls' locks are their source's name,
# which has no dot.
PUBLISH = "feeds.publish"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JOBS_SCHEMA_LOCK = 0x6A6F6273  # an advisory lock: two nodes starting at once install the job tables once
_SWEEP_LOCK = 0x73776570
_CLAIMS_KEPT = timedelta(days=2)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """How often a node says it is alive, and how long a silent node's jobs wait before another node retries them."""

    heartbeat: float = 5.0
    stalled: float = 30.0  # a worker without a heartbeat for this long is gone; its running jobs are retried
    sweep: float = 5.0  # how often each node looks for such jobs

    @classmethod
    def from_environment(cls) -> Timing:
        """FEEDS_HEARTBEAT_SECONDS scales every interval (tests shorten them); the defaults otherwise."""
        text = os.environ.get("FEEDS_HEARTBEAT_SECONDS", "")
        if not text:
            return cls()
        beat = float(text)
        return cls(heartbeat=beat, stalled=beat * 4, sweep=beat)


def node_name(port: int) -> str:
    return f"{socket.gethostname()}:{port}"


def interval_start(source: SourceConfig) -> datetime:
    """Where a source's interval schedule starts: the same on every node, so their triggers fire together.

    Offset from the epoch by a hash of its name, so that sources sharing a period are spread over it.
    """
    seconds = source.schedule.seconds
    digest = hashlib.sha256(source.name.encode()).digest()
    return EPOCH + timedelta(seconds=int.from_bytes(digest[:8], "big") % seconds)


def slot(source: SourceConfig, now: datetime) -> str:
    """The scheduled time of the firing due at `now`: the key every node claims the period under."""
    if source.schedule.interval is not None:
        start, period = interval_start(source), source.schedule.seconds
        due = start + timedelta(seconds=period * int((now - start).total_seconds() // period))
    else:  # a cron fires on the minute
        due = now.astimezone(UTC).replace(second=0, microsecond=0)
    return due.isoformat(timespec="seconds")


def _described(job: Job) -> dict[str, object]:
    """A job in a log line: a poll by its source, a publish by its name."""
    if job.task_name == TASK:
        return {"source": job.task_kwargs.get("source", ""), "job": job.id}
    return {"task": job.task_name, "job": job.id}


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    name: str
    url: str
    started: str
    heartbeat: str
    live: bool
    worker: int  # its procrastinate worker's id; 0 while it has none


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStatus:
    """What `feeds status`, /status and /metrics show of the nodes sharing a store."""

    nodes: tuple[Node, ...]
    jobs: dict[str, int]  # procrastinate's job status (todo, doing, failed, …): how many
    polls: dict[str, tuple[str, str]]  # source: (when it was last polled, by which node)


def read_status(url: str, now: datetime, timing: Timing | None = None) -> ClusterStatus:
    """The nodes, the jobs and who polled what, read from the store; a StoreError when it does not answer."""
    timing = timing or Timing.from_environment()
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_SECONDS, autocommit=True) as conn:
            nodes = conn.execute("SELECT name, url, started, heartbeat, worker FROM nodes ORDER BY name").fetchall()
            polls = conn.execute("SELECT source, polled, node FROM polls").fetchall()
            jobs: dict[str, int] = dict.fromkeys(("todo", "doing", "failed"), 0)
            if conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone() == (True,):
                rows = conn.execute(
                    "SELECT status::text, count(*) FROM procrastinate_jobs WHERE queue_name = %s GROUP BY status",
                    (QUEUE,),
                ).fetchall()
                jobs.update({status: int(count) for status, count in rows})
    except psycopg.Error as exc:
        raise StoreError(WHERE, f"cannot read the nodes from {shown(url)} ({_reason(exc)})") from exc
    alive_since = now - timedelta(seconds=timing.stalled)
    return ClusterStatus(
        nodes=tuple(
            Node(name=n, url=u, started=s, heartbeat=h, live=datetime.fromisoformat(h) >= alive_since, worker=w)
            for n, u, s, h, w in nodes
        ),
        jobs=jobs,
        polls={source: (polled, node) for source, polled, node in polls},
    )


class _QuietSideTasks(logging.Filter):
    """procrastinate logs a lost connection with its traceback, in each part; the cluster says it once, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        lost = isinstance(exc, job_errors.ConnectorException | psycopg.Error)
        return not lost and getattr(record, "action", "") != "side_task_failed"


class _QuietLostJobs(logging.Filter):
    """A job whose end cannot be recorded (another node took it over, or the server is away): procrastinate
    leaves that error to asyncio, which prints its traceback. One line says it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        if isinstance(exc, job_errors.ConnectorException) and (TASK in message or PUBLISH in message):
            cause = exc.__cause__ or exc
            # Not found as running: another node retried it. Otherwise the server was away, and the job stays
            # marked running until a node finds its worker silent and retries it.
            result = "taken-over" if isinstance(cause, psycopg.errors.RaiseException) else "unrecorded"
            log.warning(logfmt(event="job", result=result, error=_reason(cause)))
            return False
        return True


class Cluster:
    """This node's part: a procrastinate worker that runs polls and publishes, the claims that defer polls,
    its heartbeat.

    Everything that speaks to PostgreSQL runs on one event loop in a thread of its own; other threads
    hand it coroutines. `poll(source)` is called in a worker thread for each poll job, and `publish()`
    for each publish job, which a poll that recorded a change defers (`publish_soon`).
    """

    def __init__(
        self,
        url: str,
        *,
        node: str,
        node_url: str,
        poll: Callable[[str], None],
        publish: Callable[[], None],
        timing: Timing | None = None,
    ) -> None:
        self.url = url
        self.shown = shown(url)
        self.node = node
        self.node_url = node_url
        self.timing = timing or Timing.from_environment()
        self._poll = poll
        self._publish = publish
        self.app = procrastinate.App(
            connector=procrastinate.PsycopgConnector(
                conninfo=url,
                min_size=1,
                max_size=6,
                kwargs={"connect_timeout": CONNECT_SECONDS},
                timeout=CONNECT_SECONDS,  # a statement waits this long for a connection while the server is away
                name="feeds-jobs",
            )
        )
        self._task = self.app.task(name=TASK, queue=QUEUE)(self._run)
        # Before any poll queued: a burst of polls is published as it goes, not after the last of them.
        self._publish_task = self.app.task(name=PUBLISH, queue=QUEUE, priority=1, lock=PUBLISH, queueing_lock=PUBLISH)(
            self._publish
        )
        procrastinate_log = logging.getLogger("procrastinate")
        # A logger's filters see only its own records: each logger procrastinate's worker speaks through.
        for name in ("procrastinate.worker", f"procrastinate.worker.{node}", "procrastinate.utils"):
            logging.getLogger(name).addFilter(_QuietSideTasks())
        logging.getLogger("asyncio").addFilter(_QuietLostJobs())
        pool_log = logging.getLogger("psycopg.pool")
        if pool_log.level == logging.NOTSET:
            pool_log.setLevel(logging.ERROR)  # two lines a connection attempt; the node says it once instead
        if procrastinate_log.level == logging.NOTSET:
            procrastinate_log.setLevel(logging.WARNING)  # a line per job deferred, started and ended is too much
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._failure: BaseException | None = None
        self._failing: set[str] = set()
        self._worker: Worker | None = None  # the one running: its id in procrastinate_workers goes in `nodes`
        self._orphans: set[int] = set()  # jobs marked running on it that it did not run, at the last sweep
        self._thread = threading.Thread(target=self._main_thread, name="feeds-jobs", daemon=True)

    # -- lifecycle (from the daemon's thread) ------------------------------------------------------

    def start(self) -> None:
        """Install the job tables if missing, register this node and start its worker; StoreError if it cannot."""
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            raise StoreError(
                WHERE, f"cannot start the job worker on {self.shown} ({_reason(self._failure)}); check the server"
            ) from self._failure

    def stop(self) -> None:
        """Let the worker finish the job it runs, take no other, and close the connections."""
        if self._loop is None or self._stopped.is_set():
            return
        self._stopped.set()
        if not self._thread.is_alive():  # it never started: the server did not answer
            return
        stop = self._stop
        assert stop is not None
        self._loop.call_soon_threadsafe(stop.set)
        self._thread.join()

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    def claim(self, source: str, slot: str) -> bool:
        """Claim a source's period for this node and defer its poll; False when another node claimed it first."""
        if self._stopped.is_set():
            return False
        return self._call(self._claim(source, slot))

    def publish_soon(self) -> None:
        """Defer a publish job, unless one is queued already: that one publishes what was recorded until it starts.

        Called from a poll job, while the worker (and so the event loop) waits for it to end. Should the
        store not take it, what the poll recorded waits in the store for the next publish, by any node.
        """
        try:
            self._call(self._defer_publish())
        except Exception as exc:
            self._trouble("publish", exc)
        else:
            self._recovered("publish")

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=CONNECT_SECONDS * 3)

    # -- the event loop's thread -----------------------------------------------------------------------

    def _main_thread(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.app.open_async()
            await self._install()
            await self._beat_once(started=True)
        except Exception as exc:
            self._failure = exc
            self._ready.set()
            await self.app.close_async()
            return
        self._ready.set()
        work = asyncio.create_task(self._work(), name="worker")
        chores = [
            asyncio.create_task(self._every(self.timing.heartbeat, "heartbeat", self._beat_once), name="heartbeat"),
            asyncio.create_task(self._every(self.timing.sweep, "stalled jobs", self._sweep), name="sweep"),
        ]
        await self._stop.wait()
        work.cancel()  # procrastinate then stops its worker gracefully: the running job ends first
        await asyncio.gather(work, return_exceptions=True)
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
        await self.app.close_async()

    async def _install(self) -> None:
        async with self.app.connector.pool.connection() as conn, conn.transaction():  # type: ignore[attr-defined]
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_JOBS_SCHEMA_LOCK,))
            row = await (await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NULL")).fetchone()
            if row[0]:
                await conn.execute(SchemaManager.get_schema())
                log.info(logfmt(event="jobs", result="installed", url=self.shown))

    async def _work(self) -> None:
        """procrastinate's worker, started again whenever it stops for a lost connection, until the node stops."""
        stop = self._stop
        assert stop is not None
        while not stop.is_set():
            worker = Worker(
                app=self.app,
                queues=[QUEUE],
                name=self.node,
                concurrency=4,
                install_signal_handlers=False,  # the daemon takes the signals, and stops the worker
                update_heartbeat_interval=self.timing.heartbeat,
                stalled_worker_timeout=self.timing.stalled,
                fetch_job_polling_interval=self.timing.heartbeat,
                abort_job_polling_interval=self.timing.heartbeat * 4,
                delete_jobs="successful",
            )
            self._worker = worker
            try:
                await worker.run()  # type: ignore[no-untyped-call]
            except Exception as exc:
                # Also when stopping without the server: the worker then cannot unregister, and its
                # cancellation arrives as that error instead; the loop ends all the same.
                if not stop.is_set():
                    self._trouble("worker", exc)
            else:
                if not stop.is_set():  # it stopped itself: a side task (heartbeat, listener) lost the server
                    self._trouble("worker", None)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.timing.heartbeat)

    async def _every(self, seconds: float, what: str, chore: Callable[[], Coroutine[Any, Any, None]]) -> None:
        while True:
            try:
                await chore()
            except Exception as exc:
                self._trouble(what, exc)
            else:
                self._recovered(what)
            await asyncio.sleep(seconds)

    def _trouble(self, what: str, exc: BaseException | None) -> None:
        """One line when a part of the node first loses the store; none more until it is back."""
        if what in self._failing:
            return
        self._failing.add(what)
        while isinstance(exc, job_errors.ConnectorException) and exc.__cause__ is not None:
            exc = exc.__cause__  # procrastinate's "database error." says less than psycopg's own
        reason = _reason(exc) if exc is not None else "lost the connection"
        log.error(logfmt(event="store", result="unreachable", part=what, url=self.shown, error=reason))

    def _recovered(self, what: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            self._failing.discard("worker")
            log.info(logfmt(event="store", result="back", part=what, url=self.shown))

    async def _beat_once(self, *, started: bool = False) -> None:
        now = _stamp(datetime.now(UTC))
        worker = (self._worker.worker_id if self._worker else None) or 0
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            if started:
                await conn.execute(
                    "INSERT INTO nodes (name, url, started, heartbeat, worker) VALUES (%s, %s, %s, %s, 0) "
                    "ON CONFLICT (name) DO UPDATE SET url = excluded.url, started = excluded.started, "
                    "heartbeat = excluded.heartbeat, worker = 0",
                    (self.node, self.node_url, now, now),
                )
                return
            await conn.execute(
                "INSERT INTO nodes (name, url, started, heartbeat, worker) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET heartbeat = excluded.heartbeat, worker = excluded.worker",
                (self.node, self.node_url, now, now, worker),
            )
            # Claims only matter within a period; old ones are dropped so the table stays small.
            await conn.execute("DELETE FROM claims WHERE claimed < %s", (_stamp(datetime.now(UTC) - _CLAIMS_KEPT),))

    async def _sweep(self) -> None:
        await self._retry_orphans()
        await self._retry_stalled()

    async def _retry_orphans(self) -> None:
        """Jobs marked running on this node's worker that it does not run: their end was not recorded (the
        server was away then). The worker's heartbeat is fresh, so no node would find them stalled, and
        their source's lock would keep its every later poll waiting. Seen twice in a row, they run again."""
        worker = self._worker
        if worker is None or worker.worker_id is None:
            return
        running = {context.job.id for context in getattr(worker, "_running_jobs", {}).values()}
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            cursor = await conn.execute(
                "SELECT id FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = %s", (worker.worker_id,)
            )
            marked = {int(row[0]) for row in await cursor.fetchall()}
        orphans = marked - running
        confirmed, self._orphans = orphans & self._orphans, orphans - self._orphans
        for job_id in confirmed:
            for job in await self.app.job_manager.list_jobs_async(id=job_id):
                result = await self._retry(job)
                log.warning(logfmt(event="unrecorded", **_described(job), result=result))

    async def _retry_stalled(self) -> None:
        """Jobs left running by a node that stopped beating: run them again, here or anywhere.

        One node at a time looks: two that retried the same job could put it back in the queue a second
        time while a worker already runs it again.
        """
        manager = self.app.job_manager
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            taken = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (_SWEEP_LOCK,))).fetchone()
            if not taken or not taken[0]:
                return
            try:
                for job in await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=self.timing.stalled):
                    result = await self._retry(job)
                    log.warning(logfmt(event="stalled", **_described(job), result=result))
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (_SWEEP_LOCK,))

    async def _retry(self, job: Job) -> str:
        """Retry a stalled job; "superseded" when a newer job of its kind (a source's poll, or a publish) is
        queued in its place."""
        manager = self.app.job_manager
        try:
            await manager.retry_job(job)
            return "retried"
        except job_errors.UniqueViolation:
            # The next one is queued already (its queueing lock): this one takes its place.
            for queued in await manager.list_jobs_async(queue=QUEUE, status="todo", queueing_lock=job.queueing_lock):
                if queued.id is not None:
                    await manager.cancel_job_by_id_async(queued.id, delete_job=True)
        try:
            await manager.retry_job(job)
            return "retried"
        except job_errors.UniqueViolation:  # another node queued one again meanwhile: that one does it
            await manager.finish_job(job, status=Status.ABORTED, delete_job=False)
            return "superseded"

    async def _claim(self, source: str, slot: str) -> bool:
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            cursor = await conn.execute(
                "INSERT INTO claims (source, slot, node, claimed) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (source, slot) DO NOTHING RETURNING 1",
                (source, slot, self.node, _stamp(datetime.now(UTC))),
            )
            if await cursor.fetchone() is None:
                return False
        try:
            await self._task.configure(queueing_lock=source, lock=source).defer_async(source=source)
        except job_errors.AlreadyEnqueued:
            log.info(logfmt(event="claim", source=source, slot=slot, result="already-queued"))
            return False
        return True

    async def _defer_publish(self) -> None:
        with suppress(job_errors.AlreadyEnqueued):
            await self._publish_task.defer_async()

    async def _note_poll(self, source: str) -> None:
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            await conn.execute(
                "INSERT INTO polls (source, node, polled) VALUES (%s, %s, %s) "
                "ON CONFLICT (source) DO UPDATE SET node = excluded.node, polled = excluded.polled",
                (source, self.node, _stamp(datetime.now(UTC))),
            )

    # -- a job, in one of the worker's threads ---------------------------------------------------------

    def _run(self, source: str) -> None:
        self._poll(source)
        if self._stopped.is_set():  # who polled is not worth waiting for a store that may be away
            return
        try:
            self._call(self._note_poll(source))
        except Exception as exc:  # the poll itself is recorded; only who made it is not
            self._trouble("polls", exc)
