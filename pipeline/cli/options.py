"""Option rules the tasks share: which flags combine, how they become library values.

Each function checks the options of one task (or one kind of option) and raises a
``ConfigError`` naming the option, on one line, before any work is done.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, cast, get_args

from pipeline.errors import ConfigError

# Types only: parsing options loads neither pydantic's models nor the log (`invoke --list`).
if TYPE_CHECKING:
    from pipeline.core.config import SandboxKind
    from pipeline.core.models.common import RoleName
    from pipeline.log.writer import WriteOptions

#: The checkout: bundled product.toml files, the schema folder, the Pelican settings.
ROOT = Path(__file__).resolve().parents[2]
#: The product of the bundled example log, which the demo runs.
DEMO_PRODUCT = "atomic-host"
PRODUCT_HELP = (
    "product name (default: $FORTNIGHT_PRODUCT, else default_product in the log's site.toml, "
    "else the log's only product)"
)
WRITE_HELP = {
    "product": PRODUCT_HELP,
    "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
    "dry_run": "show what would be recorded; write nothing",
    "no_commit": "write manifests but do not commit",
    "push": "push after committing (rebase and retry on races)",
    "remote": "remote to push to (default: git config fortnight.remote, else origin)",
}
AT_HINT = "use e.g. 2018-05-15 or 2018-05-15T06:00:00Z"


@dataclass(frozen=True)
class WriteFlags:
    """The write flags of a mutating task: ``--dry-run --no-commit --push --remote``."""

    dry_run: bool = False
    no_commit: bool = False
    push: bool = False
    remote: str | None = None

    def options(self, configured_remote: str | None) -> WriteOptions:
        """How to write: push when asked, or when ``--remote`` or the log's
        ``fortnight.remote`` (``configured_remote``) names a remote; never with ``--no-commit``.
        """
        from pipeline.log.git import PushConfig  # noqa: PLC0415
        from pipeline.log.writer import WriteOptions  # noqa: PLC0415

        remote = self.remote or configured_remote
        do_push = (self.push or bool(remote)) and not self.no_commit
        target = PushConfig(remote=remote or "origin") if do_push else None
        return WriteOptions(dry_run=self.dry_run, commit=not self.no_commit, push=target)


def parse_at(at: str | None, now: datetime) -> datetime:
    """``--at``: a date (midnight UTC) or an ISO datetime (naive means UTC); ``now`` if unset.

    The result is a whole-second UTC timestamp, as the manifests' own timestamps are.

    Raises:
        ConfigError: ``at`` is neither a date nor a datetime.
    """
    from pipeline.core.models.common import parse_timestamp  # noqa: PLC0415

    if not at:
        return now
    try:
        return parse_timestamp(at)  # the manifests' form: 2018-05-15T06:00:00Z
    except ValueError:
        pass  # not that exact form: try the other ISO forms below
    try:
        value = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at {at}: not a date or datetime", hint=AT_HINT) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return parse_timestamp(value.astimezone(UTC))


def role_name(role: str) -> RoleName:
    """``--role``: one of the key roles.

    Raises:
        ConfigError: not a role.
    """
    from pipeline.core.models.common import ROLES  # noqa: PLC0415

    for name in ROLES:
        if role == name:
            return name
    raise ConfigError(f"--role {role}: unknown role", hint=f"use one of {', '.join(ROLES)}")


def sandbox_kind(sandbox: str | None) -> SandboxKind | None:
    """``--sandbox``: ``bwrap`` or ``none``; unset means the battery's own setting.

    Raises:
        ConfigError: neither.
    """
    from pipeline.core.config import SandboxKind  # noqa: PLC0415

    if sandbox is None:
        return None
    for kind in get_args(SandboxKind):
        if sandbox == kind:
            return cast(SandboxKind, kind)
    raise ConfigError(f"--sandbox {sandbox}: unknown sandbox", hint="use bwrap or none")


def at_least_one(option: str, value: int) -> int:
    """A count option (``--workers``, ``--attempts``, ``--weeks``) that must be 1 or more.

    Raises:
        ConfigError: ``value`` is below 1.
    """
    if value < 1:
        raise ConfigError(f"--{option} {value}: must be at least 1")
    return value


@dataclass(frozen=True)
class FailedCompose:
    """``compose.record --failed``: a compose that produced no image."""

    compose_id: str
    reason: str
    log_url: str | None


@dataclass(frozen=True)
class ComposeSource:
    """``compose.record --source``: a compose to load, and whether to check its image files."""

    source: str
    verify_files: bool


def record_request(
    *,
    source: str | None,
    failed: bool,
    compose_id: str | None,
    reason: str | None,
    log_url: str | None,
    verify_checksums: bool,
    skip_checksums: bool,
    source_is_url: bool,
) -> FailedCompose | ComposeSource:
    """What ``compose.record`` was asked to do, from its flags.

    ``--failed`` needs ``--compose-id`` and ``--reason``; otherwise ``--source`` is
    required. Image files are checked with ``--verify-checksums``, and by default
    for a local compose unless ``--skip-checksums``; the two exclude each other.

    Raises:
        ConfigError: the flags are missing or conflict.
    """
    if failed:
        if not compose_id or reason is None:
            raise ConfigError("--failed needs --compose-id and --reason")
        return FailedCompose(compose_id, reason, log_url)
    if not source:
        raise ConfigError("--source is required (or --failed --compose-id ID --reason TEXT)")
    if verify_checksums and skip_checksums:
        raise ConfigError("--verify-checksums and --skip-checksums exclude each other")
    verify = verify_checksums or (not source_is_url and not skip_checksums)
    return ComposeSource(source, verify)


_SIZE_UNITS = {"": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def byte_limit(
    value: str | None, env: Mapping[str, str], *, option: str, variable: str, default: int
) -> int:
    """A size cap: ``--OPTION``, else ``$VARIABLE``, else ``default``; bytes, or a number
    with ``KiB``, ``MiB`` or ``GiB`` (``128MiB``).

    Raises:
        ConfigError: not a positive size, naming the option or variable.
    """
    given, where = (value, option) if value else (env.get(variable), variable)
    if not given:
        return default
    match = re.fullmatch(r"\s*(\d{1,15})\s*([KMGkmg][iI][bB])?\s*", given)
    if match is None or int(match[1]) == 0:
        raise ConfigError(
            f"{where}: {given[:40]!r} is not a size",
            hint="give a positive number of bytes, or e.g. 128MiB or 2GiB",
        )
    return int(match[1]) * _SIZE_UNITS[(match[2] or "").lower()]


def count_limit(
    value: int, env: Mapping[str, str], *, option: str, variable: str, default: int
) -> int:
    """A count cap: ``--OPTION`` (when not 0), else ``$VARIABLE``, else ``default``.

    Raises:
        ConfigError: not a positive whole number, naming the option or variable.
    """
    if value:
        given, where = str(value), option
    elif env.get(variable):
        given, where = env[variable], variable
    else:
        return default
    if not re.fullmatch(r"\s*\d{1,9}\s*", given) or int(given) == 0:
        raise ConfigError(
            f"{where}: {given[:40]!r} is not a positive whole number",
            hint="give a count such as 1000",
        )
    return int(given)
