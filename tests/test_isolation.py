"""One source breaks in every way a server can break it; the others still publish and its entries stay."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from pytest_httpserver import HTTPServer
from site_helpers import DATA
from werkzeug import Request, Response

from feeds import __version__, cli, pipeline
from feeds.config import Config, SourceConfig
from feeds.fetch import Fetcher, FetchLimits, user_agent
from feeds.model import Document
from feeds.store import SourceState

NOTES = """Cooperative notes

  1. News

    Credit union opens a branch in the valley

    3 March 2022

    Members voted for a second office.

  2. Publication

    Handbook for new housing cooperatives

    14 February 2022
"""

LOCAL_ITEM = """
    Worker cooperative wins a city contract

    2 February 2022
"""
NEW_LOCAL_ITEM = """
    Bakery members buy their building

    1 April 2022
"""
LOCAL = f"Local bulletin\n\n  1. News\n{LOCAL_ITEM}"
# The local file gains an item in the same pass in which another source breaks.
LOCAL_MORE = f"Local bulletin\n\n  1. News\n{NEW_LOCAL_ITEM}\n  2. News\n{LOCAL_ITEM}"
NEW_LOCAL_TITLE = "Bakery members buy their building"

AFRICA = json.loads((DATA / "html" / "expected.json").read_text(encoding="utf-8"))["ilo-africa-listing.html"]
RADIO = json.loads((DATA / "feeds" / "expected.json").read_text(encoding="utf-8"))["rss20.xml"]
EXPECTED_TITLES = {
    "notes": ["Credit union opens a branch in the valley", "Handbook for new housing cooperatives"],
    "africa": sorted(e["title"] for e in AFRICA["entries"]),
    "radio": sorted(e["title"] for e in RADIO["entries"]),
    "local": ["Worker cooperative wins a city contract"],
}
SOURCES = tuple(EXPECTED_TITLES)
DOCUMENTS = {
    "/notes.txt": (NOTES.encode(), "text/plain; charset=utf-8"),
    "/africa.html": ((DATA / "html" / "ilo-africa-listing.html").read_bytes(), "text/html; charset=utf-8"),
    "/radio.xml": ((DATA / "feeds" / "rss20.xml").read_bytes(), "application/rss+xml"),
}
LAST_MODIFIED = "Tue, 02 Nov 2021 10:00:00 GMT"
HUGE = 50 * 1024 * 1024
CHUNK = 64 * 1024
NOT_WELL_FORMED = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken & unclosed <item><title>One</title>'
    b"<pubDate>Wed, 03 Nov 2021 10:00:00 GMT</pubDate>"
)


def body(locations: dict[str, str]) -> str:
    categories = "".join(
        f'\n[[categories]]\nslug = "via-{name}"\ntitle = "From {name}"\nsources = ["{name}"]\n' for name in SOURCES
    )
    options = "".join(f'{key} = "{value}"\n' for key, value in AFRICA["options"].items())
    return f"""{categories}
[[sources]]
name = "notes"
adapter = "listing"
location = "{locations["notes"]}"

[[sources]]
name = "africa"
adapter = "html"
location = "{locations["africa"]}"
[sources.options]
{options}
[[sources]]
name = "radio"
adapter = "feed"
location = "{locations["radio"]}"

[[sources]]
name = "local"
adapter = "listing"
location = "local.txt"
"""


def etag_of(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:16] + '"'


class Origin:
    """The sources' web server: each document with an ETag and a Last-Modified, honouring both with a 304.

    A test makes a path misbehave by putting a handler in `broken`; `release` unblocks slow handlers.
    """

    def __init__(self) -> None:
        self.broken: dict[str, Callable[[Request], Response]] = {}
        self.release = threading.Event()
        self.streamed = 0  # body bytes the huge responses handed to the server

    def __call__(self, request: Request) -> Response:
        if request.path in self.broken:
            return self.broken[request.path](request)
        if request.path not in DOCUMENTS:
            return Response("not here", status=404)
        return document(request, *DOCUMENTS[request.path])

    def huge(self, declared: bool) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(HUGE // CHUNK):
                self.streamed += CHUNK
                yield b"x" * CHUNK

        headers = {"Content-Length": str(HUGE)} if declared else {}
        return Response(chunks(), content_type="text/html", headers=headers, direct_passthrough=True)


def document(request: Request, content: bytes, media_type: str) -> Response:
    headers = {"ETag": etag_of(content), "Last-Modified": LAST_MODIFIED}
    if request.headers.get("If-None-Match") == headers["ETag"]:
        return Response(status=304, headers=headers)
    return Response(content, content_type=media_type, headers=headers)


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    # Bound to 127.0.0.1 (never "localhost", which may be ::1) and threaded, so a handler that hangs
    # holds up only its own request.
    instance = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    instance.start()
    yield instance
    instance.clear()
    instance.stop()


@pytest.fixture
def origin(server: HTTPServer) -> Iterator[Origin]:
    server.clear()
    made = Origin()
    server.expect_request(re.compile("^/")).respond_with_handler(made)
    yield made
    made.release.set()
    server.check_handler_errors()


@pytest.fixture
def closed_port() -> Iterator[int]:
    # Bound but not listening: a connection is refused, and no other test can take the port meanwhile.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


class Site:
    """The config on disk, the CLI run against it, and what readers and operators then see."""

    def __init__(
        self,
        make_config: Callable[..., Config],
        server: HTTPServer,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        self._make = make_config
        self.server = server
        self._capsys = capsys
        self.urls = {
            "notes": server.url_for("/notes.txt"),
            "africa": server.url_for("/africa.html"),
            "radio": server.url_for("/radio.xml"),
        }
        self.config = make_config(body(self.urls), {"local.txt": LOCAL})

    def relocate(self, name: str, url: str) -> None:
        self.config = self._make(body({**self.urls, name: url}))

    def feeds(self, *args: str) -> tuple[int, str]:
        self._capsys.readouterr()
        code = cli.main([*args, "--config", str(self.config.path)])
        return code, self._capsys.readouterr().out

    def build(self) -> tuple[int, str]:
        return self.feeds("build")

    def entries(self, slug: str) -> dict[str, str]:
        """id → title of what a reader of the feed sees."""
        parsed = feedparser.parse((self.config.site.output / f"{slug}.atom").read_bytes())
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        return {entry.id: entry.title for entry in parsed.entries}

    def published(self) -> dict[str, dict[str, str]]:
        return {name: self.entries(f"via-{name}") for name in SOURCES} | {"all": self.entries("all")}

    def state(self, name: str) -> SourceState:
        with pipeline.open_store(self.config) as store:
            return store.source(name)

    def requests_for(self, path: str) -> int:
        return sum(1 for request, _ in self.server.log if request.path == path)


@pytest.fixture
def site(
    make_config: Callable[..., Config], server: HTTPServer, origin: Origin, capsys: pytest.CaptureFixture[str]
) -> Site:
    return Site(make_config, server, capsys)


def first_build(site: Site) -> dict[str, dict[str, str]]:
    code, out = site.build()
    assert code == 0, out
    published = site.published()
    for name in SOURCES:
        assert sorted(published[name].values()) == EXPECTED_TITLES[name]
        assert f"source {name}: read, {len(EXPECTED_TITLES[name])} entries" in out
    assert published["all"] == {k: v for name in SOURCES for k, v in published[name].items()}
    (site.config.path.parent / "local.txt").write_text(LOCAL_MORE, encoding="utf-8")
    return published


def assert_reported(out: str, victim: str, reason: str) -> None:
    """`feeds build` names the failed source and why, and reads the others."""
    assert re.search(rf"^source {victim}: failed, \d+ entries$", out, re.MULTILINE), out
    errors = [line for line in out.splitlines() if line.startswith("  error: ")]
    assert len(errors) == 1, out
    assert errors[0].startswith(f"  error: {victim}: ")
    assert reason in errors[0]
    for name in SOURCES:
        if name not in (victim, "local"):
            assert f"source {name}: unchanged, {count_of(name)} entries" in out
    assert f"source local: read, {count_of('local') + 1} entries" in out


def assert_isolated(site: Site, victim: str, before: dict[str, dict[str, str]], reason: str, started: datetime) -> None:
    """The pass failed for `victim` alone: everything else published, its last good entries stayed, and it shows."""
    after = site.published()
    for name in SOURCES:
        if name != "local":
            assert after[name] == before[name]
    assert sorted(after["local"].values()) == sorted([NEW_LOCAL_TITLE, *EXPECTED_TITLES["local"]])
    assert after["all"].items() >= before["all"].items()  # the victim's entries among them
    assert after["all"].keys() - before["all"].keys() == after["local"].keys() - before["local"].keys()

    state = site.state(victim)
    assert reason in state.last_error
    assert state.failures == 1
    assert started <= datetime.fromisoformat(state.last_attempt) <= datetime.now(UTC)
    assert state.last_success < state.last_attempt

    code, status = site.feeds("status")
    assert code == 1
    last = state.last_attempt[:19].replace("T", " ")
    row = rf"^{victim} +{re.escape(last)} +- +{state.entries}  failing \(1 in a row\)$"
    assert re.search(row, status, re.MULTILINE), status
    assert f"\n    {state.last_error}\n" in status
    for name in SOURCES:
        if name != victim:
            assert re.search(rf"^{name} .* {count_of(name) + (name == 'local')}  ok$", status, re.MULTILINE), status


def count_of(name: str) -> int:
    return len(EXPECTED_TITLES[name])


def assert_recovers(site: Site, origin: Origin, victim: str) -> None:
    origin.broken.clear()
    site.relocate(victim, site.urls[victim])
    code, out = site.build()
    assert code == 0, out
    state = site.state(victim)
    assert (state.last_error, state.failures) == ("", 0)
    assert state.last_success == state.last_attempt
    assert sorted(site.entries(f"via-{victim}").values()) == EXPECTED_TITLES[victim]


def serve(status: int, content: bytes = b"", media_type: str = "text/plain") -> Callable[[Request], Response]:
    return lambda request: Response(content, status=status, content_type=media_type)


def _dns(site: Site, origin: Origin, port: int) -> tuple[str, str]:
    site.relocate("notes", "http://nonexistent.invalid/notes.txt")
    return "notes", "http://nonexistent.invalid/notes.txt: cannot connect: "


def _refused(site: Site, origin: Origin, port: int) -> tuple[str, str]:
    site.relocate("africa", f"http://127.0.0.1:{port}/africa.html")
    return "africa", f"http://127.0.0.1:{port}/africa.html: cannot connect: "


def _server_error(site: Site, origin: Origin, port: int) -> tuple[str, str]:
    origin.broken["/radio.xml"] = serve(500, b"oops")
    return "radio", f"{site.urls['radio']} answered HTTP 500 INTERNAL SERVER ERROR (gave up after 4 attempts)"


def _garbage(site: Site, origin: Origin, port: int) -> tuple[str, str]:
    origin.broken["/radio.xml"] = serve(200, (DATA / "feeds" / "garbage.bin").read_bytes(), "application/octet-stream")
    return "radio", f"{site.urls['radio']}: not a readable feed (not well-formed (invalid token))"


def _not_well_formed(site: Site, origin: Origin, port: int) -> tuple[str, str]:
    origin.broken["/radio.xml"] = serve(200, NOT_WELL_FORMED, "application/rss+xml")
    return "radio", f"{site.urls['radio']}: not a readable feed (not well-formed (invalid token))"


def _not_found(site: Site, origin: Origin, port: int) -> tuple[str, str]:
    origin.broken["/notes.txt"] = serve(404, b"no such page")
    return "notes", f"{site.urls['notes']} answered HTTP 404 NOT FOUND"


@pytest.mark.parametrize("breaks", [_dns, _refused, _server_error, _garbage, _not_well_formed, _not_found])
def test_one_failing_source_does_not_stop_the_others(
    site: Site, origin: Origin, closed_port: int, breaks: Callable[[Site, Origin, int], tuple[str, str]]
) -> None:
    before = first_build(site)
    victim, reason = breaks(site, origin, closed_port)
    started = datetime.now(UTC)
    code, out = site.build()
    assert code == 1, out
    assert_reported(out, victim, reason)
    assert_isolated(site, victim, before, reason, started)
    if breaks is _server_error:
        assert site.requests_for("/radio.xml") == 1 + 4  # the first build, then every retry
    assert_recovers(site, origin, victim)


def test_a_timeout_fails_the_source_alone(site: Site, origin: Origin) -> None:
    before = first_build(site)

    def late(request: Request) -> Response:
        origin.release.wait(20)
        return document(request, *DOCUMENTS["/radio.xml"])

    origin.broken["/radio.xml"] = late

    # The CLI waits 30 s per attempt: this pass is the same code path with a shorter read timeout.
    def load(source: SourceConfig, state: SourceState) -> tuple[list[Document] | None, SourceState]:
        return pipeline.fetch_documents(source, state, fetcher)

    started = datetime.now(UTC)
    limits = FetchLimits(read_timeout=0.5, total_timeout=10, retries=0)
    with Fetcher(user_agent=user_agent(__version__, ""), limits=limits) as fetcher:
        report = pipeline.build(site.config, datetime.now(UTC), load=load)
    origin.release.set()
    assert report.failed
    errors = {s.name: s.error for s in report.sources if s.failed}
    assert errors == {
        "radio": f"radio: {site.urls['radio']}: the server sent nothing for 0.5 s (gave up after 1 attempt)"
    }
    assert_isolated(site, "radio", before, "the server sent nothing for 0.5 s", started)


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "content-length"])
def test_a_huge_response_is_cut_off_at_the_size_cap(site: Site, origin: Origin, declared: bool) -> None:
    before = first_build(site)
    origin.broken["/africa.html"] = lambda request: origin.huge(declared)
    started = datetime.now(UTC)
    code, out = site.build()
    assert code == 1, out
    limit = 10 * 1024 * 1024
    if declared:
        reason = f"{site.urls['africa']} is {HUGE} bytes (Content-Length), over the {limit}-byte limit; not downloaded"
    else:
        reason = f"{site.urls['africa']} sent more than the {limit}-byte limit ("
    assert_reported(out, "africa", reason)
    assert_isolated(site, "africa", before, reason, started)
    # The download stopped at the cap: what the server got rid of is the cap plus socket buffers, not 50 MB.
    assert origin.streamed < HUGE // 2
    if not declared:
        assert origin.streamed > limit
    assert_recovers(site, origin, "africa")


def test_gone_source_is_marked_and_no_longer_fetched(site: Site, origin: Origin) -> None:
    before = first_build(site)
    origin.broken["/notes.txt"] = serve(410, b"gone")
    started = datetime.now(UTC)
    code, out = site.build()
    reason = f"{site.urls['notes']} answered HTTP 410 GONE: the source was removed for good; "
    reason += "remove it from the configuration"
    assert code == 1, out
    assert_reported(out, "notes", reason)
    assert_isolated(site, "notes", before, reason, started)
    assert site.state("notes").gone

    asked = site.requests_for("/notes.txt")
    code, out = site.build()
    assert code == 1
    assert site.requests_for("/notes.txt") == asked
    assert (
        "  error: notes: gone (the server answered 410 Gone); its entries stay published: remove it from the config"
        in out
    )
    assert site.entries("via-notes") == before["notes"]
    code, status = site.feeds("status")
    assert code == 1
    assert re.search(r"^notes .* failing \(1 in a row\)$", status, re.MULTILINE), status
    assert f"    notes: {reason}\n" in status


def test_permanent_redirect_is_followed_and_reported(site: Site, origin: Origin) -> None:
    before = first_build(site)
    moved = site.server.url_for("/africa-moved.html")
    origin.broken["/africa.html"] = lambda request: Response("", status=301, headers={"Location": moved})
    origin.broken["/africa-moved.html"] = lambda request: document(request, *DOCUMENTS["/africa.html"])
    code, out = site.build()
    assert code == 0, out  # the source was read: a move is news for the operator, not a failure
    assert f"source africa: unchanged, {count_of('africa')} entries\n" in out
    assert f"  moved permanently to {moved}: update its location in {site.config.path}" in out
    assert site.state("africa").redirect == moved
    assert site.entries("via-africa") == before["africa"]
    assert site.requests_for("/africa-moved.html") == 1


def test_a_followed_redirect_is_no_longer_reported(site: Site, origin: Origin) -> None:
    first_build(site)
    moved = site.server.url_for("/africa-moved.html")
    origin.broken["/africa.html"] = lambda request: Response("", status=301, headers={"Location": moved})
    origin.broken["/africa-moved.html"] = lambda request: document(request, *DOCUMENTS["/africa.html"])
    assert "moved permanently" in site.build()[1]
    site.relocate("africa", moved)  # the operator did as told
    code, out = site.build()
    assert code == 0, out
    assert "moved permanently" not in out
    assert site.state("africa").redirect == ""


def test_xxe_feed_reads_no_local_file(site: Site, origin: Origin, tmp_path: Path) -> None:
    before = first_build(site)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-MARKER-5d1e", encoding="utf-8")
    feed = (DATA / "feeds" / "xxe.xml").read_text(encoding="utf-8").replace("file:///etc/passwd", secret.as_uri())
    origin.broken["/radio.xml"] = serve(200, feed.encode(), "application/rss+xml")
    code, out = site.build()
    # The entity is not resolved; the feed is otherwise readable, so the source is read, not failed.
    assert code == 0, out
    after = site.published()
    assert after["radio"].items() >= before["radio"].items()
    assert after["radio"]["https://xxe.example.org/1"] == "Harmless title &xxe;"
    for name in ("notes", "africa"):
        assert after[name] == before[name]
    written = [*site.config.site.output.rglob("*"), *site.config.site.state.rglob("*")]
    assert [p for p in written if p.is_file() and b"SECRET-MARKER" in p.read_bytes()] == []


def test_billion_laughs_feed_does_not_expand(site: Site, origin: Origin) -> None:
    before = first_build(site)
    origin.broken["/radio.xml"] = serve(
        200, (DATA / "feeds" / "billion-laughs.xml").read_bytes(), "application/rss+xml"
    )
    tracemalloc.start()
    try:
        code, out = site.build()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, out
    assert peak < 100_000_000  # expanded, one &lol9; alone is 3 GB
    after = site.published()
    assert after["radio"].items() >= before["radio"].items()
    for name in ("notes", "africa"):
        assert after[name] == before[name]
    assert not [p for p in site.config.site.output.rglob("*") if p.is_file() and b"lollollol" in p.read_bytes()]


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def test_second_build_is_conditional_and_a_304_touches_nothing(site: Site, origin: Origin) -> None:
    code, out = site.build()
    assert code == 0, out
    before = snapshot(site.config.site.output)
    published = site.published()
    first = len(site.server.log)
    for path, (content, _) in DOCUMENTS.items():
        name = path.strip("/").partition(".")[0]
        state = site.state(name)
        assert (state.etag, state.last_modified) == (etag_of(content), LAST_MODIFIED)

    code, out = site.build()
    assert code == 0, out
    second = site.server.log[first:]
    assert sorted(request.path for request, _ in second) == sorted(DOCUMENTS)
    for request, response in second:
        content, _ = DOCUMENTS[request.path]
        assert request.headers["If-None-Match"] == etag_of(content)
        assert request.headers["If-Modified-Since"] == LAST_MODIFIED
        assert response.status_code == 304
    for name in SOURCES:
        assert f"source {name}: unchanged, {count_of(name)} entries" in out
    assert f"nothing changed; {site.config.site.output} left as it was" in out
    assert snapshot(site.config.site.output) == before
    assert site.published() == published


def test_a_document_that_no_longer_parses_keeps_the_entry_count(site: Site, origin: Origin) -> None:
    first_build(site)
    origin.broken["/radio.xml"] = serve(200, NOT_WELL_FORMED, "application/rss+xml")
    code, out = site.build()
    assert code == 1
    # Its three entries stay published, so the build output and the status page should say three, as they
    # do when the fetch itself fails.
    assert f"source radio: failed, {count_of('radio')} entries" in out
    assert site.state("radio").entries == count_of("radio")


def test_a_broken_document_stays_broken_when_the_server_answers_304(site: Site, origin: Origin) -> None:
    first_build(site)
    # A static file server sends validators for a broken file as for any other.
    origin.broken["/radio.xml"] = lambda request: document(request, NOT_WELL_FORMED, "application/rss+xml")
    assert site.build()[0] == 1
    code, out = site.build()
    assert site.requests_for("/radio.xml") == 3
    assert code == 1, out
    assert site.state("radio").failures == 2
