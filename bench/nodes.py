"""A poll cycle of 1,000 sources on one node: with the SQLite store, then with the store in PostgreSQL.

Run from the repository root:  python bench/nodes.py [--sources 1000] [--runs 3] [--server postgresql://…]

Sources are small listing pages (three items, then one more per generation) served by a threaded
HTTP server in this process on `--hosts` loopback ports (a host each for the fetcher's per-host
limit). A site of every source is built once; then each run moves the server to the next
generation, so every source has one new item, and a `feeds build` process of the checkout this
script lives in fetches, records and publishes them all: one poll cycle. Its wall time and CPU
(user + system of the build, from wait4) are measured; the median of `--runs` is the figure.

The same is done with `[store] url` naming a database made on `--server` for the run (dropped
afterwards). For PostgreSQL the server's CPU is read from /proc (every process named `postgres`),
when this machine runs the server: it includes whatever else the server did meanwhile.

Goal: one node with PostgreSQL takes at most 1.5x the wall time of one node with SQLite.

Two nodes sharing one PostgreSQL store (a cycle split between them, documents written by one node
and mirrored to the other) are not measured yet: the nodes do not coordinate yet. The figure goes in
`two_nodes` below when they do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg

CHECKOUT = Path(__file__).resolve().parent.parent
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
TYPES = ("News", "Publication", "Spotlight Interviews with Co-operators")
BASE_ITEMS = 3
GOAL = 1.5


class Pages:
    """The sources' listing pages at the current generation."""

    def __init__(self) -> None:
        self.generation = 0

    def page(self, n: int) -> bytes:
        lines = [f"Listing {n}", ""]
        for i in reversed(range(BASE_ITEMS + self.generation)):  # newest first, as the site lists them
            lines += [
                f"  {BASE_ITEMS + self.generation - i}. {TYPES[(n + i) % len(TYPES)]}",
                "",
                f"    Listing {n} item {i}: savings groups in region {n % 97}",
                "",
                f"    {1 + (n + i) % 28} {MONTHS[i % len(MONTHS)]} 2026",
                "",
                f"    Summary {i} of listing {n}: what changed for {n % 50 + 2} families.",
                "",
            ]
        return "\n".join(lines).encode()


def serve(pages: Pages, hosts: int) -> tuple[list[int], list[ThreadingHTTPServer]]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                body = pages.page(int(self.path.rsplit("/", 1)[1]))
            except ValueError:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    servers = []
    for _ in range(hosts):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    return [s.server_address[1] for s in servers], servers


def write_site(root: Path, ports: list[int], sources: int, store: str) -> Path:
    categories = "".join(
        f'\n[[categories]]\nslug = "type-{i}"\ntitle = "{t}"\ntypes = ["{t}"]\n' for i, t in enumerate(TYPES)
    )
    entries = "".join(
        f'\n[[sources]]\nname = "s{n:04d}"\nadapter = "listing"\n'
        f'location = "http://127.0.0.1:{ports[n % len(ports)]}/s/{n}"\n'
        for n in range(sources)
    )
    root.mkdir(parents=True)
    path = root / "config.toml"
    path.write_text(
        f'[site]\ntitle = "Bench"\nbase_url = "https://feeds.example.org/"\n{store}{categories}{entries}',
        encoding="utf-8",
    )
    return path


def postgres_cpu() -> float | None:
    """CPU seconds of every postgres process on this machine and of the ones it reaped; None when none is seen."""
    ticks, found = 0, False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)
            if not fields[0].endswith("(postgres"):
                continue
            values = fields[1].split()
            # utime and stime, and cutime and cstime: the postmaster's children (backends) that have ended
            ticks += sum(int(v) for v in values[11:15])
            found = True
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


@dataclass(frozen=True, slots=True)
class Cycle:
    wall: float
    cpu: float
    server_cpu: float | None


def feeds_build(config: Path, env: dict[str, str]) -> Cycle:
    server_before = postgres_cpu()
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "feeds", "build", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    time.sleep(0.5)  # the build's backend ends after it, and is reaped by the postmaster a moment later
    server_after = postgres_cpu()
    stderr = child.stderr.read().decode() if child.stderr else ""
    if child.stderr:
        child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"feeds build failed ({config}):\n{stderr}")
    server = server_after - server_before if server_after is not None and server_before is not None else None
    return Cycle(wall=wall, cpu=usage.ru_utime + usage.ru_stime, server_cpu=server)


def measure(name: str, config: Path, pages: Pages, runs: int, env: dict[str, str]) -> list[Cycle]:
    pages.generation = 0
    first = feeds_build(config, env)
    print(f"  {name}: first build {first.wall:.2f} s wall, {first.cpu:.2f} s CPU", flush=True)
    cycles = []
    for _ in range(runs):
        pages.generation += 1  # every source gains one item
        cycles.append(feeds_build(config, env))
    return cycles


def median(cycles: list[Cycle], field: str) -> float:
    return statistics.median(getattr(c, field) for c in cycles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=20, help="loopback ports the sources are spread over")
    parser.add_argument("--runs", type=int, default=3, help="poll cycles measured per store (median)")
    parser.add_argument("--server", default="postgresql://root@127.0.0.1:5432/postgres", help="a PostgreSQL to use")
    parser.add_argument("--dir", type=Path, help="where the sites are built (default: a temporary directory)")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))}
    pages = Pages()
    ports, servers = serve(pages, args.hosts)
    database = f"feeds_bench_{uuid.uuid4().hex[:12]}"
    url = args.server.rsplit("/", 1)[0] + "/" + database
    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            root = Path(tmp)
            print(
                f"{args.sources} listing sources ({BASE_ITEMS}+ items each) on {len(ports)} loopback ports; "
                f"each cycle: every source gains one item, then `feeds build`; median of {args.runs}",
                flush=True,
            )
            sqlite = measure("SQLite", write_site(root / "sqlite", ports, args.sources, ""), pages, args.runs, env)
            store = f'\n[store]\nurl = "{url}"\n'
            postgresql = measure(
                "PostgreSQL", write_site(root / "postgresql", ports, args.sources, store), pages, args.runs, env
            )
    finally:
        for server in servers:
            server.shutdown()
        with psycopg.connect(args.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    print("\none poll cycle (every source fetched, recorded and published once)")
    for name, cycles in (("one node, SQLite", sqlite), ("one node, PostgreSQL", postgresql)):
        server = [c.server_cpu for c in cycles if c.server_cpu is not None]
        server_text = f", server CPU {statistics.median(server):6.2f} s" if server and cycles is postgresql else ""
        print(
            f"  {name:<22} wall {median(cycles, 'wall'):6.2f} s, CPU {median(cycles, 'cpu'):6.2f} s{server_text}"
            f"  (runs: {', '.join(f'{c.wall:.2f}' for c in cycles)} s)"
        )
    # Two nodes sharing the PostgreSQL store: to be measured once nodes share a cycle's work; not faked here.
    two_nodes: list[Cycle] = []
    if not two_nodes:
        print("  two nodes, PostgreSQL    not measured yet (nodes do not share a cycle's work yet)")
    ratio = median(postgresql, "wall") / median(sqlite, "wall")
    cpu_ratio = median(postgresql, "cpu") / median(sqlite, "cpu")
    print(f"\nPostgreSQL / SQLite, one node: wall {ratio:.2f} (goal <= {GOAL}), CPU of the build {cpu_ratio:.2f}")


if __name__ == "__main__":
    main()
