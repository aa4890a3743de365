"""release.cut, release.revoke and status as an operator runs them, on a real signed git log."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import ROOT, ComposeTree, Log, run_invoke


def test_cut_revoke_status(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text()
    log = make_log(product_toml=toml.replace("anchor = 2018-05-01", "anchor = 2026-01-06").encode())
    repo = ["--repo", str(log.repo)]

    def invoke(*args: str, code: int = 0) -> str:
        proc = run_invoke(*args, *repo, env=log.env)
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        return proc.stdout + proc.stderr

    assert "nothing to do: the first release day is 2026-01-06" in invoke(
        "release.cut", "--at", "2026-01-01"
    )
    for day in ("20260105", "20260119"):
        tree = make_compose_tree(f"Fedora-AtomicHost-28-{day}.0")
        invoke("compose.record", "--source", str(tree.root))
        invoke("test.run", "--compose-id", f"Fedora-AtomicHost-28-{day}.0")
    # Both composes were recorded today (after their dates): today's cycle picks the newest.
    dry = invoke("release.cut", "--dry-run")
    assert "would record: manifests/atomic-host/releases/" in dry
    out = invoke("release.cut")
    assert "Released Fedora-AtomicHost-28-20260119.0" in out
    assert "nothing to do: the cycle of" in invoke("release.cut")  # safe to re-run
    doc = json.loads(run_invoke("status", "--json", *repo).stdout)
    product = doc["products"]["atomic-host"]
    assert product["current"]["compose_id"] == "Fedora-AtomicHost-28-20260119.0"
    release_id = product["current"]["release_id"]
    assert product["stale"] is False and product["withdrawn"] == []
    assert set(product) == {
        "display_name",
        "current",
        "stale",
        "stale_reason",
        "open_bug",
        "withdrawn",
        "latest_compose",
        "pending",
        "next_release_day",
    }
    out = invoke(
        "release.revoke",
        "--release-id",
        release_id,
        "--reason",
        "breaks upgrades",
        "--operator",
        "dusty",
    )
    assert "current release now: none: no image available" in out
    assert "already withdrawn (no change)" in invoke(
        "release.revoke", "--release-id", release_id, "--reason", "again"
    )
    err = invoke("release.revoke", "--release-id", "1999-01-01", "--reason", "x", code=3)
    assert "error: --release-id 1999-01-01: no release 1999-01-01" in err
    doc = json.loads(run_invoke("status", "--json", *repo).stdout)
    product = doc["products"]["atomic-host"]
    assert product["current"] is None
    assert product["withdrawn"] == [
        {
            "release_id": release_id,
            "compose_id": "Fedora-AtomicHost-28-20260119.0",
            "reason": "withdrawn by dusty: breaks upgrades",
        }
    ]
    text = invoke("status")
    assert "withdrawn" in text and "breaks upgrades" in text
    assert "error: --at soon: not a date or datetime" in invoke("status", "--at", "soon", code=2)
    assert "release: withdraw" in log.commits()[0]
