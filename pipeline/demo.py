"""The main job on embedded defaults: a scratch manifest log fed with real Fedora metadata.

Until the full day-by-day demo exists, this records the bundled Fedora 28 GA
compose metadata (as Pungi wrote it) and a compose that produced no image into
a fresh log with keys generated for the run, then verifies the log.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.compose import (
    RecordOutcome,
    failed_compose_manifest,
    record_compose,
    record_failed_compose,
)
from pipeline.config import load_product
from pipeline.ingest import load_compose
from pipeline.models import ROLES
from pipeline.signing import empty_trust, load_signer
from pipeline.store import LogReport, ManifestLog, WriteOptions, dump_json, init_log

DATA = Path(__file__).parent / "data"
DEMO_COMPOSE = "Fedora-28-20180425.0"
DEMO_DOOMED = "Fedora-28-20180426.0"


@dataclass(frozen=True)
class DemoResult:
    """What the demo made, for the summary."""

    repo: Path
    keys: Path
    recorded: RecordOutcome
    doomed: RecordOutcome
    report: LogReport


def run_demo(workdir: Path, product_toml: Path, now: datetime) -> DemoResult:
    """Build a scratch log in ``workdir`` and record the bundled compose into it.

    Raises:
        FortnightError: any step failed (the demo uses the same code as the tasks).
    """
    repo, keys = workdir / "log", workdir / "keys"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    init_log(
        repo,
        {"atomic-host": product_toml.read_bytes()},
        dump_json(empty_trust().model_dump(mode="json")),
    )
    log = ManifestLog(repo)
    env = {}
    for role in ROLES:
        key = log.add_trusted_key(role, keys)
        env[f"FORTNIGHT_KEY_{role.upper()}"] = str(key.private_path)
    trust = log.load_trust()

    product = load_product(log.root, "atomic-host")
    signer = load_signer("compose", env, trust)
    compose_dir = workdir / "composes" / DEMO_COMPOSE
    shutil.copytree(DATA / "fedora-28", compose_dir)
    # The bundled metadata is real, the multi-GiB images are not here: record
    # the metadata as Pungi wrote it, without checking files.
    recorded = record_compose(
        log,
        product,
        load_compose(str(compose_dir)),
        [signer],
        now,
        verify=False,
        options=WriteOptions(),
    )
    doomed = record_failed_compose(
        log,
        failed_compose_manifest(
            product, DEMO_DOOMED, "Pungi status DOOMED: image build failed", None, now
        ),
        [signer],
        WriteOptions(),
    )
    return DemoResult(repo, keys, recorded, doomed, log.verify_all(log.load_trust()))
