"""The command line as users and scripts meet it: help, errors, exit codes, documentation."""

from __future__ import annotations

import json
from pathlib import Path

import click
import click.testing
import pytest

from aggregator.cli import cli
from tests.conftest import REPO, base_env, run_cli


def all_commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        out.append(path)
        if isinstance(command, click.Group):
            out.extend(all_commands(command, path))
    return out


COMMANDS = all_commands()


def test_the_contract_commands_exist() -> None:
    for path in [("run",), ("fetch",), ("cluster",), ("serve",), ("status",), ("cluster-file",),
                 ("feeds", "list"), ("feeds", "add"), ("feeds", "import-opml"), ("feeds", "export-opml")]:  # fmt: skip
        assert path in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_and_is_in_the_readme(path: tuple[str, ...]) -> None:
    runner = click.testing.CliRunner()
    result = runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) > 3
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"aggregator {' '.join(path)}" in readme, (
        f"README does not document `aggregator {' '.join(path)}`"
    )


def test_readme_starts_with_the_two_commands() -> None:
    lines = [
        ln for ln in (REPO / "README.md").read_text(encoding="utf-8").splitlines() if ln.strip()
    ]
    block = lines[lines.index("```sh") + 1 : lines.index("```sh") + 3]
    assert block == ["pip install . && aggregator run", "pip install '.[test]' && pytest"]


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli("frobnicate", env=base_env(tmp_path), check=False)
    assert proc.returncode == 2
    assert "No such command 'frobnicate'" in proc.stderr


def test_bad_config_key_is_one_line_and_exit_1(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[fetch]\nintervall_minutes = 5\n")
    proc = run_cli("--config", str(cfg), "status", env=base_env(tmp_path), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown key 'intervall_minutes' in [fetch]" in proc.stderr


def test_bad_environment_value_is_named(tmp_path: Path) -> None:
    proc = run_cli("status", env=base_env(tmp_path, AGGREGATOR_SERVER_PORT="http"), check=False)
    assert proc.returncode == 1 and "AGGREGATOR_SERVER_PORT" in proc.stderr


def test_cluster_file_round_trip(tmp_path: Path) -> None:
    rows = [
        {
            "id": 1,
            "title": "Séisme en Turquie : des milliers de morts",
            "published": "2023-02-06T08:00:00+01:00",
            "source": "A",
        },
        {
            "id": "2",
            "title": "Turquie : le séisme a fait des milliers de morts",
            "published": "2023-02-06T09:00:00",
            "source": "B",
        },
        {"id": "x", "title": "Ligue 1 : le PSG gagne", "summary": "Le club parisien s'impose."},
    ]
    infile = tmp_path / "in.jsonl"
    infile.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    out = tmp_path / "out.jsonl"
    run_cli("cluster-file", str(infile), "-o", str(out), env=base_env(tmp_path))
    result = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in result] == ["1", "2", "x"]
    assert all(set(r) >= {"id", "story", "story_label"} for r in result)
    assert result[0]["story"] == result[1]["story"] != result[2]["story"]
    assert not (tmp_path / "data").exists(), "cluster-file must not touch a database"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"title": "x"}', "line 1: 'id'"),
        ('{"id": 1}', "line 1: 'title'"),
        ('{"id": 1, "title": "x", "published": "hier"}', "not ISO 8601"),
        ("not json", "invalid JSON"),
        ('{"id": 1, "title": "a"}\n{"id": 1, "title": "b"}', "line 2: duplicate id"),
    ],
)
def test_cluster_file_bad_input(tmp_path: Path, content: str, message: str) -> None:
    infile = tmp_path / "in.jsonl"
    infile.write_text(content)
    proc = run_cli(
        "cluster-file", str(infile), "-o", str(tmp_path / "o"), env=base_env(tmp_path), check=False
    )
    assert proc.returncode == 1
    assert message in proc.stderr


def test_feeds_add_list_export_import(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feeds]]\nurl = "https://a.fr/rss"\noutlet = "A"\nsection = "Une"\n')
    env = base_env(tmp_path, AGGREGATOR_FEEDS_FILE=str(feeds))
    run_cli("feeds", "add", "https://b.fr/rss", "--outlet", "Bé", "--section", "Monde", env=env)
    dup = run_cli("feeds", "add", "https://b.fr/rss", env=env, check=False)
    assert dup.returncode == 1 and "already present" in dup.stderr
    bad = run_cli("feeds", "add", "file:///etc/passwd", env=env, check=False)
    assert bad.returncode == 1
    listed = run_cli("feeds", "list", env=env).stdout
    assert "https://a.fr/rss" in listed and "https://b.fr/rss" in listed and "Bé" in listed
    opml = run_cli("feeds", "export-opml", env=env).stdout
    assert 'xmlUrl="https://b.fr/rss"' in opml
    other = tmp_path / "other"
    other.mkdir()
    env2 = base_env(other, AGGREGATOR_FEEDS_FILE=str(feeds))
    (tmp_path / "subs.opml").write_text(opml, encoding="utf-8")
    assert (
        "imported 1 feeds (1 already present)"
        in run_cli("feeds", "import-opml", str(tmp_path / "subs.opml"), env=env2).stdout
    )
    listed2 = run_cli("feeds", "list", env=env2).stdout
    assert "Bé\tMonde\thttps://b.fr/rss" in listed2
    broken = tmp_path / "broken.opml"
    broken.write_text("<opml><body><outline")
    proc = run_cli("feeds", "import-opml", str(broken), env=env2, check=False)
    assert proc.returncode == 1 and "not valid OPML" in proc.stderr
