"""The verification cache: a warm load equals a cold one, and never trusts what changed."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from pipeline.core.models.common import Manifest, Role, Trust
from pipeline.errors import VerificationError
from pipeline.log import cache as verifycache
from pipeline.log import parallel
from pipeline.log.git import Git
from pipeline.log.reader import LogReport
from pipeline.log.segments import FORMAT, MAGIC, decode_segment
from pipeline.log.signing import add_key_to_trust, sign_manifest, verify_manifest
from pipeline.log.sslib import CryptoSigner
from pipeline.log.store import ManifestLog
from pipeline.log.writer import WriteOptions
from tests.conftest import Log, compose_on, index_by_hand, make_result

Checks = list[str]


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Checks:
    """Every file the cache layer had to verify the slow way, in order."""
    seen: Checks = []

    def counting(raw: bytes, relpath: PurePosixPath, trust: Trust) -> Manifest:
        seen.append(str(relpath))
        return verify_manifest(raw, relpath, trust)

    monkeypatch.setattr(parallel, "verify_manifest", counting)
    return seen


def record(log: Log, manifest: Manifest, *, commit: bool = True) -> None:
    """Sign a manifest with its role's key and write it (committed, or not)."""
    log.log.record(
        [manifest],
        [log.signers[manifest.ROLE]],
        log.log.load_trust(),
        "test: record",
        WriteOptions(commit=commit),
    )


def write_signed(log: Log, manifest: Manifest) -> Path:
    """Write a signed manifest file directly, untracked."""
    path = log.log.root / manifest.relpath()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sign_manifest(manifest, [log.signers[manifest.ROLE]]))
    return path


def populated(make_log: Callable[..., Log]) -> Log:
    """A log with three composes and a test result, committed."""
    log = make_log()
    composes = [compose_on(d) for d in (14, 15, 16)]
    for c in composes:
        record(log, c)
    record(log, make_result(composes[0], started=composes[0].created))
    return log


def load(log: Log, *, cache: bool = True) -> LogReport:
    ml = ManifestLog(log.repo, cache=cache)
    return ml.verify_all(ml.load_trust())


def cache_dir(log: Log) -> Path:
    return log.repo / ".git" / verifycache.CACHE_DIR


def segments(log: Log) -> list[Path]:
    return sorted(cache_dir(log).glob("*/*/seg-*.pickle"))


def test_warm_load_equals_cold_and_checks_nothing(
    make_log: Callable[..., Log], checks: Checks
) -> None:
    log = populated(make_log)
    cold = load(log, cache=False)
    assert len(cold.verified) == 4 and not cold.failures
    first = load(log)
    assert first == cold
    assert len(checks) == 8  # four files, verified without and with the cache
    checks.clear()
    warm = load(log)
    assert warm == cold
    assert [v.manifest.model_dump() for v in warm.verified] == [
        v.manifest.model_dump() for v in cold.verified
    ]
    assert checks == []  # every file came from the cache
    assert ManifestLog(log.repo).load_verified(log.log.load_trust()) == cold.verified
    # The cache is outside the work tree: nothing to commit, nothing ignored by hand.
    assert segments(log)
    assert log.git("status", "--porcelain", "--ignored") == ""


def test_cache_off_writes_nothing(make_log: Callable[..., Log]) -> None:
    log = populated(make_log)
    verifycache.remove(log.repo / ".git")  # what recording (with the cache on) left there
    load(log, cache=False)
    assert not cache_dir(log).exists()


@pytest.mark.parametrize("how", ["edited", "edited-keeping-mtime", "edited-and-staged"])
def test_a_tampered_tracked_file_is_rejected_on_a_warm_load(
    make_log: Callable[..., Log], checks: Checks, how: str
) -> None:
    log = populated(make_log)
    load(log)
    path = log.log.root / compose_on(15).relpath()
    before = path.stat()
    text = path.read_text()
    assert '"respin": 0' in text
    path.write_text(text.replace('"respin": 0', '"respin": 7'))  # same size
    if how == "edited-keeping-mtime":
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    if how == "edited-and-staged":
        log.git("add", str(path))
    checks.clear()
    warm = load(log)
    cold = load(log, cache=False)
    assert warm == cold
    assert warm.failures == [
        (f"manifests/{compose_on(15).relpath()}", cold.failures[0][1]),
    ]
    assert cold.failures[0][1].startswith("bad signature from key")
    assert str(compose_on(15).relpath()) in checks
    with pytest.raises(VerificationError, match="bad signature"):
        log.log.load_verified(log.log.load_trust())


def test_a_file_replayed_under_another_name_is_rejected_warm(
    make_log: Callable[..., Log],
) -> None:
    log = populated(make_log)
    load(log)
    src = log.log.root / compose_on(14).relpath()
    dst = src.with_name("Fedora-Atomic-22-20150917.0.json")
    dst.write_bytes(src.read_bytes())
    log.git("add", str(dst))
    log.git("commit", "-q", "-m", "replay")
    load(log)  # once more, so a cache entry would exist if paths were not part of the key
    warm = load(log)
    assert warm.failures == [
        (
            "manifests/atomic-host/composes/Fedora-Atomic-22-20150917.0.json",
            f"path does not match identity: its payload belongs at {compose_on(14).relpath()}",
        )
    ]
    assert warm == load(log, cache=False)


def test_a_changed_trust_invalidates_the_cache(
    make_log: Callable[..., Log], checks: Checks
) -> None:
    log = populated(make_log)
    load(log)
    # Another key in trust.json: results would not change, but nothing is reused.
    trust = add_key_to_trust(
        log.log.load_trust(), "release", CryptoSigner.generate_ed25519().public_key
    )
    log.write_trust(trust, commit=False)
    checks.clear()
    assert load(log) == load(log, cache=False)
    assert len(checks) == 8
    # The compose key withdrawn: composes fail exactly as without the cache.
    compose_key = log.signers["compose"].public_key.keyid
    trust = log.log.load_trust()
    keys = {k: v for k, v in trust.keys.items() if k != compose_key}
    roles = dict(trust.roles) | {"compose": Role(keyids=[])}
    log.write_trust(Trust(keys=keys, roles=roles), commit=False)
    warm, cold = load(log), load(log, cache=False)
    assert warm == cold
    assert [p for p, _ in warm.failures] == [
        f"manifests/{compose_on(d).relpath()}" for d in (14, 15, 16)
    ]
    assert all(r.startswith("unknown key") for _, r in warm.failures)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b[:-40] + bytes(40), id="body-changed"),
        pytest.param(lambda b: b"garbage", id="garbage"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(
            lambda b: b.replace(b'"format": %d' % FORMAT, b'"format": 99', 1),
            id="other-format",
        ),
    ],
)
def test_a_corrupt_cache_file_is_ignored_and_rebuilt(
    make_log: Callable[..., Log], checks: Checks, damage: Callable[[bytes], bytes]
) -> None:
    log = populated(make_log)
    cold = load(log, cache=False)
    load(log)
    [seg] = segments(log)
    seg.write_bytes(damage(seg.read_bytes()))
    checks.clear()
    assert load(log) == cold
    assert len(checks) == 4
    checks.clear()
    assert load(log) == cold  # rebuilt
    assert checks == []


def test_a_segment_that_does_not_unpickle_is_a_missing_segment(
    make_log: Callable[..., Log], checks: Checks
) -> None:
    # The header vouches for the body (length and digest), but the body is cut short:
    # unpickling it raises, and the load verifies every file as without a cache.
    log = populated(make_log)
    cold = load(log, cache=False)
    load(log)
    [seg] = segments(log)
    data = seg.read_bytes()
    header_end = data.index(b"\n", len(MAGIC))
    header = json.loads(data[len(MAGIC) : header_end])
    body = data[header_end + 1 : -3]
    header.update(length=len(body), sha256=hashlib.sha256(body).hexdigest())
    seg.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + body)
    checks.clear()
    assert load(log) == cold
    assert len(checks) == 4
    checks.clear()
    assert load(log) == cold  # rebuilt
    assert checks == []


def test_a_cache_file_cannot_run_code(
    make_log: Callable[..., Log], checks: Checks, tmp_path: Path
) -> None:
    log = populated(make_log)
    cold = load(log, cache=False)
    load(log)
    [seg] = segments(log)
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    body = pickle.dumps({"atomic-host/x.json": ("0" * 40, Evil())})
    header_end = seg.read_bytes().index(b"\n", len(MAGIC))
    header = json.loads(seg.read_bytes()[len(MAGIC) : header_end])
    header.update(length=len(body), sha256=hashlib.sha256(body).hexdigest())
    seg.write_bytes(MAGIC + json.dumps(header).encode() + b"\n" + body)
    checks.clear()
    assert load(log) == cold
    assert not marker.exists()
    assert len(checks) == 4


def test_an_untracked_manifest_is_verified(make_log: Callable[..., Log], checks: Checks) -> None:
    log = populated(make_log)
    load(log)
    good = write_signed(log, compose_on(20))
    forged = write_signed(log, compose_on(21))
    index_by_hand(log, [good, forged], log.signers["compose"])
    forged.write_text(forged.read_text().replace('"respin": 0', '"respin": 1'))
    checks.clear()
    warm = load(log)
    assert sorted(checks) == sorted(str(compose_on(d).relpath()) for d in (20, 21))
    assert warm == load(log, cache=False)
    assert compose_on(20).relpath() in [v.path for v in warm.verified]
    assert [p for p, _ in warm.failures] == [f"manifests/{compose_on(21).relpath()}"]
    # Untracked files are verified every time: git cannot vouch for their content.
    checks.clear()
    load(log)
    assert len(checks) == 2
    # Once committed, both come from the cache too.
    write_signed(log, compose_on(21))
    log.git("add", "manifests")
    log.git("commit", "-q", "-m", "add")
    load(log)
    checks.clear()
    warm = load(log)
    assert checks == []
    assert warm == load(log, cache=False)


def test_deleting_the_cache_is_harmless(make_log: Callable[..., Log], checks: Checks) -> None:
    log = populated(make_log)
    cold = load(log, cache=False)
    load(log)
    verifycache.remove(log.repo / ".git")
    assert not cache_dir(log).exists()
    checks.clear()
    assert load(log) == cold
    assert len(checks) == 4
    assert segments(log)


def test_a_cache_that_cannot_be_written_does_not_fail_the_load(
    make_log: Callable[..., Log],
) -> None:
    log = populated(make_log)
    verifycache.remove(log.repo / ".git")  # what recording (with the cache on) left there
    cache_dir(log).write_text("not a folder")
    assert load(log) == load(log, cache=False)


def test_new_results_append_segments_and_compaction_keeps_results(
    make_log: Callable[..., Log], checks: Checks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verifycache, "MAX_SEGMENTS", 3)
    log = populated(make_log)
    load(log)
    for day in (20, 21, 22, 23):
        record(log, compose_on(day))
        load(log)
        assert len(segments(log)) <= 3
    # A manifest removed from the work tree drops out of the compacted segment too.
    (log.log.root / compose_on(20).relpath()).unlink()
    record(log, compose_on(24))
    load(log)
    checks.clear()
    warm = load(log)
    assert checks == []
    assert warm == load(log, cache=False)


def test_the_walk_lists_what_manifest_files_lists(make_log: Callable[..., Log]) -> None:
    log = populated(make_log)
    root = log.log.root
    (root / "schema").mkdir()
    (root / "schema" / "compose.schema.json").write_text("{}")
    (root / "atomic-host" / "composes" / ".tmp.json").write_text("x")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "a.json").write_text("{}")
    (root / "atomic-host" / "composes" / "stray.json").write_text("{}")
    (root / "atomic-host" / "composes" / "notes.txt").write_text("x")
    (root / "atomic-host-2" / "a-b").mkdir(parents=True)
    (root / "atomic-host-2" / "a-b" / "c.json").write_text("{}")
    (root / "atomic-host-2" / "a" / "b").mkdir(parents=True)
    (root / "atomic-host-2" / "a" / "b" / "c.json").write_text("{}")
    (root / "top.json").write_text("{}")
    ml = log.log
    assert ml.reader.manifest_names() == [str(p) for p in ml.manifest_files()]
    assert ManifestLog(log.repo / "missing").reader.manifest_names() == []


def test_a_log_outside_git_verifies_without_a_cache(
    make_log: Callable[..., Log], tmp_path: Path
) -> None:
    log = populated(make_log)
    plain = tmp_path / "plain"
    subprocess.run(["cp", "-r", str(log.repo), str(plain)], check=True)
    subprocess.run(["rm", "-rf", str(plain / ".git")], check=True)
    ml = ManifestLog(plain)
    assert ml.verify_all(ml.load_trust()) == load(log, cache=False)


def test_worker_processes_give_the_same_report(
    make_log: Callable[..., Log], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 3)
    log = populated(make_log)
    forged = write_signed(log, compose_on(21))
    forged.write_text(forged.read_text().replace('"respin": 0', '"respin": 1'))
    cold = load(log, cache=False)
    assert len(cold.failures) == 1
    assert load(log) == cold  # workers verified two thirds of the files and fed the cache
    assert len(segments(log)) == 3
    # Workers that fail have their share verified here.
    verifycache.remove(log.repo / ".git")
    monkeypatch.setattr(parallel, "_WORKER_CODE", "import sys; sys.exit(3)")
    assert load(log) == cold


# --- per-product loads -------------------------------------------------------------------------

OTHER = "cloud-base"


def two_products(make_log: Callable[..., Log]) -> Log:
    """:func:`populated`, plus a second product with two composes and a result, committed."""
    log = populated(make_log)
    toml = (log.log.product_dir("atomic-host") / "product.toml").read_text()
    other = log.log.product_dir(OTHER) / "product.toml"
    other.parent.mkdir()
    other.write_text(toml.replace('name = "atomic-host"', f'name = "{OTHER}"', 1))
    log.log.commit_file(other, "test: second product")
    composes = [compose_on(d, product=OTHER) for d in (14, 17)]
    for c in composes:
        record(log, c)
    record(log, make_result(composes[1], started=composes[1].created))
    return log


def load_products(log: Log, products: list[str], *, cache: bool = True) -> LogReport:
    ml = ManifestLog(log.repo, cache=cache)
    return ml.verify_all(ml.load_trust(), products)


def only(report: LogReport, product: str) -> LogReport:
    """The part of a whole-log report that concerns one product's folder."""
    return LogReport(
        verified=[v for v in report.verified if v.path.parts[0] == product],
        failures=[f for f in report.failures if f[0].split("/")[1] == product],
    )


@pytest.mark.parametrize("cache", [False, True])
def test_a_product_load_is_the_full_load_filtered(
    make_log: Callable[..., Log], checks: Checks, cache: bool
) -> None:
    log = two_products(make_log)
    full = load(log, cache=cache)
    assert not full.failures and len(full.verified) == 7
    for product, count in (("atomic-host", 4), (OTHER, 3)):
        checks.clear()
        report = load_products(log, [product], cache=cache)
        assert report == only(full, product)
        assert len(report.verified) == count
        assert {v.manifest.product for v in report.verified} == {product}
        assert {v.path.parts[0] for v in report.verified} == {product}
        # Only this product's files were looked at (the full load above warmed the cache).
        assert checks == ([] if cache else [str(v.path) for v in report.verified])
    both = load_products(log, ["atomic-host", OTHER], cache=cache)
    assert both == full
    assert load_products(log, [], cache=cache) == LogReport()
    assert load_products(log, ["no-such-product"], cache=cache) == LogReport()
    ml = ManifestLog(log.repo, cache=cache)
    assert ml.load_verified(ml.load_trust(), products=[OTHER]) == only(full, OTHER).verified


def test_a_bad_manifest_fails_loads_of_its_product_and_of_the_log_only(
    make_log: Callable[..., Log],
) -> None:
    """Fail closed covers what is loaded.

    A tampered manifest of atomic-host fails a load of atomic-host and a load of the
    whole log, cache or not; a load of another product does not read atomic-host's
    folder, so it does not see it and succeeds. ``invoke verify`` (and ``invoke status``)
    load the whole log, so they still report it.
    """
    log = two_products(make_log)
    load(log)  # warm: the tampered file must not come from the cache
    path = log.log.root / compose_on(15).relpath()
    path.write_text(path.read_text().replace('"respin": 0', '"respin": 7'))
    bad = f"manifests/{compose_on(15).relpath()}"
    trust = log.log.load_trust()
    for cache in (True, False):
        ml = ManifestLog(log.repo, cache=cache)
        for products in (["atomic-host"], None, ["atomic-host", OTHER]):
            with pytest.raises(VerificationError, match="bad signature") as raised:
                ml.load_verified(trust, products)
            assert [p for p, _ in raised.value.failures] == [bad]
        other = ml.load_verified(trust, [OTHER])
        assert [v.manifest.product for v in other] == [OTHER] * 3
    # An untracked forgery in the other product fails that product's load, and only it.
    forged = write_signed(log, compose_on(21, product=OTHER))
    forged.write_text(forged.read_text().replace('"respin": 0', '"respin": 1'))
    with pytest.raises(VerificationError) as raised:
        log.log.load_verified(trust, [OTHER])
    assert [p for p, _ in raised.value.failures] == [
        f"manifests/{forged.relative_to(log.log.root)}"
    ]
    path.write_text(path.read_text().replace('"respin": 7', '"respin": 0'))
    assert len(log.log.load_verified(trust, ["atomic-host"])) == 4


def test_the_cache_is_partitioned_per_product_and_warm_equals_cold(
    make_log: Callable[..., Log], checks: Checks, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = two_products(make_log)
    cold = {p: load_products(log, [p], cache=False) for p in ("atomic-host", OTHER)}
    cold_full = load(log, cache=False)
    # A cold product load caches only that product, in its own folder.
    checks.clear()
    assert load_products(log, ["atomic-host"]) == cold["atomic-host"]
    assert len(checks) == 4
    assert {p.parent.name for p in segments(log)} == {"atomic-host"}
    read: list[str] = []
    real_load = verifycache.VerifyCache._load

    def spy(self: verifycache.VerifyCache, directory: Path) -> Any:
        read.append(directory.name)
        return real_load(self, directory)

    monkeypatch.setattr(verifycache.VerifyCache, "_load", spy)
    checks.clear()
    assert load_products(log, ["atomic-host"]) == cold["atomic-host"]
    assert checks == []
    assert read == ["atomic-host"]  # the other product's results are not even read
    # The whole log: the other product is verified once, then comes from its partition.
    checks.clear()
    assert load(log) == cold_full
    assert sorted(checks) == sorted(str(v.path) for v in cold[OTHER].verified)
    assert {p.parent.name for p in segments(log)} == {"atomic-host", OTHER}
    for products in (["atomic-host"], [OTHER], None):
        read.clear()
        checks.clear()
        warm = load(log) if products is None else load_products(log, products)
        assert warm == (cold_full if products is None else cold[products[0]])
        assert checks == []
        assert sorted(read) == sorted(products or ["atomic-host", OTHER])
    # A product's results never serve another path: a wrong-folder copy is verified.
    src = log.log.root / compose_on(14).relpath()
    dst = log.log.root / compose_on(20, product=OTHER).relpath()
    dst.write_bytes(src.read_bytes())
    log.git("add", str(dst))
    log.git("commit", "-q", "-m", "replay")
    for _ in range(2):
        replay = load_products(log, [OTHER])
        assert [p for p, _ in replay.failures] == [f"manifests/{dst.relative_to(log.log.root)}"]
        assert replay == load_products(log, [OTHER], cache=False)


def test_a_product_load_asks_git_about_that_product_only(
    make_log: Callable[..., Log], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = two_products(make_log)
    calls: list[tuple[str, ...]] = []
    real_output = Git.output

    def spy(self: Git, *args: str) -> bytes | None:
        calls.append(args)
        return real_output(self, *args)

    monkeypatch.setattr(Git, "output", spy)
    load_products(log, [OTHER])
    scoped = [args for args in calls if "status" in args or "ls-files" in args]
    assert len(scoped) == 2
    for args in scoped:
        assert "--literal-pathspecs" in args
        assert args[args.index("--") + 1 :] == (f"manifests/{OTHER}",)
    calls.clear()
    load(log)
    for args in (a for a in calls if "status" in a or "ls-files" in a):
        assert args[args.index("--") + 1 :] == ("manifests",)


@pytest.mark.parametrize("bad", ["", ".git", "schema", "a/b", "..", "atomic-host\0"])
def test_a_product_load_refuses_what_is_not_a_product_name(
    make_log: Callable[..., Log], bad: str
) -> None:
    log = populated(make_log)
    with pytest.raises(ValueError, match="not a product name"):
        load_products(log, ["atomic-host", bad])
    with pytest.raises(ValueError, match="not the string"):
        log.log.verify_all(log.log.load_trust(), "atomic-host")


def test_loads_freeze_what_they_loaded(make_log: Callable[..., Log]) -> None:
    log = populated(make_log)
    gc.unfreeze()
    before = gc.get_freeze_count()
    report = load(log)
    assert gc.get_freeze_count() > before
    # Frozen is not immortal: refcounting frees the models when the report goes.
    frozen = gc.get_freeze_count()
    del report
    assert gc.get_freeze_count() < frozen
    gc.unfreeze()


def test_worker_segments_are_partitioned_too(
    make_log: Callable[..., Log], checks: Checks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 3)
    log = two_products(make_log)
    cold = load(log, cache=False)
    checks.clear()
    assert load(log) == cold
    assert len(checks) < 7  # workers verified some of the files
    by_partition = {p.parent.name for p in segments(log)}
    assert by_partition == {"atomic-host", OTHER}
    trust = verifycache.trust_fingerprint(log.log.load_trust())
    fingerprint = hashlib.sha256(f"{verifycache.code_fingerprint()}|{trust}".encode()).hexdigest()
    for seg in segments(log):
        entries = decode_segment(fingerprint, seg.read_bytes())
        assert entries, seg
        assert {path.split("/")[0] for path in entries} == {seg.parent.name}
    for product in ("atomic-host", OTHER):
        checks.clear()
        assert load_products(log, [product]) == only(cold, product)
        assert checks == []
