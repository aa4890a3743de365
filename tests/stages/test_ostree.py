"""OSTree on a real log and real repositories: record, promote, withdraw, sync, verify."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.adapters.ingest import load_compose
from pipeline.adapters.ostree import OstreeRepo
from pipeline.core.models.manifests import ComposeManifest, ReleaseManifest
from pipeline.core.pages.links import Urls
from pipeline.core.pages.notes import release_notes
from pipeline.demo.packages import write_rpms_json
from pipeline.errors import ConfigError, InputError, OstreeError
from pipeline.stages.compose import build_compose_manifest
from pipeline.stages.ostree import (
    check_trees,
    gather,
    gather_trees,
    parse_commit_options,
    ref_problems,
    sync_refs,
    verify_refs,
)
from tests.conftest import ComposeTree, Log
from tests.ostreekit import ARCHES, OstreeHistory, Rpm, TestKey, make_gpg_key, ostree_toml
from tests.sitekit import History, day

X86_REF = "fedora/28/x86_64/atomic-host"
ARM_REF = "fedora/28/aarch64/atomic-host"


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
    log = make_log(
        "log", ostree_toml("https://dl.example.org/{compose_id}/", public, source, gpg_key)
    )
    history = History(log, make_compose_tree)  # type: ignore[arg-type]
    return OstreeHistory(history, OstreeRepo(source), OstreeRepo(public))


def _release(oh: OstreeHistory, release_id: str) -> ReleaseManifest:
    view = oh.state(day(40)).release(release_id)
    assert view is not None
    return view.manifest


# --- item 1: recording -------------------------------------------------------------------


def test_gather_reads_each_arch_and_checks_it(oh: OstreeHistory) -> None:
    manifest = oh.compose(day(-1), "28.20180430.0")
    trees = gather_trees(oh.setup, "28", repo=None, commits=[], arches=list(ARCHES))
    assert {t.arch: t.commit for t in trees} == oh.commits[manifest.compose_id]
    assert {t.version for t in trees} == {"28.20180430.0"}
    explicit = gather_trees(
        oh.setup,
        "28",
        repo=str(oh.source.path),
        commits=[f"x86_64={oh.commits[manifest.compose_id]['x86_64']}"],
        arches=list(ARCHES),
    )
    assert [(t.arch, t.version) for t in explicit] == [("x86_64", "28.20180430.0")]


def test_check_refuses_missing_incomplete_and_mixed_versions(oh: OstreeHistory) -> None:
    manifest = oh.compose(day(-1), "28.1", versions={"aarch64": "28.2"})
    trees = manifest.ostree
    with pytest.raises(OstreeError, match=r"different versions \(aarch64 28.2, x86_64 28.1\)"):
        check_trees(oh.source, trees)
    missing = "0" * 64
    with pytest.raises(OstreeError, match=f"commit {missing} is not in the repository"):
        gather_trees(oh.setup, "28", repo=None, commits=[f"x86_64={missing}"], arches=ARCHES)
    # delete one file object of the x86_64 tree: the commit is incomplete
    objects = sorted((oh.source.path / "objects").glob("*/*.filez"))
    objects[0].unlink()
    with pytest.raises(OstreeError, match="incomplete or corrupt"):
        check_trees(oh.source, trees)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("x86_64", "expected ARCH=CHECKSUM"),
        ("x86_64=abc", "expected ARCH=CHECKSUM"),
        ("=" + "a" * 64, "expected ARCH=CHECKSUM"),
    ],
)
def test_bad_commit_options_are_refused(spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_commit_options([spec])


def test_an_arch_given_twice_is_refused() -> None:
    with pytest.raises(InputError, match="arch x86_64 given twice"):
        parse_commit_options([f"x86_64={'a' * 64}", f"x86_64={'b' * 64}"])


def test_gather_needs_an_ostree_table() -> None:
    with pytest.raises(ConfigError, match=r"no \[ostree\] table"):
        gather_trees(None, "28", repo=None, commits=[], arches=[])


# --- the package list from the commits (issue 20, item 1) ---------------------------------

OLD_RPMS: list[Rpm] = [
    ("kernel-core", 0, "4.16.3", "301.fc28"),
    ("rpm-ostree", 0, "2018.4", "1.fc28"),
    ("docker", 2, "1.13.1", "51.git4032bd5.fc28"),
    ("nano", 0, "2.9.5", "1.fc28"),
]
NEW_RPMS: list[Rpm] = [
    ("kernel-core", 0, "4.16.10", "300.fc28"),  # 4.16.10 > 4.16.3 in rpm's order
    ("rpm-ostree", 0, "2018.5", "1.fc28"),
    ("docker", 2, "1.13.1", "51.git4032bd5.fc28"),
    ("tmux", 0, "2.7", "1.fc28"),
]


def test_a_compose_without_rpms_json_takes_its_commits_package_lists(oh: OstreeHistory) -> None:
    """Commits made with ``--add-metadata=rpmostree.rpmdb.pkglist=...``: the compose
    manifests list their rpms per arch, and the second release's notes show the changes."""
    first = oh.compose(day(-1), "28.20180430.0", rpms=OLD_RPMS)
    assert first.packages is not None
    assert [(p.variant, p.arch, p.sources) for p in first.packages] == [
        ("AtomicHost", "aarch64", {}),
        ("AtomicHost", "x86_64", {}),
    ]
    assert "docker-2:1.13.1-51.git4032bd5.fc28.x86_64" in first.packages[1].binaries
    found = gather(oh.setup, "28", repo=None, commits=[], arches=ARCHES, packages=True)
    assert found.packages == {p.arch: p.binaries for p in first.packages}
    oh.cut(day(0, 12))
    oh.compose(day(13), "28.20180514.0", rpms=NEW_RPMS)
    oh.cut(day(14, 12))
    state = oh.state(day(15))
    view = state.release("2018-05-15")
    assert view is not None
    notes = release_notes(state, view, Urls("atomic-host"))
    assert notes is not None and notes.known
    assert dict(notes.counts) == {"upgraded": 2, "added": 1, "removed": 1}
    assert [r.text for r in notes.notable_sources] == [
        "kernel-core 4.16.3-301.fc28 \u2192 4.16.10-300.fc28",
        "rpm-ostree 2018.4-1.fc28 \u2192 2018.5-1.fc28",
    ]
    assert {r.name for r in notes.other_sources} == {"nano", "tmux"}


def test_rpms_json_wins_over_the_commits_package_lists(
    oh: OstreeHistory, make_compose_tree: Callable[..., ComposeTree]
) -> None:
    cid = "Fedora-Atomic-28-20180501.0"
    tree = make_compose_tree(cid)
    write_rpms_json(tree.compose_dir, cid, night=0, arches=("x86_64",))
    from_commit = {"x86_64": ["bash-0:4.4.19-1.fc28.x86_64"]}
    manifest = build_compose_manifest(
        load_compose(str(tree.root)),
        oh.history.product,
        day(0),
        checksums_verified=True,
        ostree_packages=from_commit,
    )
    assert manifest.packages is not None
    x86 = next(p for p in manifest.packages if p.arch == "x86_64")
    assert x86.sources and all(not p.binaries for p in manifest.packages)
    assert oh.compose(day(1), "28.1").packages is None  # no rpms.json, no package list


# --- items 2-4: promote, withdraw, sync ----------------------------------------------------


def test_release_promotes_with_delta_and_signed_summary(oh: OstreeHistory) -> None:
    first = oh.compose(day(-1), "28.1")
    oh.cut(day(0, 12))
    second = oh.compose(day(13), "28.2")
    oh.cut(day(14, 12))
    refs = oh.public.refs()
    assert refs[X86_REF] == oh.commits[second.compose_id]["x86_64"]
    assert refs[ARM_REF] == oh.commits[second.compose_id]["aarch64"]
    rel = {p.arch: p for p in _release(oh, "2018-05-15").ostree}
    assert rel["x86_64"].previous == oh.commits[first.compose_id]["x86_64"]
    assert rel["x86_64"].commit == oh.commits[second.compose_id]["x86_64"]
    assert oh.public.has_delta(rel["x86_64"].previous or "", rel["x86_64"].commit)
    assert oh.public.summary_refs() == refs
    assert (oh.public.path / "summary.sig").is_file()
    assert ref_problems(oh.setup, oh.state(day(15))) == []


def test_release_skips_a_compose_whose_trees_disagree(oh: OstreeHistory) -> None:
    good = oh.compose(day(-2), "28.1")
    oh.compose(day(-1), "28.2", versions={"aarch64": "28.3"})
    oh.compose(day(-1, 6), "28.4", arches=("x86_64",), respin=1)
    oh.cut(day(0, 12))
    manifest = _release(oh, "2018-05-01")
    assert manifest.compose_id == good.compose_id
    reasons = [c.reason for c in manifest.considered if c.verdict == "rejected"]
    assert "ostree: no commit recorded for aarch64" in reasons
    assert any("different versions" in r for r in reasons)


def test_release_fails_closed_when_a_commit_cannot_be_pulled(oh: OstreeHistory) -> None:
    oh.compose(day(-1), "28.1")
    shutil.rmtree(oh.source.path / "objects")
    (oh.source.path / "objects").mkdir()
    before = oh.history.log.commits()
    with pytest.raises(OstreeError, match="is not in the repository"):
        oh.cut(day(0, 12))
    assert oh.history.log.commits() == before
    assert oh.public.refs() == {}


def test_revoke_moves_the_ref_back(oh: OstreeHistory) -> None:
    first = oh.compose(day(-1), "28.1")
    oh.cut(day(0, 12))
    oh.compose(day(13), "28.2")
    oh.cut(day(14, 12))
    oh.revoke("2018-05-15", day(15))
    assert oh.public.refs()[X86_REF] == oh.commits[first.compose_id]["x86_64"]
    assert oh.public.summary_refs()[X86_REF] == oh.commits[first.compose_id]["x86_64"]
    oh.revoke("2018-05-01", day(16))
    assert X86_REF not in oh.public.refs()
    assert oh.public.summary_refs() == {}


class Killed(Exception):
    """The injected crash: the release process dies at this step."""


def test_sync_repairs_a_crash_at_every_step(oh: OstreeHistory) -> None:
    """Killed after the delta (no manifest yet), after the manifest (no ref moved), after
    the refs (summary not re-signed): the next run or ostree.sync ends consistent."""
    oh.compose(day(-1), "28.0")
    oh.cut(day(0, 12))
    for n, step in enumerate(["delta", "recorded", "ref"], start=1):
        compose = oh.compose(day(14 * n - 1), f"28.{n}")

        def fault(at: str, step: str = step) -> None:
            if at == step:
                raise Killed(at)

        with pytest.raises(Killed):
            oh.cut(day(14 * n, 12), fault=fault)
        if step == "delta":
            current = oh.state(day(14 * n, 13)).current
            assert current is not None and current.manifest.compose_id != compose.compose_id
            oh.cut(day(14 * n, 13))  # no manifest was written: the next run releases it
        state = oh.state(day(14 * n, 14))
        if step in ("recorded", "ref"):
            assert ref_problems(oh.setup, state), step  # the log is ahead of the repository
        sync_refs(oh.setup, state)
        assert ref_problems(oh.setup, state) == [], step
        assert oh.public.refs()[X86_REF] == oh.commits[compose.compose_id]["x86_64"], step
        assert oh.public.summary_refs() == oh.public.refs(), step
        assert sync_refs(oh.setup, state).moved == {}, step  # idempotent


def test_verify_reports_a_ref_moved_by_hand(oh: OstreeHistory) -> None:
    first = oh.compose(day(-1), "28.1")
    oh.cut(day(0, 12))
    second = oh.compose(day(13), "28.2")
    oh.public.pull_local(oh.source, oh.commits[second.compose_id]["x86_64"])
    oh.public.set_ref(X86_REF, oh.commits[second.compose_id]["x86_64"])
    problems = ref_problems(oh.setup, oh.state(day(14)))
    assert problems == [
        f"{oh.public.path}: ref {X86_REF} points to "
        f"{oh.commits[second.compose_id]['x86_64']}, the log says "
        f"{oh.commits[first.compose_id]['x86_64']}"
    ]
    sync_refs(oh.setup, oh.state(day(14)))
    assert ref_problems(oh.setup, oh.state(day(14))) == []


def test_verify_refs_from_the_verified_log_finds_what_a_fresh_load_finds(
    oh: OstreeHistory,
) -> None:
    """``invoke verify`` passes the manifests it just verified: the same problems as when
    each product is loaded again."""
    first = oh.compose(day(-1), "28.1")
    oh.cut(day(0, 12))
    second = oh.compose(day(13), "28.2")
    oh.public.set_ref(X86_REF, oh.commits[second.compose_id]["x86_64"])
    log = oh.history.log.log
    report = log.verify_all(log.load_trust())
    assert not report.failures
    loaded = verify_refs(log, {}, day(14))
    assert len(loaded) == 1 and oh.commits[first.compose_id]["x86_64"] in loaded[0]
    assert verify_refs(log, {}, day(14), report.verified) == loaded
    assert verify_refs(log, {}, day(14), []) != loaded  # derived from what it is given


def test_release_refuses_a_commit_bound_to_another_ref(oh: OstreeHistory) -> None:
    oh.compose(day(-1), "28.1", bound=False)  # bound to the compose ref only
    before = oh.history.log.commits()
    with pytest.raises(OstreeError, match=f"bound to .*hosts following {X86_REF}|{ARM_REF}"):
        oh.cut(day(0, 12))
    assert oh.history.log.commits() == before


# --- the battery's ostree check ------------------------------------------------------------


def test_the_ostree_battery_check(
    oh: OstreeHistory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m pipeline.checks ostree`` with the environment test.run gives a command."""
    from pipeline.checks.command import main  # noqa: PLC0415
    from pipeline.core.redact import Redactor  # noqa: PLC0415
    from pipeline.stages.testing import LogStore, RunSettings, command_env  # noqa: PLC0415

    good = oh.compose(day(-2), "28.1")
    mixed = oh.compose(day(-1), "28.2", versions={"aarch64": "28.3"})

    def env(compose: ComposeManifest, arch: str) -> dict[str, str]:
        settings = RunSettings(
            compose,
            LogStore(tmp_path / "logs", Redactor.of({})),
            tmp_path,
            {},
            lambda: day(0),
            "t",
            1,
            ostree_repo=str(oh.source.path),
        )
        image = next(i for i in compose.images if i.arch == arch)
        return command_env(settings, image, tmp_path / "img", tmp_path)

    assert env(good, "x86_64")["FORTNIGHT_OSTREE_VERSIONS"] == "aarch64=28.1,x86_64=28.1"
    assert main(["ostree"], env(good, "x86_64")) == 0
    assert "version 28.1 on every arch" in capsys.readouterr().out
    assert main(["ostree"], env(mixed, "x86_64")) == 1
    assert "arches carry different versions: 28.2 here, aarch64 28.3" in capsys.readouterr().out
    wrong = env(good, "x86_64") | {"FORTNIGHT_OSTREE_VERSION": "27.9"}
    assert main(["ostree"], wrong) == 1
    assert "has version 28.1, recorded 27.9" in capsys.readouterr().out
    missing = env(good, "x86_64") | {"FORTNIGHT_OSTREE_COMMIT": "0" * 64}
    assert main(["ostree"], missing) == 1
    assert "is not in the repository" in capsys.readouterr().out
    assert main(["ostree"], env(good, "x86_64") | {"FORTNIGHT_OSTREE_REPO": ""}) == 2
