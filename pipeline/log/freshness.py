"""Checkpoints that add no manifest: the refresh (freshness) and the upgrade of an old log.

:func:`refresh` re-signs the newest tree head (same size and root, a new time and expiry)
as the next checkpoint, with the ``timestamp`` role's key: it keeps the log fresh and can
change no content. :func:`upgrade` indexes the manifests of a log made before
``log.idx`` existed, in the order git first recorded them, and writes checkpoint 1
signed by the ``root`` keys. Both commit one file (two for the upgrade) under the
checkout's lock, and a refresh pushes with the same rebase-and-retry as a recording.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.core.models.common import Checkpoint, Trust
from pipeline.errors import ConfigError, ConflictError
from pipeline.fsutil import atomic_create, atomic_write
from pipeline.log.checkpoints import (
    DEFAULT_VALIDITY,
    IndexEntry,
    checkpoint_count,
    newest,
    next_checkpoint,
    read_checkpoint,
    read_index,
    sign_tree_head,
)
from pipeline.log.git import PushConfig
from pipeline.log.layout import CHECKPOINT_DIR, INDEX_FILE, MANIFESTS
from pipeline.log.sslib import Signer
from pipeline.log.writer import LogWriter


@dataclass(frozen=True)
class Refreshed:
    """The checkpoint a refresh or an upgrade wrote, and its commit (None: not committed)."""

    checkpoint: Checkpoint
    path: Path
    commit: str | None


def _write_checkpoint(writer: LogWriter, raw: bytes, number: int) -> Path:
    path = writer.root / CHECKPOINT_DIR / f"{number}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not atomic_create(path, raw):
        raise ConflictError(
            f"{MANIFESTS}/{CHECKPOINT_DIR}/{number}.json: appeared while writing",
            hint="re-run; another process wrote a checkpoint first",
        )
    return path


def _refresh_held(
    writer: LogWriter, trust: Trust, signers: Sequence[Signer], at: datetime, validity: timedelta
) -> tuple[Checkpoint, Path]:
    head = writer.reader.verify_log(trust).head
    if head is None:
        raise ConfigError(
            f"{MANIFESTS}/{CHECKPOINT_DIR}: no checkpoint to refresh",
            hint="record a manifest first, or run 'invoke checkpoint.upgrade' on an old log",
        )
    raw = sign_tree_head(head, head.size, head.root, signers, at, validity)
    path = _write_checkpoint(writer, raw, head.number + 1)
    return read_checkpoint(path, head.number + 1).signed, path


def refresh(
    writer: LogWriter,
    trust: Trust,
    signers: Sequence[Signer],
    at: datetime,
    *,
    validity: timedelta = DEFAULT_VALIDITY,
    commit: bool = True,
    push: PushConfig | None = None,
) -> Refreshed:
    """Verify the log and sign its newest tree head again as the next checkpoint, made at
    ``at`` and fresh for ``validity``.

    Raises:
        TrustError: the log does not verify (nothing is refreshed).
        ConfigError: there is no checkpoint yet.
        StoreError: git failed; the new checkpoint file is removed.
    """
    writer.require_repo()
    with writer.lock():
        checkpoint, path = _refresh_held(writer, trust, signers, at, validity)
        sha: str | None = None
        if commit:
            try:
                rel = path.relative_to(writer.repo).as_posix()
                sha = writer.git.commit_paths([rel], "log: refresh checkpoint")
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            if push is not None:

                def rebuild(theirs: str) -> None:
                    writer.git.run("reset", "--quiet", "--keep", theirs)
                    _, again_path = _refresh_held(writer, trust, signers, at, validity)
                    rel = again_path.relative_to(writer.repo).as_posix()
                    writer.git.commit_paths([rel], "log: refresh checkpoint")

                writer.git.push_with_retry(push, rebuild)
    return Refreshed(checkpoint, path, sha)


def recorded_order(writer: LogWriter) -> list[str]:
    """The manifest files of the log (names under ``manifests/``) in the order git first
    recorded them (oldest commit first; within a commit, by name); then any that are not
    committed are left out (they stay unindexed, and verification reports them)."""
    present = set(writer.reader.manifest_names())
    out = writer.git.run(
        "log", "--reverse", "--diff-filter=A", "--name-only", "--format=", "--", MANIFESTS
    ).stdout
    order: list[str] = []
    seen: set[str] = set()
    for line in out.splitlines():
        name = line.strip().removeprefix(f"{MANIFESTS}/")
        if name in present and name not in seen:
            seen.add(name)
            order.append(name)
    return order


def upgrade(
    writer: LogWriter,
    signers: Sequence[Signer],
    at: datetime,
    *,
    validity: timedelta = DEFAULT_VALIDITY,
    commit: bool = True,
) -> Refreshed:
    """Index an old log's manifests in git's order and write checkpoint 1 signed by the
    root keys ``signers``.

    Raises:
        ConfigError: the log already has a checkpoint or an index.
        StoreError: git failed; the new files are removed.
    """
    writer.require_repo()
    with writer.lock():
        if checkpoint_count(writer.root) or read_index(writer.root):
            raise ConfigError(
                f"{MANIFESTS}/{INDEX_FILE}: the log is already checkpointed; nothing to upgrade"
            )
        entries = [
            IndexEntry(hashlib.sha256((writer.root / n).read_bytes()).hexdigest(), n)
            for n in recorded_order(writer)
        ]
        raw = next_checkpoint(None, entries, signers, at, validity)
        path = _write_checkpoint(writer, raw, 1)
        index = writer.root / INDEX_FILE
        atomic_write(index, b"".join(e.line() for e in entries))
        sha: str | None = None
        if commit:
            rels = [p.relative_to(writer.repo).as_posix() for p in (index, path)]
            try:
                sha = writer.git.commit_paths(rels, "log: index and checkpoint 1 (upgrade)")
            except BaseException:
                path.unlink(missing_ok=True)
                index.unlink(missing_ok=True)
                raise
        head = newest(writer.root)
        assert head is not None
        return Refreshed(head.signed, path, sha)
