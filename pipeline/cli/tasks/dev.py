"""``ci``: the whole check suite."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.options import ROOT


@task(name="ci", help={"pytest_args": "extra arguments for pytest, e.g. '-k store -x'"})
def run_tests(c: Context, pytest_args: str = "") -> None:
    """Run the whole suite: ruff, mypy --strict, the schema check, and pytest."""
    needs = {
        "chromium": ("chromium", shutil.which("chromium")),
        "rabbitmq-server": ("RabbitMQ", Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists()),
    }
    for package, (what, present) in needs.items():
        if not present:
            raise Exit(
                f"error: the tests need Debian's {what}; install it with "
                f"'apt-get install {package}' (.ci/run does)",
                code=2,
            )
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
