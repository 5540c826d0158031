"""Shared by the serving tests: a sample output/ directory, raw HTTP requests, and a real nginx."""

from __future__ import annotations

import calendar
import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NGINX = "/usr/sbin/nginx"

# Fixed file times, so that Last-Modified and If-Modified-Since are known values.
MTIME = calendar.timegm((2024, 1, 2, 3, 4, 5, 0, 0, 0))
LAST_MODIFIED = formatdate(MTIME, usegmt=True)
SECRET = b"SECRET-OUTSIDE-THE-ROOT"


def atom(title: str, entries: int = 20) -> bytes:
    """A small valid Atom document; `entries` scales its size."""
    items = "".join(
        f"<entry><id>tag:example.org,2024:{i}</id><title>{title} item {i}</title>"
        f'<link href="https://example.org/{i}"/><updated>2024-01-02T03:04:05Z</updated>'
        f"<summary>Summary of item {i} of {title}, long enough to make compression worth it.</summary></entry>"
        for i in range(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>tag:example.org,2024:{title}</id><title>{title}</title><updated>2024-01-02T03:04:05Z</updated>"
        f"{items}</feed>\n"
    ).encode()


@dataclass(frozen=True)
class Site:
    """A generated output directory and what is in it."""

    root: Path
    files: dict[str, bytes]  # relative path -> bytes, for the files that must be served

    def gz(self, rel: str) -> bytes:
        return (self.root / (rel + ".gz")).read_bytes()


def write(path: Path, data: bytes, mtime: float = MTIME) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def make_site(base: Path) -> Site:
    """An output/ like the publisher's, plus the traps: dotfiles, temp files, stale .gz, escaping symlinks."""
    root = base / "output"
    files = {
        "news.atom": atom("news"),
        "news.rss": b'<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>news</title>'
        b"<link>https://example.org/</link><description>d</description></channel></rss>\n",
        "news.json": b'{"version": "https://jsonfeed.org/version/1.1", "title": "news", "items": []}\n',
        "feeds.opml": b'<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0"><head/><body/></opml>\n',
        "index.html": b"<!doctype html><title>feeds</title><a href=news.atom>news</a>\n",
        "archive/news/1.atom": atom("2020"),
        "archive/news/2.atom": atom("2021"),
        "sub/index.html": b"<!doctype html><title>sub</title>\n",
        "stale.atom": atom("stale"),
        "caf\u00e9.atom": atom("cafe", 2),
    }
    for rel, data in files.items():
        write(root / rel, data)
    write(root / "news.atom.gz", gzip.compress(files["news.atom"], mtime=0))
    write(root / "archive/news/1.atom.gz", gzip.compress(files["archive/news/1.atom"], mtime=0))
    # A .gz older than its file holds a previous version: it must never be served for the new one.
    write(root / "stale.atom.gz", gzip.compress(b"<feed>old</feed>", mtime=0), mtime=MTIME - 60)
    (root / "empty").mkdir()
    write(root / ".hidden", SECRET)
    write(root / ".news.atom.tmp", SECRET)  # the publisher's half-written temp file
    write(root / "sub/.hidden", SECRET)
    write(root / "partial.atom.tmp", SECRET)
    write(base / "outside/secret.txt", SECRET)
    (root / "escape.atom").symlink_to(base / "outside/secret.txt")
    (root / "linkdir").symlink_to(base / "outside")
    (root / "inside.atom").symlink_to(root / "news.atom")
    return Site(root=root, files=files)


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lowercased names; repeated fields joined with ", "
    body: bytes


def raw_request(port: int, target: bytes, method: bytes = b"GET", extra: bytes = b"") -> RawResponse:
    """Send one request line exactly as given, so no client library normalizes the path first."""
    request = method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return RawResponse(status=int(lines[0].split()[1]), headers=headers, body=body)


# Request targets that try to leave the root or reach hidden files; each is written to the socket verbatim.
TRAVERSALS: tuple[bytes, ...] = (
    b"/../outside/secret.txt",
    b"/../../../../etc/passwd",
    b"/%2e%2e/outside/secret.txt",
    b"/%2E%2E/outside/secret.txt",
    b"/%2e%2e%2foutside%2fsecret.txt",
    b"/..%2foutside%2fsecret.txt",
    b"/%252e%252e/outside/secret.txt",
    b"/%252e%252e%252foutside%252fsecret.txt",
    b"/..%5coutside%5csecret.txt",
    b"/..%5c..%5c..%5cetc%5cpasswd",
    b"/sub/../../outside/secret.txt",
    b"/sub/%2e%2e/%2e%2e/outside/secret.txt",
    b"/archive/..%2f..%2foutside/secret.txt",
    b"//etc/passwd",
    b"/%2fetc%2fpasswd",
    b"/%2f%2e%2e%2foutside/secret.txt",
    b"/news.atom%00.html",
    b"/%00",
    b"/escape.atom",
    b"/linkdir/secret.txt",
    b"/linkdir/",
    b"/.hidden",
    b"/%2ehidden",
    b"/sub/.hidden",
    b"/.news.atom.tmp",
    b"/partial.atom.tmp",
    b"/./news.atom",
    b"/%2e/news.atom",
    b"/sub/./index.html",
    b"/C:%5cWindows%5cwin.ini",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nginx_server_block(root: Path, port: int) -> str:
    """deploy/nginx.conf with its listen and root lines pointed at a test directory and port."""
    text = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    server = text[text.index("server {") :]
    server, listens = re.subn(r"^(\s*)listen\s+[^;]+;\n", "", server, flags=re.M)
    server, roots = re.subn(r"^(\s*)root\s+[^;]+;", rf"\1root {root};", server, count=1, flags=re.M)
    # The shipped file must still have these lines, or the test would run some other configuration.
    assert listens >= 1 and roots == 1, "deploy/nginx.conf lost its listen or root line"
    return server.replace("server {", f"server {{\n    listen 127.0.0.1:{port};", 1)


def nginx_nodes_block(nodes: list[str], port: int) -> str:
    """deploy/nginx-nodes.conf with its upstream servers and listen line pointed at test addresses."""
    text = (DEPLOY / "nginx-nodes.conf").read_text(encoding="utf-8")
    text = text[text.index("upstream feeds_nodes {") :]
    text, servers = re.subn(r"^\s*server\s+[0-9.:]+[^;]*;\n", "", text, flags=re.M)
    text, listens = re.subn(r"^(\s*)listen\s+[^;]+;", rf"\1listen 127.0.0.1:{port};", text, count=1, flags=re.M)
    assert servers >= 2 and listens == 1, "deploy/nginx-nodes.conf lost its upstream servers or listen line"
    lines = "".join(f"    server {node} max_fails=2 fail_timeout=10s;\n" for node in nodes)
    return text.replace("upstream feeds_nodes {\n", "upstream feeds_nodes {\n" + lines, 1)


class Nginx:
    """Real nginx in the foreground, in its own prefix, serving `root` on a free loopback port.

    Given `block` (a function of the port), that configuration instead of deploy/nginx.conf's.
    """

    def __init__(
        self, root: Path, workdir: Path, *, workers: int = 1, block: Callable[[int], str] | None = None
    ) -> None:
        self.root = root
        self.workdir = workdir
        self.port = free_port()
        self.workers = workers
        self.block = block
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        w = self.workdir
        temps = "\n".join(
            f"    {kind}_temp_path {w}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # As root, nginx would hand its worker to `nobody`, who cannot read a private temp directory.
        user = "user root root;" if os.geteuid() == 0 else ""
        return f"""{user}
daemon off;
worker_processes {self.workers};
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;  # as in Debian's stock nginx.conf
    tcp_nopush on;
{temps}
{self.block(self.port) if self.block else nginx_server_block(self.root, self.port)}
}}
"""

    def __enter__(self) -> Nginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config(), encoding="utf-8")
        argv = [NGINX, "-p", str(self.workdir), "-c", str(conf), "-e", str(self.workdir / "error.log")]
        check = subprocess.run([*argv, "-t", "-q"], capture_output=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr.decode()}")
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"nginx did not listen: {self.error_log()}") from None
                time.sleep(0.02)

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGQUIT is nginx's graceful stop; SIGKILL only if it hangs.
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()


def nginx_available() -> bool:
    return shutil.which(NGINX) is not None or os.path.exists(NGINX)
