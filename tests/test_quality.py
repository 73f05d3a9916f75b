"""Lint and types are part of the test command, so `pytest` alone proves a change clean."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, need


def tool(name: str) -> list[str]:
    """Run the tool with this interpreter, so the test environment's version is used."""
    probe = subprocess.run([sys.executable, "-m", name, "--version"], capture_output=True)
    need(probe.returncode == 0, f"{name} is not installed (pip install '.[test]')")
    return [sys.executable, "-m", name]


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_is_clean(command: list[str]) -> None:
    proc = subprocess.run(
        [*tool(command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
