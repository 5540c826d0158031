"""deploy/: the systemd units run the daemon as its own user, restart on failure and are hardened; nginx in
front of several nodes serves any node's files, validators included, and passes over a node that is down."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serve_helpers import Nginx, make_site, nginx_available, nginx_nodes_block

from feeds.serve import ServerThread, StaticFeeds

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNITS = [DEPLOY / "feeds.service", DEPLOY / "feeds-node.service"]


def service_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for line in unit.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#") and section == "Service":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_runs_the_daemon_as_a_dedicated_user(unit: Path) -> None:
    service = service_settings(unit)
    assert service["ExecStart"][0].endswith("/feeds run --config /etc/feeds/config.toml")
    assert service["User"] == ["feeds"]
    assert service["Restart"] == ["on-failure"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key


@pytest.mark.parametrize("unit_file", UNITS, ids=lambda u: u.name)
def test_systemd_accepts_the_unit(tmp_path: Path, unit_file: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    # verify insists that ExecStart's binary exists; everything else is checked as shipped.
    text = unit_file.read_text(encoding="utf-8")
    binary = next(v for k, v in (ln.partition("=")[::2] for ln in text.splitlines()) if k == "ExecStart").split()[0]
    unit = tmp_path / "feeds.service"
    unit.write_text(text.replace(binary, sys.executable), encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    # systemd-analyze exits 0 on unknown keys and bad values; it only says so, naming the file.
    complaints = [ln for ln in (result.stdout + result.stderr).splitlines() if str(unit) in ln]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr


def test_a_node_unit_keeps_the_store_password_out_of_the_config() -> None:
    service = service_settings(DEPLOY / "feeds-node.service")
    assert service["EnvironmentFile"] == ["-/etc/feeds/store.env"]
    assert service["ExecStart"] == service_settings(DEPLOY / "feeds.service")["ExecStart"]


def test_nginx_in_front_of_nodes_answers_from_any_and_passes_over_one_that_is_down(tmp_path: Path) -> None:
    if not nginx_available():
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing on CI: install nginx-light (apt-get install nginx-light)")
        pytest.skip("nginx not installed: apt-get install nginx-light")
    # Two nodes' output/, as their mirrors leave them: the same bytes with the same dates.
    site = make_site(tmp_path / "one")
    other = tmp_path / "two"
    shutil.copytree(site.root, other, copy_function=shutil.copy2)
    nodes = [ServerThread(StaticFeeds(root)).start() for root in (site.root, other)]
    try:
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        with (
            Nginx(site.root, tmp_path / "nginx", block=lambda port: nginx_nodes_block(addresses, port)) as nginx,
            httpx.Client(base_url=nginx.url, headers={"Accept-Encoding": "identity"}) as client,
        ):
            first = client.get("/news.atom")
            assert first.status_code == 200 and first.content == site.files["news.atom"]
            assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
            # Whichever node answers, the validator one node gave is the other's too.
            for _ in range(4):
                again = client.get("/news.atom", headers={"If-None-Match": first.headers["etag"]})
                assert again.status_code == 304
            assert client.post("/news.atom").status_code == 403

            nodes[0].stop()
            for _ in range(4):
                answer = client.get("/news.atom")
                assert answer.status_code == 200 and answer.headers["etag"] == first.headers["etag"]
    finally:
        for node in nodes:
            node.stop()
