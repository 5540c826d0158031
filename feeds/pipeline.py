"""One pass of the publisher: sources → entries → store → categories → rendered files in output/."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import NamedTuple

from feeds import __version__, collate, publish, render
from feeds.adapters import ADAPTERS
from feeds.config import Config, SourceConfig
from feeds.errors import SourceError, SourceWarning
from feeds.fetch import Fetcher, FetchLimits, FetchResult, SourceGone, Validators, fetch_file, user_agent
from feeds.helper import started
from feeds.model import Category, Document, Entry, slugify
from feeds.store import SourceState, Stamp, Store

log = logging.getLogger("feeds")

DB_NAME = "feeds.db"
_SETTINGS = "@settings"  # key under which the fingerprint of the configuration last published is kept
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)  # an empty feed has no newest entry; this never moves
_MEDIA_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "application/xhtml+xml",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".rdf": "application/rdf+xml",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceReport:
    """How one source fared in a pass."""

    name: str
    entries: int = 0
    unchanged: bool = False
    error: str = ""
    redirect: str = ""
    warnings: str = ""  # what the read left out, one line each; the source did not fail for it

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileReport:
    """One output file: what readers will see as new or updated in it, and whether it was rewritten."""

    path: str
    entries: int = 0
    new: int = 0
    updated: int = 0
    written: bool = False


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
    return Store(config.site.state / DB_NAME)


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
    for doc in docs:
        digest.update(doc.url.encode() + b"\0" + hashlib.sha256(doc.content).digest())
    return digest.hexdigest()


def refresh(store: Store, source: SourceConfig, now: datetime, load: Loader) -> SourceReport:
    """Fetch and parse one source into the store; a failure is recorded, never raised."""
    state = replace(store.source(source.name), last_attempt=now.isoformat())
    if _is_gone(source, state):
        error = (
            f"{source.name}: gone (the server answered 410 Gone); its entries stay published: remove it from the config"
        )
        return SourceReport(name=source.name, error=error, entries=state.entries, unchanged=True)
    try:
        docs, state = load(source, state)
    except SourceError as exc:
        log.warning("source %s failed: %s", source.name, exc)
        store.put_source(
            replace(state, last_error=str(exc), failures=state.failures + 1, gone=isinstance(exc, SourceGone))
        )
        # Nothing reached the store: its entries, and so every feed, stay as they were.
        return SourceReport(name=source.name, error=str(exc), entries=state.entries, unchanged=True)
    if docs is None:  # not modified
        store.put_source(replace(state, last_success=now.isoformat(), last_error="", failures=0))
        return _unchanged(source, state)
    doc_hash = _doc_hash(source, docs)
    if doc_hash == state.doc_hash and not state.last_error:
        store.put_source(replace(state, last_success=now.isoformat()))
        return _unchanged(source, state)
    entries, errors, warnings = parse_documents(source, docs)
    # Output pending until publish_all completes: should this pass die before that (killed, a full disk),
    # the next one must not find the source unchanged and skip publishing what it recorded.
    store.put_fingerprints({_SETTINGS: ""}, now)
    store.save_items(source.name, entries, now)
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
    report = SourceReport(name=source.name, entries=count, error=error, redirect=state.redirect)
    return replace(report, warnings="\n".join(warnings))


def _unchanged(source: SourceConfig, state: SourceState) -> SourceReport:
    """A source whose documents did not change: what its last read warned of still holds."""
    return SourceReport(
        name=source.name, entries=state.entries, unchanged=True, redirect=state.redirect, warnings=state.last_warning
    )


# -- producing output ----------------------------------------------------------------------------------


_PAGE_NAME = 120  # characters at most in an entry page's name, before ".html"


def entry_page_path(entry: Entry) -> str:
    """Where our own page for an entry without a permalink lives, relative to output/: one per id.

    Our ids are "tag:<authority>:<source>:<key>": the page is the key under the source's name. A
    key the slug cannot spell as it is (other characters or case, or too long) also gets a digest
    of the id, so that two keys which slug alike ("A 1", "a-1") keep a page each.
    """
    if entry.id.startswith("tag:") and entry.id.count(":") >= 3:
        source, _, key = entry.id.split(":", 2)[2].partition(":")
    else:
        source, _, key = entry.id.rpartition(":")
        source = source.rpartition(":")[2] or entry.source
    plain = key.replace("/", "-").replace(":", "-")
    name = slugify(plain, _PAGE_NAME)
    if name != plain:
        digest = hashlib.sha256(entry.id.encode()).hexdigest()[:8]
        name = f"{name[: _PAGE_NAME - len(digest) - 1]}-{digest}"
    return f"entries/{slugify(source)}/{name}.html"


def page_links(entries: Iterable[Entry], base_url: str) -> dict[str, str]:
    """The URL of our own page for each entry without a link of its own, by id."""
    return {e.id: base_url + entry_page_path(e) for e in entries if not e.link}


def poll_seconds(config: Config) -> int:
    """How long a reader may cache a feed: the shortest poll period of any source, in whole minutes.

    Whole minutes because RSS <ttl> counts minutes, and Cache-Control's max-age must agree with it.
    """
    shortest = min((s.schedule.seconds for s in config.sources), default=3600)
    return max(1, shortest // 60) * 60


def _fingerprint(*parts: object, keys: Sequence[str] = ()) -> str:
    """A digest of `parts` and of the entry keys of a file (each a repr, so a line of its own)."""
    return hashlib.sha256("\n".join((repr(parts), *keys)).encode()).hexdigest()


def publish_all(store: Store, config: Config, now: datetime) -> list[FileReport]:
    """Render every feed from the store and write the files whose content changed."""
    site = config.site
    merged = collate.merge(store.items())
    stamps = store.stamp([m.entry for m in merged], now)
    fresh: dict[str, Stamp] = {}
    stamped: list[collate.Merged] = []
    for item, stamp in zip(merged, stamps, strict=True):
        fresh[stamp.entry.id] = stamp
        stamped.append(collate.Merged(entry=stamp.entry, sources=item.sources))
    first_seen = {i: s.first_seen for i, s in fresh.items()}

    keys: dict[str, str] = {}

    def key(entry: Entry) -> str:
        """What a rendering of an entry depends on, as one line of text: made once, used in every file it is in."""
        text = keys.get(entry.id)
        if text is None:
            cats = tuple((c.slug, c.title) for c in entry.categories)
            parts = (entry.id, fresh[entry.id].digest, entry.updated.isoformat(), entry.link, cats)
            text = keys[entry.id] = repr(parts)
        return text

    own_pages = page_links((s.entry for s in stamps), site.base_url)
    by_slug = collate.categorize(stamped, config.categories, config.sources, links=own_pages)
    categories = collate.category_list(by_slug, config.categories)
    ttl = poll_seconds(config) // 60
    known = store.fingerprints()
    page_entries: dict[str, publish.PageEntry] = {}

    def page_entry(entry: Entry) -> publish.PageEntry:
        """An entry as category pages show it; it is on its category's page and on `all`'s."""
        shown = page_entries.get(entry.id)
        if shown is None:
            shown = page_entries[entry.id] = _page_entry(entry)
        return shown

    fingerprints: dict[str, str] = {}
    reports: list[FileReport] = []
    links: list[publish.FeedLink] = []

    def due(name: str, fingerprint: str) -> bool:
        """Whether a file must be rendered: its inputs changed, or it is missing."""
        fingerprints[name] = fingerprint
        return known.get(name) != fingerprint or not (site.output / name).exists()

    # Which documents are due, before any renders: the entries of their feeds can then go to a
    # helper process, the last needed first, while this one renders from the first.
    documents: list[_Document] = []
    for category in categories:
        paged = collate.paginate(
            by_slug.get(category.slug, ()), first_seen, store.archive_pages(category.slug), site.entries_per_feed
        )
        for ids in paged.to_freeze:
            store.freeze_archive_page(category.slug, len(store.archive_pages(category.slug)) + 1, ids, now)
        entries = paged.current
        link = publish.FeedLink(
            slug=category.slug, title=category.title, description=category.description, entries=len(entries)
        )
        links.append(link)
        history = (("prev-archive", f"archive/{category.slug}/{len(paged.pages)}"),) if paged.pages else ()
        meta = _meta(config, category, entries, ttl, history=history)
        fingerprint = _fingerprint(__version__, meta, keys=[key(e) for e in entries])
        new = sum(1 for e in entries if fresh[e.id].new)
        updated = sum(1 for e in entries if fresh[e.id].changed)
        for ext, renderer in _RENDERERS:
            name = f"{category.slug}.{ext}"
            report = FileReport(path=name, entries=len(entries), new=new, updated=updated)
            if due(name, fingerprint):
                documents.append(_Document(name, report, partial(renderer, meta, entries), entries))
            else:
                reports.append(report)
        page = f"{category.slug}.html"
        if due(page, fingerprint):
            make = partial(_category_page, config, link, entries, page_entry)
            documents.append(_Document(page, FileReport(path=page, entries=len(entries)), make))
        documents.extend(_archive_documents(config, category, paged, ttl, due, key))

    def writes(shared: render.Shared) -> Iterator[tuple[publish.Write, FileReport]]:
        # Entry pages first: they are renamed into place before the feeds that link to them, and a
        # second writer can create them while the feeds render. The entries as the feeds have them
        # (categories and all), so their cleaned text is shared with the feeds.
        for entry in by_slug[collate.ALL.slug]:
            if (page := own_pages.get(entry.id)) is not None:
                name = page[len(site.base_url) :]
                if due(name, _fingerprint(__version__, site.title, site.language, keys=[key(entry)])):
                    page_bytes = render.render_entry_page(
                        entry, site_title=site.title, language=site.language, shared=shared
                    )
                    yield publish.Write(name, page_bytes, gzip=False, durable=False), FileReport(path=name, entries=1)
        for document in documents:
            yield publish.Write(document.name, document.make(shared)), document.report
        index = publish.index_html(site_title=site.title, base_url=site.base_url, language=site.language, feeds=links)
        yield publish.Write("index.html", index), FileReport(path="index.html")
        opml = publish.opml(site_title=site.title, base_url=site.base_url, feeds=links)
        yield publish.Write("feeds.opml", opml), FileReport(path="feeds.opml")

    pending: dict[str, FileReport] = {}

    def tracked(shared: render.Shared) -> Iterator[publish.Write]:
        for write, report in writes(shared):
            pending[write.name] = report
            yield write

    # An entry is in its category's feed, in `all`, maybe in archives: each is built once a pass.
    feed_entries = list({id(e): e for document in documents for e in document.feed_entries}.values())
    with started(len(feed_entries) >= render.HELPER_AFTER) as helper:
        shared = render.Shared(helper)
        shared.prepare(site.base_url, feed_entries)
        written = publish.write_files(site.output, tracked(shared))
    for name, r in pending.items():
        # A constructor, not replace(): several times cheaper, and a first build reports every entry page.
        written_now = name in written
        reports.append(FileReport(path=r.path, entries=r.entries, new=r.new, updated=r.updated, written=written_now))
    fingerprints[_SETTINGS] = settings_fingerprint(config)
    store.put_fingerprints({n: f for n, f in fingerprints.items() if known.get(n) != f}, now)
    return reports


def settings_fingerprint(config: Config) -> str:
    """What the configuration last published with; "" in the store while a publish is pending."""
    return _fingerprint(__version__, config.site, config.categories, config.sources)


def publish_pending(store: Store, config: Config) -> bool:
    """Whether output/ lags the store: a pass recorded entries and died before publishing them."""
    return store.fingerprints().get(_SETTINGS) != settings_fingerprint(config)


_RENDERERS = (("atom", render.render_atom), ("rss", render.render_rss), ("json", render.render_json))


class _Document(NamedTuple):
    """A file due in a pass, rendered when it is written."""

    name: str
    report: FileReport
    make: Callable[[render.Shared], bytes]
    feed_entries: Sequence[Entry] = ()  # the feed entries it holds, which a helper process can build ahead


def _category_page(
    config: Config,
    link: publish.FeedLink,
    entries: Sequence[Entry],
    page_entry: Callable[[Entry], publish.PageEntry],
    _shared: render.Shared,
) -> bytes:
    site = config.site
    return publish.category_html(
        site_title=site.title,
        base_url=site.base_url,
        language=site.language,
        feed=link,
        entries=[page_entry(e) for e in entries],
    )


def _archive_documents(
    config: Config,
    category: Category,
    paged: collate.Paged,
    ttl: int,
    due: Callable[[str, str], bool],
    key: Callable[[Entry], str],
) -> Iterator[_Document]:
    """The archive documents of one category that are due: archive/<slug>/<n>.atom and .rss, linked both ways."""
    last = len(paged.pages)
    for number, entries in enumerate(paged.pages, start=1):
        stem = f"archive/{category.slug}/{number}"
        history = [("current", category.slug)]
        if number > 1:
            history.append(("prev-archive", f"archive/{category.slug}/{number - 1}"))
        if number < last:
            history.append(("next-archive", f"archive/{category.slug}/{number + 1}"))
        meta = _meta(config, category, entries, ttl, history=tuple(history), path=stem, archive=True)
        final = number < last
        # A final page is written once and never again: same bytes forever, whatever changes later.
        fingerprint = "final" if final else _fingerprint(__version__, meta, keys=[key(e) for e in entries])
        for ext, renderer in _RENDERERS[:2]:
            name = f"{stem}.{ext}"
            if due(name, fingerprint):
                report = FileReport(path=name, entries=len(entries))
                yield _Document(name, report, partial(renderer, meta, entries), entries)


def _meta(
    config: Config,
    category: Category,
    entries: Sequence[Entry],
    ttl: int,
    *,
    history: tuple[tuple[str, str], ...] = (),
    path: str = "",
    archive: bool = False,
) -> render.FeedMeta:
    site = config.site
    title = site.title if category.slug == collate.ALL.slug else f"{site.title} — {category.title}"
    return render.FeedMeta(
        path=path,
        history=history,
        archive=archive,
        slug=category.slug,
        title=title,
        description=category.description or title,
        base_url=site.base_url,
        author=site.author,
        language=site.language,
        updated=max((e.updated for e in entries), default=EMPTY_FEED_UPDATED),
        ttl_minutes=ttl,
        hubs=site.hubs,
    )


def _page_entry(entry: Entry) -> publish.PageEntry:
    return publish.PageEntry(
        title=entry.title,
        link=entry.link,
        published_iso=entry.published.isoformat(),
        published_text=publish.format_day(entry.published),
        summary=entry.summary,
    )


def build(
    config: Config,
    now: datetime,
    *,
    only: Sequence[str] = (),
    load: Loader | None = None,
    fetcher: Fetcher | None = None,
) -> BuildReport:
    """Refresh the sources (all, or those named) and publish every feed whose content changed.

    Sources are read with `load` when given, one after another; otherwise fetched several at once
    with `fetcher` (a client of its own for this pass when None).
    """
    report = BuildReport()
    publish.remove_stale_temps(config.site.output, now.timestamp() - publish.STALE_TEMP_SECONDS)
    chosen = [s for s in config.sources if not only or s.name in only]
    with open_store(config) as store, contextlib.nullcontext(fetcher) if fetcher else _fetcher(config) as client:
        with _Ahead(store, chosen if load is None else (), client) as ahead:
            for source in chosen:
                report.sources.append(refresh(store, source, now, load or ahead.load))
        quiet = all(s.unchanged for s in report.sources)
        if quiet and not publish_pending(store, config) and (config.site.output / "index.html").exists():
            return report  # nothing a reader could see has changed: leave every file alone
        report.files = publish_all(store, config, now)
    return report


def _fetcher(config: Config) -> Fetcher:
    return Fetcher(user_agent=user_agent(__version__, config.site.contact_url))


FETCHING = 32  # URL sources fetched at once in a pass; each host still gets at most per_host of them


class _Ahead:
    """Fetches a pass's URL sources on threads, a few ahead of the one being parsed.

    Waiting on servers one after another would make a pass as slow as the sum of their latencies.
    Parsing, the store and publishing stay in the caller's thread and in config order, so a pass
    records what it would record fetching one source at a time; only the waiting overlaps. At most
    twice `workers` fetched documents wait in memory, whatever the number of sources. One client
    serves every thread, so the per-host limit and kept-alive connections are shared.
    """

    def __init__(self, store: Store, sources: Sequence[SourceConfig], fetcher: Fetcher, workers: int = FETCHING):
        self._fetcher = fetcher
        # States are read here, in the store's own thread; refresh reports a gone source without loading it.
        states = ((s, store.source(s.name)) for s in sources if s.is_url)
        self._queue = deque((s, state) for s, state in states if not _is_gone(s, state))
        self._window = 2 * workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feeds-fetch")
        self._pending: dict[str, Future[FetchResult]] = {}
        self._fill()

    def __enter__(self) -> _Ahead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _fill(self) -> None:
        while self._queue and len(self._pending) < self._window:
            source, state = self._queue.popleft()
            self._pending[source.name] = self._pool.submit(_fetch_url, source, state, self._fetcher)

    def load(self, source: SourceConfig, state: SourceState) -> tuple[list[Document] | None, SourceState]:
        future = self._pending.pop(source.name, None)
        if future is None:  # a local file: read in turn
            return fetch_documents(source, state, self._fetcher)
        self._fill()
        return _learn(state, future.result())  # a SourceError raised on the thread is raised here, for refresh


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
