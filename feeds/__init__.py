"""feeds: per-category Atom, RSS and JSON Feed files from pages that have none."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("feeds")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
