"""The tracker lifecycle against Bugzilla: python-bugzilla over HTTP to the REST emulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.adapters.bugzilla import BugzillaTracker
from pipeline.core.config import ProductConfig, load_product
from pipeline.core.state import State
from pipeline.core.tracker import TrackerBackend
from pipeline.errors import TrackerError
from pipeline.log.signing import load_signer
from pipeline.log.writer import WriteOptions
from pipeline.stages.tracking import make_tracker, sync_tracker
from tests.bugzilla_emulator import DEFAULT_API_KEY, BugzillaEmulator, bugzilla_server
from tests.conftest import NOW, ROOT, Log, compose_on, doomed_on, make_result, run_invoke

__all__ = ["bugzilla_server"]  # the fixture, re-exported for pytest


def bugzilla_toml(url: str) -> bytes:
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text()
    toml = toml.replace(
        'backend = "local"  # or "bugzilla", with a [tracker.bugzilla] table',
        'backend = "bugzilla"',
    )
    toml += (
        f'\n[tracker.bugzilla]\nurl = "{url}"\nproduct = "Fedora"\n'
        'component = "fedora-atomic"\nversion = "rawhide"\ntag_field = "whiteboard"\n'
    )
    return toml.encode()


@pytest.fixture
def bz_log(make_log: Callable[..., Log], bugzilla_server: BugzillaEmulator) -> Log:
    return make_log(product_toml=bugzilla_toml(bugzilla_server.url))


def record(log: Log, *manifests: object) -> None:
    """Put manifests in the log as the pipeline would (signed by their roles, committed)."""
    trust = log.log.load_trust()
    for m in manifests:
        signer = load_signer(m.ROLE, log.env, trust)  # type: ignore[attr-defined]
        log.log.record([m], [signer], trust, "test: setup", WriteOptions())  # type: ignore[list-item]


def fast(product: ProductConfig) -> Callable[[State], TrackerBackend]:
    bz = product.tracker.bugzilla
    assert bz is not None

    def make(state: State) -> TrackerBackend:
        return BugzillaTracker(
            bz.url,
            bz.product,
            bz.component,
            bz.version,
            tag_field=bz.tag_field,
            api_key=DEFAULT_API_KEY,
            backoff=0,
            timeout=2.0,
        )

    return make


def sync(log: Log, product: ProductConfig, day: int) -> list[str]:
    report = sync_tracker(
        log.log,
        product,
        signers=[load_signer("release", log.env, log.log.load_trust())],
        options=WriteOptions(),
        now=NOW.replace(day=day, hour=23),
        backend_for=fast(product),
    )
    return [f"{e.action} {e.bug}" for e in report.events]


def test_bugzilla_lifecycle(bz_log: Log, bugzilla_server: BugzillaEmulator) -> None:
    product = load_product(bz_log.log.root, "atomic-host")
    assert isinstance(make_tracker(product, None, {}), BugzillaTracker)  # type: ignore[arg-type]
    good = compose_on(10)
    record(bz_log, good, make_result(good, started=NOW.replace(day=10)))
    assert sync(bz_log, product, 10) == []
    bad = compose_on(11)
    record(bz_log, bad, make_result(bad, fail=["checksum"], started=NOW.replace(day=11)))
    [opened] = sync(bz_log, product, 11)
    [bug_id] = bugzilla_server.bug_ids()
    assert opened == f"opened bz{bug_id}"
    bug = bugzilla_server.bug(bug_id)
    assert bug["whiteboard"] == "fortnight-atomic-host"
    assert (bug["product"], bug["component"], bug["version"]) == (
        "Fedora",
        "fedora-atomic",
        "rawhide",
    )
    assert bug["summary"] == f"Fedora Atomic Host: compose {bad.compose_id} failed"
    record(bz_log, doomed_on(12))
    assert sync(bz_log, product, 12) == [f"commented bz{bug_id}"]
    assert sync(bz_log, product, 12) == []  # nothing new: no second comment
    fixed = compose_on(13)
    record(bz_log, fixed, make_result(fixed, started=NOW.replace(day=13)))
    assert sync(bz_log, product, 13) == [f"closed bz{bug_id}"]
    assert bugzilla_server.bug(bug_id)["status"] == "CLOSED"
    assert bugzilla_server.bug_ids() == [bug_id]


@pytest.mark.parametrize("fault", ["503", "timeout", "apply-then-503", "reset"])
def test_a_fault_on_filing_never_files_twice(
    fault: str,
    bz_log: Log,
    bugzilla_server: BugzillaEmulator,
) -> None:
    product = load_product(bz_log.log.root, "atomic-host")
    bad = compose_on(11)
    record(bz_log, bad, make_result(bad, fail=["format"], started=NOW.replace(day=11)))
    bugzilla_server.inject(fault, method="POST", path="/rest/bug")
    with pytest.raises(TrackerError):
        sync(bz_log, product, 11)
    assert sync(bz_log, product, 11)[0].startswith("opened bz")
    assert len(bugzilla_server.bug_ids()) == 1
    assert sync(bz_log, product, 11) == []


def test_cli_exit_code_when_bugzilla_stays_down(
    bz_log: Log,
    bugzilla_server: BugzillaEmulator,
    tmp_path: Path,
) -> None:
    env = {**bz_log.env, "FORTNIGHT_BUGZILLA_API_KEY": DEFAULT_API_KEY}
    bugzilla_server.inject("503", path_prefix="/rest/", times=100)
    proc = run_invoke(
        "compose.record",
        "--failed",
        "--compose-id",
        "Fedora-Atomic-22-20150911.0",
        "--reason",
        "DOOMED",
        "--repo",
        str(bz_log.repo),
        env=env,
    )
    assert proc.returncode == 7, proc.stderr
    *retries, last = proc.stderr.strip().splitlines()
    assert last.startswith("error: bugzilla http://127.0.0.1:")
    assert "search failed after 4 tries (HTTP 503)" in last
    assert [r.split("; ")[-1] for r in retries] == [
        "try 2 of 4 in 0.5s",
        "try 3 of 4 in 1.0s",
        "try 4 of 4 in 2.0s",
    ]
    assert DEFAULT_API_KEY not in proc.stderr + proc.stdout
    assert (
        "recorded: manifests/atomic-host/composes/Fedora-Atomic-22-20150911.0.json" in proc.stdout
    )
    bugzilla_server.reset()
    ok = run_invoke("tracker.sync", "--repo", str(bz_log.repo), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "tracker: opened bz" in ok.stdout
