"""Configuration: what a valid file gives, and the text of every error."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from feeds import cli
from feeds.adapters import ADAPTERS
from feeds.config import load, parse_schedule
from feeds.errors import ConfigError

REPO = Path(__file__).parent.parent


def test_default_config_is_valid() -> None:
    config = load(REPO / "config.toml", ADAPTERS)
    assert config.site.base_url.endswith("/")
    assert {s.adapter for s in config.sources} <= {"listing", "interview", "html", "feed"}
    assert config.site.output == REPO / "output"
    assert all(s.id_prefix.startswith("tag:localhost,2026:") for s in config.sources)


def test_values_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("""
[site]
title = "T"
base_url = "https://example.org/feeds"
time_zone = "America/Lima"

[[sources]]
name = "news"
adapter = "listing"
location = "pages/*.txt"
schedule = "every 15m"
categories = { "News" = "news" }
""")
    config = load(path, ADAPTERS)
    source = config.sources[0]
    assert config.site.base_url == "https://example.org/feeds/"
    assert config.site.entries_per_feed == 50
    assert config.site.output == tmp_path / "output"
    assert source.location == str(tmp_path / "pages/*.txt")
    assert str(source.time_zone) == "America/Lima"
    assert source.schedule.interval == timedelta(minutes=15)
    assert source.tag("2022-01-10/x") == "tag:example.org,2026:news:2022-01-10/x"


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("""
[site]
title = "T"
base_url = "example.org"
time_zone = "Mars/Olympus"
entries_per_feed = 0

[[categories]]
slug = "News Items"
title = "News"
sources = ["nowhere"]

[[sources]]
name = "a"
adapter = "lsting"
location = "a.txt"
schedule = "hourly"

[[sources]]
name = "a"
adapter = "listing"
location = "ftp://example.org/a.txt"
colour = "red"
""")
    with pytest.raises(ConfigError) as info:
        load(path, ADAPTERS)
    text = str(info.value)
    for expected in [
        'site.base_url: must be an absolute http(s) URL, got "example.org"',
        'site.time_zone: unknown time zone "Mars/Olympus"',
        "site.entries_per_feed: must be at least 1, got 0",
        'categories[0].slug: "News Items" must be lowercase letters, digits and hyphens',
        'categories[0].sources[0]: no source is named "nowhere"',
        'sources[0].adapter: unknown adapter "lsting" (known: ',
        'sources[0].schedule: "hourly": expected "every N"',
        'sources[1].name: "a" is used by an earlier source',
        'sources[1].location: unsupported scheme in "ftp://example.org/a.txt"',
        "sources[1].colour: unknown key",
    ]:
        assert expected in text, expected
    assert len(info.value.problems) == 10


def test_types_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[site]\ntitle = 3\nbase_url = "https://e.org/"\n[[sources]]\nname = "s"\nadapter = "listing"\n')
    with pytest.raises(ConfigError) as info:
        load(path, ADAPTERS)
    assert info.value.problems == [("site.title", "must be a string, got int"), ("sources[0].location", "is required")]


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[site\n")
    with pytest.raises(ConfigError, match=r"config\.toml: not valid TOML"):
        load(path, ADAPTERS)


@pytest.mark.parametrize("text", ["every 0m", "every 5 weeks", "61 * * * *", "* * *"])
def test_bad_schedules(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


def test_cron_schedule() -> None:
    assert parse_schedule("*/10 6-18 * * mon-fri").cron == "*/10 6-18 * * mon-fri"


def test_cli_exits_2_and_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[site]\ntitle = "T"\nbase_url = "https://e.org/"\n'
        '[[sources]]\nname = "s"\nadapter = "lsting"\nlocation = "x.txt"\n'
    )
    assert cli.main(["build", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert 'sources[0].adapter: unknown adapter "lsting" (known: ' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err


def test_config_is_read_without_importing_the_adapters() -> None:
    """The adapters read SourceConfig, so config sits below them: the registry is handed in, never imported."""
    code = "import sys, feeds.config; print('feeds.adapters' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


STORE_SITE = (
    '[site]\ntitle = "T"\nbase_url = "https://e.org/"\n[[sources]]\nname = "s"\nadapter = "listing"\nlocation = "x"\n'
)


def test_the_store_is_the_sqlite_file_unless_a_postgresql_url_is_given(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(STORE_SITE)
    assert load(path, ADAPTERS).store.url == ""
    for url in ("postgresql://feeds:pw@db:5432/feeds", "postgres://feeds@db/feeds?sslmode=require"):
        path.write_text(STORE_SITE + f'[store]\nurl = "{url}"\n')
        assert load(path, ADAPTERS).store.url == url


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (
            'url = "mysql://root:pw@db/feeds"',
            'must be a postgresql:// URL such as "postgresql://feeds@db:5432/feeds", got scheme "mysql"',
        ),
        ('url = "postgresql://feeds:pw@db:port/feeds"', "has a port that is not a number from 0 to 65535"),
        ('url = "postgresql://feeds@db"', 'must name a host and a database, as in "postgresql://feeds@db:5432/feeds"'),
        ('url = ""', "is empty: give a postgresql:// URL, or drop [store] for the SQLite file in site.state"),
        ("url = 5432", "must be a string, got int"),
    ],
)
def test_a_bad_store_url_is_a_config_error_without_its_password(tmp_path: Path, table: str, problem: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(STORE_SITE + f"[store]\n{table}\n")
    with pytest.raises(ConfigError) as info:
        load(path, ADAPTERS)
    assert info.value.problems == [("store.url", problem)]
    assert "pw" not in str(info.value)


def test_an_unknown_store_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(STORE_SITE + '[store]\nurl = "postgresql://db/feeds"\npool = 4\n')
    with pytest.raises(ConfigError) as info:
        load(path, ADAPTERS)
    assert info.value.problems == [("store.pool", "unknown key (known: url)")]
