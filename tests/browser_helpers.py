"""Headless Debian Chromium driven over the Chrome DevTools Protocol (its websocket), for the browser tests."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root in CI containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1200,900",
    # Only loopback: every host name but 127.0.0.1 fails to resolve, whatever a page links to.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def chromium_or_skip() -> str:
    """The browser's path; without one the test fails on CI and is skipped elsewhere."""
    path = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        message = "install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class Browser:
    """One headless Chromium with one page (tab), driven synchronously over CDP."""

    def __init__(self, executable: str, workdir: Path, timeout: float = 30.0) -> None:
        self.timeout = timeout
        profile = workdir / "profile"
        profile.mkdir(parents=True)
        self._log = (workdir / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._workdir = workdir
        self._ids = itertools.count(1)
        self._session = ""
        try:
            self._ws: ClientConnection = connect(self._devtools_url(profile), max_size=None, open_timeout=timeout)
            self._ws.__enter__()
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_url(self, profile: Path) -> str:
        # Chromium writes the port it picked, and the browser endpoint's path, into this file once it listens.
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}:\n{self.log_tail()}")
            lines = active.read_text().split() if active.exists() else []
            if len(lines) == 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise RuntimeError(f"chromium did not open its DevTools port:\n{self.log_tail()}")

    def log_tail(self) -> str:
        path = self._workdir / "chromium.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _call(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> dict[str, Any]:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") != ident:
                continue  # an event, or the answer to nothing we wait for
            if "error" in reply:
                raise AssertionError(f"{method} failed: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A CDP command on the page."""
        return self._call(method, params, self._session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page; promises are awaited."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_loaded(self, url: str) -> int:
        """Wait until the page shows `url` fully loaded; its HTTP status."""
        deadline = time.monotonic() + self.timeout
        check = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        while not self.evaluate(check):
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not load; the page is at {self.evaluate('location.href')}")
            time.sleep(0.05)
        status: int = self.evaluate("performance.getEntriesByType('navigation')[0].responseStatus")
        return status

    def open(self, url: str) -> int:
        """Navigate to `url` as a user typing it; the HTTP status of the document."""
        result = self.call("Page.navigate", {"url": url})
        assert not result.get("errorText"), f"{url}: {result['errorText']}"
        return self.wait_loaded(url)

    def click(self, selector: str) -> int:
        """Click the first element matching `selector`, a link, and wait for the page it leads to."""
        href = self.evaluate(f"document.querySelector({json.dumps(selector)}).href")
        assert href, f"no link matches {selector}"
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        return self.wait_loaded(href)

    def fetch(self, urls: list[str]) -> list[dict[str, Any]]:
        """GET each URL from the page's own context: status, content type and body text."""
        script = """
            Promise.all(%s.map(async (url) => {
                const response = await fetch(url, {cache: "no-store"});
                return {url, status: response.status, type: response.headers.get("content-type"),
                        body: await response.text()};
            }))
        """
        result: list[dict[str, Any]] = self.evaluate(script % json.dumps(urls))
        return result

    def screenshot(self, path: Path) -> bytes:
        """The whole page as PNG, written to `path`."""
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            # The browser may drop the connection before it answers; it is waited for (or killed) below.
            with contextlib.suppress(Exception):
                self._call("Browser.close")
            ws.__exit__(None, None, None)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
