"""Several `feeds run` nodes on one PostgreSQL store in tests: the sources they share, their configs and processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from daemon_helpers import wait_for

ROOT = Path(__file__).resolve().parent.parent


def listing(name: str, items: int) -> str:
    """A listing page of `items` news items, numbered from 1, the newest first."""
    lines = [f"News of {name}", ""]
    for position, number in enumerate(range(items, 0, -1), start=1):
        lines += [
            f"  {position}. News",
            "",
            f"    Item {number} of {name}",
            "",
            f"    {number} January 2022",
            "",
            f"    What happened at {name}, the {number}th time.",
            "",
        ]
    return "\n".join(lines)


class Sources:
    """A loopback HTTP server of listing pages, /<name>.txt, that counts the requests for each."""

    def __init__(self, names: list[str], *, items: int = 2, delay: float = 0.0) -> None:
        self.items = dict.fromkeys(names, items)
        self.delay = dict.fromkeys(names, delay)
        self.requests: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {name: [] for name in names}
        self._lock = threading.Lock()
        sources = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.strip("/").removesuffix(".txt")
                with sources._lock:
                    known = name in sources.items
                    if known:
                        sources.requests[name] += 1
                        sources.times[name].append(time.monotonic())
                        body = listing(name, sources.items[name]).encode()
                        delay = sources.delay[name]
                if not known:
                    self.send_error(404)
                    return
                time.sleep(delay)
                self.send_response(200)
                self.send_header("content-type", "text/plain; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError):  # the node that asked was killed meanwhile
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def add_item(self, name: str) -> None:
        with self._lock:
            self.items[name] += 1

    def count(self, name: str, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for t in self.times[name] if t >= since)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def config_text(*, store: str, sources: Sources, schedules: dict[str, str], out: Path, state: Path) -> str:
    """Every node's config: the same but for its own output/ and state/, as an operator would copy it."""
    text = f"""
[site]
title = "Nodes test"
base_url = "https://feeds.example.org/"
time_zone = "Europe/Zurich"
entries_per_feed = 500
output = "{out}"
state = "{state}"

[store]
url = "{store}"

[[categories]]
slug = "news"
title = "News"
types = ["News"]
"""
    for name, schedule in schedules.items():
        text += (
            f'\n[[sources]]\nname = "{name}"\nadapter = "listing"\n'
            f'location = "{sources.base}{name}.txt"\nschedule = "{schedule}"\n'
        )
    return text


@dataclass
class Node:
    name: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.root / "node.log"

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def out(self) -> Path:
        return self.root / "output"

    def write_config(self, *, store: str, sources: Sources, schedules: dict[str, str]) -> None:
        """Its own directory and config: the cluster's, with its own output/ and state/."""
        self.root.mkdir()
        text = config_text(store=store, sources=sources, schedules=schedules, out=self.out, state=self.root / "state")
        self.config.write_text(text, encoding="utf-8")

    def start(self, heartbeat: float) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "PYTHONUNBUFFERED": "1",
            "FEEDS_HEARTBEAT_SECONDS": str(heartbeat),
        }
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "feeds", "run", "--config", str(self.config), "--port", str(self.port)],
                cwd=self.root,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def started(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log()
        return "event=start" in self.log()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=10)
            raise AssertionError(f"{self.name} did not stop within {timeout:.0f} s of SIGTERM:\n{self.log()}") from None


def wait_started(nodes: list[Node]) -> None:
    for node in nodes:
        wait_for(node.started, timeout=60)


class Proxy:
    """A TCP relay to the PostgreSQL server that the test can take away (connections cut, new ones refused)
    and bring back on the same port: a server restart, or a network gone, as a node sees it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener: socket.socket | None = None
        self._pipes: list[socket.socket] = []
        self._lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port: int = probe.getsockname()[1]
        probe.close()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            pipes, self._pipes = self._pipes, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.shutdown(socket.SHUT_RDWR)
            pipe.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pipes += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._relay, args=(a, b), daemon=True).start()

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
