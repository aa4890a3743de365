"""``invoke ci`` installs the Debian packages the tests need (pipeline/adapters/debian.py):
as root, through passwordless sudo, or it says exactly what to run. An injected runner and
an injected file system stand for the machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from pipeline.adapters.debian import NEEDS, Machine, ensure_packages
from pipeline.errors import ConfigError

ALL = ["chromium", "rabbitmq-server", "bubblewrap", "ostree", "gnupg"]
#: What each package puts on the machine (a command on PATH, or a file).
PROVIDES = {
    "chromium": "chromium",
    "rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "bubblewrap": "bwrap",
    "ostree": "ostree",
    "gnupg": "gpg",
}


@dataclass
class FakeMachine:
    """A Debian machine: installed packages, whether sudo works without a password, and
    every command run with the environment it got."""

    installed: set[str] = field(default_factory=set)
    tools: set[str] = field(default_factory=lambda: {"apt-get", "sudo"})
    sudo_ok: bool = False
    fail: int = 0  # exit code of apt-get install
    ran: list[tuple[list[str], dict[str, str]]] = field(default_factory=list)

    def which(self, name: str) -> str | None:
        have = self.tools | {PROVIDES[p] for p in self.installed}
        return f"/usr/bin/{name}" if name in have else None

    def exists(self, path: str) -> bool:
        return path in {PROVIDES[p] for p in self.installed}

    def run(self, argv: Sequence[str], env: Mapping[str, str]) -> int:
        argv = list(argv)
        self.ran.append((argv, dict(env)))
        if argv[:3] == ["sudo", "-n", "true"]:
            return 0 if self.sudo_ok else 1
        if "install" in argv:
            if self.fail:
                return self.fail
            self.installed |= {a for a in argv if a in PROVIDES}
        return 0

    def as_user(self, uid: int) -> Machine:
        return Machine(uid=uid, runner=self.run, which=self.which, exists=self.exists)


def test_as_root_apt_get_installs_every_missing_package_and_says_so() -> None:
    fake = FakeMachine(installed={"bubblewrap"})
    said: list[str] = []
    assert ensure_packages(fake.as_user(0), said.append) == [p for p in ALL if p != "bubblewrap"]
    assert [argv for argv, _ in fake.ran] == [
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium",
         "rabbitmq-server", "ostree", "gnupg"],
    ]  # fmt: skip
    assert all(env == {"DEBIAN_FRONTEND": "noninteractive"} for _, env in fake.ran)
    [line] = said
    assert line.startswith("installing the Debian packages the tests need with apt-get (as root)")
    assert "chromium for the browser tests" in line and "gnupg for" in line
    assert fake.installed == set(ALL)


def test_with_passwordless_sudo_apt_get_runs_through_sudo() -> None:
    fake = FakeMachine(installed={"chromium", "rabbitmq-server", "bubblewrap"}, sudo_ok=True)
    said: list[str] = []
    assert ensure_packages(fake.as_user(1000), said.append) == ["ostree", "gnupg"]
    sudo = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    assert [argv for argv, _ in fake.ran] == [
        ["sudo", "-n", "true"],
        [*sudo, "apt-get", "update", "-q"],
        [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", "ostree", "gnupg"],
    ]
    assert "(through sudo)" in said[0]


@pytest.mark.parametrize(
    ("tools", "sudo_ok"),
    [({"apt-get", "sudo"}, False), ({"apt-get"}, False), ({"sudo"}, True)],
    ids=["sudo-asks-a-password", "no-sudo", "no-apt-get"],
)
def test_otherwise_it_says_exactly_what_to_run(tools: set[str], sudo_ok: bool) -> None:
    fake = FakeMachine(installed={"chromium"}, tools=tools, sudo_ok=sudo_ok)
    with pytest.raises(ConfigError) as caught:
        ensure_packages(fake.as_user(1000), pytest.fail)
    assert caught.value.exit_code == 2
    assert caught.value.diagnostics() == (
        "the tests need Debian packages that are not installed: rabbitmq-server, bubblewrap, "
        "ostree, gnupg; run 'sudo apt-get install -y --no-install-recommends rabbitmq-server "
        "bubblewrap ostree gnupg' (as root, or with sudo), then run the command again"
    )
    assert all("install" not in argv for argv, _ in fake.ran)


def test_nothing_missing_runs_nothing() -> None:
    fake = FakeMachine(installed=set(ALL))
    assert ensure_packages(fake.as_user(1000), pytest.fail) == []
    assert fake.ran == []


def test_a_failing_apt_get_is_a_clear_error() -> None:
    fake = FakeMachine(fail=100)
    with pytest.raises(ConfigError, match=r"'apt-get install .*' failed \(exit 100\)"):
        ensure_packages(fake.as_user(0), lambda line: None)


def test_a_package_still_missing_after_apt_get_is_named() -> None:
    fake = FakeMachine()
    real_run = fake.run

    def run_without_gnupg(argv: Sequence[str], env: Mapping[str, str]) -> int:
        code = real_run(argv, env)
        fake.installed.discard("gnupg")  # e.g. a mirror without it
        return code

    machine = Machine(uid=0, runner=run_without_gnupg, which=fake.which, exists=fake.exists)
    with pytest.raises(ConfigError, match="apt-get ran, but gnupg is still missing"):
        ensure_packages(machine, lambda line: None)


def test_the_needs_are_the_packages_the_suite_uses() -> None:
    assert [n.package for n in NEEDS] == ALL
