"""The log index and its checkpoints: written with every recording, refreshed, upgraded,
and kept consistent by concurrent writers."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.cli.tasks.checkpoint import VALIDITY_DAYS
from pipeline.core.merkle import leaf_hash, tree_root
from pipeline.core.models.common import Checkpoint, format_timestamp
from pipeline.errors import TrustError
from pipeline.log.checkpoints import (
    DEFAULT_VALIDITY,
    checkpoint_files,
    newest,
    next_checkpoint,
    parse_index,
    read_index,
)
from pipeline.log.signing import sign_manifest
from pipeline.log.store import ManifestLog
from tests.conftest import NOW, Log, compose_on, index_by_hand, run_invoke
from tests.sitekit import History, day, scenario_withdrawn


def checkpoint(log: Log, number: int) -> dict[str, object]:
    doc = json.loads((log.log.root / "checkpoints" / f"{number}.json").read_bytes())
    signed: dict[str, object] = doc["signed"]
    return signed


def test_each_recording_appends_its_lines_and_a_checkpoint_in_its_commit(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    scenario_withdrawn(h)
    log = h.log
    files = log.git("show", "--name-only", "--format=", "HEAD").split()
    revocation = "manifests/atomic-host/revocations/2018-05-15.json"
    number = len(list((log.log.root / "checkpoints").iterdir()))
    assert sorted(files) == sorted(
        [revocation, "manifests/log.idx", f"manifests/checkpoints/{number}.json"]
    )
    raw = read_index(log.log.root)
    entries = parse_index(raw)
    assert entries[-1].name == revocation.removeprefix("manifests/")
    assert entries[-1].sha256 == hashlib.sha256((log.repo / revocation).read_bytes()).hexdigest()
    head, before = checkpoint(log, number), checkpoint(log, number - 1)
    assert head["size"] == len(entries) == before["size"] + 1  # type: ignore[operator]
    assert head["root"] == tree_root([leaf_hash(e.line()) for e in entries]).hex()
    assert head["previous"] == before["root"]
    assert head["time"] == format_timestamp(day(15))  # the revocation's clock
    assert head["expires"] == format_timestamp(day(15) + timedelta(days=17))
    ManifestLog(log.repo).load_verified(log.log.load_trust())
    assert log.git("config", "fortnight.checkpoint").split() == [str(number), head["root"]]


def test_refresh_resigns_the_same_tree_with_the_timestamp_key(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    scenario_withdrawn(h)
    before = newest(h.log.log.root)
    assert before is not None
    env = {"FORTNIGHT_KEY_TIMESTAMP": h.log.env["FORTNIGHT_KEY_TIMESTAMP"]}
    at = format_timestamp(day(30))
    proc = run_invoke("checkpoint.refresh", "--repo", str(h.log.repo), "--at", at, env=env)
    assert proc.returncode == 0, proc.stderr
    after = newest(h.log.log.root)
    assert after is not None and after.signed.number == before.signed.number + 1
    assert (after.signed.size, after.signed.root) == (before.signed.size, before.signed.root)
    assert format_timestamp(after.signed.expires) == format_timestamp(day(47))
    assert [s.keyid for s in after.envelope.signatures] == [
        h.log.signers["timestamp"].public_key.keyid
    ]
    assert h.log.commits()[0] == "log: refresh checkpoint"
    assert run_invoke("verify", "--repo", str(h.log.repo), "--at", at).returncode == 0


def test_the_timestamp_key_cannot_add_content(make_log: Callable[..., Log]) -> None:
    log = make_log()
    path = log.log.root / compose_on(14).relpath()
    path.parent.mkdir(parents=True)
    path.write_bytes(sign_manifest(compose_on(14), [log.signers["compose"]]))
    index_by_hand(log, [path], log.signers["timestamp"])
    with pytest.raises(
        TrustError, match=r"checkpoints/1\.json: adds 1 manifest\(s\) but .* compose$"
    ):
        log.log.load_verified(log.log.load_trust())


def test_upgrade_indexes_an_old_log_in_git_order(make_history: Callable[..., History]) -> None:
    h = make_history()
    scenario_withdrawn(h)
    root = h.log.log.root
    order = [e.name for e in parse_index(read_index(root))]
    h.log.git("rm", "-rq", "manifests/log.idx", "manifests/checkpoints")
    h.log.git("commit", "-qm", "as before checkpoints")
    h.log.git("config", "--unset", "fortnight.checkpoint")
    with pytest.raises(TrustError) as raised:
        h.log.log.load_verified(h.log.log.load_trust())
    assert raised.value.diagnostics() == (
        "manifests/log.idx: missing, and 7 manifest(s) to cover: the log predates checkpoints; "
        "run 'invoke checkpoint.upgrade' (see README, 'Keys and trust')"
    )
    env = {"FORTNIGHT_KEY_ROOT": h.log.env["FORTNIGHT_KEY_ROOT"]}
    proc = run_invoke("checkpoint.upgrade", "--repo", str(h.log.repo), env=env)
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stdout.strip()
        == f"checkpoint 1: {len(order)} manifest(s) indexed in manifests/log.idx"
    )
    assert [e.name for e in parse_index(read_index(root))] == order
    assert len(h.log.log.load_verified(h.log.log.load_trust())) == len(order)
    again = run_invoke("checkpoint.upgrade", "--repo", str(h.log.repo), env=env)
    assert again.returncode == 2 and "already checkpointed" in again.stderr


def test_three_runners_pushing_at_once_keep_one_consistent_chain(
    make_log: Callable[..., Log], tmp_path: Path
) -> None:
    origin = make_log("origin")
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(origin.repo), str(bare)], check=True)
    clones = []
    for name in ("a", "b", "c"):
        path = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(bare), str(path)], check=True)
        for key, value in (("user.email", f"{name}@ci"), ("user.name", name)):
            subprocess.run(["git", "config", key, value], cwd=path, check=True)
        clones.append(path)
    jobs = [(clones[i % 3], f"Fedora-Atomic-22-201510{i + 1:02d}.0") for i in range(6)]

    def record(job: tuple[Path, str]) -> subprocess.CompletedProcess[str]:
        clone, cid = job
        args = ["--failed", "--compose-id", cid, "--reason", "DOOMED", "--no-tracker"]
        return run_invoke("compose.record", *args, "--repo", str(clone), "--push", env=origin.env)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(record, jobs))
    assert [r.returncode for r in results] == [0] * len(jobs), [r.stderr for r in results]
    check = tmp_path / "check"
    subprocess.run(["git", "clone", "-q", str(bare), str(check)], check=True)
    log = ManifestLog(check)
    verified = log.load_verified(log.load_trust())
    assert sorted(v.name for v in verified) == sorted(
        f"atomic-host/composes/{cid}.json" for _, cid in jobs
    )
    # One checkpoint per recording, each one entry more than the one before: nothing lost.
    entries = parse_index(read_index(log.root))
    assert sorted(e.name for e in entries) == sorted(v.name for v in verified)
    sizes = [json.loads(p.read_bytes())["signed"]["size"] for p in checkpoint_files(log.root)]
    assert sizes == list(range(1, len(jobs) + 1))


def test_a_checkpoint_never_goes_back_in_time(make_log: Callable[..., Log]) -> None:
    log = make_log()
    first = next_checkpoint(None, [], [log.signers["compose"]], NOW)
    previous = Checkpoint.model_validate(json.loads(first)["signed"])
    second = json.loads(
        next_checkpoint(previous, [], [log.signers["compose"]], NOW - timedelta(days=3))
    )
    assert second["signed"]["time"] == format_timestamp(NOW)
    assert second["signed"]["previous"] == previous.root


def test_nothing_is_appended_to_a_log_that_does_not_verify(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    scenario_withdrawn(h)
    idx = h.log.log.root / "log.idx"
    idx.write_bytes(b"".join(idx.read_bytes().splitlines(keepends=True)[1:]))  # first line gone
    h.log.git("commit", "--quiet", "-am", "log: drop the first index line")  # pushed like that
    before = h.log.git("status", "--porcelain")
    with pytest.raises(TrustError, match=r"checkpoints/1\.json: its root is not that of"):
        h.compose(day(16))
    assert h.log.git("status", "--porcelain") == before


def test_a_write_killed_between_checkpoint_and_index_is_tidied_by_the_next(
    make_history: Callable[..., History],
) -> None:
    """A kill after the next checkpoint was created but before log.idx was rewritten leaves
    an uncommitted checkpoint that covers lines the index lacks; the next write puts the
    index and checkpoints back to HEAD's, appends, and commits a log that verifies."""
    h = make_history()
    scenario_withdrawn(h)
    head = newest(h.log.log.root)
    assert head is not None
    stray = h.log.log.root / "checkpoints" / f"{head.signed.number + 1}.json"
    stray.write_bytes(head.raw)  # a checkpoint file no index line matches
    h.log.git("add", "--", str(stray))  # even staged
    h.compose(day(16))
    assert h.log.git("status", "--porcelain") == ""
    assert h.log.log.verify_all(h.log.log.load_trust()).failures == []
    after = newest(h.log.log.root)
    assert after is not None and after.signed.number > head.signed.number
    assert after.signed.size == len(parse_index(read_index(h.log.log.root)))


def test_the_task_default_validity_is_the_library_default() -> None:
    assert timedelta(days=VALIDITY_DAYS) == DEFAULT_VALIDITY
