"""Reading and validating config.toml: the only module that reads configuration or the environment."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from feeds.errors import ConfigError

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_INTERVAL = re.compile(r"^every\s+(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DEFAULT_SCHEDULE = "every 1h"
FOLLOW_KINDS = ("auto", "interview", "article")
FOLLOW_ADAPTERS = ("listing", "html", "feed")  # the adapters whose items link to pages of their own
DEFAULT_FOLLOW_LIMIT = 50
DEFAULT_FOLLOW_REFRESH = "every 7d"


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """When a source is polled: a fixed interval or a five-field cron expression."""

    text: str
    interval: timedelta | None = None
    cron: str | None = None

    @property
    def seconds(self) -> int:
        """The poll period in seconds; for cron, the shortest gap is approximated by an hour."""
        return int(self.interval.total_seconds()) if self.interval else 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteConfig:
    """`[site]`: where and how the feeds are published."""

    title: str
    base_url: str  # ends with "/"
    author: str
    language: str
    time_zone: ZoneInfo
    output: Path
    state: Path
    entries_per_feed: int
    contact_url: str = ""
    hubs: tuple[str, ...] = ()
    id_authority: str = ""  # RFC 4151 "host,date" that tag: ids are minted under


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryConfig:
    """`[[categories]]`: a feed of its own and the rules that bring entries into it."""

    slug: str
    title: str
    description: str = ""
    types: tuple[str, ...] = ()  # source type labels, compared ignoring case, punctuation and spacing
    sources: tuple[str, ...] = ()  # whole sources
    keywords: tuple[str, ...] = ()  # words in title or summary, case-insensitive


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceConfig:
    """`[[sources]]`: one place entries come from and how to read it."""

    name: str
    adapter: str
    location: str  # a path or glob (resolved against the config file) or an http(s) URL
    time_zone: ZoneInfo
    schedule: Schedule
    categories: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    key: str = ""  # the config key, e.g. "sources[0]", for messages
    id_prefix: str = ""  # "tag:<authority>:<name>:"; ids of entries without a permalink start with it
    follow: str = ""  # "", "auto", "interview" or "article": how each item's own page is read ("": not fetched)
    follow_limit: int = DEFAULT_FOLLOW_LIMIT  # pages fetched per pass, newest items first
    follow_refresh: timedelta = timedelta(days=7)  # how often an unchanged item's page is checked again
    follow_robots: bool = True  # obey the page host's robots.txt

    def tag(self, key: str) -> str:
        """The permanent id for an item this source identifies by `key` (no permalink)."""
        return self.id_prefix + key

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """`[store]`: where the state lives; without a URL, the SQLite file in the state directory."""

    url: str = ""  # a postgresql:// URL: the state shared by every node that names it


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole validated configuration."""

    path: Path
    site: SiteConfig
    categories: tuple[CategoryConfig, ...]
    sources: tuple[SourceConfig, ...]
    store: StoreConfig = StoreConfig()

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)


def parse_schedule(text: str) -> Schedule:
    """Parse "every 15m" or a cron expression; raise ValueError with a readable reason."""
    text = text.strip()
    if match := _INTERVAL.match(text):
        amount = int(match.group(1)) * _UNITS[match.group(2)]
        if amount <= 0:
            raise ValueError("an interval must be longer than zero")
        return Schedule(text=text, interval=timedelta(seconds=amount))
    if len(text.split()) == 5:
        from apscheduler.triggers.cron import CronTrigger

        CronTrigger.from_crontab(text)  # raises ValueError on a bad field
        return Schedule(text=text, cron=text)
    raise ValueError('expected "every N" with a unit s, m, h or d (e.g. "every 15m") or a 5-field cron expression')


class _Reader:
    """Collects every problem while it walks the TOML tables."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def problem(self, key: str, what: str) -> None:
        self.problems.append((key, what))

    def get(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        required: bool = False,
    ) -> Any:
        if key not in table:
            if required:
                self.problem(f"{where}.{key}" if where else key, "is required")
            return default
        value = table[key]
        if isinstance(value, str) and (bad := _control_character(value)):
            self.problem(f"{where}.{key}" if where else key, f"contains the control character {bad}; remove it")
            return default
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.problem(f"{where}.{key}" if where else key, f"must be {_article(names)}, got {type(value).__name__}")
            return default
        return value

    def strings(self, table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = self.get(table, key, where, list, [])
        if not all(isinstance(item, str) for item in value):
            self.problem(f"{where}.{key}", "must be a list of strings")
            return ()
        for index, item in enumerate(value):
            if bad := _control_character(item):
                self.problem(f"{where}.{key}[{index}]", f"contains the control character {bad}; remove it")
                return ()
        return tuple(value)

    def unknown(self, table: Mapping[str, Any], known: set[str], where: str) -> None:
        for key in table:
            if key not in known:
                self.problem(f"{where}.{key}" if where else key, f"unknown key (known: {', '.join(sorted(known))})")

    def zone(self, name: str, key: str) -> ZoneInfo | None:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(key, f'unknown time zone "{name}" (use an IANA name such as "Europe/Geneva")')
            return None


def _follow_settings(r: _Reader, src: Mapping[str, Any], where: str, adapter: str) -> tuple[str, int, timedelta, bool]:
    """A source's `follow`, `follow_limit`, `follow_refresh` and `follow_robots`, each checked."""
    follow = r.get(src, "follow", where, str, "")
    if "follow" in src and follow not in FOLLOW_KINDS:
        r.problem(f"{where}.follow", f"must be one of {', '.join(repr(k) for k in FOLLOW_KINDS)}, got {follow!r}")
        follow = ""
    if follow and adapter and adapter not in FOLLOW_ADAPTERS:
        r.problem(
            f"{where}.follow",
            f"only sources whose adapter is {', '.join(repr(a) for a in FOLLOW_ADAPTERS)} link to pages to follow, "
            f'not "{adapter}"',
        )
    limit = r.get(src, "follow_limit", where, int, DEFAULT_FOLLOW_LIMIT)
    if limit < 1:
        r.problem(f"{where}.follow_limit", f"must be at least 1, got {limit}")
    refresh_text = r.get(src, "follow_refresh", where, str, DEFAULT_FOLLOW_REFRESH)
    refresh = timedelta(days=7)
    try:
        interval = parse_schedule(refresh_text).interval
        if interval is None:
            raise ValueError("a cron expression is not a period")
        refresh = interval
    except ValueError as exc:
        r.problem(
            f"{where}.follow_refresh",
            f'"{refresh_text}": {exc}; expected "every N" with a unit s, m, h or d (e.g. "{DEFAULT_FOLLOW_REFRESH}")',
        )
    robots = r.get(src, "follow_robots", where, bool, True)
    return follow, limit, refresh, robots


def _control_character(text: str) -> str:
    """The first character of `text` that no feed or page may carry, as "U+0001"; "" when there is none."""
    if text.isprintable():
        return ""
    for char in text:
        if not char.isprintable() and char not in "\t\n\r":
            return f"U+{ord(char):04X}"
    return ""


def _article(names: str) -> str:
    return ("an " if names[0] in "aeiou" else "a ") + {
        "str": "string",
        "int": "integer",
        "dict": "table",
        "list": "list",
        "bool": "boolean",
    }.get(names, names)


_SITE_KEYS = {
    "title",
    "base_url",
    "author",
    "language",
    "time_zone",
    "output",
    "state",
    "entries_per_feed",
    "contact_url",
    "hubs",
    "id_authority",
}
_CATEGORY_KEYS = {"slug", "title", "description", "types", "sources", "keywords"}
_SOURCE_KEYS = {
    "name",
    "adapter",
    "location",
    "time_zone",
    "schedule",
    "categories",
    "options",
    "follow",
    "follow_limit",
    "follow_refresh",
    "follow_robots",
}


class OptionsChecker(Protocol):
    """What validation needs of an adapter: the problems it finds with a source's `[sources.options]`."""

    def check_options(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems as (option key, message) pairs; empty when fine."""
        ...


def load(path: Path | str, adapters: Mapping[str, OptionsChecker]) -> Config:
    """Read and validate a config file against the adapter registry; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([(str(path), "no such file (pass --config PATH or create config.toml)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([(str(path), f"cannot read: {exc}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from exc
    return parse(raw, path, adapters)


def parse(raw: Mapping[str, Any], path: Path, adapters: Mapping[str, OptionsChecker] | None = None) -> Config:
    """Validate an already-decoded TOML document; `path` anchors relative paths.

    `adapters` is the registry (feeds.adapters.ADAPTERS) that adapter names and options are checked
    against. It is handed in because the adapters read SourceConfig: config stays below them. Without
    it, names and options are taken as written, as for a document built in code for one adapter.
    """
    r = _Reader()
    base = path.parent
    r.unknown(raw, {"site", "categories", "sources", "store"}, "")

    site_raw = r.get(raw, "site", "", dict, {}, required=True)
    r.unknown(site_raw, _SITE_KEYS, "site")
    base_url = r.get(site_raw, "base_url", "site", str, "https://example.invalid/", required=True)
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        r.problem("site.base_url", f'must be an absolute http(s) URL, got "{base_url}"')
    if not base_url.endswith("/"):
        base_url += "/"
    zone = r.zone(r.get(site_raw, "time_zone", "site", str, "UTC"), "site.time_zone") or ZoneInfo("UTC")
    per_feed = r.get(site_raw, "entries_per_feed", "site", int, 50)
    if per_feed < 1:
        r.problem("site.entries_per_feed", f"must be at least 1, got {per_feed}")
    language = r.get(site_raw, "language", "site", str, "en")
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", language):
        r.problem("site.language", f'must be a language tag such as "en" or "fr-CH", got "{language}"')
    contact = r.get(site_raw, "contact_url", "site", str, "")
    hubs = r.strings(site_raw, "hubs", "site")
    for index, hub in enumerate(hubs):
        if not hub.startswith(("http://", "https://")):
            r.problem(f"site.hubs[{index}]", f'must be an http(s) URL, got "{hub}"')
    authority = r.get(site_raw, "id_authority", "site", str, f"{parts.hostname or 'example.invalid'},2026")
    if not re.fullmatch(r"[A-Za-z0-9.@-]+,\d{4}(-\d{2}(-\d{2})?)?", authority):
        r.problem("site.id_authority", f'must read "host,YYYY" or "host,YYYY-MM-DD" (RFC 4151), got "{authority}"')
    site = SiteConfig(
        title=r.get(site_raw, "title", "site", str, "Feeds", required=True),
        base_url=base_url,
        author=r.get(site_raw, "author", "site", str, ""),
        language=language,
        time_zone=zone,
        output=base / r.get(site_raw, "output", "site", str, "output"),
        state=base / r.get(site_raw, "state", "site", str, "state"),
        entries_per_feed=per_feed,
        contact_url=contact,
        hubs=hubs,
        id_authority=authority,
    )

    categories: list[CategoryConfig] = []
    for index, cat in enumerate(r.get(raw, "categories", "", list, [])):
        where = f"categories[{index}]"
        if not isinstance(cat, dict):
            r.problem(where, "must be a table ([[categories]])")
            continue
        r.unknown(cat, _CATEGORY_KEYS, where)
        slug = r.get(cat, "slug", where, str, "", required=True)
        if slug and not SLUG.match(slug):
            r.problem(f"{where}.slug", f'"{slug}" must be lowercase letters, digits and hyphens')
        if slug == "all":
            r.problem(f"{where}.slug", '"all" is reserved for the feed of every entry')
        if slug and any(c.slug == slug for c in categories):
            r.problem(f"{where}.slug", f'"{slug}" is used by an earlier category')
        categories.append(
            CategoryConfig(
                slug=slug,
                title=r.get(cat, "title", where, str, slug, required=True),
                description=r.get(cat, "description", where, str, ""),
                types=r.strings(cat, "types", where),
                sources=r.strings(cat, "sources", where),
                keywords=r.strings(cat, "keywords", where),
            )
        )

    sources: list[SourceConfig] = []
    raw_sources = r.get(raw, "sources", "", list, [])
    if not raw_sources and "sources" not in [k for k, _ in r.problems]:
        r.problem("sources", "no sources configured: add a [[sources]] table")
    for index, src in enumerate(raw_sources):
        where = f"sources[{index}]"
        if not isinstance(src, dict):
            r.problem(where, "must be a table ([[sources]])")
            continue
        r.unknown(src, _SOURCE_KEYS, where)
        name = r.get(src, "name", where, str, f"source-{index}", required=True)
        if not SLUG.match(name):
            r.problem(f"{where}.name", f'"{name}" must be lowercase letters, digits and hyphens')
        if any(s.name == name for s in sources):
            r.problem(f"{where}.name", f'"{name}" is used by an earlier source')
        adapter = r.get(src, "adapter", where, str, "", required=True)
        if adapter and adapters is not None and adapter not in adapters:
            r.problem(f"{where}.adapter", f'unknown adapter "{adapter}" (known: {", ".join(sorted(adapters))})')
        location = r.get(src, "location", where, str, "", required=True)
        if location and not location.startswith(("http://", "https://")):
            if "://" in location:
                r.problem(
                    f"{where}.location", f'unsupported scheme in "{location}" (use a path, a glob or an http(s) URL)'
                )
            else:
                location = str(base / location)
        src_zone = site.time_zone
        if "time_zone" in src:
            src_zone = r.zone(r.get(src, "time_zone", where, str, "UTC"), f"{where}.time_zone") or site.time_zone
        schedule_text = r.get(src, "schedule", where, str, DEFAULT_SCHEDULE)
        try:
            schedule = parse_schedule(schedule_text)
        except ValueError as exc:
            r.problem(f"{where}.schedule", f'"{schedule_text}": {exc}')
            schedule = parse_schedule(DEFAULT_SCHEDULE)
        mapping = r.get(src, "categories", where, dict, {})
        for label, slug in mapping.items():
            if not isinstance(slug, str) or not SLUG.match(slug) or slug == "all":
                r.problem(
                    f"{where}.categories.{label}",
                    f"must be a category slug (lowercase letters, digits, hyphens), got {slug!r}",
                )
        options = r.get(src, "options", where, dict, {})
        follow = _follow_settings(r, src, where, adapter)
        if adapters is not None and adapter in adapters:
            for key, what in adapters[adapter].check_options(options):
                r.problem(f"{where}.options.{key}", what)
        sources.append(
            SourceConfig(
                name=name,
                adapter=adapter,
                location=location,
                time_zone=src_zone,
                schedule=schedule,
                categories=MappingProxyType(dict(mapping)),
                options=MappingProxyType(dict(options)),
                key=where,
                id_prefix=f"tag:{authority}:{name}:",
                follow=follow[0],
                follow_limit=follow[1],
                follow_refresh=follow[2],
                follow_robots=follow[3],
            )
        )

    known_sources = {s.name for s in sources}
    for index, cat in enumerate(categories):
        for j, name in enumerate(cat.sources):
            if name not in known_sources:
                r.problem(f"categories[{index}].sources[{j}]", f'no source is named "{name}"')

    store = _store(r, r.get(raw, "store", "", dict, {}))

    if r.problems:
        raise ConfigError(r.problems)
    return Config(path=path, site=site, categories=tuple(categories), sources=tuple(sources), store=store)


def _store(r: _Reader, table: Mapping[str, Any]) -> StoreConfig:
    r.unknown(table, {"url"}, "store")
    url = r.get(table, "url", "store", str, "")
    if not url:
        if table.get("url") == "":
            r.problem(
                "store.url", "is empty: give a postgresql:// URL, or drop [store] for the SQLite file in site.state"
            )
        return StoreConfig()
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        # Only the scheme is shown: the rest may hold a password.
        r.problem(
            "store.url",
            f'must be a postgresql:// URL such as "postgresql://feeds@db:5432/feeds", got scheme "{parts.scheme}"',
        )
        return StoreConfig()
    try:
        parts.port  # noqa: B018 -- reading it raises on a port that is no number
    except ValueError:
        r.problem("store.url", "has a port that is not a number from 0 to 65535")
        return StoreConfig()
    if not parts.hostname or not parts.path.strip("/"):
        r.problem("store.url", 'must name a host and a database, as in "postgresql://feeds@db:5432/feeds"')
        return StoreConfig()
    return StoreConfig(url=url)
