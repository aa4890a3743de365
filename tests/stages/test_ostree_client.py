"""End to end with a real OSTree client: a bare-user repository with the remote and the
GPG key configured pulls from a real HTTP server on 127.0.0.1 (GPG verification on)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.adapters.ostree import OstreeRepo
from pipeline.adapters.pkglist import PKGLIST_KEY
from pipeline.errors import OstreeError
from tests.conftest import Log, StaticServer, run_invoke
from tests.ostreekit import OstreeHistory, TestKey, commit_tree, make_gpg_key, ostree_toml
from tests.sitekit import History, day

REF = "fedora/28/x86_64/atomic-host"


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> TestKey:
    return make_gpg_key(tmp_path_factory.mktemp("gpg"))


@pytest.fixture
def oh(
    tmp_path: Path,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., object],
    gpg_key: TestKey,
) -> OstreeHistory:
    public, source = tmp_path / "public", tmp_path / "compose-repo"
    toml = ostree_toml("https://dl.example.org/{compose_id}/", public, source, gpg_key)
    history = History(make_log("log", toml), make_compose_tree)  # type: ignore[arg-type]
    return OstreeHistory(history, OstreeRepo(source), OstreeRepo(public))


def client(folder: Path, url: str, key: TestKey) -> OstreeRepo:
    """A host's repository: bare-user, with the remote and its GPG key (verification on)."""
    repo = OstreeRepo(folder)
    repo.init("bare-user")
    repo.run(
        "remote",
        "add",
        "--set=gpg-verify-summary=true",
        f"--gpg-import={key.public}",
        "fortnight",
        url,
        what="remote add",
    )
    return repo


def pull(repo: OstreeRepo, *flags: str) -> str:
    """``ostree pull fortnight REF``; the commit the host now has for the ref."""
    repo.run("pull", *flags, "fortnight", REF, what=f"pull {REF}")
    return repo.run("rev-parse", f"fortnight:{REF}", what="rev-parse").strip()


def test_a_host_follows_releases_and_withdrawals(
    oh: OstreeHistory, tmp_path: Path, gpg_key: TestKey, serve_dir: Callable[..., StaticServer]
) -> None:
    server = serve_dir(oh.public.path.parent)
    url = server.url + "public"
    first = oh.compose(day(-1), "28.1")
    oh.cut(day(0, 12))
    host = client(tmp_path / "host", url, gpg_key)
    assert pull(host) == oh.commits[first.compose_id]["x86_64"]

    second = oh.compose(day(13), "28.2")
    oh.cut(day(14, 12))
    server.requests.clear()
    assert pull(host, "--require-static-deltas") == oh.commits[second.compose_id]["x86_64"]
    assert any("/deltas/" in r for r in server.requests), server.requests

    oh.revoke("2018-05-15", day(15))
    fresh = client(tmp_path / "fresh", url, gpg_key)
    assert pull(fresh) == oh.commits[first.compose_id]["x86_64"]

    # a summary changed in transit (or on the host) is refused
    summary = oh.public.path / "summary"
    good = summary.read_bytes()
    summary.write_bytes(
        good.replace(
            bytes.fromhex(oh.commits[first.compose_id]["x86_64"]),
            bytes.fromhex(oh.commits[second.compose_id]["x86_64"]),
        )
    )
    assert summary.read_bytes() != good
    with pytest.raises(OstreeError, match="(?i)gpg|signature"):
        pull(client(tmp_path / "tampered", url, gpg_key))
    summary.write_bytes(good)

    # an attacker (or a slip) points the ref elsewhere and rewrites the summary unsigned
    oh.public.set_ref(REF, oh.commits[second.compose_id]["x86_64"])
    oh.public.update_summary(None)
    with pytest.raises(OstreeError, match="(?i)gpg|signature"):
        pull(client(tmp_path / "third", url, gpg_key))

    repo = ["--repo", str(oh.history.log.repo)]
    env = oh.history.log.env
    at = ["--at", "2018-05-20"]  # the history's checkpoints are fresh then, not today
    verify = run_invoke("verify", *repo, *at, env=env)
    assert verify.returncode == 4, verify.stdout + verify.stderr
    assert f"ref {REF} points to {oh.commits[second.compose_id]['x86_64']}" in verify.stderr
    assert "Traceback" not in verify.stderr
    synced = run_invoke("ostree.sync", *repo, env=env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert f"moved {REF}" in synced.stdout
    assert run_invoke("verify", *repo, *at, env=env).returncode == 0
    assert pull(client(tmp_path / "fourth", url, gpg_key)) == oh.commits[first.compose_id]["x86_64"]


def test_compose_record_reads_the_compose_repository(
    oh: OstreeHistory, make_compose_tree: Callable[..., object]
) -> None:
    rpms = [("kernel-core", 0, "4.16.3", "301.fc28"), ("docker", 2, "1.13.1", "51.fc28")]
    oh.compose(day(-1), "28.1", rpms=rpms)  # commits both arches' compose refs
    tree = make_compose_tree("Fedora-Atomic-28-20180501.0")
    repo = ["--repo", str(oh.history.log.repo)]
    env = oh.history.log.env
    proc = run_invoke(
        "compose.record",
        "--source",
        str(tree.root),  # type: ignore[attr-defined]
        "--ostree-repo",
        str(oh.source.path),
        *repo,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = oh.history.log.repo / "manifests/atomic-host/composes/Fedora-Atomic-28-20180501.0.json"
    signed = json.loads(path.read_text())["signed"]
    recorded = signed["ostree"]
    assert {t["arch"]: t["version"] for t in recorded} == {"aarch64": "28.1", "x86_64": "28.1"}
    # no rpms.json in the compose: the package list is the commits' (rpmostree.rpmdb.pkglist)
    x86 = next(p for p in signed["packages"] if p["arch"] == "x86_64")
    assert x86 == {
        "arch": "x86_64",
        "binaries": ["docker-2:1.13.1-51.fc28.x86_64", "kernel-core-0:4.16.3-301.fc28.x86_64"],
        "sources": {},
        "variant": "AtomicHost",
    }
    bad = run_invoke(
        "compose.record",
        "--source",
        str(tree.root),  # type: ignore[attr-defined]
        "--ostree-commit",
        "x86_64=" + "0" * 64,
        *repo,
        env=env,
    )
    assert bad.returncode == 11, bad.stdout + bad.stderr
    assert f"commit {'0' * 64} is not in the repository" in bad.stderr
    assert "Traceback" not in bad.stderr
    # a commit whose package list is not a(stsss): one line naming it, nothing recorded
    hostile = commit_tree(
        oh.source, "hostile", {"a": "b"}, "28.1", "", {PKGLIST_KEY: "[('a', 'b')]"}
    )
    other = make_compose_tree("Fedora-Atomic-28-20180502.0")
    refused = run_invoke(
        "compose.record",
        "--source",
        str(other.root),  # type: ignore[attr-defined]
        "--ostree-commit",
        f"x86_64={hostile}",
        *repo,
        env=env,
    )
    assert refused.returncode == 11, refused.stdout + refused.stderr
    assert f"commit {hostile}: {PKGLIST_KEY}: the list is not of type a(stsss)" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (path.parent / "Fedora-Atomic-28-20180502.0.json").exists()


def test_gpg_pull_refuses_an_unsigned_commit(tmp_path: Path, gpg_key: TestKey) -> None:
    """The client check the tests rely on is real: an unsigned commit is refused."""
    public = OstreeRepo(tmp_path / "srv" / "repo")
    commit_tree(public, REF, {"a": "b"}, "1")
    public.update_summary(gpg_key.gpg)
    host = client(tmp_path / "host", (public.path).as_uri(), gpg_key)
    with pytest.raises(OstreeError, match="(?i)gpg|signature"):
        pull(host)
