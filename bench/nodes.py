"""A poll cycle of 1,000 sources on one node (SQLite store, then PostgreSQL), then on two nodes sharing PostgreSQL.

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

Then two `feeds run` nodes of the checkout (loopback ports, each its own `site.output` and
`site.state`) share a third database. Every source's schedule is the same cron, every `--period`
minutes, so at each firing every source is due at once: the nodes claim each source's slot (one of
them wins), their workers poll, and publish jobs publish what the polls recorded; each node's output/
follows the store.
The server moves to the next generation a moment before a firing; the cycle runs from the firing
until the store's `polls` shows every source polled since it, nothing recorded is left to publish,
and both nodes' output/ hold every document the cycle changed, byte for byte. Its wall time is
measured, and the CPU each node used (user + system, from /proc/<pid>/stat) and the server's (which
includes this script's look at the store every 0.1 s). A cycle longer than the period overlaps the
next firing; the script says so.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


def write_site(root: Path, ports: list[int], sources: int, store: str, schedule: str = "") -> Path:
    categories = "".join(
        f'\n[[categories]]\nslug = "type-{i}"\ntitle = "{t}"\ntypes = ["{t}"]\n' for i, t in enumerate(TYPES)
    )
    entries = "".join(
        f'\n[[sources]]\nname = "s{n:04d}"\nadapter = "listing"\n'
        f'location = "http://127.0.0.1:{ports[n % len(ports)]}/s/{n}"\n{schedule}'
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


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process, every thread of it."""
    with open(f"/proc/{pid}/stat") as stat:
        values = stat.read().rsplit(")", 1)[1].split()
    return (int(values[11]) + int(values[12])) / os.sysconf("SC_CLK_TCK")


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


@dataclass(frozen=True, slots=True)
class SharedCycle:
    wall: float
    node_cpu: tuple[float, ...]
    server_cpu: float | None
    polls: dict[str, int]  # node: sources it polled in the cycle
    late: bool  # outlasted the period: the next firing came before it ended


class Nodes:
    """`feeds run` processes of this checkout on one site and one PostgreSQL store."""

    def __init__(self, root: Path, ports: list[int], sources: int, url: str, period: int, env: dict[str, str]) -> None:
        self.url, self.sources, self.period = url, sources, period
        self.roots = [root / name for name in ("a", "b")]
        self.ports = [free_port() for _ in self.roots]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = datetime.now(UTC)
        schedule = f'schedule = "*/{period} * * * *"\n'
        self.configs = []
        for node in self.roots:
            store = f'output = "{node / "output"}"\nstate = "{node / "state"}"\n\n[store]\nurl = "{url}"\n'
            self.configs.append(write_site(node, ports, sources, store, schedule))
        self.env = env

    def start(self) -> None:
        # Just after a firing: the nodes start with a full period before the first one they see.
        time.sleep(max(0.0, self.next_firing().timestamp() - time.time() + 1.0))
        for root, config, port in zip(self.roots, self.configs, self.ports, strict=True):
            with (root / "node.log").open("wb") as log_file:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "feeds", "run", "--config", str(config), "--port", str(port)],
                        cwd=root,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        env={**self.env, "PYTHONUNBUFFERED": "1"},
                    )
                )
        self.started = datetime.now(UTC)
        deadline = time.monotonic() + 120
        while not all("event=start" in self.log(i) for i in range(len(self.roots))):
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    raise SystemExit(f"feeds run (node {i}) ended with {proc.returncode}:\n{self.log(i)[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit("the nodes did not start within 120 s")
            time.sleep(0.2)

    def log(self, i: int) -> str:
        return (self.roots[i] / "node.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def next_firing(self) -> datetime:
        """The next time the sources' cron fires, a few seconds off at least, so the firing is not missed."""
        now = datetime.now(UTC) + timedelta(seconds=3)
        minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while minute.minute % self.period:
            minute += timedelta(minutes=1)
        return minute

    def cycle(self, pages: Pages) -> SharedCycle:
        with psycopg.connect(self.url, autocommit=True) as conn:
            # A cycle that outlasted its period met the next firing: that one's polls end before this one starts.
            while (last := self.next_firing() - timedelta(minutes=self.period)) > self.started and (
                self.polled(conn, last) < self.sources
                or conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')").fetchone()
                != (0,)
            ):
                time.sleep(1.0)
            seq = conn.execute("SELECT coalesce(max(seq), 0) FROM documents").fetchone()[0]  # type: ignore[index]
        firing = self.next_firing()
        time.sleep(max(0.0, firing.timestamp() - time.time() - 1.0))
        pages.generation += 1  # every source gains one item, a moment before they are all due
        node_before = [process_cpu(p.pid) for p in self.procs]
        server_before = postgres_cpu()
        time.sleep(max(0.0, firing.timestamp() - time.time()))
        started = time.perf_counter()
        since = firing.isoformat(timespec="seconds")
        with psycopg.connect(self.url, autocommit=True) as conn:
            while True:
                for i, proc in enumerate(self.procs):
                    if proc.poll() is not None:
                        raise SystemExit(f"feeds run (node {i}) ended:\n{self.log(i)[-3000:]}")
                if self.polled(conn, firing) >= self.sources and self.published(conn):
                    break
                if time.perf_counter() - started > self.period * 60 * 4:
                    raise SystemExit(f"the cycle did not end within {self.period * 4} minutes")
                time.sleep(0.1)
            # Every poll is noted after it recorded, and nothing recorded is left to publish: what the cycle
            # changed is all in the store now.
            changed = conn.execute("SELECT path, body FROM documents WHERE seq > %s", (seq,)).fetchall()
            split = dict(
                conn.execute("SELECT node, count(*) FROM polls WHERE polled >= %s GROUP BY node", (since,)).fetchall()
            )
        while not all(self.mirrored(root / "output", changed) for root in self.roots):
            time.sleep(0.05)
        wall = time.perf_counter() - started
        node_after = [process_cpu(p.pid) for p in self.procs]
        time.sleep(0.5)  # backends of the check above end, and are reaped by the postmaster a moment later
        server_after = postgres_cpu()
        server = server_after - server_before if server_after is not None and server_before is not None else None
        return SharedCycle(
            wall=wall,
            node_cpu=tuple(after - before for before, after in zip(node_before, node_after, strict=True)),
            server_cpu=server,
            polls={str(node): int(count) for node, count in split.items()},
            late=wall >= self.period * 60,
        )

    @staticmethod
    def published(conn: psycopg.Connection[tuple[object, ...]]) -> bool:
        """Whether every recorded item is published and every due document written."""
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM dirty) OR EXISTS (SELECT 1 FROM pending)").fetchone()
        return row == (False,)

    @staticmethod
    def polled(conn: psycopg.Connection[tuple[object, ...]], since: datetime) -> int:
        """How many sources were last polled at `since` or later."""
        row = conn.execute("SELECT count(*) FROM polls WHERE polled >= %s", (since.isoformat(timespec="seconds"),))
        return int(row.fetchone()[0])  # type: ignore[index,call-overload]

    @staticmethod
    def mirrored(output: Path, changed: list[tuple[str, bytes | None]]) -> bool:
        for path, body in changed:
            try:
                if (output / path).read_bytes() != body:
                    return False
            except FileNotFoundError:
                if body is not None:
                    return False
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure_nodes(
    root: Path, ports: list[int], pages: Pages, args: argparse.Namespace, url: str, env: dict[str, str]
) -> list[SharedCycle]:
    nodes = Nodes(root, ports, args.sources, url, args.period, env)
    pages.generation = 0
    first = feeds_build(nodes.configs[0], env)  # the site as the nodes find it: built, every source just polled
    print(
        f"  two nodes: first build {first.wall:.2f} s wall, {first.cpu:.2f} s CPU (node a's `feeds build`)", flush=True
    )
    cycles = []
    try:
        nodes.start()
        for _ in range(args.runs):
            cycles.append(nodes.cycle(pages))
            c = cycles[-1]
            cpu = " + ".join(f"{t:.2f}" for t in c.node_cpu)
            server = f", server {c.server_cpu:.2f} s" if c.server_cpu is not None else ""
            print(f"  two nodes: cycle {c.wall:.2f} s wall, CPU of the nodes {cpu} s{server}", flush=True)
    finally:
        nodes.stop()
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
    parser.add_argument("--period", type=int, default=5, help="minutes between the two nodes' cycles (their cron)")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))}
    pages = Pages()
    ports, servers = serve(pages, args.hosts)
    database = f"feeds_bench_{uuid.uuid4().hex[:12]}"
    url = args.server.rsplit("/", 1)[0] + "/" + database
    shared = f"{database}_nodes"
    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
        conn.execute(f'CREATE DATABASE "{shared}"')
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
            shared_url = args.server.rsplit("/", 1)[0] + "/" + shared
            two_nodes = measure_nodes(root / "nodes", ports, pages, args, shared_url, env)
    finally:
        for server in servers:
            server.shutdown()
        with psycopg.connect(args.server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{shared}" WITH (FORCE)')

    print("\none poll cycle (every source fetched, recorded and published once)")
    for name, cycles in (("one node, SQLite", sqlite), ("one node, PostgreSQL", postgresql)):
        server = [c.server_cpu for c in cycles if c.server_cpu is not None]
        server_text = f", server CPU {statistics.median(server):6.2f} s" if server and cycles is postgresql else ""
        print(
            f"  {name:<22} wall {median(cycles, 'wall'):6.2f} s, CPU {median(cycles, 'cpu'):6.2f} s{server_text}"
            f"  (runs: {', '.join(f'{c.wall:.2f}' for c in cycles)} s)"
        )
    walls = [c.wall for c in two_nodes]
    node_cpu = [statistics.median(c.node_cpu[i] for c in two_nodes) for i in range(2)]
    shared_server = [c.server_cpu for c in two_nodes if c.server_cpu is not None]
    server_text = f", server CPU {statistics.median(shared_server):6.2f} s" if shared_server else ""
    print(
        f"  {'two nodes, PostgreSQL':<22} wall {statistics.median(walls):6.2f} s, CPU {sum(node_cpu):6.2f} s "
        f"(a {node_cpu[0]:.2f} + b {node_cpu[1]:.2f}){server_text}  (runs: {', '.join(f'{w:.2f}' for w in walls)} s)"
    )
    splits = "; ".join(" + ".join(str(n) for _, n in sorted(c.polls.items())) for c in two_nodes)
    print(f"  {'':<22} sources polled by a + b: {splits}")
    if any(c.late for c in two_nodes):
        print(f"  a two-node cycle outlasted the {args.period}-minute period and met the next firing: raise --period")
    ratio = median(postgresql, "wall") / median(sqlite, "wall")
    cpu_ratio = median(postgresql, "cpu") / median(sqlite, "cpu")
    print(f"\nPostgreSQL / SQLite, one node: wall {ratio:.2f} (goal <= {GOAL}), CPU of the build {cpu_ratio:.2f}")


if __name__ == "__main__":
    main()
