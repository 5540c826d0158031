"""The `feeds` command: parse arguments, call the pipeline, map errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from feeds import __version__, pipeline
from feeds.config import Config, load
from feeds.errors import ConfigError, FeedsError

EXIT_OK, EXIT_SOURCE_FAILED, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feeds",
        description="Publish per-category Atom, RSS and JSON Feed files from pages that have no feed.",
    )
    parser.add_argument("--version", action="version", version=f"feeds {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", type=Path, default=Path("config.toml"), metavar="PATH",
                         help="the configuration file (default: ./config.toml)")
        sub.add_argument("-v", "--verbose", action="store_true", help="log every step")
        return sub

    build = command("build", "Fetch every source once and write the feeds whose content changed.")
    build.add_argument("--source", action="append", default=[], metavar="NAME",
                       help="refresh only this source (repeatable); every feed is still brought up to date")
    command("check", "Validate the configuration and read every source, without writing anything.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"feeds: invalid configuration ({len(exc.problems)} problem{'s' * (len(exc.problems) > 1)}):",
              file=sys.stderr)
        for key, what in exc.problems:
            print(f"  {key}: {what}", file=sys.stderr)
        return EXIT_CONFIG
    handler = {"build": _build, "check": _check}[args.command]
    try:
        return handler(config, args)
    except ConfigError as exc:
        print(f"feeds: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FeedsError as exc:
        print(f"feeds: {exc}", file=sys.stderr)
        return EXIT_SOURCE_FAILED


def _build(config: Config, args: argparse.Namespace) -> int:
    unknown = [name for name in args.source if name not in {s.name for s in config.sources}]
    if unknown:
        raise ConfigError([("--source", f'no source is named "{name}"') for name in unknown])
    report = pipeline.build(config, datetime.now(UTC), only=args.source)
    for source in report.sources:
        state = "failed" if source.failed else ("unchanged" if source.unchanged else "read")
        print(f"source {source.name}: {state}, {source.entries} entries")
        if source.redirect:
            print(f"  moved permanently to {source.redirect}: update its location in {config.path}")
        for line in source.error.splitlines():
            print(f"  error: {line}")
    feeds = [f for f in report.files if f.path.endswith((".atom", ".rss", ".json"))]
    for file in feeds:
        state = "written" if file.written else "unchanged"
        print(f"{file.path}: {file.entries} entries, {file.new} new, {file.updated} updated, {state}")
    others = [f.path for f in report.files if f not in feeds and f.written]
    if others:
        print(f"other files written: {len(others)}")
    if not report.files:
        print(f"nothing changed; {config.site.output} left as it was")
    return EXIT_SOURCE_FAILED if report.failed else EXIT_OK


def _check(config: Config, args: argparse.Namespace) -> int:
    reports = pipeline.check(config)
    for source in reports:
        print(f"source {source.name}: {'FAILED' if source.failed else 'ok'}, {source.entries} entries")
        for line in source.error.splitlines():
            print(f"  error: {line}")
    print(f"configuration {config.path}: ok, {len(config.sources)} sources, {len(config.categories)} categories")
    return EXIT_SOURCE_FAILED if any(s.failed for s in reports) else EXIT_OK
