"""What every check shares: its two errors and the read size."""

from __future__ import annotations

CHUNK = 1 << 20  # read (and decompress) 1 MiB at a time, as pipeline.adapters.hashing does


class CheckFailed(Exception):
    """The image failed a check; the message is the one line to show, naming the file."""


class UsageError(Exception):
    """The check could not run: unknown check, missing or malformed input."""
