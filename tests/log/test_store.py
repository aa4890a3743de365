"""The manifest store: write-once files, one commit per action, locking, push races."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.core.models.manifests import ComposeManifest
from pipeline.errors import ConflictError, KeyConfigError, StoreError, VerificationError
from pipeline.log.git import PushConfig
from pipeline.log.signing import sign_manifest
from pipeline.log.store import ManifestLog
from pipeline.log.writer import PendingManifest, WriteOptions, WriteResult
from tests.conftest import NOW, ComposeTree, Log, make_compose, run_invoke


def pending(log: Log, manifest: ComposeManifest) -> PendingManifest:
    return PendingManifest(
        manifest.relpath(), sign_manifest(manifest, [log.signers["compose"]]), manifest
    )


def write(
    log: Log,
    *manifests: ComposeManifest,
    commit: bool = True,
    push: PushConfig | None = None,
    dry_run: bool = False,
) -> WriteResult:
    ml = log.log
    return ml.write(
        [pending(log, m) for m in manifests],
        ml.load_trust(),
        message="compose: record test",
        commit=commit,
        push=push,
        dry_run=dry_run,
        signers=[log.signers["compose"]],
    )


def test_write_commits_once_and_rerun_is_a_no_op(make_log: Callable[..., Log]) -> None:
    log = make_log()
    before = log.commits()
    a, b = make_compose(), make_compose(compose_id="Fedora-Atomic-22-20150916.0", date="20150916")
    result = log.log.write(
        [pending(log, a), pending(log, b)],
        log.log.load_trust(),
        message="compose: record two",
        signers=[log.signers["compose"]],
    )
    assert result.written == [a.relpath(), b.relpath()]
    assert result.commit == log.git("rev-parse", "HEAD").strip()
    assert log.commits() == ["compose: record two", *before]
    assert log.git("status", "--porcelain") == ""
    # Same content, a later `created`: a successful no-op, no new commit.
    again = log.log.write(
        [pending(log, make_compose(created=NOW.replace(hour=13)))],
        log.log.load_trust(),
        message="compose: record again",
    )
    assert again.written == [] and again.unchanged == [a.relpath()] and again.commit is None
    assert log.commits()[0] == "compose: record two"


def test_different_content_under_same_identity_is_a_conflict(make_log: Callable[..., Log]) -> None:
    log = make_log()
    write(log, make_compose())
    original = (log.log.root / make_compose().relpath()).read_bytes()
    with pytest.raises(
        ConflictError, match=r"already recorded with different content \(differs in respin\)"
    ):
        write(log, make_compose(respin=1))
    assert (log.log.root / make_compose().relpath()).read_bytes() == original


def test_nothing_is_written_when_one_of_several_conflicts(make_log: Callable[..., Log]) -> None:
    log = make_log()
    write(log, make_compose())
    fresh = make_compose(compose_id="Fedora-Atomic-22-20150917.0", date="20150917")
    with pytest.raises(ConflictError):
        write(log, fresh, make_compose(label="RC-1.0"))
    assert not (log.log.root / fresh.relpath()).exists()
    assert log.git("status", "--porcelain") == ""


def test_dry_run_and_no_commit(make_log: Callable[..., Log]) -> None:
    log = make_log()
    head = log.git("rev-parse", "HEAD")
    plan = write(log, make_compose(), dry_run=True)
    assert plan.written == [make_compose().relpath()]
    assert not (log.log.root / make_compose().relpath()).exists()
    write(log, make_compose(), commit=False)
    assert (log.log.root / make_compose().relpath()).exists()
    assert log.git("rev-parse", "HEAD") == head
    assert log.git("status", "--porcelain").strip().startswith("??")


def test_a_failed_git_commit_rolls_back(make_log: Callable[..., Log]) -> None:
    log = make_log()
    # An index lock held by someone else makes `git add` fail.
    lock = log.repo / ".git" / "index.lock"
    lock.write_text("")
    with pytest.raises(StoreError, match="git add failed"):
        write(log, make_compose())
    lock.unlink()
    assert not (log.log.root / make_compose().relpath()).exists()
    assert log.git("status", "--porcelain") == ""


def test_an_existing_tampered_file_fails_closed(make_log: Callable[..., Log]) -> None:
    log = make_log()
    write(log, make_compose())
    path = log.log.root / make_compose().relpath()
    path.write_text(path.read_text().replace('"respin": 0', '"respin": 7'))
    with pytest.raises(VerificationError, match="bad signature"):
        write(log, make_compose())


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a git repository"):
        ManifestLog(tmp_path).require_repo()


def test_verify_all_skips_schema_and_dotfiles_and_reports_failures(
    make_log: Callable[..., Log],
) -> None:
    log = make_log()
    write(log, make_compose())
    (log.log.root / "schema").mkdir()
    (log.log.root / "schema" / "compose.schema.json").write_text("{}")
    (log.log.root / "atomic-host" / "composes" / ".tmp.json").write_text("x")
    stray = log.log.root / "atomic-host" / "composes" / "stray.json"
    stray.write_text("{}")
    report = log.log.verify_all(log.log.load_trust())
    assert [v.path for v in report.verified] == [make_compose().relpath()]
    assert report.failures == [
        (
            "manifests/atomic-host/composes/stray.json",
            "schema error: envelope signed: Field required (and 1 more)",
        )
    ]
    assert report.counts() == {"compose": 1}


def _record_failed(
    repo: Path, env: dict[str, str], compose_id: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_invoke(
        "compose.record",
        "--failed",
        "--compose-id",
        compose_id,
        "--reason",
        "DOOMED",
        "--repo",
        str(repo),
        *extra,
        env=env,
    )


def test_two_processes_recording_into_one_checkout_both_land(make_log: Callable[..., Log]) -> None:
    log = make_log()
    ids = [f"Fedora-Atomic-22-201509{d:02d}.0" for d in range(1, 9)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda cid: _record_failed(log.repo, log.env, cid), ids))
    assert [r.returncode for r in results] == [0] * len(ids), [r.stderr for r in results]
    recorded = log.git("log", "--format=%s").splitlines()
    assert sorted(m for m in recorded if m.startswith("compose:")) == sorted(
        f"compose: record {cid} (no image)" for cid in ids
    )
    assert log.git("status", "--porcelain") == ""
    verified = [v.path for v in log.log.load_verified(log.log.load_trust())]
    assert len([p for p in verified if p.parts[1] == "composes"]) == len(ids)
    # Each process also synced the tracker, one at a time: one bug, every compose once.
    events = sorted(p.name for p in verified if p.parts[1] == "trackers")
    assert len(events) == len(ids)
    assert len([e for e in events if "-opened-" in e]) == 1
    assert {e.split("-", 2)[0] for e in events} == {"local1"}


@pytest.fixture
def remote_and_clones(make_log: Callable[..., Log], tmp_path: Path) -> tuple[Path, Log, Log]:
    origin = make_log("origin")
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(origin.repo), str(bare)], check=True)
    clones = []
    for name in ("runner-a", "runner-b"):
        path = tmp_path / name
        subprocess.run(["git", "clone", "--quiet", str(bare), str(path)], check=True)
        for key, value in (("user.email", f"{name}@ci"), ("user.name", name)):
            subprocess.run(["git", "config", key, value], cwd=path, check=True)
        clones.append(Log(repo=path, keydir=origin.keydir, signers=origin.signers, env=origin.env))
    return bare, clones[0], clones[1]


def remote_subjects(bare: Path) -> list[str]:
    return subprocess.run(
        ["git", "log", "--format=%s", "main"], cwd=bare, check=True, capture_output=True, text=True
    ).stdout.splitlines()


def remote_files(bare: Path) -> list[str]:
    """Every file on the remote's main branch."""
    out = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "main"],
        cwd=bare,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()


def test_push_rebases_and_retries_on_a_race(remote_and_clones: tuple[Path, Log, Log]) -> None:
    bare, a, b = remote_and_clones
    push = PushConfig(remote="origin")
    write(a, make_compose(), push=push)
    # b is now behind: its push is rejected, it rebases, retries, and lands.
    other = make_compose(compose_id="Fedora-Atomic-22-20150916.0", date="20150916")
    result = write(b, other, push=push)
    assert result.pushed
    subjects = remote_subjects(bare)
    assert subjects[:2] == ["compose: record test", "compose: record test"]
    files = remote_files(bare)
    for m in (make_compose(), other):
        assert f"manifests/{m.relpath()}" in files


def test_a_push_that_finds_the_remote_ref_locked_lands_without_a_rebuild(
    remote_and_clones: tuple[Path, Log, Log],
) -> None:
    """Another push holds the remote branch's lock: the remote has not moved, so the commit
    is pushed again as it is (not rebuilt), and lands once the lock is gone."""
    bare, a, _ = remote_and_clones
    lock = bare / "refs" / "heads" / "main.lock"
    lock.write_text("")
    sleeps: list[float] = []

    def other_push_finishes(seconds: float) -> None:
        sleeps.append(seconds)
        lock.unlink(missing_ok=True)

    ml = a.log
    ml.git.sleep = other_push_finishes
    compose = make_compose()
    result = ml.write(
        [pending(a, compose)],
        ml.load_trust(),
        message="compose: record test",
        push=PushConfig(remote="origin"),
        signers=[a.signers["compose"]],
    )
    assert result.pushed and result.commit is not None
    assert len(sleeps) == 1  # one back-off: the lock was still held right after catching up
    tip = subprocess.run(
        ["git", "rev-parse", "main"], cwd=bare, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert tip == result.commit  # the very commit written: not rebuilt on the remote's


def test_a_push_that_lost_the_race_pushes_again_at_once(
    remote_and_clones: tuple[Path, Log, Log],
) -> None:
    """b pushed first: a's commit is rebuilt on b's and pushed straight away, with no
    back-off in between (a back-off hands the remote to the next runner)."""
    bare, a, b = remote_and_clones
    write(b, make_compose(compose_id="Fedora-Atomic-22-20150916.0", date="20150916"))
    b.git("push", "--quiet", "origin", "HEAD:refs/heads/main")
    ml = a.log
    sleeps: list[float] = []
    ml.git.sleep = sleeps.append
    result = ml.write(
        [pending(a, make_compose())],
        ml.load_trust(),
        message="compose: record test",
        push=PushConfig(remote="origin"),
        signers=[a.signers["compose"]],
    )
    assert result.pushed
    assert sleeps == []
    assert len(remote_subjects(bare)) == len(a.commits()) == len(b.commits()) + 1


def test_concurrent_runners_pushing_all_land(remote_and_clones: tuple[Path, Log, Log]) -> None:
    bare, a, b = remote_and_clones
    jobs = [(a, f"Fedora-Atomic-22-201510{d:02d}.0") for d in range(1, 4)] + [
        (b, f"Fedora-Atomic-22-201511{d:02d}.0") for d in range(1, 4)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda j: _record_failed(j[0].repo, j[0].env, j[1], "--push"), jobs)
        )
    assert [r.returncode for r in results] == [0] * len(jobs), [r.stderr for r in results]
    subjects = remote_subjects(bare)
    for _, cid in jobs:
        assert f"compose: record {cid} (no image)" in subjects


def test_push_failure_is_a_clear_error_and_keeps_the_commit(make_log: Callable[..., Log]) -> None:
    log = make_log()
    log.git("remote", "add", "origin", str(log.repo.parent / "missing.git"))
    with pytest.raises(StoreError, match=r"push to origin failed after 2 tries: .*missing\.git"):
        write(log, make_compose(), push=PushConfig(attempts=2))
    assert log.commits()[0] == "compose: record test"


def test_add_trusted_key_rolls_back_when_the_commit_fails(
    make_log: Callable[..., Log], tmp_path: Path
) -> None:
    log = make_log()
    trust_before = log.log.trust_path.read_bytes()
    (log.repo / ".git" / "index.lock").write_text("")
    with pytest.raises(StoreError, match="git add failed"):
        log.log.add_trusted_key("release", tmp_path / "newkeys", [log.signers["root"]])
    assert log.log.trust_path.read_bytes() == trust_before
    assert not (log.log.root / "trust" / "2.json").exists()
    assert not (tmp_path / "newkeys" / "release.key").exists()
    (log.repo / ".git" / "index.lock").unlink()
    key = log.log.add_trusted_key("release", tmp_path / "newkeys", [log.signers["root"]])
    trust = log.log.load_trust()
    assert key.public_key.keyid in trust.roles["release"].keyids
    assert len(trust.roles["release"].keyids) == 2
    assert log.commits()[0] == f"trust: add release key {key.public_key.keyid[:12]}"


def test_configured_remote_makes_push_the_default(
    remote_and_clones: tuple[Path, Log, Log],
) -> None:
    bare, a, _ = remote_and_clones
    a.git("config", "fortnight.remote", "origin")
    proc = _record_failed(a.repo, a.env, "Fedora-Atomic-22-20151201.0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].endswith(", pushed")
    assert remote_subjects(bare)[:2] == [
        "tracker: opened local1 for Fedora-Atomic-22-20151201.0",  # the sync pushes too
        "compose: record Fedora-Atomic-22-20151201.0 (no image)",
    ]
    local_only = _record_failed(a.repo, a.env, "Fedora-Atomic-22-20151202.0", "--no-commit")
    assert local_only.returncode == 0 and "pushed" not in local_only.stdout


def test_ci_matrix_runners_testing_slices_all_land(
    remote_and_clones: tuple[Path, Log, Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    bare, a, b = remote_and_clones
    tree = make_compose_tree()
    recorded = run_invoke(
        "compose.record", "--source", str(tree.root), "--repo", str(a.repo), "--push", env=a.env
    )
    assert recorded.returncode == 0, recorded.stderr
    b.git("pull", "--quiet", "origin", "main")
    slices = [(a, "x86_64"), (b, "aarch64"), (b, "ppc64le")]

    def test_slice(job: tuple[Log, str]) -> subprocess.CompletedProcess[str]:
        clone, arch = job
        return run_invoke(
            "test.run",
            "--compose-id",
            "Fedora-28-20180425.0",
            "--arch",
            arch,
            "--push",
            "--no-tracker",
            "--runner",
            f"ci-{arch}",
            "--repo",
            str(clone.repo),
            env=clone.env,
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(test_slice, slices))
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    files = remote_files(bare)
    runs = [f for f in files if f.startswith("manifests/atomic-host/tests/Fedora-28-20180425.0/")]
    assert len(runs) == 3
    a.git("pull", "--quiet", "origin", "main")
    status = run_invoke("status", "--repo", str(a.repo))
    assert "Fedora-28-20180425.0 │ passed" in status.stdout, status.stdout


def test_record_refuses_what_would_not_verify(make_log: Callable[..., Log]) -> None:
    """Signed by a key of another role: refused before anything is written or committed."""
    log = make_log()
    commits = len(log.commits())
    store = log.log
    with pytest.raises(KeyConfigError, match="does not verify"):
        store.record(
            [make_compose()], [log.signers["test"]], store.load_trust(), "x", WriteOptions()
        )
    assert len(log.commits()) == commits
    assert not list((log.repo / "manifests/atomic-host").glob("composes/*.json"))
