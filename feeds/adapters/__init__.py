"""The adapter protocol and the registry that maps a config's `adapter = "…"` to a parser."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from feeds.config import SourceConfig
from feeds.model import Document, Entry


class Adapter(Protocol):
    """Turns one fetched document into entries. `parse` is pure: no files, no network, no clock."""

    def parse(self, doc: Document, source: SourceConfig) -> Iterator[Entry]:
        """Yield the document's entries; raise SourceError for what cannot be read.

        An adapter that can read some items but not others yields the good ones and then
        raises one SourceError naming every bad line, so nothing readable is lost.
        """
        ...

    def check_options(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with `[sources.options]` as (option key, message) pairs; empty when fine."""
        ...


def _registry() -> dict[str, Adapter]:
    from feeds.adapters.feed import ExistingFeed
    from feeds.adapters.html import CssSelectors
    from feeds.adapters.interview import Interview
    from feeds.adapters.listing import Listing

    return {"listing": Listing(), "interview": Interview(), "html": CssSelectors(), "feed": ExistingFeed()}


ADAPTERS: dict[str, Adapter] = _registry()
