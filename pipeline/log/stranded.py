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
from pathlib import Path, PurePosixPath

from pipeline.log.checkpoints import INDEX_PATH, forget_uncommitted, newest
from pipeline.log.git import Git
from pipeline.log.layout import CHECKPOINT_DIR, INDEX_FILE, MANIFESTS

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
    found = Uncommitted()
    for code, name in _status(git, specs):
        if not name.startswith(f"{MANIFESTS}/"):
            continue
        rel = PurePosixPath(name).relative_to(MANIFESTS)
        if code == "??" and _TEMP.match(rel.name):
            found.temp.append(rel)
        elif not _is_manifest(rel):
            continue
        elif code == "??":
            found.untracked.append(rel)
        elif code[0] == "A":
            found.staged.append(rel)
    return found


def _status(git: Git, specs: Sequence[str]) -> list[tuple[str, str]]:
    """``git status``'s two-letter code and path of each file under ``specs`` that differs
    from HEAD, untracked files included.

    Raises:
        StoreError: git failed.
    """
    out = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *specs).stdout
    return [(entry[:2], entry[3:]) for entry in out.split("\0") if len(entry) > 3]


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


def with_recovered(message: str, recovered: Sequence[PurePosixPath]) -> str:
    """A commit message naming the manifests an earlier run left uncommitted."""
    if not recovered:
        return message
    names = "\n".join(f"- {MANIFESTS}/{p}" for p in recovered)
    return f"{message}\n\nAlso commits what an earlier run left uncommitted:\n{names}\n"


# --- the index and checkpoints a killed write left half done ------------------------------

#: The checkpoints' folder, and it with ``log.idx``: what a write changes besides manifests.
CHECKPOINTS_PATH = f"{MANIFESTS}/{CHECKPOINT_DIR}"
INDEX_PATHS = (INDEX_PATH, CHECKPOINTS_PATH)


def uncommitted_checkpoints(git: Git) -> list[PurePosixPath]:
    """Checkpoint files in the work tree that git has not committed."""
    return [PurePosixPath(name) for _, name in _status(git, [CHECKPOINTS_PATH])]


def index_dirty(git: Git) -> bool:
    """Whether ``log.idx`` or the checkpoints have changes git has not committed."""
    status = git.run("status", "--porcelain", "--untracked-files=all", "--", *INDEX_PATHS)
    return bool(status.stdout.strip())


def index_to_head(git: Git, root: Path) -> None:
    """Put ``log.idx`` and the checkpoints back to HEAD's (none when HEAD has none), and
    the clone's memory of checkpoints back to HEAD's newest: what a write does with the
    never-published half of a killed write (see ``LogWriter.write``)."""
    git.run("reset", "--quiet", "--", *INDEX_PATHS, check=False)
    if git.run("cat-file", "-e", f"HEAD:{INDEX_PATH}", check=False).returncode == 0:
        git.run("checkout", "--quiet", "HEAD", "--", INDEX_PATH)
    else:
        (root / INDEX_FILE).unlink(missing_ok=True)
    git.run("clean", "--quiet", "--force", "--", CHECKPOINTS_PATH)
    forget_uncommitted(git, newest(root))
