"""One pass of the publisher: each source fetched and recorded in the store, then what changed published."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from feeds import __version__, documents, publish
from feeds.adapters import ADAPTERS
from feeds.config import Config, SourceConfig
from feeds.documents import FileReport
from feeds.errors import SourceError, SourceWarning
from feeds.fetch import Fetcher, FetchLimits, FetchResult, SourceGone, Validators, fetch_file, user_agent
from feeds.follow import Followed, follow, is_due
from feeds.model import Document, Entry
from feeds.publish import Write
from feeds.store import PageState, PublishedFile, SourceState, Store

if TYPE_CHECKING:
    from feeds.mirror import Mirror

log = logging.getLogger("feeds")

DB_NAME = "feeds.db"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceReport:
    """How one source fared in a pass."""

    name: str
    entries: int = 0
    unchanged: bool = False
    error: str = ""
    redirect: str = ""
    warnings: str = ""  # what the read left out, one line each; the source did not fail for it
    pages: Mapping[str, int] = field(default_factory=dict)  # followed pages fetched, by result

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass(slots=True, kw_only=True)
class BuildReport:
    """Everything a pass did, for the CLI, the logs and the status page."""

    sources: list[SourceReport] = field(default_factory=list)
    files: list[FileReport] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(s.failed for s in self.sources)

    @property
    def written(self) -> list[str]:
        return [f.path for f in self.files if f.written]


def open_store(config: Config) -> Store:
    return Store(config.site.state / DB_NAME, url=config.store.url)


# -- reading sources ---------------------------------------------------------------------------------


def load_local(source: SourceConfig, max_bytes: int = FetchLimits().max_bytes) -> list[Document]:
    """The documents a path or glob names, in a stable order; an error when it names none.

    A file over `max_bytes` is refused before it is read, as an HTTP body of that size would be.
    """
    pattern = source.location
    if glob.has_magic(pattern):
        paths = sorted(p for p in glob.glob(pattern, recursive=True) if not Path(p).is_dir())
        if not paths:
            raise SourceError(source.name, f'"{pattern}" matches no file (check {source.key}.location)')
    else:
        paths = [pattern]
        if not Path(pattern).exists():
            raise SourceError(source.name, f"{pattern}: no such file (check {source.key}.location)")
    return [fetch_file(source.name, path, max_bytes=max_bytes) for path in paths]


Loader = Callable[[SourceConfig, SourceState], tuple[list[Document] | None, SourceState]]


def fetch_documents(
    source: SourceConfig, state: SourceState, fetcher: Fetcher | None = None, contact_url: str = ""
) -> tuple[list[Document] | None, SourceState]:
    """Fetch a source's documents; None means the server said nothing changed (304)."""
    if not source.is_url:
        return load_local(source, (fetcher.limits if fetcher else FetchLimits()).max_bytes), state
    if fetcher is None:
        with Fetcher(user_agent=user_agent(__version__, contact_url)) as own:
            return _learn(state, _fetch_url(source, state, own))
    return _learn(state, _fetch_url(source, state, fetcher))


def _fetch_url(source: SourceConfig, state: SourceState, fetcher: Fetcher) -> FetchResult:
    return fetcher.fetch(source.name, source.location, Validators(etag=state.etag, last_modified=state.last_modified))


def _learn(state: SourceState, result: FetchResult) -> tuple[list[Document] | None, SourceState]:
    """The documents a fetch brought (None: not modified) and the state it leaves the source in."""
    state = replace(
        state,
        etag=result.validators.etag,
        last_modified=result.validators.last_modified,
        redirect=result.permanent_redirect,  # learnt again on every fetch, so it clears once config follows
    )
    return (None if result.document is None else [result.document]), state


def _is_gone(source: SourceConfig, state: SourceState) -> bool:
    """A URL source the server said is gone: fetched no more (a local one is read as long as it is named)."""
    return state.gone and source.is_url


def parse_documents(source: SourceConfig, docs: Iterable[Document]) -> tuple[list[Entry], list[str], list[str]]:
    """Every entry the adapter can read, the errors for what it could not, and the warnings for what it left out.

    A SourceWarning comes after a document's last entry: those entries stand, and the source does not fail.
    """
    adapter = ADAPTERS[source.adapter]
    entries: list[Entry] = []
    errors: list[str] = []
    warnings: list[str] = []
    docs = list(docs)
    for doc in docs:
        try:
            entries.extend(adapter.parse(doc, source))
        except SourceError as exc:
            # A glob reads several files: say which one the line numbers are in.
            where = f"{exc.where} of {doc.url.rpartition('/')[2]}" if len(docs) > 1 else exc.where
            (warnings if isinstance(exc, SourceWarning) else errors).append(f"{where}: {exc.what}")
    return entries, errors, warnings


def _doc_hash(source: SourceConfig, docs: Sequence[Document]) -> str:
    digest = hashlib.sha256(f"{__version__}\0{source.adapter}\0{sorted(source.options.items())!r}".encode())
    if source.follow:  # read again once follow changes; sources that follow nothing keep the hash they had
        digest.update(f"\0{source.follow}\0{source.follow_robots}".encode())
    for doc in docs:
        digest.update(doc.url.encode() + b"\0" + hashlib.sha256(doc.content).digest())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """What fetching one source brought, before anything is recorded: its documents, or why there are none."""

    name: str
    docs: list[Document] | None = None  # None: the server said nothing changed (304), or nothing was fetched
    doc_hash: str = ""  # of the documents and of what reading them depends on
    error: SourceError | None = None
    gone: bool = False  # a URL source the server said is gone: not fetched any more
    etag: str = ""  # what the fetch learnt, for the next conditional request
    last_modified: str = ""
    redirect: str = ""  # a permanent redirect seen, learnt again on every fetch so it clears once config follows
    # A source that follows its items to their pages: its documents read, and the pages fetched.
    parsed: tuple[list[Entry], list[str], list[str]] | None = None  # entries, errors, warnings
    followed: Followed | None = None


def fetch(
    source: SourceConfig,
    state: SourceState,
    fetcher: Fetcher | None = None,
    load: Loader | None = None,
    *,
    pages: Mapping[str, PageState] | None = None,
    now: datetime | None = None,
) -> Fetched:
    """Fetch one source's documents (with `load` when given); a failure is returned, never raised.

    A source with `follow` also has its items' pages fetched here with `fetcher`, given what the store
    knew of them (`pages`) and the time (`now`), so that a daemon fetches them outside its lock;
    nothing is written.
    """
    if _is_gone(source, state):
        return Fetched(name=source.name, gone=True)
    if source.follow and fetcher is not None and pages is not None and now is not None:
        return _fetch_following(source, state, fetcher, load, pages, now)
    return _fetch(source, state, fetcher, load)


def _fetch(source: SourceConfig, state: SourceState, fetcher: Fetcher | None, load: Loader | None) -> Fetched:
    try:
        docs, learnt = (load or partial(fetch_documents, fetcher=fetcher))(source, state)
    except SourceError as exc:
        return Fetched(name=source.name, error=exc)
    return Fetched(
        name=source.name,
        docs=docs,
        doc_hash="" if docs is None else _doc_hash(source, docs),
        etag=learnt.etag,
        last_modified=learnt.last_modified,
        redirect=learnt.redirect,
    )


def _fetch_following(
    source: SourceConfig,
    state: SourceState,
    fetcher: Fetcher,
    load: Loader | None,
    pages: Mapping[str, PageState],
    now: datetime,
) -> Fetched:
    if any(is_due(page, source, now) for page in pages.values()):
        # A page is due to be checked again: the listing is read in full to know its items, even if unchanged.
        state = replace(state, etag="", last_modified="", doc_hash="")
    fetched = _fetch(source, state, fetcher, load)
    if fetched.docs is None or (fetched.doc_hash == state.doc_hash and not state.last_error):
        return fetched  # failed, not modified, or read before with every page it needed: recorded as such
    entries, errors, warnings = parse_documents(source, fetched.docs)
    followed = follow(source, entries, pages, fetcher, now)
    return replace(fetched, parsed=(followed.entries, errors, warnings + followed.warnings), followed=followed)


def record(store: Store, source: SourceConfig, fetched: Fetched, now: datetime) -> SourceReport:
    """Parse what a fetch brought into the store and note how the source fared; a failure is recorded, never raised."""
    known: dict[str, str] | None = None  # its items as recorded: read with its state when documents came
    if fetched.docs is None or fetched.error is not None or fetched.gone:
        state = store.source(source.name)
    else:
        state, known = store.source_items(source.name)
    state = replace(state, last_attempt=now.isoformat())
    if fetched.gone:
        error = (
            f"{source.name}: gone (the server answered 410 Gone); its entries stay published: remove it from the config"
        )
        return SourceReport(name=source.name, error=error, entries=state.entries, unchanged=True)
    if fetched.error is not None:
        exc = fetched.error
        log.warning("source %s failed: %s", source.name, exc)
        store.put_source(
            replace(state, last_error=str(exc), failures=state.failures + 1, gone=isinstance(exc, SourceGone))
        )
        # Nothing reached the store: its entries, and so every feed, stay as they were.
        return SourceReport(name=source.name, error=str(exc), entries=state.entries, unchanged=True)
    if source.is_url:
        state = replace(state, etag=fetched.etag, last_modified=fetched.last_modified, redirect=fetched.redirect)
    docs = fetched.docs
    if docs is None:  # not modified
        store.put_source(replace(state, last_success=now.isoformat(), last_error="", failures=0))
        return _unchanged(source, state)
    doc_hash = fetched.doc_hash
    followed = fetched.followed
    if doc_hash == state.doc_hash and not state.last_error and followed is None:
        store.put_source(replace(state, last_success=now.isoformat()))
        return _unchanged(source, state)
    entries, errors, warnings = fetched.parsed or parse_documents(source, docs)
    if followed is not None:
        store.put_pages(followed.pages)
        if followed.pending:
            # Items over follow_limit wait for the next pass, which must read the document again to find them.
            doc_hash = ""
            state = replace(state, etag="", last_modified="")
    # The changed items are recorded dirty: should this pass die before publishing them (killed, a full
    # disk), the next one publishes them, whatever it finds of the sources.
    changed = store.save_items(source.name, entries, now, known=known)
    error = "\n".join(errors)
    count = len(entries) if entries or not errors else state.entries  # its old entries stay published
    store.put_source(
        replace(
            state,
            # A document with errors is fetched and parsed in full again next time, never answered by a 304.
            doc_hash="" if errors else doc_hash,
            etag="" if errors else state.etag,
            last_modified="" if errors else state.last_modified,
            last_success=now.isoformat() if entries or not errors else state.last_success,
            last_error=error,
            failures=state.failures + 1 if errors else 0,
            entries=count,
            last_warning="\n".join(warnings),
        )
    )
    for line in errors:
        log.warning("source %s: %s", source.name, line)
    for line in warnings:
        log.warning("source %s: warning: %s", source.name, line)
    return SourceReport(
        name=source.name,
        entries=count,
        error=error,
        redirect=state.redirect,
        unchanged=not changed,
        warnings="\n".join(warnings),
        pages=dict(followed.results) if followed is not None else {},
    )


def _unchanged(source: SourceConfig, state: SourceState) -> SourceReport:
    """A source whose documents did not change: what its last read warned of still holds."""
    return SourceReport(
        name=source.name, entries=state.entries, unchanged=True, redirect=state.redirect, warnings=state.last_warning
    )


# -- producing output ----------------------------------------------------------------------------------


class Site:
    """A publisher's state, open for as long as its user runs: the store, and a pass's steps over it.

    `feeds build` and the daemon use it alike: fetch a source (no store needed), record what the
    fetch brought, then publish what changed.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._store = open_store(config)
        # On a store that nodes share, output/ is each node's copy of the documents it holds.
        self.mirror: Mirror | None = None
        if self._store.shared:
            from feeds.mirror import Mirror

            self.mirror = Mirror(config.store.url, config.site.output)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def source(self, name: str) -> SourceState:
        return self._store.source(name)

    def sources(self) -> list[SourceState]:
        return self._store.sources()

    def pages(self, source: SourceConfig) -> dict[str, PageState] | None:
        """What the store knows of a source's followed pages; None for a source that follows none."""
        return self._store.pages(source.name) if source.follow else None

    def record(self, source: SourceConfig, fetched: Fetched, now: datetime) -> SourceReport:
        # Its items and its state together. Lost in a crash of the server, they are fetched and recorded
        # again: the source's validators and hash went with them.
        with self._store.transaction(flush=False):
            return record(self._store, source, fetched, now)

    def set_next_run(self, name: str, when: str) -> None:
        self._store.put_source(replace(self._store.source(name), next_run=when))

    def output_changes(self) -> dict[str, str]:
        return self._store.output_changes()

    def entry_ids(self) -> set[str]:
        return self._store.entry_ids()

    def pending(self) -> bool:
        """Whether output/ lags the store: recorded items or due documents not yet published, or no output yet."""
        store, config = self._store, self.config
        return (
            store.has_work()
            or store.setting(documents.SETTINGS) != documents.settings_fingerprint(config)
            or not self._published()
        )

    def _published(self) -> bool:
        """Whether the site was ever published: in output/, or in the documents of a shared store."""
        if self._store.shared:
            return self._store.has_document("index.html")
        return (self.config.site.output / "index.html").exists()

    def publish(self, now: datetime) -> list[FileReport]:
        """Publish what changed: update → plan → render → write; each file is written only when its bytes change.

        On a shared store the files are written into the store, one node at a time, and into output/
        as every node's mirror writes them (see feeds.mirror).
        """
        store, config = self._store, self.config
        with store.publishing(), self.mirror.publishing() if self.mirror else contextlib.nullcontext():
            changes = documents.update(store, config, now)
            if not self._published():
                documents.republish(store, config)
            plan = documents.plan(store, config)
            reports: list[FileReport] = []
            # Rendered one document at a time as they are written: a first build's documents never all
            # wait in memory. Each report is kept as its file passes on to the writer.
            rendered = (_kept(r, reports) for r in documents.render_plan(store, config, plan, changes))
            if self.mirror is None:
                written = self._write(plan, rendered, now)
            else:
                held = _Held()
                written = store.put_documents(map(held.stored, rendered), plan.drops, now)
                self._mirror_own(held, written, plan.drops)
            # When each file last changed, for the status page: entry pages are too many to list there.
            changed = (r.path for r in reports if r.path in written and not r.path.startswith("entries/"))
            store.done(plan.names(), changed, now)
        return [replace(r, written=r.path in written) for r in reports]

    def _mirror_own(self, held: _Held, written: set[str], drops: Sequence[str]) -> None:
        """This node's change into its own output/, before it tells hubs or answers that anything changed."""
        if self.mirror is None or not (written or drops):  # nothing recorded: no change to write
            return
        if held.writes is None:
            self.mirror.read_own()
            return
        seq, modified = self._store.last_change()
        self.mirror.write_own(seq, modified, [w for w in held.writes if w.name in written], drops)

    def _write(self, plan: documents.Plan, writes: Iterable[Write], now: datetime) -> set[str]:
        output = self.config.site.output
        # A pass that died left its temp files where this one is about to write.
        publish.remove_stale_temps(
            output, now.timestamp() - publish.STALE_TEMP_SECONDS, documents.directories(self._store, plan)
        )
        publish.remove_files(output, plan.drops)
        return publish.write_files(output, writes)


def _stored(write: publish.Write) -> PublishedFile:
    return PublishedFile(
        path=write.name,
        body=write.data,
        gz=publish.compress(write.data) if write.gzip else None,
        etag=publish.entity_tag(write.data),
    )


HELD_BYTES = 64 * 1024 * 1024  # of a change's files held to write into output/; a bigger one is read back


class _Held:
    """The files of a change as they pass on to the store, held while they fit in HELD_BYTES."""

    def __init__(self) -> None:
        self.writes: list[Write] | None = []  # None: too many to hold, read back from the store instead
        self._size = 0

    def stored(self, write: Write) -> PublishedFile:
        file = _stored(write)
        if self.writes is not None:
            self._size += len(file.body) + len(file.gz or b"")
            if self._size > HELD_BYTES:
                self.writes = None
            else:
                self.writes.append(replace(write, gz=file.gz))
        return file


def _kept(rendered: documents.Rendered, reports: list[FileReport]) -> publish.Write:
    reports.append(rendered.report)
    return rendered.write


def build(
    config: Config,
    now: datetime,
    *,
    only: Sequence[str] = (),
    load: Loader | None = None,
    fetcher: Fetcher | None = None,
) -> BuildReport:
    """Refresh the sources (all, or those named) and publish every document whose content changed.

    Sources are read with `load` when given, one after another; otherwise fetched several at once
    with `fetcher` (a client of its own for this pass when None).
    """
    with Site(config) as site, contextlib.nullcontext(fetcher) if fetcher else _fetcher(config) as client:
        return run_pass(site, now, only=only, load=load, fetcher=client)


def run_pass(
    site: Site, now: datetime, *, fetcher: Fetcher, only: Sequence[str] = (), load: Loader | None = None
) -> BuildReport:
    """One pass over an open site: fetch and record the sources (all, or those named), then publish."""
    config = site.config
    report = BuildReport()
    chosen = [s for s in config.sources if not only or s.name in only]
    known = {state.name: state for state in site.sources()}  # read at once: one query, not one per source
    states = {s.name: known.get(s.name) or SourceState(name=s.name) for s in chosen}
    pages = {s.name: site.pages(s) for s in chosen}
    with _Ahead(chosen if load is None else (), states, fetcher, pages, now) as ahead:
        for source in chosen:
            fetched = (
                ahead.take(source)
                if load is None
                else fetch(source, states[source.name], fetcher, load=load, pages=pages[source.name], now=now)
            )
            report.sources.append(site.record(source, fetched, now))
    if site.pending():
        report.files = site.publish(now)
    return report


def _fetcher(config: Config) -> Fetcher:
    return Fetcher(user_agent=user_agent(__version__, config.site.contact_url))


FETCHING = 32  # URL sources fetched at once in a pass; each host still gets at most per_host of them


class _Ahead:
    """Fetches a pass's sources on threads, a few ahead of the one being recorded.

    Waiting on servers one after another would make a pass as slow as the sum of their latencies.
    Parsing, the store and publishing stay in the caller's thread and in config order, so a pass
    records what it would record fetching one source at a time; only the waiting overlaps. At most
    twice `workers` fetched documents wait in memory, whatever the number of sources. One client
    serves every thread, so the per-host limit and kept-alive connections are shared.
    """

    def __init__(
        self,
        sources: Sequence[SourceConfig],
        states: Mapping[str, SourceState],
        fetcher: Fetcher,
        pages: Mapping[str, Mapping[str, PageState] | None],
        now: datetime,
        workers: int = FETCHING,
    ):
        self._fetcher = fetcher
        self._states = states
        self._fetch = {s.name: partial(fetch, pages=pages[s.name], now=now) for s in sources}
        self._queue = deque(s for s in sources if s.is_url and not _is_gone(s, states[s.name]))
        self._window = 2 * workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feeds-fetch")
        self._pending: dict[str, Future[Fetched]] = {}
        self._fill()

    def __enter__(self) -> _Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _fill(self) -> None:
        while self._queue and len(self._pending) < self._window:
            source = self._queue.popleft()
            self._pending[source.name] = self._pool.submit(
                self._fetch[source.name], source, self._states[source.name], self._fetcher
            )

    def take(self, source: SourceConfig) -> Fetched:
        future = self._pending.pop(source.name, None)
        if future is None:  # a local file, or a source gone: in turn
            return self._fetch[source.name](source, self._states[source.name], self._fetcher)
        self._fill()
        return future.result()


def check(config: Config) -> list[SourceReport]:
    """Fetch and parse every source without touching the store or output/."""
    with _fetcher(config) as fetcher:
        return [_check_one(source, fetcher) for source in config.sources]


def _check_one(source: SourceConfig, fetcher: Fetcher) -> SourceReport:
    try:
        docs, _ = fetch_documents(source, SourceState(name=source.name), fetcher)
    except SourceError as exc:
        return SourceReport(name=source.name, error=str(exc))
    entries, errors, warnings = parse_documents(source, docs or [])
    return SourceReport(name=source.name, entries=len(entries), error="\n".join(errors), warnings="\n".join(warnings))
