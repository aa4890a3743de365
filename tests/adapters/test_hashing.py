"""Streaming checksums of image files, local and over HTTP, in parallel."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.progress import Progress

from pipeline.adapters.hashing import CHUNK, HashJob, verify_checksums
from pipeline.adapters.ingest import http_session
from pipeline.errors import ChecksumMismatchError, FetchError, InputError
from tests.conftest import StaticServer


def make_file(path: Path, size: int) -> HashJob:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    path.write_bytes(data)
    return HashJob(path.name, str(path), len(data), hashlib.sha256(data).hexdigest())


def test_files_larger_than_a_chunk_hash_correctly_in_parallel(tmp_path: Path) -> None:
    jobs = [make_file(tmp_path / f"img{n}", CHUNK * 2 + n * 1000 + 7) for n in range(4)]
    progress = Progress(disable=True)
    results = verify_checksums(jobs, workers=2, progress=progress)
    assert [r.sha256 for r in results] == [j.sha256 for j in jobs]
    # Progress saw every byte of every file.
    assert sorted(t.completed for t in progress.tasks) == sorted(j.size for j in jobs)


def test_empty_file(tmp_path: Path) -> None:
    job = make_file(tmp_path / "empty", 0)
    assert verify_checksums([job])[0].sha256 == hashlib.sha256(b"").hexdigest()


def test_mismatches_name_the_file_and_both_values(tmp_path: Path) -> None:
    good = make_file(tmp_path / "good", 5000)
    wrong_sha = HashJob("a.qcow2", good.location, good.size, "0" * 64)
    wrong_size = HashJob("b.raw.xz", good.location, good.size + 1, good.sha256)
    with pytest.raises(ChecksumMismatchError) as exc:
        verify_checksums([good, wrong_sha, wrong_size])
    assert exc.value.message == (
        f"a.qcow2: sha256 is {good.sha256}, metadata says {'0' * 64} (and 1 more)"
    )
    with pytest.raises(
        ChecksumMismatchError, match="b.raw.xz: size is 5000 bytes, metadata says 5001"
    ):
        verify_checksums([wrong_size])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"gone.qcow2: image file is missing"):
        verify_checksums([HashJob("gone.qcow2", str(tmp_path / "gone"), 1, "0" * 64)])


def test_over_http_streams_and_checks(
    tmp_path: Path, serve_dir: Callable[[Path], StaticServer]
) -> None:
    job = make_file(tmp_path / "remote.qcow2", CHUNK + 123)
    server = serve_dir(tmp_path)
    remote = HashJob(job.name, server.url + "remote.qcow2", job.size, job.sha256)
    assert verify_checksums([remote], session=http_session(backoff=0))[0].ok
    with pytest.raises(ChecksumMismatchError, match="size is"):
        verify_checksums([HashJob("x", remote.location, job.size - 1, job.sha256)])
    with pytest.raises(FetchError, match=r"missing.qcow2: HTTP 404"):
        verify_checksums([HashJob("m", server.url + "missing.qcow2", 1, "0" * 64)])
