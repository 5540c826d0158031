"""What a pass publishes: changed items become published entries, then due documents, then their bytes.

A pass costs what changed. `update` takes the items the sources recorded as new or changed, merges
them with the items they are one entry with, stamps, categorizes and renders each such entry once
(feedgen), and files it in its feeds; it marks the documents those entries are in as due. `plan`
says which files those are, `render` makes their bytes from the kept fragments, and the caller
writes them. Nothing here holds more than a batch of entries or one document at a time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from feeds import collate, pages, publish, render
from feeds.config import Config
from feeds.errors import RenderError
from feeds.model import ATOM, FEED_SUFFIXES, FORMATS, RSS, Category, Entry, Format, slugify
from feeds.store import DocumentRow, Member, Published, Store, micros

log = logging.getLogger("feeds")

BATCH = 500  # entries merged, stamped and rendered together: bounds a pass's memory, whatever the history
SETTINGS = "settings"  # the fingerprint of the configuration the published entries were placed and rendered with
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)  # an empty feed has no newest entry; this never moves
_PAGE_NAME = 120  # characters at most in an entry page's name, before ".html"

# What `pending` holds: the documents a pass has yet to write, so a pass that dies leaves them due.
_SITE = "site"  # index.html and feeds.opml
_FEED = "feed:"  # + slug: a category's current documents, its page, and its open archive page
_ARCHIVE = "archive:"  # + slug + ":" + number: a final archive page
_PAGE = "page:"  # + entry id: our page for an entry without a link of its own
_DROP = "drop:"  # + path under output/: a file, or a category's files (drop:feed:slug), no longer published


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


def settings_fingerprint(config: Config) -> str:
    """What placing and rendering entries depends on in the configuration, and the output format's version."""
    placing = [(s.name, s.categories) for s in config.sources]
    # Where a node writes is no setting of the site: nodes sharing a store each have their own output/ and state/.
    site = replace(config.site, output=Path(), state=Path())
    text = repr((render.RENDER_VERSION, site, config.categories, placing, poll_seconds(config)))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class Changes:
    """What `update` published: the ids of new and of changed entries (for the reports of the files they are in)."""

    new: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)


def update(store: Store, config: Config, now: datetime) -> Changes:
    """Publish the items recorded as new or changed, and mark the documents they are in as due.

    When the configuration's placing or rendering of entries changed (or the output format did),
    every item is published again, each rendered only where its rendering changed; the feeds of
    categories no longer configured are dropped.
    """
    changes = Changes()
    fingerprint = settings_fingerprint(config)
    everything = store.setting(SETTINGS) != fingerprint
    rules = collate.Rules(config.categories, config.sources)
    if everything:
        store.mark_all_dirty()
        # Every feed published so far is due too: one this configuration no longer makes is dropped.
        store.add_pending([_SITE, *(f"{_FEED}{slug}" for slug in _feeds(store, config))])
    while batch := store.dirty(BATCH):
        # A batch is published whole or not at all: a pass that dies leaves it dirty, to publish again.
        with store.transaction():
            touched = _publish_batch(store, config, rules, batch, now, changes)
            store.add_pending([*(f"{_FEED}{slug}" for slug in touched), *([_SITE] if touched else [])])
    # The feeds due, this pass's and those a pass that died left: archive what overflows, drop what is empty.
    due = [name[len(_FEED) :] for name in store.pending() if name.startswith(_FEED)]
    kept = {*store.live_slugs(), *_configured(config), collate.ALL.slug}
    with store.transaction():
        for slug in due:
            if slug in kept:
                _freeze(store, slug, config.site.entries_per_feed, now)
            else:  # it lost its last entry, or its place in the configuration
                store.add_pending([f"{_DROP}{_FEED}{slug}", _SITE])
        store.put_setting(SETTINGS, fingerprint)
    return changes


def republish(store: Store, config: Config) -> None:
    """Every document due again, entry pages and final archive pages included (output/ was lost)."""
    slugs = _feeds(store, config)
    archives = [f"{_ARCHIVE}{slug}:{n}" for slug in slugs for n in range(1, store.archive_count(slug) + 1)]
    store.add_pending([_SITE, *(f"{_FEED}{slug}" for slug in slugs), *archives])
    store.add_pending(f"{_PAGE}{entry_id}" for entry_id in store.own_pages())


def _configured(config: Config) -> set[str]:
    return {c.slug for c in config.categories}


def _feeds(store: Store, config: Config) -> set[str]:
    """Every feed that has been or is to be published: those with entries or written, configured ones, `all`."""
    return {*store.live_slugs(), *store.published_slugs(), *_configured(config), collate.ALL.slug}


def _publish_batch(
    store: Store,
    config: Config,
    rules: collate.Rules,
    batch: Sequence[tuple[str, str]],
    now: datetime,
    changes: Changes,
) -> set[str]:
    """Publish one batch of dirty items (with every item each is one entry with); return the feeds touched."""
    site = config.site
    group = store.groups(batch)
    merged = collate.merge((entry, seen) for _, entry, seen in group)
    heads = {m.entry.id for m in merged}
    gone = {entry.id for _, entry, _ in group} - heads
    stamps = store.stamp([m.entry for m in merged], now)
    stamped = [collate.Merged(entry=s.entry, sources=m.sources) for s, m in zip(stamps, merged, strict=True)]
    own = {s.entry.id: entry_page_path(s.entry) for s in stamps if not s.entry.link}
    links = {entry_id: site.base_url + path for entry_id, path in own.items()}
    placed = rules.categorize(stamped, links=links)
    was = store.memberships([*heads, *gone])
    known = store.render_keys(heads)
    digests = {s.entry.id: s.digest for s in stamps}
    arrived = {s.entry.id: micros(s.first_seen) for s in stamps}
    for s in stamps:
        if s.new:
            changes.new.add(s.entry.id)
        elif s.changed:
            changes.changed.add(s.entry.id)

    touched: set[str] = set()
    members: list[Member] = []
    to_render: list[Entry] = []
    keys: dict[str, str] = {}
    pending: list[str] = []
    for entry in placed:
        slugs = {collate.ALL.slug, *(c.slug for c in entry.categories)}
        old_slugs = {slug for slug, _ in was.get(entry.id, ())}
        key = render_key(entry, digests[entry.id], config)
        old_key, old_page = known.get(entry.id, ("", ""))
        page = own.get(entry.id, "")
        published, updated = micros(entry.published), micros(entry.updated)
        members += [Member(slug, entry.id, arrived[entry.id], published, updated) for slug in sorted(slugs)]
        if key != old_key or slugs != old_slugs:
            touched |= slugs | old_slugs
        if key != old_key:
            to_render.append(entry)
            keys[entry.id] = key
            if page:
                pending.append(f"{_PAGE}{entry.id}")
        if old_page and old_page != page:
            pending.append(f"{_DROP}{old_page}")
    for entry_id in gone:
        touched |= {slug for slug, _ in was.get(entry_id, ())}
    store.put_derived(
        (c.slug, c.title) for entry in placed for c in entry.categories if c.slug not in rules.configured_slugs
    )
    rendered = _rendered(to_render, keys, own, site.base_url)
    store.put_published(rendered)
    # An entry that cannot be rendered is in no feed (it was logged); the others keep theirs.
    failed = {e.id for e in to_render} - {r.entry.id for r in rendered}
    members = [m for m in members if m.id not in failed]
    store.put_members(members, leaving=[*was, *gone, *failed])  # `was`: ids in some feed before
    store.add_pending(pending)
    # The batch, and the items of its groups that were dirty too: published with it.
    store.clean((source, entry.id) for source, entry, _ in group)
    return touched


def render_key(entry: Entry, digest: str, config: Config) -> str:
    """What an entry's rendering depends on: its content, time, link, categories, and the site."""
    site = config.site
    categories = tuple((c.slug, c.title) for c in entry.categories)
    text = repr((render.RENDER_VERSION, digest, entry.updated.isoformat(), entry.link, categories, site.base_url))
    return hashlib.sha256(f"{text}\n{site.title}\n{site.language}".encode()).hexdigest()


def _rendered(entries: Sequence[Entry], keys: dict[str, str], own: dict[str, str], base_url: str) -> list[Published]:
    """Each entry's Atom, RSS and JSON Feed fragments; an entry that cannot be rendered is left out and logged."""
    try:
        return _render_all(entries, keys, own, base_url)
    except RenderError:
        pass
    out: list[Published] = []
    for entry in entries:  # one at a time, to find the one that fails
        try:
            out += _render_all([entry], keys, own, base_url)
        except RenderError as exc:
            log.error("entry %s cannot be rendered, left out: %s", entry.id, exc)
    return out


def _render_all(entries: Sequence[Entry], keys: dict[str, str], own: dict[str, str], base_url: str) -> list[Published]:
    fragments = render.entry_fragments(entries, base_url, "entries")
    return [
        Published(
            entry=entry,
            page=own.get(entry.id, ""),
            render_key=keys[entry.id],
            atom=f.atom,
            rss=f.rss,
            json=f.json,
            li=pages.entry_item(_page_entry(entry)),
        )
        for entry, f in zip(entries, fragments, strict=True)
    ]


def _freeze(store: Store, slug: str, size: int, now: datetime) -> None:
    """Freeze full archive pages of a feed: its oldest arrivals beyond the newest `size`, `size` at a time.

    A page becomes final only once a newer page exists, so every link a final page holds (current,
    prev-archive, next-archive) already resolves; the open page holds the rest (1 to `size`).
    """
    open_count = store.open_count(slug)
    overflow = open_count - size
    while overflow > size:
        number = store.archive_count(slug) + 1
        store.freeze_archive_page(slug, number, store.unarchived(slug, size), now)
        store.add_pending([f"{_ARCHIVE}{slug}:{number}"])
        overflow -= size


# -- plan: which files are due ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The documents a pass must write, and the files it must remove."""

    pages: list[str]  # ids of the entries whose own page is due
    archives: list[tuple[str, int]]  # final archive pages due, as (slug, number)
    feeds: list[str]  # slugs whose current documents (and open archive page) are due
    site: bool  # index.html and feeds.opml
    drops: list[str]  # paths under output/ no longer published; a directory's ends in "/"
    dropping: list[str]  # the pending names those come from

    def names(self) -> Iterator[str]:
        """The pending names this plan covers, as the store keeps them."""
        yield from (f"{_PAGE}{entry_id}" for entry_id in self.pages)
        yield from (f"{_ARCHIVE}{slug}:{number}" for slug, number in self.archives)
        yield from (f"{_FEED}{slug}" for slug in self.feeds)
        if self.site:
            yield _SITE
        yield from self.dropping


def plan(store: Store, config: Config) -> Plan:
    """The documents due: those the store has marked, a pass that died included."""
    pages: list[str] = []
    archives: list[tuple[str, int]] = []
    feeds: list[str] = []
    site = False
    drops: list[str] = []
    dropping: list[str] = []
    live = {*store.live_slugs(), *_configured(config), collate.ALL.slug}
    for name in store.pending():
        if name == _SITE:
            site = True
        elif name.startswith(_FEED):
            feeds.append(name[len(_FEED) :])
        elif name.startswith(_ARCHIVE):
            slug, _, number = name[len(_ARCHIVE) :].rpartition(":")
            archives.append((slug, int(number)))
        elif name.startswith(_PAGE):
            pages.append(name[len(_PAGE) :])
        elif name.startswith(f"{_DROP}{_FEED}"):
            dropping.append(name)
            slug = name[len(_DROP) + len(_FEED) :]
            if slug not in live:  # it may have come back since
                drops += [f"{slug}{suffix}" for suffix in (*FEED_SUFFIXES, ".html")] + [f"archive/{slug}/"]
        elif name.startswith(_DROP):
            dropping.append(name)
            drops.append(name[len(_DROP) :])
    return Plan(pages=pages, archives=archives, feeds=feeds, site=site, drops=drops, dropping=dropping)


def directories(store: Store, plan: Plan) -> set[str]:
    """The directories under output/ that a plan writes in (and makes new ones in), relative to output/."""
    slugs = {*plan.feeds, *(slug for slug, _ in plan.archives)}
    pages = {path.rpartition("/")[0] for path in store.page_paths(plan.pages)}
    return {".", "archive", "entries", *(f"archive/{slug}" for slug in slugs), *pages}


# -- render: the bytes of each due file ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FileReport:
    """One output file: what readers will see as new or updated in it, and whether it was rewritten."""

    path: str
    entries: int = 0
    new: int = 0
    updated: int = 0
    written: bool = False


@dataclass(frozen=True, slots=True)
class Rendered:
    """A file's bytes, and what the report says of it."""

    write: publish.Write
    report: FileReport


def categories(store: Store, config: Config) -> list[Category]:
    """Every category that has a feed: `all`, configured ones in config order, then derived ones by slug."""
    titles = store.derived_titles()
    derived = (Category(slug=slug, title=titles.get(slug, slug)) for slug in store.live_slugs())
    return collate.category_list(config.categories, derived)


def render_plan(store: Store, config: Config, plan: Plan, changes: Changes) -> Iterator[Rendered]:
    """The bytes of every file the plan makes, one document at a time: entry pages, archives, feeds, the site's pages.

    Entry pages come first and feeds last, so a feed is replaced only once what it links to is there.
    """
    site = config.site
    by_slug = {c.slug: c for c in categories(store, config)}
    ttl = poll_seconds(config) // 60
    for start in range(0, len(plan.pages), BATCH):
        for entry, path in store.published_entries(plan.pages[start : start + BATCH]):
            page = pages.render_entry_page(entry, site_title=site.title, language=site.language, base_url=site.base_url)
            yield Rendered(publish.Write(path, page, gzip=False, durable=False), FileReport(path=path, entries=1))
    for slug, number in plan.archives:
        if (category := by_slug.get(slug)) is not None:
            yield from _archive(store, config, category, number, ttl)
    for slug in plan.feeds:
        if (category := by_slug.get(slug)) is not None:
            yield from _feed(store, config, category, ttl, changes)
    if plan.site:
        links = [_link(store, config, c) for c in by_slug.values()]
        index = pages.index_html(site_title=site.title, base_url=site.base_url, language=site.language, feeds=links)
        yield Rendered(publish.Write("index.html", index), FileReport(path="index.html"))
        opml = pages.opml(site_title=site.title, base_url=site.base_url, feeds=links)
        yield Rendered(publish.Write("feeds.opml", opml), FileReport(path="feeds.opml"))


@dataclass(frozen=True, slots=True)
class _Paged:
    """How a category is paged now (RFC 5005)."""

    open_count: int  # arrivals on no frozen page: the current document's, and the open archive page's before them
    frozen: int  # final archive pages
    last: int  # the number of its last archive page, the open one if it has one; 0: none


def _paged(store: Store, slug: str, size: int) -> _Paged:
    open_count, frozen = store.open_count(slug), store.archive_count(slug)
    return _Paged(open_count, frozen, frozen + (1 if open_count > size else 0))


def _feed(store: Store, config: Config, category: Category, ttl: int, changes: Changes) -> Iterator[Rendered]:
    """A category's current Atom, RSS and JSON Feed documents, its HTML page, and its open archive page."""
    site = config.site
    size = site.entries_per_feed
    paged = _paged(store, category.slug, size)
    current = store.documents_rows(category.slug, 0, skip=max(0, paged.open_count - size))
    rows = collate.order([*current, *store.corrections(category.slug, size)])
    last = paged.last
    history = (("prev-archive", f"archive/{category.slug}/{last}"),) if last else ()
    meta = _meta(config, category, ttl, _newest(store, rows), history=history)
    new = sum(1 for r in rows if r.id in changes.new)
    updated = sum(1 for r in rows if r.id in changes.changed)
    for fmt in FORMATS:
        name = f"{category.slug}{fmt.suffix}"
        data = _document(fmt, meta, rows)
        yield Rendered(publish.Write(name, data), FileReport(path=name, entries=len(rows), new=new, updated=updated))
    link = pages.FeedLink(slug=category.slug, title=category.title, description=category.description, entries=len(rows))
    page = pages.category_html(
        site_title=site.title,
        base_url=site.base_url,
        language=site.language,
        feed=link,
        items=[r.li for r in rows],
    )
    name = f"{category.slug}.html"
    yield Rendered(publish.Write(name, page), FileReport(path=name, entries=len(rows)))
    if last > paged.frozen:
        yield from _archive(store, config, category, last, ttl, paged)


def _archive(
    store: Store, config: Config, category: Category, number: int, ttl: int, paged: _Paged | None = None
) -> Iterator[Rendered]:
    """Archive page `number` of a category, Atom and RSS, linked both ways (RFC 5005)."""
    size = config.site.entries_per_feed
    paged = paged or _paged(store, category.slug, size)
    if number <= paged.frozen:
        rows = collate.order(store.documents_rows(category.slug, number))
    else:  # the open page: the arrivals before the current document's
        rows = collate.order(store.documents_rows(category.slug, 0, newest=max(0, paged.open_count - size)))
    last = paged.last
    stem = f"archive/{category.slug}/{number}"
    history = [("current", category.slug)]
    if number > 1:
        history.append(("prev-archive", f"archive/{category.slug}/{number - 1}"))
    if number < last:
        history.append(("next-archive", f"archive/{category.slug}/{number + 1}"))
    meta = _meta(config, category, ttl, _newest(store, rows), history=tuple(history), path=stem, archive=True)
    for fmt in (ATOM, RSS):  # RFC 5005 archives are Atom's and RSS's; JSON Feed has none
        name = f"{stem}{fmt.suffix}"
        yield Rendered(publish.Write(name, _document(fmt, meta, rows)), FileReport(path=name, entries=len(rows)))


def _document(fmt: Format, meta: render.FeedMeta, rows: Sequence[DocumentRow]) -> bytes:
    if fmt is ATOM:
        return render.atom_document(meta, [r.atom for r in rows])
    if fmt is RSS:
        return render.rss_document(meta, [r.rss for r in rows])
    return render.json_document(meta, [r.json for r in rows])


def _link(store: Store, config: Config, category: Category) -> pages.FeedLink:
    size = config.site.entries_per_feed
    count = min(store.open_count(category.slug), size) + min(store.late_count(category.slug), size)
    return pages.FeedLink(slug=category.slug, title=category.title, description=category.description, entries=count)


def poll_seconds(config: Config) -> int:
    """How long a reader may cache a feed: the shortest poll period of any source, in whole minutes.

    Whole minutes because RSS <ttl> counts minutes, and Cache-Control's max-age must agree with it.
    """
    shortest = min((s.schedule.seconds for s in config.sources), default=3600)
    return max(1, shortest // 60) * 60


def _newest(store: Store, rows: Sequence[DocumentRow]) -> datetime:
    """The `updated` of the document's most recently changed entry, in that entry's own zone."""
    if not rows:
        return EMPTY_FEED_UPDATED
    newest = max(rows, key=lambda r: r.updated)  # the first of equals, in document order
    # Read for that entry alone: reading every entry's text would cost more than its fragments.
    return datetime.fromisoformat(store.updated_text(newest.id))


def _meta(
    config: Config,
    category: Category,
    ttl: int,
    updated: datetime,
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
        updated=updated,
        ttl_minutes=ttl,
        hubs=site.hubs,
    )


def _page_entry(entry: Entry) -> pages.PageEntry:
    return pages.PageEntry(
        title=entry.title,
        link=entry.link,
        published_iso=entry.published.isoformat(),
        published_text=pages.format_day(entry.published),
        summary=entry.summary,
    )
