"""Run an invoke task in this process and kill it with SIGKILL just before its Nth step.

``python tests/crashkit.py AT COUNT_FILE TASK [ARGS...]``: the steps are the moments a task
changes something outside its own memory: each ``git`` command it starts, each file it puts
in place (``os.link``, ``os.replace``, ``os.rename``: the last move of an atomic write) and
each HTTP request to S3 (botocore's ``Endpoint._send``, for ``site.publish``). With ``AT`` = 0
nothing is killed. A run that ends by itself writes how many steps it took to
``COUNT_FILE``, so a test knows the range to draw kill points from. The kill is a real
SIGKILL of this process (no handler, no cleanup, no atexit), not of its children: a ``git``
it started finishes on its own, as it would under ``kill -9 PID``.

Test code only: nothing in ``pipeline`` knows about it.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Steps:
    """Counts steps and kills this process at step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.count = 0

    def step(self) -> None:
        self.count += 1
        if self.count == self.at:
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.step()
            return fn(*args, **kwargs)

        return counted


def install(steps: Steps, publish: bool) -> None:
    """Put the step counter in front of git, file moves and (for a publish) S3 requests."""
    for name in ("link", "replace", "rename"):
        setattr(os, name, steps.wrap(getattr(os, name)))
    popen_init = subprocess.Popen.__init__

    def init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        argv = [args] if isinstance(args, str | bytes) else list(args)
        if argv and os.path.basename(str(argv[0])) == "git":
            steps.step()
        popen_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]
    if publish:
        from botocore.endpoint import Endpoint  # noqa: PLC0415 - only a publish loads botocore

        Endpoint._send = steps.wrap(Endpoint._send)


def main(argv: list[str]) -> None:
    at, count_file, *task = argv
    steps = Steps(int(at))
    atexit.register(lambda: Path(count_file).write_text(str(steps.count)))
    install(steps, publish="site.publish" in task)
    from invoke.main import program  # noqa: PLC0415 - after the hooks are in place

    program.run(["invoke", "--search-root", str(ROOT), *task])


if __name__ == "__main__":
    main(sys.argv[1:])
