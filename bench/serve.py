"""Requests/s of `feeds serve` against nginx and uvicorn + Starlette StaticFiles, for 200s and 304s.

Bench-only requirements (not dependencies of feeds):

    pip install starlette           # the baseline
    apt-get install nginx-light wrk # the reference server and the load generator
    pip install httptools uvloop    # optional; uvicorn uses them when present (uvicorn[standard])

Run from the repository root:  python bench/serve.py [--duration 5] [--rounds 3] [--connections 50]

It writes a ~200 KB Atom feed and its .gz into a temporary directory, starts each server as its own
single-process subprocess on a free loopback port (both Python servers under the same uvicorn settings),
runs wrk against each for identity 200s and for If-None-Match 304s in interleaved rounds, and prints the
best requests/s of each and the ratios. With taskset present, servers are pinned to CPU 0 and wrk to
CPU 1, so the two do not fight for a core.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the nginx runner that tests/test_nginx.py uses

from serve_helpers import Nginx, atom  # noqa: E402

FEED = "feed.atom"


def make_root(base: Path) -> Path:
    root = base / "output"
    root.mkdir()
    entries = 10
    while len(body := atom("bench", entries)) < 200_000:
        entries += 10
    (root / FEED).write_bytes(body)
    (root / (FEED + ".gz")).write_bytes(gzip.compress(body, mtime=0))
    (root / "index.html").write_bytes(b"<!doctype html><title>bench</title>\n")
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child(kind: str, root: str, port: int) -> None:
    """Runs inside the server subprocess."""
    import uvicorn

    if kind == "ours":
        from feeds.serve import StaticFeeds, make_server

        make_server(StaticFeeds(Path(root)), "127.0.0.1", port).run()
    else:
        from starlette.staticfiles import StaticFiles

        # The same uvicorn settings as make_server, so the difference measured is the application.
        uvicorn.run(
            StaticFiles(directory=root),
            host="127.0.0.1",
            port=port,
            http="httptools",
            loop="asyncio",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            log_level="warning",
        )


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else argv


def wait_listening(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(url: str, args: argparse.Namespace, headers: dict[str, str]) -> float:
    argv = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(pinned(1, [*argv, url]), capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx" in out or "Socket errors" in out:
        print(out, file=sys.stderr)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    return float(match.group(1))


def check(name: str, url: str) -> str:
    """The server's ETag for the feed, after checking it answers 200 in full and 304 to that tag."""
    first = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200 and len(first.content) >= 200_000, (name, first.status_code)
    etag = first.headers["etag"]
    again = httpx.get(url, headers={"Accept-Encoding": "identity", "If-None-Match": etag})
    assert again.status_code == 304, (name, again.status_code)
    return etag


@contextlib.contextmanager
def python_server(kind: str, root: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, __file__, "--child", kind, str(root), str(port)]
    process = subprocess.Popen(pinned(0, argv), cwd=REPO)
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}/{FEED}"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def nginx_server(root: Path, base: Path) -> Iterator[str]:
    server = Nginx(root, base / "nginx")
    taskset = shutil.which("taskset")
    with server:
        if taskset and (os.cpu_count() or 1) > 1 and server.process is not None:
            # Pin master and worker (all threads, -a) to the server CPU.
            subprocess.run([taskset, "-a", "-p", "-c", "0", str(server.process.pid)], capture_output=True, check=False)
            children = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True)
            for pid in children.stdout.split():
                subprocess.run([taskset, "-a", "-p", "-c", "0", pid], capture_output=True, check=False)
        yield f"{server.url}/{FEED}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (one core is left to the server)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "ROOT", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, root, port = args.child
        child(kind, root, int(port))
        return
    for tool in ("wrk", "/usr/sbin/nginx"):
        if not shutil.which(tool) and not os.path.exists(tool):
            sys.exit(f"{tool} is missing: apt-get install nginx-light wrk")
    names = ("feeds.serve", "nginx", "uvicorn+StaticFiles")
    best = {name: [0.0, 0.0] for name in names}
    with tempfile.TemporaryDirectory(prefix="feeds-bench-") as tmp, contextlib.ExitStack() as stack:
        base = Path(tmp)
        root = make_root(base)
        print(
            f"{FEED}: {(root / FEED).stat().st_size} bytes; wrk -t{args.threads} -c{args.connections} "
            f"-d{args.duration}s; {args.rounds} interleaved rounds, best kept",
            flush=True,
        )
        urls = {
            "feeds.serve": stack.enter_context(python_server("ours", root)),
            "nginx": stack.enter_context(nginx_server(root, base)),
            "uvicorn+StaticFiles": stack.enter_context(python_server("starlette", root)),
        }
        etags = {name: check(name, url) for name, url in urls.items()}
        # Interleaved and best-of: other work on a shared machine then hurts no server more than another.
        for round_ in range(1, args.rounds + 1):
            for name, url in urls.items():
                full = wrk(url, args, {"Accept-Encoding": "identity"})
                not_modified = wrk(url, args, {"Accept-Encoding": "identity", "If-None-Match": etags[name]})
                print(f"  round {round_} {name:<20} 200: {full:>9.0f}/s   304: {not_modified:>9.0f}/s", flush=True)
                best[name] = [max(best[name][0], full), max(best[name][1], not_modified)]
    print()
    print(f"{'server':<22}{'200 req/s':>12}{'304 req/s':>12}")
    for name in names:
        print(f"{name:<22}{best[name][0]:>12.0f}{best[name][1]:>12.0f}")
    ours, starlette, nginx = best["feeds.serve"], best["uvicorn+StaticFiles"], best["nginx"]
    print(f"{'ours / starlette':<22}{ours[0] / starlette[0]:>12.2f}{ours[1] / starlette[1]:>12.2f}")
    print(f"{'ours / nginx':<22}{ours[0] / nginx[0]:>12.2f}{ours[1] / nginx[1]:>12.2f}")


if __name__ == "__main__":
    main()
