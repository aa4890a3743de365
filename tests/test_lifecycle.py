"""The issue's acceptance path, as an operator runs it: record, test, bug, fail, waive, close."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.conftest import ComposeTree, Log, run_invoke


def test_compose_to_bug_and_back(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    log = make_log()
    repo = ["--repo", str(log.repo)]
    env = log.env

    def invoke(*args: str) -> str:
        proc = run_invoke(*args, *repo, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        return proc.stdout

    # A good compose: tested, passes, no bug.
    good = make_compose_tree("Fedora-AtomicHost-28-20180501.0")
    invoke("compose.record", "--source", str(good.root))
    out = invoke("test.run", "--compose-id", "Fedora-AtomicHost-28-20180501.0")
    assert "images: PASSED" in out and "tracker: no open bug, nothing to do" in out

    # A broken compose: a blocking test fails, the run still exits 0, and a bug is filed.
    bad = make_compose_tree("Fedora-AtomicHost-28-20180502.0")
    raw = bad.compose_dir / next(i for i in bad.atomic_x86_64() if i["type"] == "raw-xz")["path"]
    invoke("compose.record", "--source", str(bad.root))
    raw.write_bytes(raw.read_bytes()[:-40])  # truncated after recording
    out = invoke("test.run", "--compose-id", "Fedora-AtomicHost-28-20180502.0")
    assert "images: FAILED" in out
    assert re.search(
        r"tracker: opened local1 \(atomic-host/bugs/local1.html\) for "
        r"Fedora-AtomicHost-28-20180502.0",
        out,
    ), out

    # No image at all: the same bug gets a comment, once.
    out = invoke(
        "compose.record",
        "--failed",
        "--compose-id",
        "Fedora-AtomicHost-28-20180503.0",
        "--reason",
        "DOOMED: createImage failed",
    )
    assert "tracker: commented local1" in out
    assert "nothing new to report" in invoke("tracker.sync")

    # The operator waives the truncated-file failures of the broken compose (a known mirror
    # glitch): it passes now, but the newest compose (no image) still fails, so the bug stays.
    status = invoke("status")
    assert "no-image" in status and re.search(
        r"open bug\s+│ local1 atomic-host/bugs/local1.html", status
    )
    for test in ("checksum", "format"):
        invoke(
            "test.waive",
            "--compose-id",
            "Fedora-AtomicHost-28-20180502.0",
            "--test",
            test,
            "--reason",
            "mirror truncated the file",
            "--operator",
            "dusty",
        )
    assert (
        "passed"
        in invoke("status", "--limit", "5")
        .split("Fedora-AtomicHost-28-20180502.0")[1]
        .split("\n")[0]
    )

    # A later good compose closes the bug.
    later = make_compose_tree("Fedora-AtomicHost-28-20180504.0")
    invoke("compose.record", "--source", str(later.root))
    out = invoke("test.run", "--compose-id", "Fedora-AtomicHost-28-20180504.0")
    assert "tracker: closed local1" in out
    assert re.search(r"open bug\s+│ none", invoke("status"))

    # The operator fails the good compose by hand: a new bug, naming the reason.
    out = invoke(
        "compose.fail",
        "--compose-id",
        "Fedora-AtomicHost-28-20180504.0",
        "--reason",
        "breaks docker on upgrade",
        "--reason-url",
        "https://pagure.io/atomic-wg/issue/1",
    )
    assert "tracker: opened local2" in out
    status = invoke("status")
    assert "failed-manual" in status and "breaks docker on upgrade" in status
    again = invoke(
        "compose.fail", "--compose-id", "Fedora-AtomicHost-28-20180504.0", "--reason", "again"
    )
    assert "already failed by an operator (no change)" in again

    subjects = log.commits()
    assert "verdict: fail Fedora-AtomicHost-28-20180504.0" in subjects
    assert "verdict: waive checksum on Fedora-AtomicHost-28-20180502.0" in subjects
    assert "tracker: opened local1 for Fedora-AtomicHost-28-20180502.0" in subjects
    assert "tracker: closed local1 for Fedora-AtomicHost-28-20180504.0" in subjects
    verified = run_invoke("verify", *repo)
    assert verified.returncode == 0
    assert re.search(r"tracker-event\s+│\s+4", verified.stdout), subjects
    assert re.search(r"verdict\s+│\s+3", verified.stdout)


def test_cli_errors_are_one_line(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    log = make_log()
    repo = ["--repo", str(log.repo)]
    tree = make_compose_tree()
    assert (
        run_invoke("compose.record", "--source", str(tree.root), *repo, env=log.env).returncode == 0
    )
    cases = [
        (("test.run", "--compose-id", "Fedora-1-20000101.0"), 3, "not recorded for atomic-host"),
        (
            (
                "test.waive",
                "--compose-id",
                "Fedora-28-20180425.0",
                "--test",
                "nope",
                "--reason",
                "r",
            ),
            3,
            "--test nope: no failed blocking test of that name",
        ),
        (
            ("compose.fail", "--compose-id", "Fedora-28-20180425.0", "--reason", " "),
            3,
            "--reason: must not be empty",
        ),
        (
            (
                "test.import",
                "--compose-id",
                "Fedora-28-20180425.0",
                "--suite",
                "images",
                "--junit",
                "x.xml",
            ),
            2,
            "--suite images: runs by command in the battery",
        ),
    ]
    for args, code, fragment in cases:
        proc = run_invoke(*args, *repo, env=log.env)
        assert proc.returncode == code, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    no_key = {k: v for k, v in log.env.items() if k != "FORTNIGHT_KEY_RELEASE"}
    proc = run_invoke("test.run", "--compose-id", "Fedora-28-20180425.0", *repo, env=no_key)
    assert proc.returncode == 2 and "FORTNIGHT_KEY_RELEASE is not set" in proc.stderr
    assert not (log.repo / "manifests/atomic-host/tests").exists()  # before any work
    proc = run_invoke(
        "test.run", "--compose-id", "Fedora-28-20180425.0", "--no-tracker", *repo, env=no_key
    )
    assert proc.returncode == 0, proc.stderr
