"""Pure decisions: merge duplicates, assign entries to categories, order and cap each feed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from feeds.config import CategoryConfig, SourceConfig
from feeds.model import Category, Entry, slugify

ALL = Category(slug="all", title="All entries", description="Every entry from every source.")


@dataclass(frozen=True, slots=True, kw_only=True)
class Merged:
    """One entry as readers see it, and every source that reported it."""

    entry: Entry
    sources: frozenset[str]


def merge(items: Iterable[tuple[Entry, datetime]]) -> list[Merged]:
    """Join items that are one entry: the same id, or a listing item and the page it announces.

    The id of the item seen first is kept, so an id once published never changes. The richest
    item (the full page) supplies the content; the others fill what it lacks.
    """
    items = list(items)
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_by_key: dict[tuple[str, str], int] = {}
    for index, (entry, _seen) in enumerate(items):
        for key in (("id", entry.id), ("match", entry.match_key)):
            if not key[1]:
                continue
            other = first_by_key.setdefault(key, index)
            if other != index:
                parent[find(index)] = find(other)

    groups: dict[int, list[tuple[Entry, datetime]]] = {}
    for index, item in enumerate(items):
        groups.setdefault(find(index), []).append(item)
    return [_combine(group) for group in groups.values()]


def _combine(group: list[tuple[Entry, datetime]]) -> Merged:
    sources = frozenset(entry.source for entry, _ in group)
    if len(group) == 1:
        return Merged(entry=group[0][0], sources=sources)
    oldest = min(group, key=lambda item: (item[1], item[0].id))[0]
    richest = max(group, key=lambda item: (len(item[0].content_html), len(item[0].summary), item[0].id))[0]
    labels = tuple(dict.fromkeys(label for entry, _ in group for label in entry.labels))
    tags = tuple(dict.fromkeys(tag for entry, _ in group for tag in entry.tags))
    link = richest.link or next((entry.link for entry, _ in group if entry.link), "")
    entry = replace(
        richest,
        id=oldest.id,
        link=link,
        summary=richest.summary or oldest.summary,
        labels=labels,
        tags=tags,
        authors=richest.authors or oldest.authors,
        match_key=oldest.match_key or richest.match_key,
    )
    return Merged(entry=entry, sources=sources)


# What decides an entry's categories: its labels and tags, its sources, the categories its words pick.
_Kind = tuple[tuple[str, ...], tuple[str, ...], frozenset[str], tuple[int, ...]]
# The adapters whose labels are types of the source's own ("News", a series): each may become a feed. A
# feed's or a page's tags are many and free-form, and join only the categories the config maps them to.
_TYPED = frozenset({"listing", "interview"})


class Rules:
    """The category rules of a configuration, worked out once for each kind of entry a pass has."""

    def __init__(self, categories: Sequence[CategoryConfig], sources: Sequence[SourceConfig]) -> None:
        self.configured = [Category(slug=c.slug, title=c.title, description=c.description) for c in categories]
        self.by_slug = {category.slug: category for category in self.configured}
        self.configured_slugs = frozenset(self.by_slug)
        # A label of punctuation alone has an empty key, which must not match every other such label.
        self.types = [frozenset(key for t in c.types if (key := label_key(t))) for c in categories]
        self.sources = [frozenset(c.sources) for c in categories]
        self.keywords = [(i, tuple(_word(k) for k in c.keywords)) for i, c in enumerate(categories) if c.keywords]
        self.claimed = frozenset().union(*self.types)
        self.mappings = {s.name: {label_key(label): slug for label, slug in s.categories.items()} for s in sources}
        self.typed = frozenset(s.name for s in sources if s.adapter in _TYPED)
        self._placed: dict[_Kind, tuple[tuple[str, ...], tuple[Category, ...]]] = {}

    def place(self, item: Merged) -> tuple[tuple[str, ...], tuple[Category, ...]]:
        """The slugs of the categories an item joins, in the order the rules take it, and those categories by slug.

        They depend only on the item's labels and tags, its sources and which keywords its title or
        summary holds: thousands of entries share a few such kinds, and each kind is worked out once.
        """
        entry = item.entry
        by_keyword: tuple[int, ...] = ()
        if self.keywords:
            text = f"{entry.title}\n{entry.summary}".casefold()
            by_keyword = tuple(i for i, patterns in self.keywords if any(p.search(text) for p in patterns))
        kind = (entry.labels, entry.tags, item.sources, by_keyword)
        placed = self._placed.get(kind)
        if placed is None:
            placed = self._placed[kind] = self._place(*kind)
        return placed

    def categorize(self, merged: Iterable[Merged], *, links: Mapping[str, str] | None = None) -> list[Entry]:
        """Each entry carrying its categories (and, from `links` by id, a link when it has none of its own)."""
        links = links or {}
        out = []
        for item in merged:
            _, joined = self.place(item)
            entry = item.entry
            out.append(replace(entry, categories=joined, link=entry.link or links.get(entry.id, "")))
        return out

    def _place(
        self, labels: tuple[str, ...], tags: tuple[str, ...], sources: frozenset[str], by_keyword: tuple[int, ...]
    ) -> tuple[tuple[str, ...], tuple[Category, ...]]:
        folded = {label_key(label) for label in (*labels, *tags)}
        found: dict[str, Category] = {}
        for index, category in enumerate(self.configured):
            if folded & self.types[index] or sources & self.sources[index] or index in by_keyword:
                found[category.slug] = category
        for name in sorted(sources):
            mapping = self.mappings.get(name)
            if mapping is None:
                continue  # removed from config: its entries stay in `all` and in matching categories
            # A map names labels and tags alike; without one, only a typed source's labels make feeds.
            named = (*labels, *tags) if mapping else labels if name in self.typed else ()
            for label in named:
                if mapping:
                    slug = mapping.get(label_key(label), "")
                elif label_key(label) in self.claimed:
                    continue  # a configured category already takes this label
                else:
                    slug = slugify(label)
                if slug and slug not in found:
                    found[slug] = self.by_slug.get(slug) or Category(slug=slug, title=label)
        return tuple(found), tuple(found[slug] for slug in sorted(found))


def label_key(label: str) -> str:
    """A type label as rules compare it: its letters and digits, casefolded.

    Sites spell one series differently across years ("Spotlight Interviews with Co-operators",
    "… with Cooperators", "CO-OPERATIVE"), and a rule written for one spelling takes them all.
    """
    return "".join(filter(str.isalnum, label.casefold()))


def _word(keyword: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(keyword.casefold())}(?!\w)")


def categorize(
    merged: Sequence[Merged],
    categories: Sequence[CategoryConfig],
    sources: Sequence[SourceConfig],
    *,
    links: Mapping[str, str] | None = None,
) -> dict[str, list[Entry]]:
    """Map each category slug to its entries (each entry carrying its categories); `all` holds every entry.

    An entry joins a configured category when one of its type labels is among the category's
    `types`, one of its sources among its `sources`, or one of its `keywords` is a word of the title
    or summary. A source's `categories` map sends labels and tags to slugs; a listing or interview
    source without a map publishes each label that no configured category takes into a category
    derived from it. Tags without a mapping stay on the entry and make no feed.
    `links` gives entries without a link of their own one (by id) in the same copy, the one a
    pass makes of each entry.
    """
    rules = Rules(categories, sources)
    out: dict[str, list[Entry]] = {ALL.slug: []}
    for placed in rules.categorize(merged, links=links):
        out[ALL.slug].append(placed)
        for category in placed.categories:
            out.setdefault(category.slug, []).append(placed)
    return out


class Dated(Protocol):
    """What orders an entry in a feed: an Entry, or a stored row of one."""

    @property
    def id(self) -> str: ...
    @property
    def published(self) -> Any: ...  # a datetime, or its microseconds: compared only with its own kind
    @property
    def updated(self) -> Any: ...


_D = TypeVar("_D", bound=Dated)


def order(entries: Iterable[_D], cap: int | None = None) -> list[_D]:
    """Newest first by publication, then by last change, then by id; at most `cap` entries."""
    ranked = sorted(entries, key=lambda e: e.id)
    ranked.sort(key=lambda e: (e.published, e.updated), reverse=True)
    return ranked[:cap]


def category_list(configured: Sequence[CategoryConfig], derived: Iterable[Category]) -> list[Category]:
    """Every category that has a feed: `all`, configured ones in config order, then derived ones by slug.

    `derived` holds the categories the entries are in; of those a configuration does not name, the
    first of each slug is kept.
    """
    known = [Category(slug=c.slug, title=c.title, description=c.description) for c in configured]
    taken = {ALL.slug, *(c.slug for c in known)}
    others: dict[str, Category] = {}
    for category in derived:
        if category.slug not in taken:
            others.setdefault(category.slug, category)
    return [ALL, *known, *(others[slug] for slug in sorted(others))]
