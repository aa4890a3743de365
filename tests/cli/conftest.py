"""The command line run in this process, as the ``fortnight`` console script runs it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.cli.main import program
from tests.conftest import ROOT


@dataclass
class Ran:
    """A command's exit code and output."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Ran]:
    """Run the ``fortnight`` program in this process (as the console script does; faster
    than a child process): environment ``env`` only (no other FORTNIGHT_*), folder ``cwd``."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Ran:
        for key in [k for k in os.environ if k.startswith("FORTNIGHT_")]:
            monkeypatch.delenv(key)
        for key, value in {**(env or {}), "COLUMNS": "200"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(cwd or ROOT)
        capsys.readouterr()
        code = 0
        try:
            program().run(["fortnight", *args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        out = capsys.readouterr()
        return Ran(code, out.out, out.err)

    return run
