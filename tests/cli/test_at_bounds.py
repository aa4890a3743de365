"""``release.cut --at`` moves forward only: not before the newest manifest, not in the future."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.cli.conftest import Ran
from tests.conftest import Log
from tests.test_tasks import assert_one_line_error


def test_release_cut_at_is_bounded_and_dry_run_names_what_it_ignores(
    cli: Callable[..., Ran], make_log: Callable[..., Log], tmp_path: Path
) -> None:
    log = make_log()
    repo = ("--repo", str(log.repo))
    sample = cli("compose.sample", "--out", str(tmp_path / "s"), *repo)
    assert sample.returncode == 0, sample.stderr
    cid = sample.stdout.split()[2]
    rec = cli("compose.record", "--source", str(tmp_path / "s"), *repo, env=log.env)
    assert rec.returncode == 0, rec.stderr
    before = log.commits()
    past = cli("release.cut", "--at", "2018-05-20", *repo, env=log.env)
    assert past.returncode == 2
    assert_one_line_error(
        past.stderr,
        "--at 2018-05-20T00:00:00Z: earlier than the newest manifest of atomic-host "
        f"(manifests/atomic-host/composes/{cid}.json, created ",
    )
    future = datetime.now(UTC) + timedelta(days=1)
    ahead = cli("release.cut", "--at", future.strftime("%Y-%m-%dT%H:%M:%SZ"), *repo, env=log.env)
    assert ahead.returncode == 2
    assert_one_line_error(ahead.stderr, "plus 10 min; a decision from the future")
    assert log.commits() == before  # nothing recorded
    rehearsal = cli(
        "release.cut", "--at", "2018-05-20", "--simulate", "--dry-run", *repo, env=log.env
    )
    assert rehearsal.returncode == 0, rehearsal.stderr
    assert f"ignored: {cid}: recorded " in rehearsal.stdout
    assert "after --at 2018-05-20T00:00:00Z" in rehearsal.stdout
    assert "would record: manifests/atomic-host/releases/2018-05-15.json" in rehearsal.stdout
    assert log.commits() == before
    within = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok = cli("release.cut", "--at", within, "--dry-run", *repo, env=log.env)
    assert ok.returncode == 0, ok.stderr
