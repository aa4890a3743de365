"""What the tasks load before any work: the log, the product, the trust and the keys.

The environment is read here, at the edge (``FORTNIGHT_REPO``, ``FORTNIGHT_LOGS``,
``FORTNIGHT_OUTPUT``, ``FORTNIGHT_NO_CACHE``, the role keys), and passed down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.options import ROOT, WriteFlags
from pipeline.errors import ConfigError

# Types only: the log, pydantic's models and the signers load when a task runs, not for
# `invoke --list`; the test runner (requests, productmd) only in the tasks that test.
if TYPE_CHECKING:
    from pipeline.core.config import ProductConfig
    from pipeline.core.models.common import RoleName, Trust
    from pipeline.log.sslib import Signer
    from pipeline.log.store import ManifestLog
    from pipeline.log.trust import Pin
    from pipeline.log.writer import WriteOptions
    from pipeline.stages.testing import LogStore


def now() -> datetime:
    """The current time, in whole seconds, UTC."""
    return datetime.now(UTC).replace(microsecond=0)


def repo_path(repo: str | None, env: Mapping[str, str]) -> Path:
    """``--repo``, else ``$FORTNIGHT_REPO``, else the current folder."""
    return Path(repo or env.get("FORTNIGHT_REPO") or ".").resolve()


def open_log(repo: str | None, env: Mapping[str, str], *, cache: bool = True) -> ManifestLog:
    """The manifest log; ``FORTNIGHT_NO_CACHE=1`` turns the verification cache off, and
    ``FORTNIGHT_ROOT`` pins its root (see :func:`pipeline.log.trust.parse_pin`).

    Raises:
        ConfigError: ``FORTNIGHT_ROOT`` is neither a fingerprint nor a root file.
    """
    from pipeline.log.store import ManifestLog  # noqa: PLC0415
    from pipeline.log.trust import parse_pin  # noqa: PLC0415

    use_cache = cache and not env.get("FORTNIGHT_NO_CACHE")
    log = ManifestLog(repo_path(repo, env), cache=use_cache)
    if env.get("FORTNIGHT_ROOT", "").strip():
        log.pin = parse_pin(env["FORTNIGHT_ROOT"], "FORTNIGHT_ROOT")
    return log


def is_code_checkout(path: Path) -> bool:
    """Whether ``path`` is Fortnight's own code checkout (its bundled example log)."""
    return path == ROOT or (
        (path / "pipeline" / "__init__.py").is_file() and (path / "pyproject.toml").is_file()
    )


def writable_log(repo: str | None, env: Mapping[str, str], *, cache: bool = True) -> ManifestLog:
    """The log a writing task acts on: :func:`open_log`, but never the code checkout by
    default (only when ``--repo`` or ``$FORTNIGHT_REPO`` names it).

    Raises:
        ConfigError: no log named and the current folder is the code checkout.
    """
    log = open_log(repo, env, cache=cache)
    if not repo and not env.get("FORTNIGHT_REPO") and is_code_checkout(log.repo):
        raise ConfigError(
            f"{log.repo}: this is the code checkout, not your manifest log; nothing written",
            hint="pass --repo LOG or set FORTNIGHT_REPO (create one with 'init --repo LOG')",
        )
    return log


def product_of(product: str | None, log: ManifestLog, env: Mapping[str, str]) -> str:
    """The product a task acts on (see :func:`pipeline.core.siteconfig.default_product`).

    Raises:
        ConfigError: none named and the log has no single default.
    """
    from pipeline.core.siteconfig import default_product, load_site_config  # noqa: PLC0415

    site = load_site_config(log.repo)
    return default_product(product, env, site, log.product_names(), log.repo)


def pin_option(root: str | None) -> Pin | None:
    """``--root FINGERPRINT|FILE``, if given (else the log's own pin applies).

    Raises:
        ConfigError: neither a fingerprint nor a root file.
    """
    from pipeline.log.trust import parse_pin  # noqa: PLC0415

    return parse_pin(root, "--root") if root else None


def log_store(logs: str | None, log: ManifestLog, env: Mapping[str, str]) -> LogStore:
    """``--logs``, else ``$FORTNIGHT_LOGS``, else ``<repo>/logs``; what enters it is redacted
    of ``env``'s secrets and signing keys."""
    from pipeline.stages.isolation import redactor_for  # noqa: PLC0415
    from pipeline.stages.testing import LogStore  # noqa: PLC0415

    root = logs or env.get("FORTNIGHT_LOGS") or str(log.repo / "logs")
    return LogStore(Path(root).resolve(), redactor_for(env))


def output_dir(output: str | None, log: ManifestLog, env: Mapping[str, str]) -> Path:
    """``--output``, else ``$FORTNIGHT_OUTPUT``, else ``<repo>/output``."""
    return Path(output or env.get("FORTNIGHT_OUTPUT") or log.repo / "output").resolve()


def operator_name(operator: str | None, log: ManifestLog, env: Mapping[str, str]) -> str:
    """``--operator``, else ``git config user.name``, else ``$USER``, else ``operator``."""
    if operator:
        return operator
    name = log.git.run("config", "user.name", check=False).stdout.strip()
    return name or env.get("USER") or "operator"


@dataclass(frozen=True)
class Setup:
    """What a mutating task needs, loaded and checked before any work."""

    log: ManifestLog
    config: ProductConfig
    trust: Trust
    signers: list[Signer]  # as many as the role's threshold needs
    release: list[Signer] | None  # for the tracker sync afterwards; None with --no-tracker
    options: WriteOptions


def open_setup(
    repo: str | None,
    product: str | None,
    role: RoleName,
    flags: WriteFlags,
    env: Mapping[str, str],
    *,
    sync: bool = False,
) -> Setup:
    """Open the log, load product and trust, and every key the task will sign with.

    Raises:
        InputError: not a manifest log.
        ConfigError: the product, trust or a key is missing or unusable.
    """
    from pipeline.core.config import load_product  # noqa: PLC0415
    from pipeline.log.signing import load_signers  # noqa: PLC0415

    log = writable_log(repo, env)
    log.require_repo()
    config = load_product(log.root, product_of(product, log, env))
    trust = log.load_trust()
    signers = load_signers(role, env, trust)
    release = load_signers("release", env, trust) if sync else None
    options = flags.options(log.configured_remote())
    return Setup(log, config, trust, signers, release, options)


def timestamp_or(setup: Setup, env: Mapping[str, str]) -> list[Signer]:
    """The ``timestamp`` role's keys when ``FORTNIGHT_KEY_TIMESTAMP`` is set, else the
    task's own (any role may refresh a checkpoint; the timestamp key is meant for it).

    Raises:
        KeyConfigError: the timestamp key is set but unusable.
    """
    from pipeline.log.signing import load_signers  # noqa: PLC0415

    if env.get("FORTNIGHT_KEY_TIMESTAMP", "").strip():
        return load_signers("timestamp", env, setup.trust)
    return setup.signers


def site_signers(log: ManifestLog, env: Mapping[str, str]) -> list[Signer]:
    """The ``site`` role's keys when ``FORTNIGHT_KEY_SITE`` is set, else none (the site is
    then built without its signed index).

    Raises:
        KeyConfigError: the key is set but unusable or not trusted for ``site``.
    """
    from pipeline.log.signing import load_signers  # noqa: PLC0415

    if not env.get("FORTNIGHT_KEY_SITE", "").strip():
        return []
    return load_signers("site", env, log.load_trust())


def task_setup(
    repo: str | None, product: str | None, role: RoleName, flags: WriteFlags, *, sync: bool = False
) -> Setup:
    """:func:`open_setup` with the process environment (keys, ``FORTNIGHT_*``)."""
    return open_setup(repo, product, role, flags, os.environ, sync=sync)
