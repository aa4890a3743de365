"""Manifests left uncommitted: in the work tree, but not in git at HEAD.

A task killed between writing a manifest and committing it (or between ``git add`` and
``git commit``), or run with ``--no-commit``, leaves a complete file that git does not
have: files are created atomically (a temp file, then a link), so a kill leaves either
nothing, the whole file, or a stray temp file (``.NAME.XXXXXXXX.tmp``, see
:mod:`pipeline.fsutil`). "Already recorded" means committed at HEAD; this module finds
what is not, so the writer can commit it and ``invoke verify`` can list it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from pipeline.log.git import Git
from pipeline.log.layout import MANIFESTS

#: The temp files :mod:`pipeline.fsutil` writes before the rename or link.
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")


@dataclass
class Uncommitted:
    """Files under ``manifests/`` that git has not committed, relative to ``manifests/``."""

    #: Manifest files git does not track at all.
    untracked: list[PurePosixPath] = field(default_factory=list)
    #: Manifest files added to the index (``git add``) but not committed.
    staged: list[PurePosixPath] = field(default_factory=list)
    #: Temp files of a write that was interrupted before its rename.
    temp: list[PurePosixPath] = field(default_factory=list)

    @property
    def manifests(self) -> list[PurePosixPath]:
        """Every uncommitted manifest file, sorted."""
        return sorted(self.untracked + self.staged)


def find_uncommitted(git: Git, scopes: Sequence[str] = ()) -> Uncommitted:
    """What git has not committed under ``manifests/<scope>`` for each scope (a product,
    or ``product/kind-dir``), or under all of ``manifests/`` without scopes.

    Only ``*.json`` files in a product's folders count as manifests (not ``trust/``,
    ``schema/`` or ``trust.json``, which the root-of-trust code commits itself).

    Raises:
        StoreError: git failed.
    """
    specs = [f"{MANIFESTS}/{s}" for s in scopes] or [MANIFESTS]
    out = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *specs).stdout
    found = Uncommitted()
    for entry in out.split("\0"):
        if len(entry) < 4 or not entry[3:].startswith(f"{MANIFESTS}/"):
            continue
        code, rel = entry[:2], PurePosixPath(entry[3:]).relative_to(MANIFESTS)
        if code == "??" and _TEMP.match(rel.name):
            found.temp.append(rel)
        elif not _is_manifest(rel):
            continue
        elif code == "??":
            found.untracked.append(rel)
        elif code[0] == "A":
            found.staged.append(rel)
    return found


def _is_manifest(rel: PurePosixPath) -> bool:
    return (
        rel.suffix == ".json"
        and len(rel.parts) >= 3
        and rel.parts[0] not in ("schema", "trust")
        and not any(part.startswith(".") for part in rel.parts)
    )


def scope_of(rel: PurePosixPath) -> str:
    """The ``product/kind-dir`` a manifest path belongs to."""
    return "/".join(rel.parts[:2])
