"""The README opens with the two commands, and CI runs the second one verbatim."""

from __future__ import annotations

import re

from tests.conftest import ROOT


def code_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_readme_opens_with_demo_and_test_commands() -> None:
    blocks = code_blocks((ROOT / "README.md").read_text())
    assert blocks[0].endswith("invoke demo")
    assert blocks[1].endswith("invoke ci")
    assert "pip install" in blocks[0] and "'.[test]'" in blocks[1]


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run is the README's test command and nothing else (besides going to the clone):
    `invoke ci` sets up what the tests need, so the command alone works on a fresh machine."""
    test_command = code_blocks((ROOT / "README.md").read_text())[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if line.strip() and not line.lstrip().startswith("#")]
    assert commands == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', test_command]
