"""A WebSub hub on loopback for tests: it records every ping and answers from a script."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Ping:
    """One request a hub received."""

    method: str
    path: str
    content_type: str
    user_agent: str
    form: dict[str, list[str]]

    @property
    def url(self) -> str:
        return self.form["hub.url"][0]


Answer = tuple[int, dict[str, str], bytes]


class Hub:
    """A WebSub hub on loopback: records every request and answers from a script (then 202).

    Clearing `answering` makes it hold each request until it is set again (or ten seconds pass).
    """

    def __init__(self) -> None:
        self.pings: list[Ping] = []
        self.script: deque[Answer] = deque()
        self.answering = threading.Event()
        self.answering.set()
        self._cond = threading.Condition()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ping = Ping(
                    method=self.command,
                    path=self.path,
                    content_type=self.headers.get("Content-Type", ""),
                    user_agent=self.headers.get("User-Agent", ""),
                    form=parse_qs(body.decode("ascii"), strict_parsing=True),
                )
                with hub._cond:
                    hub.pings.append(ping)
                    status, headers, text = hub.script.popleft() if hub.script else (202, {}, b"")
                    hub._cond.notify_all()
                hub.answering.wait(10)
                self.send_response_only(status)  # no automatic Date: some tests send their own
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def answer(self, *answers: Answer) -> Hub:
        self.script.extend(answers)
        return self

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Ping]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.pings) >= count, timeout), self.pings
            return list(self.pings)

    @property
    def urls(self) -> list[str]:
        with self._cond:
            return [p.url for p in self.pings]

    def close(self) -> None:
        self.answering.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
