"""CHECKSUM and SHA256SUMS, checked against Fedora's real published CHECKSUM file."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from pipeline.adapters.ingest import load_compose
from pipeline.core.outputs import checksum_file, sha256sums
from pipeline.stages.compose import build_compose_manifest
from tests.conftest import FIXTURES, NOW, make_compose, product_config


def test_checksum_file_matches_what_fedora_published(f28_metadata_dir: Path) -> None:
    manifest = build_compose_manifest(
        load_compose(str(f28_metadata_dir)), product_config(), NOW, checksums_verified=False
    )
    x86 = [i for i in manifest.images if i.arch == "x86_64"]
    published = (FIXTURES / "fedora-websites-Fedora-AtomicHost-28-1.1-x86_64-CHECKSUM").read_text()
    body = published.split("\n\n", 1)[1].split("-----BEGIN PGP SIGNATURE-----")[0]
    assert checksum_file(x86) == body


def test_both_formats_verify_with_sha256sum(tmp_path: Path) -> None:
    data = {"a.qcow2": b"qcow", "b.raw.xz": b"raw"}
    images = []
    for name, content in data.items():
        (tmp_path / name).write_bytes(content)
        base = make_compose().images[0]
        images.append(
            base.model_copy(
                update={
                    "path": f"x/{name}",
                    "size": len(content),
                    "checksums": base.checksums.model_copy(
                        update={"sha256": hashlib.sha256(content).hexdigest()}
                    ),
                }
            )
        )
    (tmp_path / "CHECKSUM").write_text(checksum_file(images))
    (tmp_path / "SHA256SUMS").write_text(sha256sums(images))
    for name in ("CHECKSUM", "SHA256SUMS"):
        proc = subprocess.run(
            ["sha256sum", "-c", name], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.count(": OK") == 2
    (tmp_path / "a.qcow2").write_bytes(b"tampered")
    bad = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1 and "a.qcow2: FAILED" in bad.stdout
