"""The tasks as processes (issue 17, item 5): ``compose.record --no-commit`` followed by
``compose.record`` commits the manifest instead of calling it "already recorded", and
``invoke verify`` warns of every manifest git has not committed (exit 0 when they verify)."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import ComposeTree, Log, run_invoke

CID = "Fedora-28-20180425.0"
PATH = f"manifests/atomic-host/composes/{CID}.json"


def test_compose_record_after_no_commit_commits_and_verify_warns_until_then(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    log = make_log()
    tree = make_compose_tree()
    env = {**log.env, "FORTNIGHT_REPO": str(log.repo)}
    record = ("compose.record", "--source", str(tree.root), "--skip-checksums")
    first = run_invoke(*record, "--no-commit", env=env)
    assert first.returncode == 0, first.stderr
    assert f"written, not committed (--no-commit): {PATH}" in first.stdout

    audit = run_invoke("verify", env=env)
    assert audit.returncode == 0, audit.stderr
    assert audit.stderr.splitlines()[-1] == (
        f"warning: {PATH}: not committed (untracked); re-run the task that wrote it, or run: "
        f"git -C {log.repo} add {PATH} && git -C {log.repo} commit"
    )
    log.git("add", "--", PATH)  # as if killed between 'git add' and 'git commit'
    staged = run_invoke("verify", env=env)
    assert staged.returncode == 0 and f"warning: {PATH}: added but not committed" in staged.stderr

    again = run_invoke(*record, env=env)
    assert again.returncode == 0, again.stderr
    assert "already recorded" not in again.stdout
    assert f"committed (left uncommitted by an earlier run): {PATH}, commit " in again.stdout
    assert log.commits()[0] == f"compose: record {CID}"
    assert log.git("status", "--porcelain", "--untracked-files=all") == ""
    quiet = run_invoke("verify", env=env)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr

    third = run_invoke(*record, env=env)
    assert f"already recorded (no change): {PATH}" in third.stdout
