"""An atheris harness over one adapter: fuzz bytes become a Document; nothing but SourceError may escape.

Run by tests/test_fuzz.py as `python tests/fuzz_adapters.py ADAPTER [libFuzzer flags]`; not collected by pytest.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["feeds"]):
    from feeds.adapters import ADAPTERS
    from feeds.config import SourceConfig, parse
    from feeds.errors import SourceError
    from feeds.model import Document

MEDIA_TYPES = ["text/plain", "text/html", "application/xml", "application/xhtml+xml", "application/rss+xml"]
CHARSETS = [None, "utf-8", "windows-1252", "utf-16", "utf-16-be", "utf-32-le", "utf-32-be", "iso-8859-1"]
URLS = [
    "https://www.example.org/news/page.htm",
    "https://www.example.org/a b/ü[1].htm",
    "file:///data/page.txt",
    "http://[::1",
    "",
]
OPTIONS: dict[str, dict[str, Any]] = {
    "listing": {},
    "interview": {},
    "html": {"item": "article, li, .post", "date": "time, .d", "summary": "p", "content": "div, .c", "category": ".t"},
    "feed": {},
}


def source_for(adapter: str) -> SourceConfig:
    raw = {
        "site": {"title": "Fuzz", "base_url": "https://feeds.example.org/"},
        "sources": [{"name": "fuzz", "adapter": adapter, "location": "page.txt", "options": OPTIONS[adapter]}],
    }
    return parse(raw, Path("/nonexistent/config.toml"), ADAPTERS).sources[0]


def document(data: bytes) -> Document:
    provider = atheris.FuzzedDataProvider(data)
    media_type = provider.PickValueInList(MEDIA_TYPES)
    charset = provider.PickValueInList(CHARSETS)
    url = provider.PickValueInList(URLS)
    return Document(
        content=provider.ConsumeBytes(provider.remaining_bytes()), url=url, media_type=media_type, charset=charset
    )


def one_input(adapter_name: str) -> Any:
    adapter = ADAPTERS[adapter_name]
    source = source_for(adapter_name)

    def test_one_input(data: bytes) -> None:
        try:
            for _entry in adapter.parse(document(data), source):
                pass
        except SourceError:
            pass

    return test_one_input


def main() -> None:
    warnings.simplefilter("ignore")  # a warning is not a crash; exceptions are what this hunts
    adapter = sys.argv.pop(1)
    atheris.Setup(sys.argv, one_input(adapter))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
