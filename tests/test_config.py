"""Settings: bundled defaults, user file, environment; unknown keys name themselves."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from aggregator.config import defaults_dir, load_feed_list, load_settings
from aggregator.errors import ConfigError


def test_defaults_load_and_document_the_contract_keys() -> None:
    s = load_settings(env={})
    assert s.database.url.startswith("sqlite:///")
    assert s.database.url.endswith("/aggregator.sqlite3")
    assert str(s.data.dir) in s.database.url
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8080)
    assert s.fetch.interval_minutes > 0
    assert s.cluster.window_hours > 0
    assert s.feeds.file == defaults_dir() / "feeds.toml"
    assert s.fetch.allow_private_networks is False
    assert "aggregator/" in s.fetch.user_agent and "http" in s.fetch.user_agent


def test_environment_overrides_every_section(tmp_path: Path) -> None:
    env = {
        "AGGREGATOR_DATABASE_URL": "sqlite:////tmp/x.db",
        "AGGREGATOR_SERVER_PORT": "9000",
        "AGGREGATOR_FEEDS_FILE": "my-feeds.toml",
        "AGGREGATOR_FETCH_ALLOW_PRIVATE_NETWORKS": "true",
        "AGGREGATOR_FETCH_PER_HOST_INTERVAL_SECONDS": "0",
        "AGGREGATOR_CLUSTER_WINDOW_HOURS": "48",
        "AGGREGATOR_DATA_DIR": str(tmp_path),
    }
    s = load_settings(env=env)
    assert s.database.url == "sqlite:////tmp/x.db"
    assert s.server.port == 9000
    assert s.feeds.file == Path.cwd() / "my-feeds.toml"
    assert s.fetch.allow_private_networks is True
    assert s.fetch.per_host_interval_seconds == 0
    assert s.cluster.window_hours == 48
    assert s.data.dir == tmp_path


def test_user_file_overlays_defaults_and_resolves_paths_next_to_it(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "aggregator.toml"
    cfg.parent.mkdir()
    cfg.write_text('[feeds]\nfile = "feeds.toml"\n[server]\nport = 8181\n[data]\ndir = "state"\n')
    s = load_settings(cfg, env={})
    assert s.server.port == 8181
    assert s.server.host == "127.0.0.1"  # untouched default
    assert s.feeds.file == cfg.parent / "feeds.toml"
    assert s.database.url == f"sqlite:///{cfg.parent / 'state'}/aggregator.sqlite3"
    assert load_settings(env={"AGGREGATOR_CONFIG": str(cfg)}).server.port == 8181


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nprot = 1\n", "unknown key 'prot' in [server]"),
        ("[serveur]\nport = 1\n", "unknown section [serveur]"),
        ("[server]\nport = 'x'\n", "server.port: expected int"),
        ("[server]\nport = 70000\n", "server.port must be between"),
        ("[log]\nformat = 'xml'\n", "log.format"),
        ("not toml =", "invalid TOML"),
    ],
)
def test_bad_config_files_are_named_errors(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(cfg, env={})


def test_unknown_environment_key_in_a_known_section_is_an_error() -> None:
    with pytest.raises(ConfigError, match="AGGREGATOR_SERVER_PROT"):
        load_settings(env={"AGGREGATOR_SERVER_PROT": "1"})
    # Variables outside the settings sections are not ours to judge.
    load_settings(env={"AGGREGATOR_SHARED_DATA": "/x", "AGGREGATOR_CONFIG": ""})


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", env={})


def test_bundled_feed_list_has_25_real_french_outlets() -> None:
    feeds = load_feed_list(defaults_dir() / "feeds.toml")
    outlets = {f.outlet for f in feeds}
    assert len(feeds) >= 25
    for required in ("Le Monde", "franceinfo", "France 24", "RFI", "Libération", "Le Figaro",
                     "20 Minutes", "Ouest-France", "Les Échos", "La Croix", "L'Obs", "Le Point",
                     "L'Express", "Le Parisien", "BFMTV", "Europe 1", "Mediapart",
                     "Courrier international"):  # fmt: skip
        assert required in outlets, required
    assert all(f.url.startswith("https://") for f in feeds)


def test_feed_list_errors(tmp_path: Path) -> None:
    path = tmp_path / "feeds.toml"
    path.write_text('[[feeds]]\nurl = "ftp://x"\n')
    with pytest.raises(ConfigError, match="feed #1"):
        load_feed_list(path)
    path.write_text('[[feeds]]\nurl = "https://a/"\nname = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'name'"):
        load_feed_list(path)
    path.write_text('[[feeds]]\nurl = "https://a/"\n[[feeds]]\nurl = "https://a/"\n')
    with pytest.raises(ConfigError, match="duplicate"):
        load_feed_list(path)


def test_every_setting_is_documented_in_the_bundled_file() -> None:
    doc = tomllib.loads((defaults_dir() / "aggregator.toml").read_text())
    text = (defaults_dir() / "aggregator.toml").read_text()
    for section, table in doc.items():
        assert f"[{section}]" in text
        for key in table:
            # a comment or the key itself on its own line
            assert f"\n{key} = " in text, f"{section}.{key}"
