"""``ci``: the whole check suite."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import ROOT


@task(name="ci", help={"pytest_args": "extra arguments for pytest, e.g. '-k store -x'"})
@boundary
def run_tests(c: Context, pytest_args: str = "") -> None:
    """Run the whole suite: ruff, mypy --strict, the schema check, and pytest.

    First installs the Debian packages the tests need (chromium, rabbitmq-server,
    bubblewrap, ostree, gnupg) with apt-get when they are missing, as root or through
    passwordless sudo; otherwise says what to run (exit 2).
    """
    from pipeline.adapters.debian import Machine, ensure_packages  # noqa: PLC0415

    ensure_packages(Machine.this(), console.err.print)
    steps: list[list[str]] = [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
        [sys.executable, "-m", "pytest", *shlex.split(pytest_args)],
    ]
    for step in steps:
        console.err.print(
            f"$ {' '.join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step))}"
        )
        rc = subprocess.run(step, cwd=ROOT, check=False).returncode
        if rc == 5 and "pytest" in step:  # no test collected (e.g. a -k that matches nothing)
            console.err.print("pytest collected no test")
            rc = 0
        if rc != 0:
            raise Exit(code=rc)
