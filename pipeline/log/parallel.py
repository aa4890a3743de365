"""Verifying many manifest files: in this process, or in worker processes.

With many files and several cores, shares of them are verified by worker processes
(``python -c``, running this very package), one per core, while this process waits.
Letting the workers verify every share is faster than verifying one share here: a worker
pickles its models into cache segments as it goes, and this process only unpickles them
(several times cheaper than pickling its own share after the workers are done). A worker
writes its results as cache segments (:mod:`pipeline.log.segments`); a worker that
fails, or whose output is not sound, has its share verified here instead.

Each file is read once: where its bytes are in memory for verification, their sha256 is
taken too and returned, so the index coverage check (:mod:`pipeline.log.coverage`)
compares the very bytes that were verified without reading the file again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.core.models.common import Manifest, Trust
from pipeline.log.cache import VerifyCache, partition_of
from pipeline.log.git import git_blob_id
from pipeline.log.segments import Entries, decode_segment, encode_segment, gc_paused
from pipeline.log.signing import ManifestRejected, verify_manifest

#: Verify in worker processes (one per core) when at least this many files miss.
PARALLEL_MIN_FILES = 2000

_SHA256 = re.compile(r"[0-9a-f]{64}")

#: A segment a worker wrote: its partition, its bytes, its entries.
WorkerSegment = tuple[str, bytes, Entries]


@dataclass
class Checked:
    """What :func:`verify_files` found, by name: the verified models, the rejection
    reasons, and the sha256 (hex) of the exact bytes checked, for every file."""

    verified: dict[str, Manifest] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def verify_files(
    root: Path,
    names: Sequence[str],
    trust: Trust,
    cache: VerifyCache | None,
    *,
    jobs: int | None = None,
) -> Checked:
    """Verify the manifest files ``names`` (relative to ``root``) with ``verify_manifest``.

    Returns the verified models, the rejection reasons and the sha256 of the bytes each
    file had when it was checked, by name. With many files and several cores, shares of
    them are verified by worker processes running the same code (``python -c ...``),
    one per core; a worker that fails has its share verified here instead, so the
    outcome never depends on it.

    Raises:
        OSError: a file could not be read (as without workers).
    """
    out = Checked()
    jobs = cpu_count() if jobs is None else jobs
    if jobs < 2 or len(names) < PARALLEL_MIN_FILES:
        _verify_here(root, names, trust, cache, out)
        return out
    shares = [list(names[i::jobs]) for i in range(jobs)]
    fingerprint = cache.fingerprint if cache is not None else ""
    with tempfile.TemporaryDirectory(prefix="fortnight-verify-") as tmp:
        workers = [
            _start_worker(Path(tmp) / str(i), root, share, trust, fingerprint)
            for i, share in enumerate(shares)
        ]
        for worker, share in zip(workers, shares, strict=True):
            result = _finish_worker(worker, share, fingerprint)
            if result is None:
                _verify_here(root, share, trust, cache, out)
                continue
            segments, reasons, digests = result
            for _, _, entries in segments:
                out.verified.update((name, entry[1]) for name, entry in entries.items())
            out.rejected.update(reasons)
            out.sha256.update(digests)
            if cache is not None:
                for partition, raw, entries in segments:
                    cache.adopt(partition, raw, entries)
    return out


def _verify_here(
    root: Path,
    names: Sequence[str],
    trust: Trust,
    cache: VerifyCache | None,
    out: Checked,
) -> None:
    for name in names:
        rel = PurePosixPath(name)
        data = (root / rel).read_bytes()
        out.sha256[name] = hashlib.sha256(data).hexdigest()
        try:
            manifest = verify_manifest(data, rel, trust)
        except ManifestRejected as e:
            out.rejected[name] = e.reason
            continue
        out.verified[name] = manifest
        if cache is not None:
            cache.put(name, data, manifest)


@dataclass
class _Worker:
    process: subprocess.Popen[bytes] | None
    output: Path


def _start_worker(
    base: Path, root: Path, names: list[str], trust: Trust, fingerprint: str
) -> _Worker:
    output = base.with_suffix(".out")
    request = base.with_suffix(".json")
    try:
        request.write_text(
            json.dumps(
                {
                    "root": str(root),
                    "names": names,
                    "trust": trust.model_dump_json(),
                    "fingerprint": fingerprint,
                }
            )
        )
        env = dict(os.environ)
        # The worker must import this very package, installed or not.
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, str(request), str(output)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except OSError:
        return _Worker(None, output)
    return _Worker(process, output)


def _finish_worker(
    worker: _Worker, names: list[str], fingerprint: str
) -> tuple[list[WorkerSegment], dict[str, str], dict[str, str]] | None:
    """A worker's segments (partition, raw bytes, entries), rejections and sha256 of each
    file's bytes, if sound."""
    if worker.process is None or worker.process.wait() != 0:
        return None
    try:
        data = worker.output.read_bytes()
    except OSError:
        return None
    header = _output_header(data)
    if header is None:
        return None
    end, reasons, layout, digests = header
    segments = _output_segments(data, end + 1, layout, fingerprint)
    if segments is None:
        return None
    seen = {name for _, _, entries in segments for name in entries}
    if len(seen) + len(reasons) != len(names) or not all(n in seen or n in reasons for n in names):
        return None
    if len(digests) != len(names) or not all(n in digests for n in names):
        return None
    return segments, reasons, digests


def _output_header(
    data: bytes,
) -> tuple[int, dict[str, str], list[Any], dict[str, str]] | None:
    """A worker output's header line: where it ends, the rejections, the segment layout,
    the sha256 of each file's bytes."""
    end = data.find(b"\n")
    try:
        header = json.loads(data[:end]) if end >= 0 else None
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    reasons, layout = header.get("reasons"), header.get("segments")
    digests = header.get("sha256")
    if (
        not isinstance(reasons, dict)
        or not all(isinstance(r, str) for r in reasons.values())
        or not isinstance(layout, list)
        or not isinstance(digests, dict)
        or not all(isinstance(d, str) and _is_sha256(d) for d in digests.values())
    ):
        return None
    return end, reasons, layout, digests


def _is_sha256(text: str) -> bool:
    return _SHA256.fullmatch(text) is not None


def _output_segments(
    data: bytes, offset: int, layout: list[Any], fingerprint: str
) -> list[WorkerSegment] | None:
    """The segments after a worker output's header, as its ``layout`` says, if sound:
    each decodes, holds only paths of its partition, no path twice, and they fill the rest
    of ``data`` exactly."""
    segments: list[WorkerSegment] = []
    seen: set[str] = set()
    for item in layout:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or type(item[1]) is not int
            or item[1] < 0
        ):
            return None
        partition, length = item
        raw = data[offset : offset + length]
        offset += length
        entries = decode_segment(fingerprint, raw)
        if (
            entries is None
            or len(raw) != length
            or not all(
                partition_of(n) == partition
                and n not in seen
                and type(e) is tuple
                and len(e) == 2
                and isinstance(e[1], Manifest)
                for n, e in entries.items()
            )
        ):
            return None
        seen.update(entries)
        segments.append((partition, raw, entries))
    return segments if offset == len(data) else None


_WORKER_CODE = "import pipeline.log.parallel as v; v.worker_main()"


def worker_main(argv: Sequence[str] | None = None) -> None:
    """A worker process: verify the files a request names; write models and reasons.

    Its output is a JSON header line (the rejection reasons, and the partition and
    length of each segment), then one segment per partition.
    """
    request_path, output_path = (sys.argv[1:] if argv is None else argv)[:2]
    request = json.loads(Path(request_path).read_text())
    root = Path(request["root"])
    trust = Trust.model_validate_json(request["trust"], strict=True)
    by_partition: dict[str, Entries] = {}
    reasons: dict[str, str] = {}
    digests: dict[str, str] = {}
    with gc_paused():
        for name in request["names"]:
            rel = PurePosixPath(name)
            data = (root / rel).read_bytes()
            digests[name] = hashlib.sha256(data).hexdigest()
            try:
                manifest = verify_manifest(data, rel, trust)
            except ManifestRejected as e:
                reasons[name] = e.reason
                continue
            partition = partition_of(name)
            if partition is None:  # never from a walk of the log; the caller verifies the share
                raise SystemExit(3)
            by_partition.setdefault(partition, {})[name] = (git_blob_id(data), manifest)
        bodies = [
            (partition, encode_segment(request["fingerprint"], entries))
            for partition, entries in sorted(by_partition.items())
        ]
    header = {
        "reasons": reasons,
        "segments": [[p, len(body)] for p, body in bodies],
        "sha256": digests,
    }
    with open(output_path, "wb") as out:
        out.write(json.dumps(header).encode() + b"\n")
        for _, body in bodies:
            out.write(body)


__all__ = ["PARALLEL_MIN_FILES", "Checked", "cpu_count", "verify_files", "worker_main"]
