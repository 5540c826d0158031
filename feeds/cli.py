"""The `feeds` command: parse arguments, call the pipeline, map errors to exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from feeds import __version__, documents, pipeline
from feeds.adapters import ADAPTERS
from feeds.config import Config, load
from feeds.errors import ConfigError, FeedsError, StateInUse
from feeds.lock import StateLock
from feeds.model import FEED_SUFFIXES

EXIT_OK, EXIT_SOURCE_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_IN_USE = 2  # like an unusable config: nothing was done
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a command that SIGPIPE ended


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feeds",
        description="Publish per-category Atom, RSS and JSON Feed files from pages that have no feed.",
    )
    parser.add_argument("--version", action="version", version=f"feeds {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--config",
            type=Path,
            default=Path("config.toml"),
            metavar="PATH",
            help="the configuration file (default: ./config.toml)",
        )
        sub.add_argument("-v", "--verbose", action="store_true", help="log every step")
        return sub

    build = command("build", "Fetch every source once and write the feeds whose content changed.")
    build.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="refresh only this source (repeatable); every feed is still brought up to date",
    )
    build.add_argument(
        "--no-wait",
        action="store_true",
        help="exit with status 2 at once when a `feeds run` or another build holds the state directory, "
        "instead of waiting for it to finish",
    )
    command("check", "Validate the configuration and read every source, without writing anything.")
    for name, text in (
        (
            "run",
            "Build once, then keep every feed fresh on its sources' schedules and serve "
            "output/ over HTTP until stopped (SIGTERM/SIGINT stop, SIGHUP rereads the config).",
        ),
        ("serve", "Serve output/ over HTTP as it is, without fetching anything."),
    ):
        sub = command(name, text)
        sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
        sub.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    command("status", "Show each source's last fetch, result and next run, and each feed's last change.")
    validate = command(
        "validate",
        "Check the produced files: well-formed, required elements, absolute links, "
        "unique ids matching the store, archive chains intact.",
    )
    validate.add_argument(
        "path",
        nargs="?",
        type=Path,
        metavar="PATH",
        help="directory to check (default: the configured output directory)",
    )
    command("reload", "Validate the configuration, then ask the running `feeds run` to reread it.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        status = _main(argv)
        sys.stdout.flush()  # here, where a reader gone away can be told apart, not at exit
    except BrokenPipeError:
        # `feeds build | head`: the reader has what it wanted. Python's advice (signal module, "Note
        # on SIGPIPE"): point stdout at devnull so the flush at exit does not fail again, and stop
        # with the status of a command ended by SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return status


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    quiet = logging.INFO if args.command in ("run", "serve") else logging.ERROR
    logging.basicConfig(
        level=logging.INFO if args.verbose else quiet, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        config = load(args.config, ADAPTERS)
    except ConfigError as exc:
        print(
            f"feeds: invalid configuration ({len(exc.problems)} problem{'s' * (len(exc.problems) > 1)}):",
            file=sys.stderr,
        )
        for key, what in exc.problems:
            print(f"  {key}: {what}", file=sys.stderr)
        return EXIT_CONFIG
    handler = {
        "build": _build,
        "check": _check,
        "run": _run,
        "serve": _serve,
        "status": _status,
        "validate": _validate,
        "reload": _reload,
    }[args.command]
    try:
        return handler(config, args)
    except StateInUse as exc:
        print(f"feeds: {exc}; {_IN_USE_ADVICE[args.command]}", file=sys.stderr)
        return EXIT_IN_USE
    except ConfigError as exc:
        print(f"feeds: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FeedsError as exc:
        print(f"feeds: {exc}", file=sys.stderr)
        return EXIT_SOURCE_FAILED


_IN_USE_ADVICE = {
    "run": "one process writes a state directory: stop that one first, or change the config and `feeds reload`",
    "build": "run the build again once it has finished, or without --no-wait to wait for it",
}


def _writer_lock(config: Config, command: str, *, wait: bool) -> StateLock:
    """The state directory's lock for this process, before it opens the store or writes anything."""
    try:
        return StateLock(config.site.state, command)
    except StateInUse as exc:
        if not wait:
            raise
        print(f"feeds: {exc}; waiting for it to finish (--no-wait exits instead)", file=sys.stderr, flush=True)
    return StateLock(config.site.state, command, wait=True)


def _build(config: Config, args: argparse.Namespace) -> int:
    unknown = [name for name in args.source if name not in {s.name for s in config.sources}]
    if unknown:
        raise ConfigError([("--source", f'no source is named "{name}"') for name in unknown])
    with _writer_lock(config, "build", wait=not args.no_wait):
        report = pipeline.build(config, datetime.now(UTC), only=args.source)
    for source in report.sources:
        state = "failed" if source.failed else ("unchanged" if source.unchanged else "read")
        print(f"source {source.name}: {state}, {source.entries} entries")
        if source.redirect:
            print(f"  moved permanently to {source.redirect}: update its location in {config.path}")
        for line in source.error.splitlines():
            print(f"  error: {line}")
        for line in source.warnings.splitlines():
            print(f"  warning: {line}")
    is_feed = [f.path.endswith(FEED_SUFFIXES) for f in report.files]
    for file, feed in zip(report.files, is_feed, strict=True):
        if feed:
            state = "written" if file.written else "unchanged"
            print(f"{file.path}: {file.entries} entries, {file.new} new, {file.updated} updated, {state}")
    others = [f.path for f, feed in zip(report.files, is_feed, strict=True) if not feed and f.written]
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
        for line in source.warnings.splitlines():
            print(f"  warning: {line}")
    print(f"configuration {config.path}: ok, {len(config.sources)} sources, {len(config.categories)} categories")
    return EXIT_SOURCE_FAILED if any(s.failed for s in reports) else EXIT_OK


def _run(config: Config, args: argparse.Namespace) -> int:
    from feeds.schedule import Daemon

    # Blocked before the lock is taken (which lets `feeds reload` find this process) and before the daemon
    # starts a thread: a SIGHUP this early waits for the daemon to take it as a reload (see run_forever).
    signal.pthread_sigmask(signal.SIG_BLOCK, Daemon.SIGNALS)
    with _writer_lock(config, "run", wait=False):
        daemon = Daemon(config.path, host=args.host, port=args.port)
        print(f"feeds {__version__}: serving {config.site.output} on http://{args.host}:{args.port}/", flush=True)
        daemon.run_forever()
    return EXIT_OK


def _serve(config: Config, args: argparse.Namespace) -> int:
    from feeds.serve import StaticFeeds, run_server

    app = StaticFeeds(
        config.site.output, max_age=documents.poll_seconds(config), hubs=config.site.hubs, base_url=config.site.base_url
    )
    print(f"feeds {__version__}: serving {config.site.output} on http://{args.host}:{args.port}/", flush=True)
    run_server(app, args.host, args.port)
    return EXIT_OK


def _status(config: Config, args: argparse.Namespace) -> int:
    from feeds.schedule import feed_rows, source_rows

    with pipeline.Site(config) as site:
        sources = source_rows(config, site)
        feeds = feed_rows(site, {})
    print(f"{'source':<24} {'last fetch (UTC)':<20} {'next run (UTC)':<20} {'entries':>7}  result")
    for name, last, result, nxt, count, error, warning in sources:
        print(f"{name:<24} {last:<20} {nxt:<20} {count:>7}  {result}")
        for line in error.splitlines():
            print(f"    {line}")
        for line in warning.splitlines():
            print(f"    warning: {line}")
    print(f"\n{'feed':<40} last change (UTC)")
    for name, _count, changed in feeds:
        print(f"{name:<40} {changed}")
    if config.store.url:
        _status_nodes(config)
    return EXIT_SOURCE_FAILED if any(error for *_, error, _warning in sources) else EXIT_OK


def _status_nodes(config: Config) -> None:
    """The nodes sharing the store, the poll jobs and which node polled each source."""
    from feeds.cluster import read_status

    status = read_status(config.store.url, datetime.now(UTC))
    print(f"\n{'node':<32} {'last heartbeat (UTC)':<26} {'state':<7} url")
    for node in status.nodes:
        print(f"{node.name:<32} {node.heartbeat:<26} {'live' if node.live else 'silent':<7} {node.url}")
    print("\njobs: " + ", ".join(f"{name} {count}" for name, count in sorted(status.jobs.items())))
    print(f"\n{'source':<24} {'last poll (UTC)':<26} node")
    for source in config.sources:
        polled, by = status.polls.get(source.name, ("-", "-"))
        print(f"{source.name:<24} {polled:<26} {by}")


def _reload(config: Config, args: argparse.Namespace) -> int:
    from feeds.schedule import send_reload

    pid = send_reload(config)
    print(f"asked the daemon (pid {pid}) to reread {config.path}")
    return EXIT_OK


def _validate(config: Config, args: argparse.Namespace) -> int:
    from feeds.validate import validate_output

    root: Path = args.path or config.site.output
    known: set[str] | None = None
    if args.path is None and (config.store.url or (config.site.state / pipeline.DB_NAME).exists()):
        with pipeline.Site(config) as site:
            known = site.entry_ids()
    problems = validate_output(root, known_ids=known, base_url=config.site.base_url)
    for problem in problems:
        print(problem)
    files = sum(1 for p in root.rglob("*") if p.suffix in (*FEED_SUFFIXES, ".opml", ".html"))
    print(f"{root}: {files} files checked, {len(problems)} problem{'s' * (len(problems) != 1)}")
    return EXIT_SOURCE_FAILED if problems else EXIT_OK
