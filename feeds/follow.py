"""Following a source's items to their own pages: which to fetch, reading them, and merging them into the items."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from feeds.adapters.common import is_http
from feeds.adapters.interview import Interview
from feeds.config import SourceConfig
from feeds.errors import SourceError
from feeds.extract import Extracted, extract_article
from feeds.fetch import ROBOTS_TTL, Fetcher, FetchResult, Refused, SourceGone, Validators
from feeds.model import Author, Document, Enclosure, Entry
from feeds.sanitize import html_to_text
from feeds.store import PageState, content_hash

# Read as pages; any other media type is told by its headers alone, its body never downloaded.
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
# What an item may link to instead of a page, attached to its entry as an enclosure.
_DOCUMENT_TYPES = re.compile(
    r"^(?:application/(?:pdf|msword|rtf|epub\+zip|vnd\.ms-[\w.+-]+|vnd\.openxmlformats-officedocument\.[\w.+-]+"
    r"|vnd\.oasis\.opendocument\.[\w.+-]+)|audio/[\w.+-]+|video/[\w.+-]+)$"
)
# A page answered "not found" or "gone" this many times in a row is taken for gone, and not asked for again.
GONE_AFTER = 3
RETRY_FIRST = timedelta(hours=1)  # a failed page waits this long, then twice as long after each new failure


@dataclass(frozen=True, slots=True, kw_only=True)
class Followed:
    """What following a source's items brought: the entries as published, the page states to keep, what went wrong."""

    entries: list[Entry]
    pages: list[PageState] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending: int = 0  # items whose pages wait for a later pass (over follow_limit)
    results: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # page fetches by result


def wanted(media_type: str) -> bool:
    return media_type in PAGE_TYPES


def is_due(state: PageState, source: SourceConfig, now: datetime) -> bool:
    """Whether an already known page is to be asked for again now, though its item did not change.

    A failed page is due when its wait is over; one read before when `follow_refresh` has passed.
    """
    if _gone(state):
        return False
    if state.next_try:
        return datetime.fromisoformat(state.next_try) <= now
    return not state.checked or datetime.fromisoformat(state.checked) + source.follow_refresh <= now


def _gone(state: PageState) -> bool:
    return state.failures >= GONE_AFTER and state.last_status == "missing"


def follow(
    source: SourceConfig,
    entries: list[Entry],
    states: Mapping[str, PageState],
    fetcher: Fetcher,
    now: datetime,
    robots: bool | None = None,
) -> Followed:
    """Fetch the pages of the items that need it (at most `follow_limit`, newest first) and merge every item.

    An item whose page is not fetched this pass keeps what its page said last time; one whose page
    fails keeps it too, and the failure is a warning, never the source's error. robots.txt is obeyed
    unless the source says `follow_robots = false` (or `robots` is given as False).
    """
    obey = source.follow_robots if robots is None else robots
    to_fetch: list[tuple[Entry, PageState | None]] = []
    pending = 0
    newest_first = sorted(entries, key=lambda e: (e.undated, -e.published.timestamp()))
    for entry in newest_first:
        if not is_http(entry.link):
            continue
        state = states.get(entry.link)
        if state is not None and not _needs_fetch(state, entry, source, now):
            continue
        if len(to_fetch) >= source.follow_limit:
            pending += 1
            continue
        to_fetch.append((entry, state))
    warnings: list[str] = []
    results: Counter[str] = Counter()
    fresh: dict[str, PageState] = {}

    def one(job: tuple[Entry, PageState | None]) -> tuple[PageState, str, str]:
        entry, state = job
        if obey and not fetcher.allowed(source.name, entry.link):
            what = f"{entry.link} is disallowed by robots.txt"
            # Asked again when robots.txt is read again, not sooner.
            page = _failed(entry, state, source, now, what, wait=ROBOTS_TTL)
            return page, "robots", f"page {what}"
        return _fetch_page(entry, state, source, fetcher, now)

    # As many threads as the host takes requests at once (the fetcher's limit holds the rest back anyway).
    workers = max(1, min(fetcher.limits.per_host, len(to_fetch)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feeds-follow") as pool:
        for page, result, warning in pool.map(one, to_fetch):
            fresh[page.url] = page
            results[result] += 1
            if warning:
                warnings.append(warning)
    merged = [merge(entry, fresh.get(entry.link) or states.get(entry.link)) for entry in entries]
    return Followed(
        entries=merged,
        pages=list(fresh.values()),
        warnings=warnings,
        pending=pending,
        results=MappingProxyType(dict(results)),
    )


def _needs_fetch(state: PageState, entry: Entry, source: SourceConfig, now: datetime) -> bool:
    if _gone(state) or (state.next_try and datetime.fromisoformat(state.next_try) > now):
        return False
    return state.item_digest != content_hash(entry) or is_due(state, source, now)


def _fetch_page(
    entry: Entry, state: PageState | None, source: SourceConfig, fetcher: Fetcher, now: datetime
) -> tuple[PageState, str, str]:
    """(the page's new state, the result for metrics, a warning or "")."""
    url = entry.link
    # Validators are sent only when something read from them is kept to stand for the answer "not modified".
    kept = state is not None and (state.extracted or state.content_type)
    validators = Validators(etag=state.etag, last_modified=state.last_modified) if state and kept else Validators()
    try:
        result = fetcher.fetch(source.name, url, validators, wanted=wanted)
    except SourceError as exc:
        missing = isinstance(exc, SourceGone) or (isinstance(exc, Refused) and exc.status == 404)
        page = _failed(entry, state, source, now, exc.what, missing=missing)
        return page, "missing" if missing else "failed", f"page {exc.what}"
    base = state or PageState(url=url, source=source.name)
    base = replace(
        base,
        source=source.name,
        item_digest=content_hash(entry),
        etag=result.validators.etag,
        last_modified=result.validators.last_modified,
        failures=0,
        checked=now.isoformat(),
        next_try="",
    )
    if result.not_modified:
        return replace(base, last_status="not-modified"), "not-modified", ""
    return _read(base, result, entry, source)


def _read(base: PageState, result: FetchResult, entry: Entry, source: SourceConfig) -> tuple[PageState, str, str]:
    doc = result.document
    assert doc is not None  # not "not modified"
    if result.body_skipped:
        if not _DOCUMENT_TYPES.match(doc.media_type):
            what = f"{entry.link} is {doc.media_type}, neither a page nor a document to attach"
            return replace(base, last_status=what), "unreadable", f"page {what}"
        length = doc.headers.get("content-length", "")
        page = replace(
            base,
            content_type=doc.media_type,
            content_length=int(length) if length.isdigit() else 0,
            extracted="",
            last_status="enclosure",
        )
        return page, "enclosure", ""
    digest = hashlib.sha256(doc.content).hexdigest()
    if digest == base.digest and base.extracted:
        return replace(base, last_status="ok"), "ok", ""  # the same bytes read the same
    try:
        extracted = read_page(doc, source)
    except SourceError as exc:
        # The page came but cannot be read: what it said last time still stands.
        return replace(base, last_status=exc.what), "unreadable", f"page {doc.url}: {exc.what}"
    page = replace(base, digest=digest, extracted=_to_json(extracted), content_type="", content_length=0)
    return replace(page, last_status="ok"), "ok", ""


def _failed(
    entry: Entry,
    state: PageState | None,
    source: SourceConfig,
    now: datetime,
    what: str,
    *,
    missing: bool = False,
    wait: timedelta | None = None,
) -> PageState:
    base = state or PageState(url=entry.link, source=source.name)
    # A streak of "not found" counts on its own: three in a row and the page is taken for gone.
    failures = base.failures + 1 if not missing or base.last_status == "missing" else 1
    if wait is None:
        wait = min(RETRY_FIRST * 2 ** (failures - 1), source.follow_refresh)
    return replace(
        base,
        failures=failures,
        last_status="missing" if missing else what,
        checked=now.isoformat() if not base.checked else base.checked,
        next_try=(now + wait).isoformat(),
    )


# -- reading a page -----------------------------------------------------------------------------------

_INTERVIEW = Interview()


def read_page(doc: Document, source: SourceConfig) -> Extracted:
    """What a followed page says, read as `source.follow` asks; SourceError when it says nothing readable.

    `auto` reads it with the interview adapter when it has the site's page shape (title, standfirst,
    "Type | date"), and with generic extraction otherwise.
    """
    kind = source.follow
    if kind in ("interview", "auto"):
        options = MappingProxyType({"kind": "interview" if kind == "interview" else "auto"})
        try:
            entry = next(iter(_INTERVIEW.parse(doc, replace(source, options=options))))
        except SourceError:
            if kind == "interview" or not doc.is_html:
                raise
        else:
            return Extracted(
                title=entry.title,
                summary=entry.summary,
                content_html=entry.content_html,
                contributors=entry.contributors,
                published=entry.published,
            )
    if not doc.is_html:
        raise SourceError(source.name, f"{doc.url}: a {doc.media_type} page has no article to extract")
    return extract_article(doc, source.name)


def _to_json(extracted: Extracted) -> str:
    return json.dumps(
        {
            "title": extracted.title,
            "summary": extracted.summary,
            "content_html": extracted.content_html,
            "authors": [a.name for a in extracted.authors],
            "contributors": [a.name for a in extracted.contributors],
            "published": extracted.published.isoformat() if extracted.published else "",
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _from_json(text: str) -> Extracted:
    data: dict[str, Any] = json.loads(text)
    return Extracted(
        title=data["title"],
        summary=data["summary"],
        content_html=data["content_html"],
        authors=tuple(Author(name=n) for n in data["authors"]),
        contributors=tuple(Author(name=n) for n in data["contributors"]),
        published=datetime.fromisoformat(data["published"]) if data["published"] else None,
    )


# -- merging --------------------------------------------------------------------------------------------


def merge(entry: Entry, page: PageState | None) -> Entry:
    """The listing's item with what its page said: the page's content, headline, authors; the item's id and date.

    Without a page read, the item is its summary alone: a copy of it as content would say it twice.
    """
    if page is not None and page.content_type:
        attached = Enclosure(url=page.url, length=page.content_length, type=page.content_type)
        entry = replace(entry, enclosures=(*entry.enclosures, attached)) if attached not in entry.enclosures else entry
    if page is None or not page.extracted:
        if entry.content_html and html_to_text(entry.content_html) == entry.summary:
            return replace(entry, content_html="")
        return entry
    read = _from_json(page.extracted)
    merged = replace(
        entry,
        title=read.title or entry.title,
        summary=entry.summary or read.summary,
        content_html=read.content_html or entry.content_html,
        authors=read.authors or entry.authors,
        contributors=read.contributors or entry.contributors,
    )
    if entry.undated and read.published is not None:
        merged = replace(merged, published=read.published, updated=read.published, undated=False)
    return merged
