"""The blob store: verified manifests' bytes by git blob id, beside the verification cache."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from pipeline.fsutil import atomic_create
from pipeline.log.cache import BLOB_DIR, CACHE_DIR
from pipeline.log.git import git_blob_id


class BlobStore:
    """Manifests' bytes, one read-only file per git blob id (``<id[:2]>/<id[2:]>``).

    The site's manifest mirror hard-links these files, not the work tree's: a new link
    changes a file's ctime, and git, which compares ctimes, would then read and hash every
    linked manifest again at each ``git status`` (seconds on a long log; the index is
    never refreshed without taking its lock, which a read-only build does not). The
    published copies are also no longer the work tree's files: an edit made in place in
    the work tree cannot reach them.

    A file is stored only after its bytes were read and found to be that blob, so a
    stored file always holds its blob. Deleting the store (with the rest of the cache)
    is always safe.
    """

    def __init__(self, root: Path) -> None:
        self.root = str(root)

    @classmethod
    def of(cls, git_dir: Path) -> BlobStore:
        """The store of the repository whose git folder is ``git_dir``."""
        return cls(git_dir / CACHE_DIR / BLOB_DIR)

    def path(self, oid: str) -> str:
        """Where blob ``oid`` is (or would be) stored."""
        return f"{self.root}/{oid[:2]}/{oid[2:]}"

    def held(self) -> set[str]:
        """The ids of every stored blob (one listing per folder, not a stat per file)."""
        found: set[str] = set()
        try:
            folders = [e.name for e in os.scandir(self.root) if len(e.name) == 2]
        except OSError:
            return found
        for folder in folders:
            with contextlib.suppress(OSError):
                found.update(folder + name for name in os.listdir(f"{self.root}/{folder}"))
        return found

    def fill(self, wanted: Mapping[str, str], root: Path) -> set[str]:
        """Store the blobs of ``wanted`` (file under ``root`` -> git blob id) not yet held;
        the ids of those held afterwards.

        A file whose bytes are no longer its blob (changed since git listed it) is not
        stored. Never raises: what cannot be stored is left out, and linked from the work
        tree instead.
        """
        held = self.held()
        for name, oid in wanted.items():
            if oid in held:
                continue
            try:
                data = (root / name).read_bytes()
                if git_blob_id(data) != oid:
                    continue
                self._add(oid, data)
            except OSError:
                continue
            held.add(oid)
        return held

    def _add(self, oid: str, data: bytes) -> None:
        # Read-only (the output's links share the inode); no fsync: the store is a cache.
        atomic_create(Path(self.path(oid)), data, mode=0o444, durable=False)


__all__ = ["BlobStore"]
