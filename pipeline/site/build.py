"""Running a Pelican build of the site, with its warnings made fatal."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pelican import Pelican
from pelican.log import FatalLogger
from pelican.log import console as pelican_console
from pelican.settings import read_settings

from pipeline.errors import ConfigError, FortnightError, SiteError
from pipeline.log.sslib import Signer
from pipeline.log.store import ManifestLog
from pipeline.site.index import write_index
from pipeline.site.output import BuildReport


class _Warnings(logging.Handler):
    """Collects Pelican's warnings and errors, so a failed build can say what went wrong."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().splitlines()[0] if record.msg else "")


@contextlib.contextmanager
def fatal_warnings() -> Iterator[_Warnings]:
    """Make Pelican's warnings fatal for the duration (and collect them)."""
    handler = _Warnings()
    root = logging.getLogger()
    saved, quiet = FatalLogger.fatal_lvl, pelican_console.quiet
    FatalLogger.fatal_lvl = logging.WARNING
    pelican_console.quiet = True  # our task prints its own summary line
    root.addHandler(handler)
    try:
        yield handler
    finally:
        FatalLogger.fatal_lvl, pelican_console.quiet = saved, quiet
        root.removeHandler(handler)


def content_path(repo: Path) -> dict[str, str]:
    """The human pages: the log's own ``content/`` folder (``content/pages/*.md``) when it
    has one, else the generic pages of the code's ``content/``."""
    own = repo / "content"
    return {"PATH": str(own)} if (own / "pages").is_dir() else {}


def build_site(
    conf: Path,
    repo: Path,
    output: Path,
    *,
    at: datetime | None = None,
    logs: Path | None = None,
    force: bool = False,
    cache: bool = True,
    overrides: dict[str, Any] | None = None,
    site_signers: Sequence[Signer] = (),
) -> BuildReport:
    """Build the site from the log at ``repo`` into ``output`` with the settings file ``conf``;
    with ``site_signers`` (the ``site`` role's keys), sign its index last
    (:mod:`pipeline.site.index`).

    Raises:
        VerificationError: a manifest failed verification (nothing of its product is written).
        ConfigError: a product.toml or trust.json is invalid, or the settings file is missing.
        SiteError: Pelican or a template failed, or warned (warnings are fatal).
    """
    if not conf.is_file():
        raise ConfigError(f"{conf}: settings file not found", hint="run from the repository root")
    override: dict[str, Any] = {
        "FORTNIGHT_REPO": str(repo),
        "OUTPUT_PATH": str(output),
        "FORTNIGHT_AT": at,
        "FORTNIGHT_LOGS": str(logs) if logs else None,
        "FORTNIGHT_FORCE": force,
        "FORTNIGHT_CACHE": cache,
        **content_path(repo),
        **(overrides or {}),
    }
    with fatal_warnings() as warnings:
        try:
            settings = read_settings(str(conf), override=override)
            pelican = Pelican(settings)
            report = BuildReport()
            pelican.settings["FORTNIGHT_REPORT"] = report
            pelican.run()
            if site_signers:
                sign_index(repo, output, site_signers, at or datetime.now(UTC), cache)
        except FortnightError:
            raise
        except Exception as e:
            reason = warnings.messages[-1] if warnings.messages else f"{type(e).__name__}: {e}"
            raise SiteError(
                f"site build failed: {reason}",
                hint="fix it and re-run (set FORTNIGHT_DEBUG=1 for the traceback)",
            ) from e
    return report


def sign_index(
    repo: Path, output: Path, signers: Sequence[Signer], at: datetime, cache: bool
) -> None:
    """Write the signed index of a built site (nothing for a log with no checkpoint yet).

    Raises:
        TrustError: the log's checkpoints do not verify.
    """
    log = ManifestLog(repo, cache=cache)
    head = log.reader.verify_log(log.load_trust()).head
    if head is not None:
        write_index(output, head, signers, at)
