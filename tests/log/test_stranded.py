"""Manifests left uncommitted (issue 17, "stranded manifests"): "already recorded" means
committed at HEAD; a write commits what an earlier run of its kind left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from pipeline.core.models.manifests import ComposeManifest
from pipeline.log.git import PushConfig
from pipeline.log.stranded import find_uncommitted
from pipeline.log.writer import WriteOptions
from tests.conftest import NOW, Log, make_compose
from tests.log.test_store import write

OTHER = {"compose_id": "Fedora-Atomic-22-20150916.0", "date": "20150916"}


def status(log: Log) -> str:
    return log.git("status", "--porcelain", "--untracked-files=all")


def test_no_commit_then_the_same_write_commits_it(make_log: Callable[..., Log]) -> None:
    log = make_log()
    first = write(log, make_compose(), commit=False)
    path = make_compose().relpath()
    assert first.written == [path] and first.uncommitted == [path] and first.commit is None
    again = write(log, make_compose(created=NOW.replace(hour=13)))
    assert again.written == [] and again.unchanged == [path]
    assert again.recovered == [path] and again.commit is not None
    assert log.commits()[0] == "compose: record test"
    assert status(log) == ""
    shown = log.git("show", "--format=", "--name-only", "HEAD").split()
    assert shown == [f"manifests/{path}", "manifests/checkpoints/1.json", "manifests/log.idx"]


def test_a_kill_between_add_and_commit_is_committed_by_the_next_write(
    make_log: Callable[..., Log],
) -> None:
    log = make_log()
    write(log, make_compose(), commit=False)
    log.git("add", "--", f"manifests/{make_compose().relpath()}")  # killed before the commit
    assert find_uncommitted(log.log.git).staged == [make_compose().relpath()]
    other = make_compose(**OTHER)
    result = write(log, other)  # a later compose: both land, in one commit
    assert result.written == [other.relpath()] and result.recovered == [make_compose().relpath()]
    assert status(log) == ""
    body = log.git("log", "-1", "--format=%B")
    assert f"manifests/{make_compose().relpath()}" in body and "left uncommitted" in body


def test_dry_run_and_no_commit_leave_stranded_files_alone(make_log: Callable[..., Log]) -> None:
    log = make_log()
    write(log, make_compose(), commit=False)
    temp = log.log.root / "atomic-host/composes/.x.json.a1b2c3d4.tmp"
    temp.write_text("half")
    head = log.git("rev-parse", "HEAD")
    plan = write(log, make_compose(**OTHER), dry_run=True)
    assert plan.recovered == [make_compose().relpath()] and plan.commit is None
    assert temp.exists()  # a dry run changes nothing
    kept = write(log, make_compose(**OTHER), commit=False)
    assert kept.uncommitted == sorted([make_compose().relpath(), make_compose(**OTHER).relpath()])
    assert log.git("rev-parse", "HEAD") == head


def test_only_verified_manifests_of_the_same_product_and_kind_are_committed(
    make_log: Callable[..., Log],
) -> None:
    log = make_log()
    root = log.log.root
    forged = make_compose(compose_id="Fedora-Atomic-22-20150920.0", date="20150920")
    (root / forged.relpath()).parent.mkdir(parents=True, exist_ok=True)
    (root / forged.relpath()).write_text('{"signed": {}, "signatures": []}\n')
    release = root / "atomic-host/releases/2015-09-15.json"
    release.parent.mkdir(parents=True)
    release.write_text("{}\n")
    temp = root / "atomic-host/composes/.Fedora-Atomic-22-20150921.0.json.a1b2c3d4.tmp"
    temp.write_text("half")
    result = write(log, make_compose())
    assert result.recovered == []
    assert not temp.exists()  # an interrupted write's temp file: removed under the lock
    left = find_uncommitted(log.log.git)
    assert left.untracked == [
        forged.relpath(),
        PurePosixPath("atomic-host/releases/2015-09-15.json"),
    ]
    assert left.staged == [] and left.temp == []


def test_find_uncommitted_ignores_the_root_chain_and_schema(make_log: Callable[..., Log]) -> None:
    log = make_log()
    root = log.log.root
    (root / "trust/9.json").write_text("{}")
    (root / "schema").mkdir(exist_ok=True)
    (root / "schema/x.schema.json").write_text("{}")
    (root / "atomic-host/notes.txt").write_text("x")
    assert find_uncommitted(log.log.git).manifests == []


def test_settle_commits_and_pushes_what_was_left(make_log: Callable[..., Log]) -> None:
    log = make_log()
    bare = log.repo.parent / "remote.git"
    log.git("init", "--quiet", "--bare", str(bare))
    log.git("remote", "add", "origin", str(bare))
    write(log, make_compose(), commit=False)
    ml = log.log
    scope = [f"atomic-host/{ComposeManifest.DIRECTORY}"]
    assert ml.settle(["atomic-host/releases"], ml.load_trust(), WriteOptions()).recovered == []
    plan = ml.settle(scope, ml.load_trust(), WriteOptions(dry_run=True))
    assert plan.recovered == [make_compose().relpath()] and status(log) != ""
    done = ml.settle(scope, ml.load_trust(), WriteOptions(push=PushConfig()))
    assert done.recovered == [make_compose().relpath()] and done.pushed
    assert status(log) == ""
    remote_head = log.git("--git-dir", str(bare), "rev-parse", "main").strip()
    assert remote_head == log.git("rev-parse", "HEAD").strip()
    assert not ml.settle(scope, ml.load_trust(), WriteOptions()).did_anything()  # all done
