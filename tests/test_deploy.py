"""deploy/feeds.service: runs the daemon as its own user, restarts on failure, and is hardened."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "feeds.service"


def service_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#") and section == "Service":
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_runs_the_daemon_as_a_dedicated_user() -> None:
    service = service_settings()
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


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    # verify insists that ExecStart's binary exists; everything else is checked as shipped.
    text = UNIT.read_text(encoding="utf-8")
    binary = next(v for k, v in (ln.partition("=")[::2] for ln in text.splitlines()) if k == "ExecStart").split()[0]
    unit = tmp_path / "feeds.service"
    unit.write_text(text.replace(binary, sys.executable), encoding="utf-8")
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    # systemd-analyze exits 0 on unknown keys and bad values; it only says so, naming the file.
    complaints = [ln for ln in (result.stdout + result.stderr).splitlines() if str(unit) in ln]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr
