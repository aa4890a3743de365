"""Stream image files (local or http) through sha256 in constant memory, in parallel.

``hashlib`` releases the GIL while it digests a large buffer and ``readinto``
releases it while it reads, so plain threads use every core.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests
from rich.progress import TaskID

from pipeline.errors import ChecksumMismatchError, FetchError, InputError

CHUNK = 1 << 20  # 1 MiB: large enough to amortise calls, small enough to stay in cache


class ProgressSink(Protocol):
    """Where long work reports progress (``rich.progress.Progress`` fits)."""

    def add_task(self, description: str, *, total: float | None = ...) -> TaskID: ...

    def advance(self, task_id: TaskID, advance: float = ...) -> None: ...


class NullProgress:
    """A progress sink that shows nothing."""

    def add_task(self, description: str, *, total: float | None = None) -> TaskID:
        """Ignore a new task."""
        return TaskID(0)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        """Ignore progress."""


@dataclass(frozen=True)
class HashJob:
    """One file to check: where it is, what it is called, what it should be."""

    name: str
    location: str  # a local path or an http(s) URL
    size: int
    sha256: str


@dataclass(frozen=True)
class HashResult:
    """What was measured for one job."""

    job: HashJob
    size: int
    sha256: str

    @property
    def ok(self) -> bool:
        """Whether size and digest both match the metadata."""
        return self.size == self.job.size and self.sha256 == self.job.sha256

    def describe(self) -> str:
        """One line naming the file and both values compared."""
        if self.size != self.job.size:
            return f"{self.job.name}: size is {self.size} bytes, metadata says {self.job.size}"
        return f"{self.job.name}: sha256 is {self.sha256}, metadata says {self.job.sha256}"


def hash_file(
    path: Path, progress: ProgressSink, task: TaskID, chunk: int = CHUNK
) -> tuple[int, str]:
    """Size and sha256 of a local file, streamed through one reusable buffer."""
    digest = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    total = 0
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            digest.update(view[:n])
            total += n
            progress.advance(task, n)
    return total, digest.hexdigest()


def stream_url(url: str, session: requests.Session, chunk: int = CHUNK) -> Iterator[bytes]:
    """The body of ``url`` in blocks of ``chunk`` bytes, never held whole in memory.

    Raises:
        FetchError: the URL answered other than 200, or failed after the session's retries.
    """
    try:
        with session.get(url, stream=True, timeout=60) as resp:
            if resp.status_code != 200:
                raise FetchError(
                    f"{url}: HTTP {resp.status_code}", hint="is the compose complete? re-run later"
                )
            yield from resp.iter_content(chunk_size=chunk)
    except requests.RequestException as e:
        raise FetchError(
            f"{url}: {type(e).__name__} while downloading", hint="check the network, then re-run"
        ) from e


def hash_url(
    url: str, session: requests.Session, progress: ProgressSink, task: TaskID, chunk: int = CHUNK
) -> tuple[int, str]:
    """Size and sha256 of a remote file, streamed without storing it.

    Raises:
        FetchError: the URL could not be fetched after the session's retries.
    """
    digest = hashlib.sha256()
    total = 0
    for block in stream_url(url, session, chunk):
        digest.update(block)
        total += len(block)
        progress.advance(task, len(block))
    return total, digest.hexdigest()


def _measure(job: HashJob, session: requests.Session | None, progress: ProgressSink) -> HashResult:
    task = progress.add_task(job.name, total=job.size)
    if job.location.startswith(("http://", "https://")):
        size, sha = hash_url(job.location, session or requests.Session(), progress, task)
        return HashResult(job, size, sha)
    path = Path(job.location)
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise InputError(
            f"{job.name}: image file is missing ({path})",
            hint="is the compose complete? or pass --skip-checksums",
        ) from None
    if actual != job.size:  # no need to read it all to know it is wrong
        progress.advance(task, job.size)
        return HashResult(job, actual, "")
    size, sha = hash_file(path, progress, task)
    return HashResult(job, size, sha)


def verify_checksums(
    jobs: Sequence[HashJob],
    *,
    workers: int | None = None,
    session: requests.Session | None = None,
    progress: ProgressSink | None = None,
) -> list[HashResult]:
    """Hash every job, ``workers`` at a time (default: the available cores).

    Raises:
        ChecksumMismatchError: any size or digest differs; names the first and counts the rest.
        InputError: a local file is missing.
        FetchError: a URL could not be fetched.
    """
    sink = progress or NullProgress()
    workers = max(1, min(len(jobs) or 1, workers or len(os.sched_getaffinity(0))))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hash") as pool:
        results = list(pool.map(lambda j: _measure(j, session, sink), jobs))
    bad = [r for r in results if not r.ok]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ChecksumMismatchError(
            bad[0].describe() + more,
            hint="the compose is corrupt or incomplete; nothing was recorded",
        )
    return results
