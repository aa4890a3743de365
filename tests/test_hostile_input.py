"""Issue 17: hostile input through the tasks, as processes: one line, the documented exit
code, nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.core.config import load_product
from pipeline.errors import ConfigError
from pipeline.log.writer import WriteOptions
from tests.conftest import ROOT, ComposeTree, Log, make_compose, run_invoke
from tests.test_tasks import assert_one_line_error


def test_compose_record_caps_metadata_size_with_an_override(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    log = make_log()
    tree = make_compose_tree()
    head = log.git("rev-parse", "HEAD")
    args = ("compose.record", "--source", str(tree.root), "--repo", str(log.repo))
    small = run_invoke(*args, "--max-metadata-bytes", "1KiB", env=log.env)
    assert small.returncode == 3, small.stderr
    assert_one_line_error(small.stderr, "larger than the 1024 byte limit for compose metadata")
    assert "--max-metadata-bytes or FORTNIGHT_MAX_METADATA_BYTES" in small.stderr
    by_env = run_invoke(*args, env={**log.env, "FORTNIGHT_MAX_METADATA_BYTES": "2000"})
    assert by_env.returncode == 3
    assert_one_line_error(by_env.stderr, "larger than the 2000 byte limit")
    bad = run_invoke(*args, env={**log.env, "FORTNIGHT_MAX_METADATA_BYTES": "lots"})
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "FORTNIGHT_MAX_METADATA_BYTES: 'lots' is not a size")
    assert log.git("rev-parse", "HEAD") == head and log.git("status", "--porcelain") == ""
    # the option wins over the variable, and a big enough cap records the compose
    ok = run_invoke(
        *args, "--max-metadata-bytes", "64MiB", env={**log.env, "FORTNIGHT_MAX_METADATA_BYTES": "1"}
    )
    assert ok.returncode == 0, ok.stderr


def test_compose_record_rejects_deep_nesting_and_coerced_fields(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    """200,000 nested arrays (RecursionError before) and a string size (coerced before)."""
    log = make_log()
    tree = make_compose_tree()
    meta = tree.compose_dir / "metadata" / "images.json"
    good = meta.read_bytes()
    args = ("compose.record", "--source", str(tree.root), "--repo", str(log.repo))
    meta.write_bytes(b"[" * 200_000 + b"]" * 200_000)
    deep = run_invoke(*args, env=log.env)
    assert deep.returncode == 3, deep.stderr
    assert_one_line_error(deep.stderr, "images.json: nested too deeply")
    meta.write_bytes(good)
    image = tree.atomic_x86_64()[0]
    image["size"] = str(image["size"])
    tree.rewrite()
    coerced = run_invoke(*args, env=log.env)
    assert coerced.returncode == 3, coerced.stderr
    assert_one_line_error(
        coerced.stderr,
        "images.json: payload.images.AtomicHost.x86_64[0].size: Input should be a valid integer",
    )
    assert log.git("status", "--porcelain") == ""


# --- product.toml (item 4) -----------------------------------------------------------

COMPOSE_ID = "Fedora-28-20180425.0"
SHIPPED_TOML = (ROOT / "manifests/atomic-host/product.toml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            "cadence_days = 14",
            "cadence_days = 9999999999",
            "release.cadence_days: Input should be less than or equal to 3660",
            id="cadence overflow",
        ),
        pytest.param(
            "grace_days = 2",
            "grace_days = 99999999999",
            "release.grace_days: Input should be less than or equal to 3660",
            id="grace overflow",
        ),
        pytest.param(
            "anchor = 2018-05-01",
            "anchor = 9999-12-31",
            "release.anchor: Input should be less than or equal to 9000-12-31",
            id="anchor at the end of time",
        ),
        pytest.param(
            "/compose/twoweek/{compose_id}/compose/",
            "/compose/twoweek/{0}/compose/",
            'images.download_url: Value error, unknown placeholder "{0}"; allowed: {compose_id}',
            id="positional placeholder",
        ),
        pytest.param(
            "/compose/twoweek/{compose_id}/compose/",
            "/compose/{nope}/",
            'images.download_url: Value error, unknown placeholder "{nope}"; allowed: {compose_id}',
            id="unknown placeholder",
        ),
        pytest.param(
            "/compose/twoweek/{compose_id}/compose/",
            "/compose/{compose_id/",
            "images.download_url: Value error, expected '}' before end of string; allowed: "
            "{compose_id}, and {{ }} for braces",
            id="unclosed brace",
        ),
        pytest.param(
            "[tracker]",
            '[battery.suites.smoke]\ntunir = "../../../../../../etc/hostname"\n\n[tracker]',
            "battery.suites.smoke.tunir: Value error, must be a relative path inside the "
            "product folder (no '..', not absolute)",
            id="tunir file outside",
        ),
        pytest.param(
            "[tracker]",
            '[battery.suites.smoke]\ntunir = "/etc/hostname"\n\n[tracker]',
            "battery.suites.smoke.tunir: Value error, must be a relative path inside the "
            "product folder",
            id="tunir file absolute",
        ),
    ],
)
def test_product_toml_rejects_hostile_values_by_field(
    old: str, new: str, message: str, make_log: Callable[..., Log]
) -> None:
    """OverflowError / IndexError tracebacks before; now a field error, exit 2, from the
    loader and through a task."""
    assert old in SHIPPED_TOML
    log = make_log(product_toml=SHIPPED_TOML.replace(old, new, 1).encode())
    with pytest.raises(ConfigError) as exc:
        load_product(log.repo / "manifests", "atomic-host")
    assert message in exc.value.message
    proc = run_invoke("release.cut", "--repo", str(log.repo), "--dry-run", env=log.env)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc.stderr, message)


def _log_with_battery(make_log: Callable[..., Log], tunir: str) -> Log:
    toml = SHIPPED_TOML.replace(
        "[tracker]", f'[battery.suites.smoke]\ntunir = "{tunir}"\n\n[tracker]', 1
    )
    return make_log(product_toml=toml.encode())


def test_a_battery_file_symlinked_out_of_the_product_folder_is_refused(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    """The path is inside, but a symlink leads out: nothing runs (exit 2)."""
    log = _log_with_battery(make_log, "smoke.tunir")
    marker = tmp_path / "ran"
    outside = tmp_path / "outside.tunir"
    outside.write_text(f"touch {marker}\n")
    (log.repo / "manifests/atomic-host/smoke.tunir").symlink_to(outside)
    tree = make_compose_tree()
    args = ("--repo", str(log.repo))
    assert (
        run_invoke("compose.record", "--source", str(tree.root), *args, env=log.env).returncode == 0
    )
    proc = run_invoke(
        "test.run",
        "--compose-id",
        COMPOSE_ID,
        "--suite",
        "smoke",
        "--no-tracker",
        *args,
        env=log.env,
    )
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc.stderr, "battery.suites.smoke.tunir: smoke.tunir resolves to")
    assert "outside the product folder" in proc.stderr
    assert not marker.exists()


def test_test_run_dry_run_runs_nothing(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    """--dry-run used to run the whole battery; now it prints the plan and runs nothing."""
    log = _log_with_battery(make_log, "smoke.tunir")
    marker = tmp_path / "ran"
    (log.repo / "manifests/atomic-host/smoke.tunir").write_text(f"touch {marker}\n")
    log.git("add", "-A")
    log.git("commit", "-qm", "battery: smoke")
    tree = make_compose_tree()
    args = ("--repo", str(log.repo))
    assert (
        run_invoke("compose.record", "--source", str(tree.root), *args, env=log.env).returncode == 0
    )
    head = log.git("rev-parse", "HEAD")
    proc = run_invoke("test.run", "--compose-id", COMPOSE_ID, "--dry-run", *args, env=log.env)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    x86_qcow2 = next(i["path"] for i in tree.atomic_x86_64() if i["type"] == "qcow2")
    assert f"would run: smoke: touch {marker} on {x86_qcow2}" in proc.stdout
    assert f"would run: images: checksum on {x86_qcow2}" in proc.stdout
    assert "nothing ran" in proc.stdout
    assert log.git("rev-parse", "HEAD") == head and log.git("status", "--porcelain") == ""
    assert not (log.repo / "logs").exists()


# --- a manifest that no task can print (item 1) -------------------------------------


def _two_products_one_poisoned(make_log: Callable[..., Log], poisoned: str) -> tuple[Log, str]:
    """A log with atomic-host and ``other``, each with a signed compose; in ``poisoned``
    (or in both, for ``"both"``) its label is a lone surrogate. The bad files' paths."""
    log = make_log()
    other = log.repo / "manifests/other"
    other.mkdir()
    (other / "product.toml").write_text(
        SHIPPED_TOML.replace('name = "atomic-host"', 'name = "other"', 1).replace(
            "fortnight-atomic-host", "fortnight-other"
        )
    )
    log.git("add", "-A")
    log.git("commit", "-qm", "product: add other")
    bad = []
    for product in ("atomic-host", "other"):  # recorded: signed, indexed, checkpointed
        manifest = make_compose(product=product)
        log.log.record(
            [manifest], [log.signers["compose"]], log.log.load_trust(), "compose", WriteOptions()
        )
        rel = f"manifests/{manifest.relpath()}"
        if poisoned in (product, "both"):  # then edited by a hostile commit
            raw = (log.repo / rel).read_text().replace('"label": null', '"label": "\\ud800"', 1)
            (log.repo / rel).write_text(raw)
            bad.append(rel)
    log.git("commit", "-qam", "a hostile edit")
    return log, bad[0]


LONE = "not valid JSON: lone surrogate in the string at $.signed.label"


def test_verify_names_every_lone_surrogate_manifest(make_log: Callable[..., Log]) -> None:
    log, _ = _two_products_one_poisoned(make_log, "both")
    proc = run_invoke("verify", "--repo", str(log.repo))
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    for product in ("atomic-host", "other"):
        rel = f"manifests/{product}/composes/Fedora-Atomic-22-20150915.0.json"
        assert f"rejected: {rel}: {LONE}\n" in proc.stderr


def test_status_shows_the_good_products_and_names_the_bad_file(
    make_log: Callable[..., Log],
) -> None:
    log, bad = _two_products_one_poisoned(make_log, "other")
    proc = run_invoke("status", "--repo", str(log.repo), "--at", "2015-09-16")
    assert proc.returncode == 4, proc.stderr
    assert_one_line_error(proc.stderr, f"error: {bad}: {LONE}")
    assert "Fedora Atomic Host" in proc.stdout and "Fedora-Atomic-22-20150915.0" in proc.stdout
    js = run_invoke("status", "--json", "--repo", str(log.repo), "--at", "2015-09-16")
    assert js.returncode == 4
    assert list(json.loads(js.stdout)["products"]) == ["atomic-host"]


def test_release_cut_rejects_its_products_bad_file_and_not_the_others(
    make_log: Callable[..., Log],
) -> None:
    log, bad = _two_products_one_poisoned(make_log, "other")
    args = ("release.cut", "--repo", str(log.repo), "--at", "2018-05-16", "--dry-run")
    theirs = run_invoke(*args, "--product", "other", env=log.env)
    assert theirs.returncode == 4, theirs.stderr
    assert_one_line_error(theirs.stderr, f"error: {bad}: {LONE}")
    ours = run_invoke(*args, "--product", "atomic-host", env=log.env)
    assert ours.returncode == 0, ours.stderr
    assert "Traceback" not in ours.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_site_build_names_the_bad_files_of_every_product_and_writes_nothing(
    workers: str, make_log: Callable[..., Log], tmp_path: Path
) -> None:
    log, bad = _two_products_one_poisoned(make_log, "both")
    out = tmp_path / "www"
    proc = run_invoke(
        "site.build", "--repo", str(log.repo), "--output", str(out), "--workers", workers
    )
    assert proc.returncode == 4, proc.stderr
    assert_one_line_error(proc.stderr, f"error: {bad}: {LONE} (and 1 more)")
    assert not (out / "index.html").exists()


# --- JUnit (item 3) ------------------------------------------------------------------


def test_test_import_refuses_an_unknown_encoding_and_a_report_over_the_cap(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree], tmp_path: Path
) -> None:
    """LookupError traceback before; now one line, exit 3, nothing written; the cap has an
    option and a variable."""
    log = make_log()
    tree = make_compose_tree()
    repo = ("--repo", str(log.repo))
    assert (
        run_invoke("compose.record", "--source", str(tree.root), *repo, env=log.env).returncode == 0
    )
    head = log.git("rev-parse", "HEAD")
    report = tmp_path / "junit.xml"
    args = ("test.import", "--compose-id", COMPOSE_ID, "--suite", "openqa", "--junit", str(report))
    report.write_text('<?xml version="1.0" encoding="x-klingon"?><testsuite/>')
    klingon = run_invoke(*args, *repo, env=log.env)
    assert klingon.returncode == 3, klingon.stderr
    assert_one_line_error(klingon.stderr, "cannot be decoded (unknown encoding: x-klingon)")
    report.write_text('<testsuite><testcase name="a" time="1"/>' + " " * 5000 + "</testsuite>")
    big = run_invoke(*args, "--max-junit-bytes", "4KiB", *repo, env=log.env)
    assert big.returncode == 3
    assert_one_line_error(big.stderr, "larger than the 4096 byte limit for a report")
    by_env = run_invoke(*args, *repo, env={**log.env, "FORTNIGHT_MAX_JUNIT_BYTES": "100"})
    assert by_env.returncode == 3
    assert_one_line_error(by_env.stderr, "larger than the 100 byte limit")
    assert log.git("rev-parse", "HEAD") == head and log.git("status", "--porcelain") == ""
    ok = run_invoke(*args, "--max-cases", "5", "--no-tracker", *repo, env=log.env)
    assert ok.returncode == 0, ok.stderr
    assert "openqa: 1 test case(s): 1 passed, 0 failed, 0 skipped; 1 recorded" in ok.stdout
