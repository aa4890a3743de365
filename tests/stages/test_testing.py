"""The test battery: real processes, real timeouts, real logs, tunir and JUnit inputs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.adapters.ingest import http_session, load_compose
from pipeline.core.config import ProductConfig, SandboxKind, SuiteSpec, TestSpec, load_product
from pipeline.core.models.manifests import ResultManifest
from pipeline.core.state import derive
from pipeline.errors import ConfigError, FetchError, InputError, TestRunError
from pipeline.log.signing import load_signer
from pipeline.log.writer import WriteOptions
from pipeline.stages.battery import parse_tunir, plan_suites
from pipeline.stages.compose import record_compose
from pipeline.stages.isolation import redactor_for
from pipeline.stages.results import RunOutcome, import_results, run_battery
from pipeline.stages.testing import Executed, LogStore, execute, judge
from tests.conftest import NOW, ROOT, ComposeTree, Log, StaticServer

TUNIR = """\
curl -O https://example.invalid/tests.tar.gz

## sudo systemctl status docker
@@ sudo reboot
SLEEP 30
python3 -m unittest tests.atomic -v
"""


def test_parse_tunir_job_file() -> None:
    steps = parse_tunir(TUNIR, "smoke.tunir", SuiteSpec(tunir="smoke.tunir", timeout=99))
    tests = [s for s in steps if isinstance(s, TestSpec)]
    assert [(t.name, t.blocking, t.expect_fail, t.timeout) for t in tests] == [
        ("curl -O https://example.invalid/tests.tar.gz", True, False, 99),
        ("sudo systemctl status docker", False, False, 99),
        ("sudo reboot", True, True, 99),
        ("python3 -m unittest tests.atomic -v", True, False, 99),
    ]
    assert 30.0 in steps


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SLEEP soon\nls\n", "smoke.tunir:1: SLEEP needs a number of seconds"),
        ("\n\nSLEEP 3\n", "no command in the tunir job file"),
        ("ls\n@@ \n", "smoke.tunir:2: empty command"),
    ],
)
def test_bad_tunir_files(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_tunir(text, "smoke.tunir", SuiteSpec(tunir="smoke.tunir"))


@pytest.mark.parametrize(
    ("code", "expect_fail", "outcome", "reason"),
    [
        (0, False, "PASSED", None),
        (3, False, "FAILED", "exit code 3"),
        (1, True, "PASSED", None),
        (0, True, "FAILED", "expected to fail, but exited 0"),
        (None, False, "FAILED", "timed out after 5 s (killed)"),
        (None, True, "FAILED", "timed out after 5 s (killed)"),
    ],
)
def test_judge(code: int | None, expect_fail: bool, outcome: str, reason: str | None) -> None:
    spec = TestSpec(name="t", command="x", expect_fail=expect_fail, timeout=5)
    assert judge(spec, Executed(code, 1)) == (outcome, reason)


def test_execute_captures_output_and_exit_code(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    run = execute("echo hello; echo oops >&2; exit 4", dict(os.environ), tmp_path, log, 10)
    assert run.exit_code == 4
    assert log.read_text() == "hello\noops\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    run = execute(
        f"sleep 300 & echo $! > {pidfile}; wait", dict(os.environ), tmp_path, tmp_path / "log", 1
    )
    assert run.exit_code is None
    assert time.monotonic() - start < 30
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert (
        not Path(f"/proc/{child}").exists()
        or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    )


def test_background_stragglers_are_killed_when_a_test_ends(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    run = execute(
        f"(sleep 300 & echo $! > {pidfile})", dict(os.environ), tmp_path, tmp_path / "log", 10
    )
    assert run.exit_code == 0
    time.sleep(0.2)
    child = int(pidfile.read_text())
    assert (
        not Path(f"/proc/{child}").exists()
        or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
    )


# --- whole runs on a recorded compose ---------------------------------------------------------


def recorded(log: Log, tree: ComposeTree) -> ProductConfig:
    ml = log.log
    product = load_product(ml.root, "atomic-host")
    record_compose(
        ml,
        product,
        load_compose(str(tree.root)),
        [load_signer("compose", log.env, ml.load_trust())],
        NOW,
        verify=True,
        options=WriteOptions(),
    )
    return product


def run(
    log: Log,
    product: ProductConfig,
    compose_id: str,
    tmp_path: Path,
    *,
    suite: str | None = None,
    arches: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    sandbox: SandboxKind | None = None,
) -> RunOutcome:
    base_env = {**log.env, **(env or os.environ)}
    return run_battery(
        log.log,
        product,
        compose_id,
        suite=suite,
        arches=list(arches),
        logs=LogStore(tmp_path / "logs", redactor_for(base_env)),
        scratch=tmp_path / "scratch",
        signers=[load_signer("test", log.env, log.log.load_trust())],
        options=WriteOptions(),
        base_env=base_env,
        clock=lambda: NOW,
        runner="ci-1",
        workers=2,
        session=http_session(backoff=0),
        sandbox=sandbox,
    )


def test_default_battery_passes_well_formed_images(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    log = make_log()
    tree = make_compose_tree()
    product = recorded(log, tree)
    outcome = run(log, product, "Fedora-28-20180425.0", tmp_path)
    [manifest] = outcome.manifests
    assert manifest.result == "PASSED", [(t.name, t.reason, t.log) for t in manifest.tests]
    assert len(manifest.tests) == 8 * 3  # 8 images x (checksum, format, name)
    assert {t.image.arch for t in manifest.tests if t.image} == {"x86_64", "aarch64", "ppc64le"}
    assert log.commits()[0] == "test: Fedora-28-20180425.0: images PASSED"
    for case in manifest.tests:
        assert case.log is not None and case.log.tail is None
        stored = tmp_path / "logs" / case.log.path
        assert stored.stat().st_size == case.log.size
    state = derive([v.manifest for v in log.log.load_verified(log.log.load_trust())], product, NOW)
    assert state.composes[0].status == "passed"


def test_a_compose_recorded_from_a_url_is_downloaded_then_tested(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    serve_dir: Callable[[Path], StaticServer],
    tmp_path: Path,
) -> None:
    log = make_log()
    tree = make_compose_tree()
    server = serve_dir(tree.root.parent)
    ml = log.log
    product = load_product(ml.root, "atomic-host")
    record_compose(
        ml,
        product,
        load_compose(server.url + "Fedora-28-20180425.0/"),
        [load_signer("compose", log.env, ml.load_trust())],
        NOW,
        verify=False,
        options=WriteOptions(),
    )
    [manifest] = run(log, product, "Fedora-28-20180425.0", tmp_path).manifests
    assert manifest.result == "PASSED", [(t.name, t.reason) for t in manifest.tests]
    downloads = [r for r in server.requests if "/images/" in r]
    assert len(downloads) == 8  # each image fetched once, then every test runs on the copy
    qcow = next(i for i in tree.atomic_x86_64() if i["type"] == "qcow2")
    (tree.compose_dir / qcow["path"]).unlink()
    with pytest.raises(FetchError, match=r"qcow2: HTTP 404"):
        run(log, product, "Fedora-28-20180425.0", tmp_path / "again")


def test_broken_image_fails_blocking_tests_with_log_tail(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    log = make_log()
    tree = make_compose_tree()
    qcow = next(i for i in tree.atomic_x86_64() if i["type"] == "qcow2")
    product = recorded(log, tree)
    path = tree.compose_dir / qcow["path"]
    path.write_bytes(b"NOTQCOW" + path.read_bytes()[7:])
    outcome = run(log, product, "Fedora-28-20180425.0", tmp_path)
    [manifest] = outcome.manifests
    assert manifest.result == "FAILED"
    failed = {
        (t.name, t.image.arch, t.image.type)
        for t in manifest.tests
        if t.outcome == "FAILED" and t.image
    }
    assert failed == {("checksum", "x86_64", "qcow2"), ("format", "x86_64", "qcow2")}
    fmt = next(t for t in manifest.tests if t.name == "format" and t.outcome == "FAILED")
    # The check's own first line, not "exit code 1".
    assert fmt.reason == f"{Path(qcow['path']).name}: magic is b'NOTQ', expected b'QFI\\xfb'"
    assert fmt.log is not None and fmt.log.tail and "qcow2" in fmt.log.tail


def test_commands_get_the_documented_environment(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text()
    toml = toml.replace(
        """[battery.suites.images]""",
        """pass_env = ["MY_VAR"]

[battery.suites.env]
[[battery.suites.env.tests]]
name = "dump"
types = ["qcow2"]
command = "env | sort; test -d $FORTNIGHT_SCRATCH; python -c 'import pipeline'"
arches = ["x86_64"]

[battery.suites.images]""",
    )
    log = make_log(product_toml=toml.encode())
    tree = make_compose_tree()
    product = recorded(log, tree)
    outcome = run(
        log,
        product,
        "Fedora-28-20180425.0",
        tmp_path,
        suite="env",
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "MY_VAR": "listed in pass_env",
            "NOT_LISTED": "dropped",
            "GITHUB_TOKEN": "ghp_from_the_runner",
            "GH_TOKEN": "gho_from_the_runner",
            "VAULT_TOKEN": "hvs.from-the-runner",
            "AZURE_CLIENT_SECRET": "azure~from~the~runner",
            "FORTNIGHT_KEYID_TEST": "0123abcd",
            "FORTNIGHT_REPO": str(log.repo),
        },
    )
    [manifest] = outcome.manifests
    [case] = manifest.tests
    assert case.outcome == "PASSED", case
    assert case.log is not None
    dumped = dict(
        line.split("=", 1) for line in (tmp_path / "logs" / case.log.path).read_text().splitlines()
    )
    qcow = next(i for i in tree.atomic_x86_64() if i["type"] == "qcow2")
    assert dumped["FORTNIGHT_IMAGE"] == str(tree.compose_dir.resolve() / qcow["path"])
    assert dumped["FORTNIGHT_IMAGE_SHA256"] == qcow["checksums"]["sha256"]
    assert dumped["FORTNIGHT_IMAGE_SIZE"] == str(qcow["size"])
    assert (
        dumped["FORTNIGHT_IMAGE_FORMAT"],
        dumped["FORTNIGHT_IMAGE_TYPE"],
        dumped["FORTNIGHT_IMAGE_ARCH"],
    ) == ("qcow2", "qcow2", "x86_64")
    assert dumped["FORTNIGHT_COMPOSE_ID"] == "Fedora-28-20180425.0"
    assert dumped["FORTNIGHT_IMAGE_URL"].endswith(qcow["path"])
    assert {"FORTNIGHT_SCRATCH", "FORTNIGHT_IMAGE_SUBVARIANT", "FORTNIGHT_IMAGE_VOLUME_ID"} <= set(
        dumped
    )
    # An allowlist: nothing else of the runner's environment (tokens, keys, the repo).
    assert set(dumped) == {
        *("PATH", "HOME", "LANG", "MY_VAR", "PYTHONPATH", "PWD", "SHLVL", "_"),
        *("FORTNIGHT_IMAGE", "FORTNIGHT_IMAGE_URL", "FORTNIGHT_IMAGE_FORMAT"),
        *("FORTNIGHT_IMAGE_TYPE", "FORTNIGHT_IMAGE_ARCH", "FORTNIGHT_IMAGE_SUBVARIANT"),
        *("FORTNIGHT_IMAGE_SIZE", "FORTNIGHT_IMAGE_SHA256", "FORTNIGHT_IMAGE_VOLUME_ID"),
        *("FORTNIGHT_COMPOSE_ID", "FORTNIGHT_SCRATCH"),
    }
    assert dumped["MY_VAR"] == "listed in pass_env"


def test_arch_slices_and_reruns(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    log = make_log()
    product = recorded(log, make_compose_tree())
    first = run(log, product, "Fedora-28-20180425.0", tmp_path, arches=("x86_64",))
    assert {t.image.arch for t in first.manifests[0].tests if t.image} == {"x86_64"}
    assert first.manifests[0].arches == ["x86_64"]

    def status() -> tuple[str, list[str]]:
        manifests = [v.manifest for v in log.log.load_verified(log.log.load_trust())]
        view = derive(manifests, product, NOW).composes[0]
        return view.status, view.reasons

    assert status() == (
        "pending",
        ["images: waiting for aarch64 qcow2, aarch64 raw-xz, ppc64le qcow2, ppc64le raw-xz"],
    )
    run(log, product, "Fedora-28-20180425.0", tmp_path, arches=("aarch64", "ppc64le"))
    assert status() == ("passed", [])
    again = run(log, product, "Fedora-28-20180425.0", tmp_path, arches=("x86_64",))
    assert again.manifests[0].run != first.manifests[0].run  # a re-run is a new run
    tests_dir = log.log.root / "atomic-host/tests/Fedora-28-20180425.0"
    assert len(list(tests_dir.glob("images-*.json"))) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"suite": "nosuch"}, ConfigError, "--suite nosuch: not in the battery of atomic-host"),
        ({"arches": ("s390x",)}, TestRunError, "no image matches the battery on s390x"),
    ],
)
def test_run_errors(
    kwargs: dict[str, object],
    error: type[Exception],
    message: str,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    log = make_log()
    product = recorded(log, make_compose_tree())
    with pytest.raises(error, match=message):
        run(log, product, "Fedora-28-20180425.0", tmp_path, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="--compose-id Fedora-99-20990101.0: not recorded"):
        run(log, product, "Fedora-99-20990101.0", tmp_path)


def test_tunir_suite_from_product_folder(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text()
    toml = toml.replace(
        "[battery.suites.images]",
        "[battery.suites.smoke]\n"
        'tunir = "smoke.tunir"\ntimeout = 1\ntypes = ["qcow2"]\n'
        'arches = ["x86_64"]\n\n[battery.suites.images]',
    )
    log = make_log(product_toml=toml.encode())
    (log.log.product_dir("atomic-host") / "smoke.tunir").write_text(
        'test -s "$FORTNIGHT_IMAGE"\n## false\n@@ false\nSLEEP 0\nsleep 5\n'
    )
    product = recorded(log, make_compose_tree())
    [suite] = plan_suites(product, log.log.product_dir("atomic-host"), "smoke")
    outcome = run(log, product, "Fedora-28-20180425.0", tmp_path, suite="smoke")
    [manifest] = outcome.manifests
    assert [(t.name, t.blocking, t.outcome, t.reason) for t in manifest.tests] == [
        ('test -s "$FORTNIGHT_IMAGE"', True, "PASSED", None),
        ("false", False, "FAILED", "exit code 1"),
        ("false", True, "PASSED", None),
        ("sleep 5", True, "FAILED", "timed out after 1 s (killed)"),
    ]
    assert manifest.result == "FAILED"
    assert len(suite.tests) == 4


# --- JUnit ------------------------------------------------------------------------------

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="3.2">
<testcase classname="tests.test_boot" name="test_boots" time="1.250"/>
<testcase classname="tests.test_docker" name="test_pull" time="0.5">
  <failure message="AssertionError: pull failed">Traceback...
AssertionError: pull failed</failure></testcase>
<testcase classname="tests.test_optional" name="test_cockpit" time="0.1">
  <error message="cockpit not installed"/></testcase>
<testcase classname="tests.test_boot" name="test_uefi" time="0">
  <skipped message="no uefi"/></testcase>
<testcase name="bare" time="0.001"/>
</testsuite></testsuites>
"""


def test_junit_import(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    log = make_log()
    product = recorded(log, make_compose_tree())
    report = tmp_path / "junit.xml"
    report.write_text(JUNIT)
    outcome = import_results(
        log.log,
        product,
        "Fedora-28-20180425.0",
        "openqa",
        report,
        advisory=["tests.test_optional.*"],
        arches=["x86_64"],
        logs=LogStore(tmp_path / "logs", redactor_for(log.env)),
        signers=[load_signer("test", log.env, log.log.load_trust())],
        options=WriteOptions(),
        clock=lambda: NOW,
        runner="openqa.example",
    )
    [m] = outcome.manifests
    assert m.origin == "junit" and m.result == "FAILED"
    assert [(t.name, t.blocking, t.outcome, t.duration_ms) for t in m.tests] == [
        ("tests.test_boot.test_boots", True, "PASSED", 1250),
        ("tests.test_docker.test_pull", True, "FAILED", 500),
        ("tests.test_optional.test_cockpit", False, "FAILED", 100),
        ("tests.test_boot.test_uefi", True, "SKIPPED", 0),
        ("bare", True, "PASSED", 1),
    ]
    pull = m.tests[1]
    assert pull.reason == "AssertionError: pull failed"
    assert pull.log is not None and pull.log.tail is not None and "Traceback" in pull.log.tail
    assert (tmp_path / "logs" / pull.log.path).read_text() == JUNIT
    assert {a.arch for a in m.artifacts} == {"x86_64"}
    assert log.commits()[0] == "test: Fedora-28-20180425.0: openqa FAILED (imported)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<testsuites><testsuite>", "not valid XML"),
        ("<html><body/></html>", "root element is <html>"),
        ("<testsuite/>", "no <testcase> in it"),
        ('<testsuite><testcase name="x" time="soon"/></testsuite>', "time 'soon' is not a number"),
    ],
)
def test_malformed_junit(
    content: str,
    message: str,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    tmp_path: Path,
) -> None:
    log = make_log()
    product = recorded(log, make_compose_tree())
    report = tmp_path / "junit.xml"
    report.write_text(content)
    head = log.git("rev-parse", "HEAD")
    with pytest.raises(InputError, match=message):
        import_results(
            log.log,
            product,
            "Fedora-28-20180425.0",
            "openqa",
            report,
            advisory=[],
            arches=[],
            logs=LogStore(tmp_path / "logs", redactor_for(log.env)),
            signers=[load_signer("test", log.env, log.log.load_trust())],
            options=WriteOptions(),
            clock=lambda: NOW,
            runner="x",
        )
    assert log.git("rev-parse", "HEAD") == head


def test_result_manifest_must_agree_with_its_tests() -> None:
    with pytest.raises(ValueError, match="result is PASSED but the tests say FAILED"):
        ResultManifest.model_validate(
            {
                "product": "atomic-host",
                "created": NOW,
                "compose_id": "Fedora-28-20180425.0",
                "suite": "images",
                "run": "20150915T120000Z-abcdef",
                "origin": "battery",
                "runner": "x",
                "started": NOW,
                "finished": NOW,
                "arches": [],
                "artifacts": [],
                "tests": [{"name": "t", "blocking": True, "outcome": "FAILED", "duration_ms": 1}],
                "result": "PASSED",
            }
        )
