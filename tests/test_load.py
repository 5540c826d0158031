"""`feeds serve` under load: a thousand wrk connections, slow and half-open clients, a traversal corpus."""

from __future__ import annotations

import os
import re
import resource
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from serve_helpers import SECRET, TRAVERSALS, free_port, make_site

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
]

LOAD_SECONDS = int(os.environ.get("FEEDS_LOAD_SECONDS", "30"))
CONNECTIONS = 1000
HALF_OPEN = 500
RSS_LIMIT_KB = 300 * 1024


def _raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard one: a thousand connections need a thousand descriptors each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def rss_kb(pid: int) -> int:
    """The resident set of a process, from /proc (psutil is not a dependency)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    root: Path
    secret: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def rss(self) -> int:
        assert self.proc.poll() is None, "the server died"
        return rss_kb(self.proc.pid)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("load")
    site = make_site(base)
    (base / "sources.txt").write_text("News\n", encoding="utf-8")
    (base / "config.toml").write_text(
        '[site]\ntitle = "Load"\nbase_url = "http://127.0.0.1/"\n\n'
        '[[sources]]\nname = "news"\nadapter = "listing"\nlocation = "sources.txt"\n',
        encoding="utf-8",
    )
    port = free_port()
    _raise_nofile()
    log = (base / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "feeds", "serve", "--config", str(base / "config.toml"), "--port", str(port)],
        cwd=base,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_raise_nofile,
    )
    srv = Server(proc=proc, port=port, root=site.root, secret=base / "outside" / "secret.txt")
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, (base / "serve.log").read_text()
        try:
            if httpx.get(srv.base + "news.atom", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "feeds serve did not come up"
        time.sleep(0.1)
    yield srv
    proc.terminate()
    try:
        assert proc.wait(timeout=20) == 0  # a graceful stop, not death by the signal
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    latency_avg: str
    latency_p99: str
    latency_max: str
    socket_errors: dict[str, int]
    non_2xx_3xx: int


def run_wrk(url: str, seconds: int, connections: int = CONNECTIONS) -> WrkResult:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        preexec_fn=_raise_nofile,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    print(text)
    requests = re.search(r"(\d+) requests in", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    avg = re.search(r"^\s+Latency\s+(\S+)\s+\S+\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    assert requests and rps and avg and p99, text
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    if found := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors = dict(zip(errors, map(int, found.groups()), strict=True))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(requests.group(1)),
        rps=float(rps.group(1)),
        latency_avg=avg.group(1),
        latency_p99=p99.group(1),
        latency_max=avg.group(2),
        socket_errors=errors,
        non_2xx_3xx=int(bad.group(1)) if bad else 0,
    )


class Prober:
    """Another client during the load: one GET at a time with a short timeout, timing each answer."""

    def __init__(self, url: str, pid: int) -> None:
        self.url = url
        self.pid = pid
        self.results: list[tuple[int | str, float]] = []
        self.rss: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            for _ in range(10_000):  # bounded; stop() ends it long before
                if self._stop.wait(0.5):
                    return
                started = time.monotonic()
                try:
                    status: int | str = client.get(self.url, headers={"Connection": "close"}).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.results.append((status, time.monotonic() - started))
                self.rss.append(rss_kb(self.pid))

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_a_thousand_connections_get_answers_and_memory_stays_flat(server: Server) -> None:
    feed = server.base + "news.atom"
    before = server.rss()
    with Prober(feed, server.proc.pid) as probe:
        result = run_wrk(feed, LOAD_SECONDS)
    after = server.rss()
    time.sleep(2)
    settled = server.rss()
    # A second round must not add to what the first left behind: no per-connection leak.
    again = run_wrk(feed, max(5, LOAD_SECONDS // 3))
    time.sleep(2)
    final = server.rss()
    latencies = [seconds for _, seconds in probe.results]
    peak = max([*probe.rss, after])
    print(
        f"\nload: {result.requests} requests, {result.rps:.0f} req/s, latency avg {result.latency_avg} "
        f"p99 {result.latency_p99} max {result.latency_max}, socket errors {result.socket_errors}, "
        f"non-2xx/3xx {result.non_2xx_3xx}\n"
        f"second round: {again.rps:.0f} req/s, socket errors {again.socket_errors}\n"
        f"probe: {len(latencies)} requests, max {max(latencies, default=0):.3f} s\n"
        f"server RSS: before {before / 1024:.1f} MB, peak {peak / 1024:.1f} MB, after {after / 1024:.1f} MB, "
        f"settled {settled / 1024:.1f} MB, after a second round {final / 1024:.1f} MB"
    )
    assert result.requests > 0
    assert result.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert result.non_2xx_3xx == 0
    assert again.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    assert again.non_2xx_3xx == 0
    assert probe.results, "the other client never got a turn"
    assert all(status == 200 for status, _ in probe.results), probe.results
    assert max(latencies) < 3.0, f"the other client waited {max(latencies):.2f} s"
    assert peak < RSS_LIMIT_KB
    assert final < settled + 20 * 1024, "memory grew with a second round of the same load"


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed (or answered and closed) this connection, without blocking."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        while chunk := sock.recv(65536):
            if len(chunk) < 65536:
                readable, _, _ = select.select([sock], [], [], 0)
                if not readable:
                    return False  # it answered something and still holds the connection open
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except BlockingIOError:
        return False


def test_slow_and_silent_clients_neither_block_others_nor_stay_forever(server: Server) -> None:
    _raise_nofile()
    baseline = server.rss()
    slow: list[socket.socket] = []
    silent: list[socket.socket] = []
    try:
        for i in range(HALF_OPEN):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            if i % 2:
                sock.sendall(b"GET /news.atom HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                slow.append(sock)
            else:
                silent.append(sock)
            sock.setblocking(False)
        held = server.rss()

        # While all of them are held, a normal client is served promptly, again and again.
        answers: list[float] = []
        with httpx.Client(timeout=5) as client:
            for _ in range(10):
                started = time.monotonic()
                response = client.get(server.base + "news.atom")
                answers.append(time.monotonic() - started)
                assert response.status_code == 200
                assert response.content.startswith(b"<?xml")

        # The slow ones keep trickling a header line now and then, as slowloris does, until the server drops them.
        dropped_at: dict[int, float] = {}
        started = time.monotonic()
        everyone = slow + silent
        for round_ in range(60):  # at most ~30 s
            for sock in everyone:
                if id(sock) in dropped_at:
                    continue
                if _closed_by_server(sock):
                    dropped_at[id(sock)] = time.monotonic() - started
                elif sock in slow and round_ % 2 == 0:
                    try:
                        sock.send(f"X-Trickle-{round_}: x\r\n".encode())
                    except (BlockingIOError, ConnectionResetError, BrokenPipeError):
                        dropped_at[id(sock)] = time.monotonic() - started
            if len(dropped_at) == len(everyone):
                break
            time.sleep(0.5)
        slow_dropped = sum(1 for s in slow if id(s) in dropped_at)
        silent_dropped = sum(1 for s in silent if id(s) in dropped_at)
    finally:
        for sock in slow + silent:
            sock.close()
    time.sleep(2)
    after = server.rss()
    print(
        f"\nhalf-open: {len(slow)} slow + {len(silent)} silent connections; normal GETs meanwhile "
        f"max {max(answers):.3f} s; dropped by the server within {time.monotonic() - started:.0f} s: "
        f"{slow_dropped}/{len(slow)} slow, {silent_dropped}/{len(silent)} silent "
        f"(last at {max(dropped_at.values(), default=0):.1f} s)\n"
        f"server RSS: before {baseline / 1024:.1f} MB, while held {held / 1024:.1f} MB, "
        f"after closing {after / 1024:.1f} MB"
    )
    assert max(answers) < 2.0
    assert after < baseline + 20 * 1024
    assert silent_dropped == len(silent), "connections that never send a request are held forever"
    assert slow_dropped == len(slow), "a request whose headers never complete is held forever"


def test_an_endless_header_is_refused_not_buffered(server: Server) -> None:
    baseline = server.rss()
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /news.atom HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        chunk = b"a" * 65536
        try:
            for _ in range(1024):  # 64 MB at most
                sock.sendall(chunk)
                sent += len(chunk)
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass
        peak = server.rss()
    print(f"\nendless header: server stopped reading after {sent / 1024 / 1024:.1f} MB; RSS {peak / 1024:.1f} MB")
    assert sent < 16 * 1024 * 1024, "the server buffered an endless header"
    assert peak < baseline + 30 * 1024


# Beyond serve_helpers' corpus: overlong UTF-8, unicode dots, ;-params, absolute forms, mixed case, NUL.
MORE_TRAVERSALS: tuple[bytes, ...] = (
    b"/%2E%2e/outside/secret.txt",
    b"/%2e%2E%2F%2e%2E%2Foutside%2Fsecret.txt",
    b"/%25%32%65%25%32%65/outside/secret.txt",
    b"/%25252e%25252e/outside/secret.txt",
    b"/%c0%ae%c0%ae/outside/secret.txt",
    b"/%c0%ae%c0%ae%c0%afoutside%c0%afsecret.txt",
    b"/%e0%80%ae%e0%80%ae/outside/secret.txt",
    b"/%c1%9c..%c1%9coutside%c1%9csecret.txt",
    b"/%ef%bc%8e%ef%bc%8e/outside/secret.txt",
    b"/%e2%80%a5/outside/secret.txt",
    b"/%e2%80%a4%e2%80%a4/outside/secret.txt",
    b"/%u002e%u002e/outside/secret.txt",
    b"/..;/outside/secret.txt",
    b"/news.atom;/../outside/secret.txt",
    b"/;/../outside/secret.txt",
    b"/sub;x=y/../../outside/secret.txt",
    b"/..\\outside\\secret.txt",
    b"/sub\\..\\..\\outside\\secret.txt",
    b"/%5c..%5c..%5coutside%5csecret.txt",
    b"//outside/secret.txt",
    b"///etc/passwd",
    b"/.//..//outside/secret.txt",
    b"/sub//..//..//outside/secret.txt",
    b"/%00../outside/secret.txt",
    b"/..%00/outside/secret.txt",
    b"/news.atom%00",
    b"/..%252f..%252foutside%252fsecret.txt",
    b"/...//outside/secret.txt",
    b"/..../outside/secret.txt",
    b"/etc/passwd",
    b"/%2Fetc%2Fpasswd",
    b"/proc/self/environ",
    b"/%2e%2e/%2e%2e/%2e%2e/%2e%2e/proc/self/environ",
    b"/./../outside/secret.txt",
    b"/linkdir/..%2f..%2foutside/secret.txt",
    b"/archive/news/%2e%2e/%2e%2e/%2e%2e/outside/secret.txt",
    b"/%2e%2e%5c%2e%2e%5coutside%5csecret.txt",
)


def _raw(port: int, target: bytes) -> tuple[int | None, bytes]:
    """Send a request line verbatim; the status (None when the server just closed) and everything it sent."""
    request = b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        try:
            for _ in range(1000):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    data = b"".join(chunks)
    if not data:
        return None, data
    return int(data.split(b" ", 2)[1]), data


def test_traversal_corpus_never_leaves_the_root(server: Server) -> None:
    absolute = str(server.secret).encode()
    corpus = (
        *TRAVERSALS,
        *MORE_TRAVERSALS,
        absolute,
        b"/" + absolute,
        b"/%2f" + absolute.lstrip(b"/").replace(b"/", b"%2f"),
        b"http://127.0.0.1" + absolute,
        b"http://127.0.0.1/../outside/secret.txt",
        b"/../" + server.secret.name.encode(),
    )
    assert _raw(server.port, b"/news.atom")[0] == 200  # the control: the same client reads a real file
    passwd = Path("/etc/passwd").read_bytes()[:32]
    answers: dict[bytes, int | None] = {}
    for target in corpus:
        status, data = _raw(server.port, target)
        answers[target] = status
        assert SECRET not in data, f"{target!r} leaked the secret"
        assert passwd not in data, f"{target!r} leaked /etc/passwd"
        assert status in (400, 404, None), f"{target!r} answered {status}"
    print(f"\ntraversal: {len(corpus)} targets; answers {sorted({str(s) for s in answers.values()})}")
