"""Benchmark following a listing's items to their pages: a first pass, an unchanged pass, peak memory.

Run: python bench/follow.py [--items 500] [--delay 0.05] [--dir DIR]

A loopback server holds a listing of `--items` items, each linking to an interview page of its
own, and waits `--delay` seconds before each answer. Goals: the first pass (listing and every page)
<= 1.5 x (items x delay / the per-host concurrency); a second pass with nothing changed <= 5% of the
first, with 0 body bytes of pages. A third pass past `follow_refresh` asks for every page again,
conditionally, and is shown for what it costs (every answer a 304).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from feeds import __version__, pipeline
from feeds.adapters import ADAPTERS
from feeds.config import load
from feeds.fetch import Fetcher, FetchLimits, user_agent

NOW = datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
START = datetime(2020, 1, 1, tzinfo=UTC)


def listing(items: int) -> bytes:
    rows = []
    for n in range(items):
        day = START + timedelta(days=n)
        rows.append(
            f'<li><article><span class="type">Spotlight Interviews with Co-operators</span>'
            f'<h2><a href="/page/{n}.html">Member number {n}, Example Cooperative {n}</a></h2>'
            f'<time datetime="{day:%Y-%m-%d}">{day.day} {day:%B %Y}</time>'
            f"<p>A short talk with member number {n} about the cooperative.</p></article></li>"
        )
    return (
        "<!DOCTYPE html><html><body><main><h1>Interviews</h1><ol>" + "".join(rows) + "</ol></main></body></html>"
    ).encode()


def page(n: int) -> bytes:
    day = START + timedelta(days=n)
    answers = "".join(
        f"<h2>Question {q} for member {n}?</h2><p>{'An answer with a few sentences in it. ' * 6}</p>" for q in range(5)
    )
    return (
        f"<!DOCTYPE html><html><body><nav><a href='/'>Home</a></nav><main>"
        f"<p>Spotlight Interviews with Co-operators</p><h1>Member number {n}, Example Cooperative {n}</h1>"
        f"<p>Member {n} has worked with the cooperative for years.</p>"
        f"<p>Interview | {day.day} {day:%B %Y}</p>{answers}</main></body></html>"
    ).encode()


class Site:
    def __init__(self, items: int, delay: float) -> None:
        self.bodies = {"/listing.html": listing(items), **{f"/page/{n}.html": page(n) for n in range(items)}}
        self.delay = delay
        self.lock = threading.Lock()
        self.page_requests = 0
        self.page_body_bytes = 0

    def reset(self) -> None:
        with self.lock:
            self.page_requests = self.page_body_bytes = 0


def handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm the body would wait for the
        # client's delayed ACK, a delay of the bench's server rather than of the code measured.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(site.delay)
            body = site.bodies.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            fresh = self.headers.get("If-None-Match") == etag
            self.send_response(304 if fresh else 200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", "0" if fresh else str(len(body)))
            self.end_headers()
            if not fresh:
                self.wfile.write(body)
            if self.path.startswith("/page/"):
                with site.lock:
                    site.page_requests += 1
                    site.page_body_bytes += 0 if fresh else len(body)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    site = Site(args.items, args.delay)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(site))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = Path(tempfile.mkdtemp(prefix="feeds-follow-", dir=args.dir))
    (root / "config.toml").write_text(
        f"""
[site]
title = "Follow bench"
base_url = "https://feeds.example.org/"
output = "output"
state = "state"

[[sources]]
name = "interviews"
adapter = "listing"
location = "http://127.0.0.1:{server.server_address[1]}/listing.html"
follow = "auto"
follow_limit = {args.items}
""",
        encoding="utf-8",
    )
    config = load(root / "config.toml", ADAPTERS)
    limits = FetchLimits()
    ideal = args.items * args.delay / limits.per_host

    def timed(now: datetime) -> tuple[float, pipeline.BuildReport]:
        site.reset()
        with Fetcher(user_agent=user_agent(__version__, ""), limits=limits) as fetcher:
            started = time.perf_counter()
            report = pipeline.build(config, now, fetcher=fetcher)
            return time.perf_counter() - started, report

    first, report = timed(NOW)
    followed = report.sources[0].pages
    print(f"first pass:     {first:6.2f} s for {args.items} pages ({dict(followed)}); goal <= {1.5 * ideal:.2f} s")
    print(f"                page bodies {site.page_body_bytes} bytes")
    second, _ = timed(NOW + timedelta(minutes=10))
    second_bytes = site.page_body_bytes
    print(
        f"unchanged pass: {second:6.2f} s = {100 * second / first:.1f}% of the first (goal <= 5%); "
        f"{site.page_requests} page requests, {site.page_body_bytes} page body bytes"
    )
    third, report = timed(NOW + timedelta(days=8))
    print(
        f"refresh pass:   {third:6.2f} s; {site.page_requests} conditional page requests "
        f"({dict(report.sources[0].pages)}), {site.page_body_bytes} page body bytes"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak memory:    {peak / 1024:.0f} MiB (maximum resident set of this process, server included)")
    server.shutdown()
    ok = first <= 1.5 * ideal and second <= 0.05 * first and second_bytes == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
