"""Atomic file writes: a temp file in the same folder, fsync, then rename or link."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _write_temp(path: Path, data: bytes, mode: int, *, durable: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically: readers see the old or the new file."""
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_create(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> bool:
    """Create ``path`` with ``data`` atomically, never overwriting.

    Returns False (and writes nothing) when ``path`` already exists. ``durable=False``
    skips the fsync, for caches that write thousands of files and can be rebuilt.
    """
    tmp = _write_temp(path, data, mode, durable=durable)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True
