"""The OSTree repository ships with the site: the page and stream name the released
commit, a host pulls it from the served site, and publishing keeps refs last."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.adapters.ostree import OstreeRepo
from pipeline.site.publish import IMMUTABLE, SHORT, LocalFile, cache_control, plan
from tests.conftest import Log, StaticServer
from tests.ostreekit import OstreeHistory, TestKey, commit_tree, make_gpg_key, ostree_toml
from tests.site.test_publish import PREFIX, S3, Interrupted, run, s3, stop_after
from tests.sitekit import History, day

__all__ = ["s3"]  # the fixture, imported from the publish tests
REF = "fedora/28/x86_64/atomic-host"
OBJ = "atomic-host/ostree/objects/ab/" + "c" * 62


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> TestKey:
    return make_gpg_key(tmp_path_factory.mktemp("gpg"))


def _local(rel: str) -> LocalFile:
    data = rel.encode()
    return LocalFile(
        rel=rel,
        path=Path("/nonexistent") / rel,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        links=frozenset(),
    )


def test_publish_uploads_objects_then_summary_then_refs() -> None:
    rels = [
        "atomic-host/ostree/config",
        f"{OBJ}.commit",
        f"{OBJ}.filez",
        "atomic-host/ostree/deltas/ab/cdef/superblock",
        "atomic-host/ostree/summary",
        "atomic-host/ostree/summary.sig",
        f"atomic-host/ostree/refs/heads/{REF}",
        "theme/s.css",
        "atomic-host/index.html",
    ]
    result = plan({r: _local(r) for r in rels}, {})
    stages = [{u.rel for u in stage} for stage in result.stages()]
    assert stages == [
        {
            "atomic-host/ostree/config",
            f"{OBJ}.commit",
            f"{OBJ}.filez",
            "atomic-host/ostree/deltas/ab/cdef/superblock",
            "theme/s.css",
        },
        {"atomic-host/ostree/summary", "atomic-host/ostree/summary.sig"},
        {f"atomic-host/ostree/refs/heads/{REF}"},
        {"atomic-host/index.html"},
    ]
    # without the repository's config file, a "summary" is an ordinary file
    plain = plan({"x/summary": _local("x/summary"), "x/y": _local("x/y")}, {})
    assert len(plain.stages()) == 1


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        (f"{OBJ}.filez", IMMUTABLE),
        (f"{OBJ}.dirtree", IMMUTABLE),
        (f"{OBJ}.commitmeta", SHORT),  # signatures are added to it
        ("atomic-host/ostree/deltas/ab/cdef/superblock", IMMUTABLE),
        ("atomic-host/ostree/summary", SHORT),
        (f"atomic-host/ostree/refs/heads/{REF}", SHORT),
    ],
)
def test_cache_control_of_repository_files(rel: str, expected: str) -> None:
    assert cache_control(rel) == expected


def test_site_ships_the_repository_and_a_host_follows_it(
    tmp_path: Path,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., object],
    gpg_key: TestKey,
    serve_dir: Callable[..., StaticServer],
) -> None:
    public, source = tmp_path / "public", tmp_path / "compose-repo"
    toml = ostree_toml("https://dl.example.org/{compose_id}/", public, source, gpg_key)
    history = History(make_log("log", toml), make_compose_tree)  # type: ignore[arg-type]
    oh = OstreeHistory(history, OstreeRepo(source), OstreeRepo(public))
    oh.publish_key(gpg_key)
    first = oh.compose(day(-1), "28.1")
    oh.cut(day(0, 12))
    second = oh.compose(day(13), "28.2")
    oh.cut(day(14, 12))
    oh.revoke("2018-05-15", day(15))
    good = oh.commits[first.compose_id]["x86_64"]
    bad = oh.commits[second.compose_id]["x86_64"]

    out = tmp_path / "output"
    history.build(out, day(16))
    site_repo = out / "atomic-host" / "ostree"
    assert (site_repo / "refs/heads" / REF).read_text().strip() == good
    assert (out / "atomic-host/ostree.gpg").read_bytes() == gpg_key.public.read_bytes()
    assert not (site_repo / "tmp").exists()
    page = (out / "atomic-host/index.html").read_text()
    assert REF in page and good in page and "28.1" in page
    assert "rpm-ostree rebase fortnight:fedora/28/aarch64/atomic-host" in page
    assert "rpm-ostree rollback" in page and bad in page  # the withdrawn tree, and what to do
    stream = json.loads((out / "streams/atomic-host.json").read_text())
    assert stream["architectures"]["x86_64"]["ostree"] == {
        "ref": REF,
        "commit": good,
        "version": "28.1",
        "release": "2018-05-01",
    }
    assert {"commit": bad, "release": "2018-05-15"} in stream["ostree-withdrawn"]

    server = serve_dir(out)
    host = OstreeRepo(tmp_path / "host")
    host.init("bare-user")
    key = tmp_path / "downloaded.gpg"
    key.write_bytes((out / "atomic-host/ostree.gpg").read_bytes())
    host.run(
        "remote",
        "add",
        "--set=gpg-verify-summary=true",
        f"--gpg-import={key}",
        "fortnight",
        server.url + "atomic-host/ostree/",
        what="remote add",
    )
    host.run("pull", "fortnight", REF, what="pull")
    assert host.run("rev-parse", f"fortnight:{REF}", what="rev-parse").strip() == good


def test_an_interrupted_publish_never_shows_a_ref_before_its_objects(
    s3: S3, tmp_path: Path, gpg_key: TestKey
) -> None:
    """Killed after every upload and re-run: whenever the bucket has the summary or a ref,
    it has every object the site's repository holds, and a new ref comes after its summary,
    for a first publish and an update."""
    site = tmp_path / "output"
    repo = OstreeRepo(site / "atomic-host" / "ostree")
    bucket = "ostree-site"
    s3.create(bucket)
    target = f"s3://{bucket}/{PREFIX}"
    for version in ("1", "2"):
        commit = commit_tree(repo, REF, {"v": version, f"f{version}": version}, version)
        repo.update_summary(gpg_key.gpg)
        (repo.path.parent / f"tree-{REF.replace('/', '_')}-{version}").rename(
            tmp_path / f"tree-{version}"
        )
        objects = {
            p.relative_to(site).as_posix()
            for p in (repo.path / "objects").rglob("*")
            if p.is_file()
        }

        def check(objects: set[str] = objects, commit: str = commit) -> None:
            held = s3.objects(bucket)
            ref = f"atomic-host/ostree/refs/heads/{REF}"
            if ref in held and held[ref].decode().strip() == commit:
                assert objects <= set(held), "a ref names objects that are not there"
                summary = held.get("atomic-host/ostree/summary")
                assert summary == (repo.path / "summary").read_bytes(), "a ref before its summary"
            if held.get("atomic-host/ostree/summary") == (repo.path / "summary").read_bytes():
                assert objects <= set(held), "the summary names objects that are not there"

        stops = 0
        while True:
            try:
                run(s3, site, target, client_factory=s3.factory(stop_after(1, [0])))
            except Interrupted:
                stops += 1
                check()
                assert stops < 200, "no progress"
                continue
            break
        assert stops >= 3  # at least: a new object, the summary, the ref
        assert objects <= set(s3.objects(bucket))
        assert s3.objects(bucket)[f"atomic-host/ostree/refs/heads/{REF}"].decode().strip() == commit
