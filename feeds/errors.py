"""The exception hierarchy: one root, each error naming where it happened."""

from __future__ import annotations


class FeedsError(Exception):
    """Root of every error `feeds` raises on purpose; its text reads `where: what`."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


class ConfigError(FeedsError):
    """The configuration is invalid; `problems` holds every problem found, not just the first."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        if not problems:
            raise ValueError("ConfigError needs at least one problem")
        self.problems = problems
        key, what = problems[0]
        super().__init__(key, what)

    def __str__(self) -> str:
        return "\n".join(f"{key}: {what}" for key, what in self.problems)


class SourceError(FeedsError):
    """A source could not be fetched or parsed; `where` is the source name (and line, if known)."""


class SourceWarning(SourceError):
    """A document was read, but not all of it: the entries already yielded stand, and the source does not fail.

    An adapter raises it after its last entry; `what` names what was left unread (line numbers) or
    what was read on a guess (an encoding declared wrongly), so nothing is dropped in silence.
    """


class RenderError(FeedsError):
    """A feed could not be rendered; `where` is the feed file name."""


class PublishError(FeedsError):
    """A file in the output directory could not be written; `where` is its path."""


class StateInUse(FeedsError):
    """Another `feeds run` or `feeds build` holds the state directory's lock; `where` is the directory."""


class StoreError(FeedsError):
    """The state database cannot be opened, reached or written, or is from a newer release."""
