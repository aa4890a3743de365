"""The compose stage end to end: real metadata, real files, a real signed git log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.adapters.ingest import http_session, load_compose
from pipeline.core.config import load_product
from pipeline.errors import ChecksumMismatchError, InputError
from pipeline.log.signing import load_signer
from pipeline.log.writer import WriteOptions
from pipeline.stages.compose import (
    RecordOutcome,
    failed_compose_manifest,
    record_compose,
    record_failed_compose,
)
from tests.conftest import NOW, ComposeTree, Log, StaticServer


def _record(log: Log, source: str, verify: bool = True, dry_run: bool = False) -> RecordOutcome:
    ml = log.log
    signer = load_signer("compose", log.env, ml.load_trust())
    return record_compose(
        ml,
        load_product(ml.root, "atomic-host"),
        load_compose(source, http_session(backoff=0)),
        [signer],
        NOW,
        verify=verify,
        options=WriteOptions(dry_run=dry_run),
    )


def test_record_checks_files_signs_and_commits(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    log = make_log()
    tree = make_compose_tree("Fedora-AtomicHost-28-20180515.1")
    outcome = _record(log, str(tree.root))
    manifest = outcome.manifest
    assert manifest.compose_id == "Fedora-AtomicHost-28-20180515.1"
    assert manifest.respin == 1 and manifest.checksums_verified
    assert len(outcome.hashed) == len(manifest.images) == 8
    assert log.commits()[0] == "compose: record Fedora-AtomicHost-28-20180515.1"
    verified = log.log.load_verified(log.log.load_trust())
    assert [v.manifest for v in verified] == [manifest]
    # Re-running is a successful no-op.
    again = _record(log, str(tree.root))
    assert again.write.written == [] and again.write.commit is None


def test_a_checksum_mismatch_records_nothing(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    log = make_log()
    tree = make_compose_tree()
    image = tree.compose_dir / tree.atomic_x86_64()[1]["path"]
    data = bytearray(image.read_bytes())
    data[100] ^= 0xFF
    image.write_bytes(bytes(data))
    head = log.git("rev-parse", "HEAD")
    with pytest.raises(
        ChecksumMismatchError, match=rf"{tree.atomic_x86_64()[1]['path']}: sha256 is"
    ):
        _record(log, str(tree.root))
    assert log.git("rev-parse", "HEAD") == head
    assert not (log.log.root / "atomic-host" / "composes").exists()


def test_skip_checksums_records_metadata_only(
    make_log: Callable[..., Log],
    f28_metadata_dir: Path,
) -> None:
    log = make_log()
    outcome = _record(log, str(f28_metadata_dir), verify=False)
    assert outcome.manifest.checksums_verified is False
    with pytest.raises(InputError, match="image file is missing"):
        _record(make_log("second"), str(f28_metadata_dir), verify=True)


def test_record_from_url_with_checksums(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    serve_dir: Callable[[Path], StaticServer],
) -> None:
    log = make_log()
    tree = make_compose_tree()
    server = serve_dir(tree.root.parent)
    outcome = _record(log, server.url + "Fedora-28-20180425.0/")
    manifest = outcome.manifest
    assert manifest.source == server.url + "Fedora-28-20180425.0/compose/"
    image_requests = [r for r in server.requests if "/images/" in r]
    assert len(image_requests) == len(manifest.images)


def test_dry_run_hashes_nothing_and_writes_nothing(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    log = make_log()
    outcome = _record(log, str(make_compose_tree().root), dry_run=True)
    assert outcome.write.dry_run and outcome.write.written
    assert not (log.log.root / "atomic-host" / "composes").exists()


def test_failed_compose(make_log: Callable[..., Log]) -> None:
    log = make_log()
    product = load_product(log.log.root, "atomic-host")
    manifest = failed_compose_manifest(
        product,
        "Fedora-Atomic-22-20150915.n.1",
        "DOOMED: runroot task failed",
        "https://koji/log",
        NOW,
    )
    assert (manifest.date, manifest.compose_type, manifest.respin, manifest.outcome) == (
        "20150915",
        "nightly",
        1,
        "no-image",
    )
    signer = load_signer("compose", log.env, log.log.load_trust())
    record_failed_compose(log.log, manifest, [signer], WriteOptions())
    assert log.commits()[0] == "compose: record Fedora-Atomic-22-20150915.n.1 (no image)"
    with pytest.raises(InputError, match="--compose-id nonsense: no date in it"):
        failed_compose_manifest(product, "nonsense", "r", None, NOW)
    with pytest.raises(InputError, match="--reason: must not be empty"):
        failed_compose_manifest(product, "Fedora-Atomic-22-20150915.0", " ", None, NOW)
    with pytest.raises(InputError, match="not a valid compose id"):
        failed_compose_manifest(product, "../20150915.0", "r", None, NOW)
