"""The Debian packages the test suite needs, and installing the missing ones with apt-get.

``invoke ci`` (the README's test command) calls :func:`ensure_packages` before any test:
as root it runs ``apt-get`` itself, with passwordless ``sudo`` it runs it through
``sudo -n``, and otherwise it stops and prints the exact command to run. The commands go
through an injected runner, so the decision is tested without touching the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.errors import ConfigError

#: Runs a command (output goes to the terminal) with extra environment; its exit code.
Runner = Callable[[Sequence[str], Mapping[str, str]], int]
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


@dataclass(frozen=True)
class Need:
    """A Debian package the tests need, and how to tell it is installed."""

    package: str
    why: str
    command: str | None = None  # found on PATH
    path: str | None = None  # or this file exists

    def present(self, which: Callable[[str], str | None], exists: Callable[[str], bool]) -> bool:
        """Whether it is installed."""
        if self.command is not None:
            return which(self.command) is not None
        return self.path is not None and exists(self.path)


NEEDS = (
    Need("chromium", "the browser tests (Playwright drives it)", command="chromium"),
    Need("rabbitmq-server", "the bus tests", path="/usr/lib/rabbitmq/bin/rabbitmq-server"),
    Need("bubblewrap", "the sandbox tests", command="bwrap"),
    Need("ostree", "the OSTree tests", command="ostree"),
    Need("gnupg", "the GPG signing tests", command="gpg"),
)


@dataclass(frozen=True)
class Machine:
    """What the decision depends on, injectable for tests."""

    uid: int
    runner: Runner
    which: Callable[[str], str | None] = shutil.which
    exists: Callable[[str], bool] = os.path.exists

    @classmethod
    def this(cls) -> Machine:
        """This machine, running commands for real."""
        return cls(uid=os.geteuid(), runner=run_command)


def run_command(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv`` with ``env`` added to this process's environment; its exit code (127 when
    it cannot be started)."""
    try:
        return subprocess.run(list(argv), env={**os.environ, **env}, check=False).returncode
    except OSError:
        return 127


def missing(machine: Machine, needs: Sequence[Need] = NEEDS) -> list[Need]:
    """The needs that are not installed."""
    return [n for n in needs if not n.present(machine.which, machine.exists)]


def install_commands(machine: Machine, packages: Sequence[str]) -> list[list[str]] | None:
    """The apt-get commands that install ``packages`` here: as root directly, else through
    passwordless sudo; None when neither is possible (or there is no apt-get)."""
    if machine.which("apt-get") is None:
        return None
    if machine.uid == 0:
        prefix: list[str] = []
    elif machine.which("sudo") is not None and machine.runner(["sudo", "-n", "true"], {}) == 0:
        prefix = ["sudo", "-n", "env", *(f"{k}={v}" for k, v in APT_ENV.items())]
    else:
        return None
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    return [[*prefix, "apt-get", "update", "-q"], [*prefix, *install]]


def ensure_packages(
    machine: Machine, say: Callable[[str], None], needs: Sequence[Need] = NEEDS
) -> list[str]:
    """Install the missing needs with apt-get (saying so first); the packages installed.

    Raises:
        ConfigError: they are missing and this user can neither run apt-get as root nor
            through passwordless sudo (the message gives the command to run), or apt-get
            failed, or a package is still missing after it.
    """
    lacking = missing(machine, needs)
    if not lacking:
        return []
    packages = [n.package for n in lacking]
    manual = f"sudo apt-get install -y --no-install-recommends {' '.join(packages)}"
    commands = install_commands(machine, packages)
    if commands is None:
        raise ConfigError(
            f"the tests need Debian packages that are not installed: {', '.join(packages)}",
            hint=f"run '{manual}' (as root, or with sudo), then run the command again",
        )
    how = "as root" if machine.uid == 0 else "through sudo"
    say(
        "installing the Debian packages the tests need with apt-get "
        f"({how}): " + "; ".join(f"{n.package} for {n.why}" for n in lacking)
    )
    for argv in commands:
        code = machine.runner(argv, APT_ENV)
        if code != 0:
            raise ConfigError(
                f"'{' '.join(argv)}' failed (exit {code}) installing {', '.join(packages)}",
                hint=f"run '{manual}' by hand, then run the command again",
            )
    still = [n.package for n in missing(machine, needs)]
    if still:
        raise ConfigError(
            f"apt-get ran, but {', '.join(still)} is still missing",
            hint=f"run '{manual}' by hand and check its output",
        )
    return packages
