"""A load reads each manifest file once: the index coverage check compares the sha256 of
the very bytes that were verified (in this process or in a worker), never a second read."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from pipeline.core.models.common import Manifest, Trust
from pipeline.errors import VerificationError
from pipeline.log import parallel
from pipeline.log.reader import LogReport
from pipeline.log.signing import sign_manifest, verify_manifest
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions
from tests.conftest import Log, compose_on, make_result


def populated(make_log: Callable[..., Log]) -> Log:
    """A log with three composes and a test result, recorded (indexed and committed)."""
    log = make_log()
    composes = [compose_on(d) for d in (14, 15, 16)]
    manifests: list[Manifest] = [*composes, make_result(composes[0], started=composes[0].created)]
    for manifest in manifests:
        log.log.record(
            [manifest],
            [log.signers[manifest.ROLE]],
            log.log.load_trust(),
            "test: record",
            WriteOptions(),
        )
    return log


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often this process read each file, by path."""
    seen: Counter[str] = Counter()
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        seen[str(self)] += 1
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    return seen


def manifest_reads(log: Log, reads: Counter[str]) -> dict[str, int]:
    """The reads of the log's manifest files, by name (every manifest, read or not)."""
    names = ManifestLog(log.repo).reader.manifest_names()
    return {name: reads[str(log.log.root / name)] for name in names}


def test_a_cold_load_reads_each_manifest_once(
    make_log: Callable[..., Log], reads: Counter[str]
) -> None:
    log = populated(make_log)
    reads.clear()
    ml = ManifestLog(log.repo)
    report = ml.verify_all(ml.load_trust())
    assert report.failures == [] and len(report.verified) == 4
    assert set(manifest_reads(log, reads).values()) == {1}


def three_workers(log: Log, monkeypatch: pytest.MonkeyPatch) -> LogReport:
    """What a load of ``log`` must report, verified in this process alone; then make every
    later load verify in three worker processes."""
    plain = ManifestLog(log.repo, cache=False)
    expected = plain.verify_all(plain.load_trust())
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 3)
    return expected


def test_workers_hand_back_what_they_read(
    make_log: Callable[..., Log], reads: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = populated(make_log)
    expected = three_workers(log, monkeypatch)
    reads.clear()
    ml = ManifestLog(log.repo)
    assert ml.verify_all(ml.load_trust()) == expected
    here = manifest_reads(log, reads)
    # The workers verified every share; this process read none of them again, neither to
    # verify nor for the coverage check.
    assert here and set(here.values()) == {0}


def test_the_share_of_a_failed_worker_is_read_here_once(
    make_log: Callable[..., Log], reads: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = populated(make_log)
    expected = three_workers(log, monkeypatch)
    start = parallel._start_worker

    def second_fails(base: Path, *args: Any) -> Any:
        if base.name == "1":  # as when the interpreter cannot be started
            return parallel._Worker(None, base.with_suffix(".out"))
        return start(base, *args)

    monkeypatch.setattr(parallel, "_start_worker", second_fails)
    reads.clear()
    ml = ManifestLog(log.repo)
    assert ml.verify_all(ml.load_trust()) == expected
    here = manifest_reads(log, reads)
    share = set(sorted(here, key=lambda r: r.split("/"))[1::3])
    assert {name for name, count in here.items() if count} == share
    assert max(here.values()) == 1


def test_the_bytes_verified_are_the_bytes_covered(
    make_log: Callable[..., Log], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-signed rewrite of a recorded compose, swapped back to the recorded bytes right
    after it verified: the load would hold the rewrite, so it fails closed."""
    log = populated(make_log)
    old = compose_on(15)
    path = log.log.root / old.relpath()
    recorded = path.read_bytes()
    forged = old.model_copy(update={"respin": 7})
    path.write_bytes(sign_manifest(forged, [log.signers["compose"]]))

    def swap_back(raw: bytes, relpath: PurePosixPath, trust: Trust) -> Manifest:
        manifest = verify_manifest(raw, relpath, trust)
        if relpath == old.relpath():
            path.write_bytes(recorded)
        return manifest

    monkeypatch.setattr(parallel, "verify_manifest", swap_back)
    ml = ManifestLog(log.repo)
    with pytest.raises(VerificationError) as raised:
        ml.load_verified(ml.load_trust())
    assert f"{old.relpath()}: changed since it was recorded" in raised.value.message


def _header(digests: object) -> bytes:
    return json.dumps({"reasons": {}, "segments": [], "sha256": digests}).encode() + b"\n"


@pytest.mark.parametrize(
    "digests",
    [None, [], {"a.json": "AB" * 32}, {"a.json": "ab" * 31}, {"a.json": 1}],
    ids=["missing", "not-a-map", "upper-case", "short", "not-a-string"],
)
def test_a_worker_output_without_sound_digests_is_not_taken(digests: object) -> None:
    assert parallel._output_header(_header({"a.json": "ab" * 32})) is not None
    assert parallel._output_header(_header(digests)) is None
