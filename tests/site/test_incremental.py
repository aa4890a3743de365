"""Incremental builds (pipeline/site/incremental.py): what is rebuilt, kept, rewritten and
put back, and how a product's folders are fingerprinted.

Most tests build a real site with Pelican from a real signed log (tests/sitekit.py); the
answer to "is this product unchanged?" is also tested on its own (LastBuild).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.models.manifests import LogRef
from pipeline.log.writer import WriteOptions
from pipeline.site.incremental import (
    LastBuild,
    _folders_mtime,
    _FolderTimes,
    product_key,
    product_trees,
)
from pipeline.site.output import ProductRecord
from pipeline.site.settings import SiteSettings
from tests.conftest import make_result
from tests.sitekit import (
    History,
    day,
    internal_targets,
    scenario_current,
    scenario_stale,
    two_products,
)

MakeHistory = Callable[..., History]


def test_same_log_same_at_gives_identical_output(make_history: MakeHistory, tmp_path: Path) -> None:
    h = make_history()
    now = scenario_stale(h)
    a, b = tmp_path / "a", tmp_path / "b"
    h.build(a, now)
    h.build(b, now, cache=False)

    def tree(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and ".fortnight" not in p.parts
        }

    assert tree(a) == tree(b)
    assert len(tree(a)) > 20


def test_incremental_rebuild(make_history: MakeHistory, tmp_path: Path) -> None:
    h = make_history()
    now = scenario_current(h)
    out = tmp_path / "out"
    first = h.build(out, now)
    assert first.products_built == ["atomic-host"] and first.written > 20
    again = h.build(out, now)
    assert again.products_skipped == ["atomic-host"] and again.written == 0
    # A new nightly compose: the product is rebuilt, only changed files are written.
    h.compose(day(15))
    later = now + timedelta(hours=12)
    third = h.build(out, later)
    assert third.products_built == ["atomic-host"]
    assert 0 < third.written < first.written
    assert (out / "atomic-host/composes/Fedora-Atomic-28-20180516.0.html").is_file()
    # Building for an earlier moment removes what did not exist then.
    h.build(out, day(1))
    assert not (out / "atomic-host/composes/Fedora-Atomic-28-20180516.0.html").exists()
    assert not (out / "streams/atomic-host.json").read_text().count("2018-05-15")
    assert internal_targets(out) == []


def test_unchanged_compose_pages_are_kept_with_their_logs(
    make_history: MakeHistory, tmp_path: Path
) -> None:
    """A compose page whose manifests, bugs and release are unchanged is not built again,
    and the test logs it brought stay; a page whose inputs change is rebuilt."""
    h = make_history()
    logs = tmp_path / "logs"
    old = h.compose(day(0), tested=False)
    log_path = f"atomic-host/{old.compose_id}/images/run/format.log"
    (logs / log_path).parent.mkdir(parents=True)
    (logs / log_path).write_text("qemu-img: not a qcow2 file\n")
    result = make_result(old, fail=["format"], started=day(0, 1))
    tests = [
        t.model_copy(update={"log": LogRef(path=log_path, sha256="0" * 64, size=27, tail="x")})
        for t in result.tests
    ]
    h.record([result.model_copy(update={"tests": tests})], "test")
    out = tmp_path / "out"
    first = h.build(out, day(1), logs=logs)
    assert first.reused == 0
    page = out / "atomic-host/composes" / f"{old.compose_id}.html"
    before = page.stat().st_mtime_ns

    h.compose(day(1))  # a new nightly: the old compose's page is kept, with its log
    second = h.build(out, day(2), logs=logs)
    assert second.products_built == ["atomic-host"] and second.reused >= 1
    assert page.stat().st_mtime_ns == before
    assert (out / "logs" / log_path).read_text() == "qemu-img: not a qcow2 file\n"
    assert internal_targets(out) == []

    h.record([make_result(old, started=day(2, 1))], "test")  # a re-run passes: rebuilt
    third = h.build(out, day(3), logs=logs)
    assert third.products_built == ["atomic-host"]
    assert page.stat().st_mtime_ns != before
    assert "s-passed" in page.read_text()
    # The newer run is the one shown, and it has no log: no page links the old log now.
    assert not (out / "logs" / log_path).exists() and internal_targets(out) == []

    # A log that reaches the log store late is linked once the product is built again.
    late = h.compose(day(3), tested=False)
    late_log = f"atomic-host/{late.compose_id}/images/run/format.log"
    failed = make_result(late, fail=["format"], started=day(3, 1))
    tests = [
        t.model_copy(update={"log": LogRef(path=late_log, sha256="0" * 64, size=3, tail="x")})
        for t in failed.tests
    ]
    h.record([failed.model_copy(update={"tests": tests})], "test")
    h.build(out, day(4), logs=logs)
    late_page = out / "atomic-host/composes" / f"{late.compose_id}.html"
    assert ">log</a>" not in late_page.read_text()
    (logs / late_log).parent.mkdir(parents=True)
    (logs / late_log).write_text("late\n")
    h.compose(day(4))
    h.build(out, day(5), logs=logs)
    assert ">log</a>" in late_page.read_text()
    assert (out / "logs" / late_log).read_text() == "late\n"

    # The same build from scratch gives the same bytes: reuse changes nothing visible.
    fresh = tmp_path / "fresh"
    h.build(fresh, day(5), logs=logs)
    for path in sorted(fresh.rglob("*")):
        rel = path.relative_to(fresh)
        if path.is_file() and rel.parts[0] != ".fortnight":
            assert (out / rel).read_bytes() == path.read_bytes(), rel


def test_build_record_rewrites_only_what_changed(make_history: MakeHistory, tmp_path: Path) -> None:
    """Each product's file list is kept in its own record file: a build that rebuilds one
    product rewrites that one; a damaged record means a full build, not a failure."""
    h = make_history()
    now = two_products(h)
    out = tmp_path / "out"
    h.build(out, now)
    parts = out / ".fortnight/products"

    def stored() -> dict[str, tuple[str, int]]:
        return {p.name.rsplit("-", 1)[0]: (p.name, p.stat().st_mtime_ns) for p in parts.iterdir()}

    first = stored()
    assert set(first) == {"_site", "atomic-host", "cloud-base"}
    again = h.build(out, now)
    assert again.products_skipped == ["atomic-host", "cloud-base"] and stored() == first

    h.compose(now - timedelta(hours=2))  # a new atomic-host compose
    third = h.build(out, now)
    assert third.products_built == ["atomic-host"]
    after = stored()
    assert after["cloud-base"] == first["cloud-base"]
    # The site-wide files include the log index and its checkpoints: a recording adds to them.
    assert after["_site"] != first["_site"]
    assert after["atomic-host"][0] != first["atomic-host"][0]
    assert len(list(parts.iterdir())) == 3  # the old atomic-host list is gone

    (parts / after["cloud-base"][0]).write_text("{not json")
    fourth = h.build(out, now)
    assert fourth.products_built == ["atomic-host", "cloud-base"]
    assert h.build(out, now).products_skipped == ["atomic-host", "cloud-base"]


def test_folder_times_from_find_match_the_python_walk(
    make_history: MakeHistory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_history()
    two_products(h)
    root = h.log.repo / "manifests"
    products = ["atomic-host", "cloud-base"]
    from_find = _FolderTimes.start(root).result()
    walked = {p: _folders_mtime(str(root / p)) for p in products}
    assert {p: from_find[p] for p in products} == walked
    trees = product_trees(h.log.repo)
    assert set(trees) == set(products)
    # Without GNU find (here: no find at all), the folders are walked from Python instead.
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "git").symlink_to(shutil.which("git") or "git")
    monkeypatch.setenv("PATH", str(bare))
    assert _FolderTimes.start(root).result() == {}
    assert product_trees(h.log.repo) == trees


def test_uncommitted_manifests_are_noticed(make_history: MakeHistory, tmp_path: Path) -> None:
    """A manifest written with --no-commit (untracked) still rebuilds its product."""
    h = make_history()
    now = scenario_current(h)
    out = tmp_path / "out"
    h.build(out, now)
    assert h.build(out, now).products_skipped == ["atomic-host"]
    log = h.log.log
    extra = make_result(
        h.composes["Fedora-Atomic-28-20180514.0"],
        fail=["name"],
        started=now - timedelta(hours=1),
        run="20180516T110000Z-abcdef",
    )
    log.record([extra], [h.log.signers["test"]], log.load_trust(), "x", WriteOptions(commit=False))
    status = h.log.git("status", "--porcelain", "--untracked-files=all").splitlines()
    assert f"?? manifests/{extra.relpath()}" in status  # (with log.idx and a checkpoint)
    again = h.build(out, now)
    assert again.products_built == ["atomic-host"]
    page = (out / "atomic-host/composes/Fedora-Atomic-28-20180514.0.html").read_text()
    assert "20180516T110000Z-abcdef" in page


@pytest.mark.parametrize("times", ["noted", "not noted"])
def test_files_deleted_from_the_output_are_put_back(
    make_history: MakeHistory, tmp_path: Path, times: str
) -> None:
    """A product whose files are not all in the output any more is built again: noticed
    from the times of its own folders (or, where those were not noted, file by file),
    for a file deep in a product's folders, at the output's top, or in a shared folder."""
    h = make_history()
    now = two_products(h)
    out = tmp_path / "out"
    h.build(out, now)
    record = next((out / ".fortnight/products").glob("atomic-host-*.json"))
    body = json.loads(record.read_text())
    assert "manifests/atomic-host/composes" in body["folders"]
    assert "streams" in body["folders"]  # noted, but shared: its files are looked up
    if times == "not noted":
        body["folders"] = {}
        record.write_text(json.dumps(body))
    assert h.build(out, now).products_skipped == ["atomic-host", "cloud-base"]
    for victim in (
        next((out / "manifests/atomic-host/composes").glob("*.json")),
        out / "atomic-host/composes/Fedora-Atomic-28-20180514.0.html",
        out / "index.html",
        out / "streams/atomic-host.json",
    ):
        data = victim.read_bytes()
        victim.unlink()
        again = h.build(out, now)
        assert again.products_built == ["atomic-host"], victim
        assert again.products_skipped == ["cloud-base"], victim
        assert victim.read_bytes() == data
        assert h.build(out, now).products_skipped == ["atomic-host", "cloud-base"]


def last_build(tmp_path: Path, **fields: Any) -> LastBuild:
    """A LastBuild over nothing on disk: ``fields`` replace its record, trees and times."""
    site = SiteSettings(
        repo=tmp_path, output=tmp_path, theme=tmp_path, at=None, logs=None,
        primary="atomic-host", site_url="", site_name="Fortnight", force=False, cache=True,
        workers=1,
    )  # fmt: skip
    now = datetime(2018, 5, 15, 12, tzinfo=UTC)
    values: dict[str, Any] = {"previous": {}, "trees": {}, "complete": {}, **fields}
    return LastBuild(site, "code", "trust", [("atomic-host", "Atomic")], now, **values)


@pytest.mark.parametrize(
    ("tree", "same_key", "all_there", "unchanged"),
    [
        ("t1:5", True, True, True),
        ("t1:5", False, True, False),  # built for another key (code, trust, day, tree)
        ("t1:5", True, False, False),  # a file of it is gone from the output
        ("", True, True, False),  # uncommitted changes or not git: always built
    ],
)
def test_a_product_is_unchanged_only_with_its_key_and_all_its_files(
    tmp_path: Path, tree: str, same_key: bool, all_there: bool, unchanged: bool
) -> None:
    newest = "2018-05-14T00:00:00+00:00"
    key = last_build(tmp_path).key("t1:5", newest) if same_key else "an older key"
    record = ProductRecord(key=key, tree="t1:5", newest=newest)
    last = last_build(
        tmp_path,
        previous={"atomic-host": record},
        trees={"atomic-host": tree} if tree else {},
        complete={"atomic-host": all_there},
    )
    assert last.unchanged("atomic-host") is unchanged
    assert last.record("atomic-host") is record
    assert not last.unchanged("cloud-base")  # never built
    assert last.record("cloud-base") == ProductRecord()


def test_a_product_key_holds_the_day_unless_a_manifest_is_newer(tmp_path: Path) -> None:
    """Past every manifest, the pages depend on the moment only through its day."""
    morning, evening = (datetime(2018, 5, 15, h, tzinfo=UTC) for h in (8, 20))
    old = "2018-05-14T00:00:00+00:00"
    assert product_key("c", "t", "s", [], morning, old) == product_key(
        "c", "t", "s", [], evening, old
    )
    future = "2018-05-15T12:00:00+00:00"  # built for a moment before its newest manifest
    assert product_key("c", "t", "s", [], morning, future) != product_key(
        "c", "t", "s", [], evening, future
    )
    assert last_build(tmp_path).key("", old) == ""
