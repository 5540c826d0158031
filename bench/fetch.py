"""Poll 1,000 sources on a local server: a first cycle, then one where every source answers 304.

Run from the repository root:  python bench/fetch.py [--sources 1000] [--hosts 50] [--latency 0]

A uvicorn app in a subprocess serves one small document per source (RSS 2.0 for even sources, a
plain-text listing for odd ones; five items each), with an ETag and a Last-Modified, answering 304 to
a matching If-None-Match (or, without one, If-Modified-Since). It listens on `--hosts` loopback ports,
each a host of its own for the fetcher's per-host limit, and counts requests, statuses and body bytes
it sends; `--latency` makes it wait that many ms before each answer, as a distant server would.
Each client mode runs in a fresh subprocess with a fresh state directory, so its peak RSS
is its own:

- pipeline: `pipeline.build` as `feeds build` runs it, fetching `pipeline.FETCHING` sources at once
  (at most `per_host` per port) a little ahead of the one it parses;
- one at a time: `pipeline.build` with a loader that fetches each source when its turn comes, for
  comparison (the time spent fetching is measured apart in this mode).

Goal: the all-304 cycle takes <= 20% of the first one, and no body byte is sent in it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx

from feeds import __version__, pipeline
from feeds.adapters import ADAPTERS
from feeds.config import Config, SourceConfig, load
from feeds.fetch import Fetcher, user_agent
from feeds.model import Document
from feeds.store import SourceState

ITEMS = 5
TYPES = ("News", "Publication", "Spotlight Interviews with Co-operators")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
LAST_MODIFIED = formatdate(datetime(2026, 11, 1, tzinfo=UTC).timestamp(), usegmt=True)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
MODES = ("pipeline", "one at a time")


# --- the server (a subprocess) --------------------------------------------------------------------


def document(n: int) -> tuple[bytes, str]:
    """Source n's document and media type: an RSS feed or a listing page, about 1.5 KB."""
    if n % 2 == 0:
        items = "".join(
            f"<item><title>Feed {n} item {i}: a cooperative &amp; its members</title>"
            f"<link>https://site{n}.example.org/items/{i}</link><guid>https://site{n}.example.org/items/{i}</guid>"
            f"<pubDate>{formatdate(datetime(2026, 1 + i, 1 + n % 28, 9, tzinfo=UTC).timestamp(), usegmt=True)}"
            f"</pubDate><category>{TYPES[i % len(TYPES)]}</category>"
            f"<description>Summary {i} of source {n}: members pooled savings.</description></item>"
            for i in range(ITEMS)
        )
        rss = (
            f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Source {n}</title>'
            f"<link>https://site{n}.example.org/</link><description>Bench feed {n}</description>{items}</channel></rss>"
        )
        return rss.encode(), "application/rss+xml"
    lines = [f"Listing {n}", ""]
    for i in range(ITEMS):
        lines += [
            f"  {i + 1}. {TYPES[i % len(TYPES)]}",
            "",
            f"    Listing {n} item {i}: savings groups in region {n % 97}",
            "",
            f"    {1 + n % 28} {MONTHS[i]} 2026",
            "",
            f"    Summary {i} of listing {n}: what changed for {n % 50 + 2} families.",
            "",
        ]
    return "\n".join(lines).encode(), "text/plain; charset=utf-8"


def serve(sources: int, hosts: int, latency: float) -> None:
    """Serve /s/<n> for every source on `hosts` loopback ports; print the ports; /_stats reports counts."""
    import asyncio

    import uvicorn

    docs = {f"/s/{n}": (*document(n), f'"v1-{n}"'.encode()) for n in range(sources)}
    stats = {"requests": 0, "200": 0, "304": 0, "other": 0, "body_bytes": 0}
    lock = threading.Lock()  # uvicorn runs the app on one event loop; the lock only guards /_stats readers

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/_stats":
            with lock:
                body = json.dumps(stats).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        if latency:
            await asyncio.sleep(latency)
        headers = dict(scope["headers"])
        found = docs.get(path)
        if found is None:
            status, body, extra = 404, b"no such source", [(b"content-type", b"text/plain")]
        else:
            content, media_type, etag = found
            extra = [(b"etag", etag), (b"last-modified", LAST_MODIFIED.encode())]
            inm = headers.get(b"if-none-match")
            ims = headers.get(b"if-modified-since")
            fresh = inm == etag if inm is not None else ims == LAST_MODIFIED.encode()
            if fresh:
                status, body = 304, b""
            else:
                status, body = 200, content
                extra.append((b"content-type", media_type.encode()))
        with lock:
            stats["requests"] += 1
            key = str(status) if status in (200, 304) else "other"
            stats[key] += 1
            stats["body_bytes"] += len(body)
        extra.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": body})

    sockets = []
    for _ in range(hosts):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    print(json.dumps([s.getsockname()[1] for s in sockets]), flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", backlog=2048)
    uvicorn.Server(config).run(sockets=sockets)


# --- the client (a subprocess per mode) -------------------------------------------------------------


def write_config(root: Path, ports: list[int], sources: int) -> Path:
    categories = "".join(
        f'\n[[categories]]\nslug = "type-{i}"\ntitle = "{t}"\ntypes = ["{t}"]\n' for i, t in enumerate(TYPES)
    )
    entries = "".join(
        f'\n[[sources]]\nname = "s{n:04d}"\nadapter = "{"feed" if n % 2 == 0 else "listing"}"\n'
        f'location = "http://127.0.0.1:{ports[n % len(ports)]}/s/{n}"\n'
        for n in range(sources)
    )
    path = root / "config.toml"
    path.write_text(
        f'[site]\ntitle = "Bench"\nbase_url = "https://feeds.example.org/"\n{categories}{entries}', encoding="utf-8"
    )
    return path


def server_stats(port: int) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(f"http://127.0.0.1:{port}/_stats", trust_env=False).json()
    return stats


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_loader(fetcher: Fetcher, spent: list[float]) -> pipeline.Loader:
    def load(source: SourceConfig, state: SourceState) -> tuple[list[Document] | None, SourceState]:
        started = time.perf_counter()
        try:
            return pipeline.fetch_documents(source, state, fetcher)
        finally:
            spent[0] += time.perf_counter() - started

    return load


def cycle(config: Config, now: datetime, mode: str, stats_port: int) -> dict[str, Any]:
    before = server_stats(stats_port)
    spent = [0.0]
    started = time.perf_counter()
    with Fetcher(user_agent=user_agent(__version__, "")) as fetcher:
        if mode == "one at a time":
            report = pipeline.build(config, now, load=timed_loader(fetcher, spent))
        else:
            report = pipeline.build(config, now, fetcher=fetcher)
            spent[0] = float("nan")  # overlapped with parsing: not separable
    wall = time.perf_counter() - started
    after = server_stats(stats_port)
    failed = [s.error for s in report.sources if s.failed]
    if failed:
        raise SystemExit(f"{len(failed)} sources failed, first: {failed[0]}")
    delta = {key: after[key] - before[key] for key in after}
    return {
        "wall": wall,
        "fetch": spent[0],
        "peak_mib": peak_mib(),
        "entries": sum(s.entries for s in report.sources),
        "unchanged": sum(1 for s in report.sources if s.unchanged),
        "files_written": len(report.written),
        **delta,
    }


def client(mode: str, ports: list[int], sources: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = load(write_config(Path(tmp), ports, sources), ADAPTERS)
        base = peak_mib()
        first = cycle(config, NOW, mode, ports[0])
        second = cycle(config, NOW + timedelta(minutes=15), mode, ports[0])
    print(json.dumps({"base_mib": base, "first": first, "second": second}), flush=True)


# --- the driver -------------------------------------------------------------------------------------


def run_client(mode: str, ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--client", mode, "--ports", json.dumps(ports)]
    command += ["--sources", str(args.sources)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(mode: str, result: dict[str, Any], sources: int) -> None:
    first, second = result["first"], result["second"]
    print(f"\n{mode}")
    for name, c in (("first cycle", first), ("all-304 cycle", second)):
        print(
            f"  {name:<14} {c['wall']:7.2f} s  (fetching {c['fetch']:6.2f} s)  requests {c['requests']:5d} "
            f"(200: {c['200']}, 304: {c['304']}, other: {c['other']})  body bytes sent {c['body_bytes']:>9,d}  "
            f"peak RSS {c['peak_mib']:.0f} MiB  entries {c['entries']}  files written {c['files_written']}"
        )
    print(
        f"  sources/s, first cycle: {sources / first['wall']:.0f}; "
        f"interpreter and imports: {result['base_mib']:.0f} MiB"
    )
    ratio = second["wall"] / first["wall"]
    print(f"  all-304 / first: {100 * ratio:.1f}%  (goal <= 20%); body bytes in the 304 cycle: {second['body_bytes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=50, help="loopback ports the sources are spread over")
    parser.add_argument("--latency", type=float, default=0, help="ms the server waits before each answer")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.sources, args.hosts, args.latency / 1000)
        return
    if args.client:
        client(args.client, json.loads(args.ports), args.sources)
        return

    serve_args = ["--sources", str(args.sources), "--hosts", str(args.hosts), "--latency", str(args.latency)]
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", *serve_args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        ports: list[int] = json.loads(server.stdout.readline())
        for _ in range(100):  # until uvicorn accepts
            try:
                server_stats(ports[0])
                break
            except httpx.TransportError:
                time.sleep(0.05)
        print(
            f"{args.sources} sources ({ITEMS} items each; half RSS, half plain-text listings) on {len(ports)} "
            f"loopback ports, {args.latency:g} ms server latency; the pipeline fetches {pipeline.FETCHING} at a time"
        )
        results = {mode: run_client(mode, ports, args) for mode in MODES}
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()
    for mode, result in results.items():
        report(mode, result, args.sources)
    one, ours = results["one at a time"], results["pipeline"]
    print(
        f"\npipeline / one at a time: first cycle {ours['first']['wall'] / one['first']['wall']:.2f}, "
        f"all-304 cycle {ours['second']['wall'] / one['second']['wall']:.2f}"
    )


if __name__ == "__main__":
    main()
