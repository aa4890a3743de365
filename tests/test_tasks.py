"""The operator's view: invoke tasks run as child processes, their output and exit codes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from pipeline.core.models.common import Trust
from pipeline.log.signing import sign_manifest
from pipeline.log.sslib import CryptoSigner
from pipeline.log.store import ManifestLog
from pipeline.log.trust import root_fingerprint
from pipeline.stages.schema import write_schemas
from tests.conftest import ROOT, ComposeTree, Log, index_by_hand, make_compose, run_invoke


def assert_one_line_error(stderr: str, fragment: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


def test_committed_schema_is_current() -> None:
    assert write_schemas(ROOT / "manifests" / "schema", check=True) == [], (
        "manifests/schema is stale: run 'invoke schema'"
    )


def test_init_and_keys_generate(tmp_path: Path) -> None:
    """A root key first (no log yet: only the key), then init signs root version 1 and
    prints its fingerprint, then each new key is the next root version."""
    repo = tmp_path / "log"
    nokey = run_invoke("init", "--repo", str(repo))
    assert nokey.returncode == 2
    assert_one_line_error(nokey.stderr, "FORTNIGHT_KEY_ROOT is not set")
    assert not (repo / "manifests").exists()
    root = run_invoke(
        "keys.generate", "--role", "root", "--out", str(tmp_path / "keys"), "--repo", str(repo)
    )
    assert root.returncode == 0, root.stderr
    assert root.stdout.strip() == f"FORTNIGHT_KEY_ROOT={tmp_path / 'keys' / 'root.key'}"
    env = {"FORTNIGHT_KEY_ROOT": str(tmp_path / "keys" / "root.key")}
    first = run_invoke("init", "--repo", str(repo), env=env)
    assert first.returncode == 0 and "created" in first.stdout, first.stderr
    v1 = json.loads((repo / "manifests/trust/1.json").read_bytes())
    fingerprint = root_fingerprint(v1["signed"])
    assert f"root fingerprint: {fingerprint}" in first.stdout
    pinned = subprocess.run(
        ["git", "-C", str(repo), "config", "fortnight.root"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert pinned.stdout.strip() == fingerprint
    again = run_invoke("init", "--repo", str(repo), env=env)
    assert again.stdout.startswith("already a manifest log")
    gen = run_invoke(
        "keys.generate",
        "--role",
        "release",
        "--out",
        str(tmp_path / "keys"),
        "--repo",
        str(repo),
        env=env,
    )
    assert gen.returncode == 0, gen.stderr
    key = tmp_path / "keys" / "release.key"
    assert gen.stdout.strip() == f"FORTNIGHT_KEY_RELEASE={key}"
    assert os.stat(key).st_mode & 0o777 == 0o600
    trust = json.loads((repo / "manifests" / "trust.json").read_text())
    assert trust == json.loads((repo / "manifests/trust/2.json").read_text())
    assert trust["signed"]["version"] == 2
    roles = trust["signed"]["roles"]
    assert len(roles["release"]["keyids"]) == 1 and roles["compose"]["keyids"] == []
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--format=%s"], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert re.fullmatch(r"trust: add release key [0-9a-f]{12}", log[0])
    unsigned = run_invoke(
        "keys.generate", "--role", "test", "--out", str(tmp_path / "k3"), "--repo", str(repo)
    )
    assert unsigned.returncode == 2
    assert_one_line_error(unsigned.stderr, "FORTNIGHT_KEY_ROOT is not set")
    assert not (repo / "manifests/trust/3.json").exists()
    refused = run_invoke(
        "keys.generate", "--role", "test", "--out", str(repo / "keys"), "--repo", str(repo), env=env
    )
    assert refused.returncode == 2
    assert_one_line_error(refused.stderr, "is inside the repository")
    assert not (repo / "keys").exists()
    bad_role = run_invoke(
        "keys.generate",
        "--role",
        "admin",
        "--out",
        str(tmp_path / "k2"),
        "--repo",
        str(repo),
        env=env,
    )
    assert bad_role.returncode == 2
    assert_one_line_error(bad_role.stderr, "--role admin: unknown role")


def test_record_verify_and_rerun(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    log = make_log()
    tree = make_compose_tree()
    args = ("compose.record", "--source", str(tree.root), "--repo", str(log.repo))
    dry = run_invoke(*args, "--dry-run", env=log.env)
    assert (
        dry.returncode == 0
        and "would record: manifests/atomic-host/composes/Fedora-28-20180425.0.json" in dry.stdout
    )
    done = run_invoke(*args, env=log.env)
    assert done.returncode == 0, done.stderr
    assert (
        "recorded: manifests/atomic-host/composes/Fedora-28-20180425.0.json, "
        "8 image(s) checked, commit" in done.stdout
    )
    assert "vagrant-virtualbox" in done.stdout  # the summary table
    again = run_invoke(*args, env=log.env)
    assert again.returncode == 0 and "already recorded (no change)" in again.stdout
    ok = run_invoke("verify", "--repo", str(log.repo))
    assert ok.returncode == 0 and re.search(r"compose\s+│\s+1", ok.stdout), ok.stdout
    # Tamper with the log: verify names the file and the reason, and fails.
    path = log.repo / "manifests/atomic-host/composes/Fedora-28-20180425.0.json"
    path.write_text(path.read_text().replace('"respin": 0', '"respin": 2'))
    bad = run_invoke("verify", "--repo", str(log.repo))
    assert bad.returncode == 4
    assert (
        "rejected: manifests/atomic-host/composes/Fedora-28-20180425.0.json: bad signature from key"
        in bad.stderr
    )


@pytest.mark.parametrize(
    ("setup", "extra", "code", "fragment"),
    [
        ("nokey", (), 2, "FORTNIGHT_KEY_COMPOSE is not set"),
        ("ok", ("--product", "nosuch"), 2, "nosuch/product.toml: not found"),
        ("nosource", (), 3, "no metadata/composeinfo.json in it or in its compose/ folder"),
        ("mismatch", (), 3, "sha256 is"),
        ("ok", ("--verify-checksums", "--skip-checksums"), 2, "exclude each other"),
        ("badtrust", (), 4, "manifests/trust.json differs from manifests/trust/1.json"),
        ("badtoml", (), 2, "product.toml: images.arches: Field required"),
        ("norepo", (), 6, "not a git repository"),
    ],
)
def test_record_bad_inputs_are_one_line_errors(
    setup: str,
    extra: tuple[str, ...],
    code: int,
    fragment: str,
    tmp_path: Path,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    log = make_log()
    tree = make_compose_tree()
    env = dict(log.env)
    repo = log.repo
    source = str(tree.root)
    if setup == "nokey":
        env.pop("FORTNIGHT_KEY_COMPOSE")
    elif setup == "nosource":
        source = str(tmp_path)
    elif setup == "mismatch":
        img = tree.compose_dir / tree.atomic_x86_64()[0]["path"]
        img.write_bytes(img.read_bytes()[::-1])
    elif setup == "badtrust":
        (repo / "manifests/trust.json").write_text("{")
    elif setup == "badtoml":
        toml = repo / "manifests/atomic-host/product.toml"
        toml.write_text(toml.read_text().replace('arches = ["x86_64", "aarch64", "ppc64le"]', ""))
    elif setup == "norepo":
        repo = tmp_path / "empty"
        repo.mkdir()
    head = log.git("rev-parse", "HEAD")
    proc = run_invoke("compose.record", "--source", source, "--repo", str(repo), *extra, env=env)
    assert proc.returncode == code, proc.stderr
    assert_one_line_error(proc.stderr, fragment)
    assert log.git("rev-parse", "HEAD") == head
    assert not (log.repo / "manifests/atomic-host/composes").exists()


def test_record_failed_compose_cli(make_log: Callable[..., Log]) -> None:
    log = make_log()
    proc = run_invoke(
        "compose.record",
        "--failed",
        "--compose-id",
        "Fedora-Atomic-22-20150915.0",
        "--reason",
        "DOOMED",
        "--log-url",
        "https://koji.invalid/log",
        "--repo",
        str(log.repo),
        env=log.env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "recorded: manifests/atomic-host/composes/Fedora-Atomic-22-20150915.0.json" in proc.stdout
    )
    missing = run_invoke("compose.record", "--failed", "--repo", str(log.repo), env=log.env)
    assert missing.returncode == 2
    assert_one_line_error(missing.stderr, "--failed needs --compose-id and --reason")


COMPOSE_REL = "manifests/atomic-host/composes/Fedora-Atomic-22-20150915.0.json"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        pytest.param(
            '"label": null',
            '"label": "\\ud800"',
            "not valid JSON: lone surrogate in the string at $.signed.label",
            id="lone surrogate in a value",
        ),
        pytest.param(
            '"label": null',
            '"\\udfff": null',
            'not valid JSON: lone surrogate in the key "\\udfff" of the object at $.signed',
            id="lone surrogate in a key",
        ),
        pytest.param(
            '"compose_id": ',
            '"compose_id": "Fedora-Atomic-22-20150916.0", "compose_id": ',
            'not valid JSON: duplicate key "compose_id" in the object at $.signed',
            id="duplicate compose_id",
        ),
    ],
)
def test_verify_and_status_name_a_committed_non_strict_manifest(
    old: str, new: str, reason: str, make_log: Callable[..., Log]
) -> None:
    """A committed manifest that is not strict JSON: both tasks name the file and the
    reason, exit 4, and never crash printing it (a lone surrogate cannot be encoded)."""
    log = make_log()
    raw = sign_manifest(make_compose(), [log.signers["compose"]]).decode()
    assert old in raw
    path = log.repo / COMPOSE_REL
    path.parent.mkdir(parents=True)
    path.write_text(raw)
    index_by_hand(log, [path], log.signers["compose"])  # recorded (indexed, checkpointed)
    path.write_text(raw.replace(old, new, 1))  # then edited by hand
    log.git("add", "manifests")
    log.git("commit", "-q", "-m", "compose: a hostile edit")
    verify = run_invoke("verify", "--repo", str(log.repo))
    assert verify.returncode == 4, verify.stderr
    assert "Traceback" not in verify.stderr
    assert f"rejected: {COMPOSE_REL}: {reason}\n" in verify.stderr
    status = run_invoke("status", "--repo", str(log.repo))
    assert status.returncode == 4, status.stderr
    assert_one_line_error(status.stderr, f"error: {COMPOSE_REL}: {reason}")


def test_a_keyid_that_is_not_its_keys_id_is_refused(make_log: Callable[..., Log]) -> None:
    """A second keyid for the release key, even in a root version signed by the root key:
    every task refuses the root chain (exit 4)."""
    log = make_log()
    trust = log.log.load_trust().model_dump(mode="json")
    keyid = log.signers["release"].public_key.keyid
    made_up = "f" * 64
    trust["keys"][made_up] = trust["keys"][keyid]
    trust["roles"]["release"]["keyids"].append(made_up)
    trust["roles"]["release"]["threshold"] = 2
    log.write_trust(Trust.model_validate(trust), "trust: a second release keyid")
    for task in ("verify", "status"):
        proc = run_invoke(task, "--repo", str(log.repo))
        assert proc.returncode == 4, proc.stderr
        assert_one_line_error(
            proc.stderr,
            f"manifests/trust/2.json: keyid {made_up} is not the id of its key "
            f"(securesystemslib computes {keyid})",
        )


def test_demo_runs_on_embedded_defaults(tmp_path: Path) -> None:
    """Two weeks of the demo's story, without serving: nights, a release, a bug, the site."""
    proc = run_invoke("demo", "--dir", str(tmp_path / "demo"), "--weeks", "2", "--no-serve")
    assert proc.returncode == 0, proc.stderr
    assert re.search(
        r"14 nights: 1 releases, 0 stale cycles, 0 withdrawn; bugs \d+ opened", proc.stdout
    )
    assert re.search(r"rejected\s+│\s+0", proc.stdout)
    assert "opened local1" in proc.stdout  # the first night fails a blocking test (seed 1)
    assert re.search(r"the page offers: \S+ \(Fedora-Atomic-28-\d{8}\.0\)", proc.stdout)
    site = tmp_path / "demo" / "www"
    assert (site / "index.html").is_file() and (site / "atomic-host/dashboard/index.html").is_file()
    # The images the page offers are served beside it.
    assert len(list((site / "composes").glob("*/compose/AtomicHost/*/images/*.qcow2"))) >= 20
    verify = run_invoke("verify", "--repo", str(tmp_path / "demo" / "log"))
    assert verify.returncode == 0
    assert not list((tmp_path / "demo" / "log").rglob("*.key"))
    # OSTree: a commit per arch each night, the release promoted, the repository served
    assert "ostree:       promoted to" in proc.stdout
    ref = site / "atomic-host/ostree/refs/heads/fedora/28/x86_64/atomic-host"
    assert ref.read_text().strip() in (site / "atomic-host/index.html").read_text()
    assert (site / "atomic-host/ostree/summary.sig").is_file()
    assert (site / "atomic-host/ostree.gpg").read_text().startswith("-----BEGIN PGP PUBLIC")
    assert not list((tmp_path / "demo" / "log").rglob("private-keys-v1.d"))
    # Package lists (productmd's rpms.json), the history picture, the announcement previews.
    trees = list((site / "composes").glob("*/compose/metadata/images.json"))
    assert len(list((site / "composes").glob("*/compose/metadata/rpms.json"))) == len(trees)
    signed = [
        json.loads(p.read_text())["signed"]
        for p in (tmp_path / "demo/log/manifests/atomic-host/composes").glob("*.json")
    ]
    with_images = [c for c in signed if c["outcome"] == "images"]
    assert len(with_images) == len(trees) >= 10
    assert all(c["packages"][0]["sources"] for c in with_images)
    assert 'id="history"' in (site / "index.html").read_text()
    previews = sorted((tmp_path / "demo" / "announcements").glob("*.txt"))
    assert f"announcements: {tmp_path / 'demo' / 'announcements'}" in proc.stdout
    released = [p.read_text() for p in previews if "released (" in p.read_text()]
    assert len(released) == 1 and "sha256 " in released[0] and "Why this image:" in released[0]
    # Its site verifies end to end, from the root fingerprint, with the console script.
    fingerprint = ManifestLog(tmp_path / "demo" / "log").load_root().chain.fingerprint
    args = [str(site), "--root", fingerprint, "--state", str(tmp_path / "verify-state")]
    checked = subprocess.run(
        [sys.executable, "-m", "pipeline.cli.verify_site", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"OK: {site}: root {fingerprint[:16]}")
    # ... and names, from the signed stream, the tree a host following the ref should be on
    tree = ref.read_text().strip()
    assert f"x86_64 fedora/28/x86_64/atomic-host {tree} (version" in checked.stdout


def test_a_threshold_of_two_needs_two_keys(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree], tmp_path: Path
) -> None:
    """trust.json asks two compose signatures: one key is refused before anything is written;
    with FORTNIGHT_KEY_COMPOSE_2 set, both sign and the manifest verifies."""
    log = make_log()
    second = log.log.add_trusted_key("compose", tmp_path / "second", [log.signers["root"]])
    trust = log.log.load_trust()
    compose = trust.roles["compose"].model_copy(update={"threshold": 2})
    log.write_trust(trust.model_copy(update={"roles": trust.roles | {"compose": compose}}))
    tree = make_compose_tree()
    args = ("compose.record", "--repo", str(log.repo), "--source", str(tree.root))
    commits = len(log.commits())
    one = run_invoke(*args, env=log.env)
    assert one.returncode == 2
    assert one.stderr.strip() == (
        "error: trust.json: role compose needs 2 signatures, and 1 compose key(s) are set; "
        "set FORTNIGHT_KEY_COMPOSE_2 to another compose key"
    )
    assert len(log.commits()) == commits
    same = run_invoke(
        *args, env={**log.env, "FORTNIGHT_KEY_COMPOSE_2": log.env["FORTNIGHT_KEY_COMPOSE"]}
    )
    assert same.returncode == 2 and "the same compose key is set twice" in same.stderr
    two = run_invoke(*args, env={**log.env, "FORTNIGHT_KEY_COMPOSE_2": str(second.private_path)})
    assert two.returncode == 0, two.stderr
    manifest = next((log.repo / "manifests/atomic-host/composes").glob("*.json"))
    assert len(json.loads(manifest.read_text())["signatures"]) == 2
    assert run_invoke("verify", "--repo", str(log.repo)).returncode == 0


def test_demo_serves_the_site_with_working_downloads(tmp_path: Path) -> None:
    """The README's first command, shortened to one week: the served page's download links
    are absolute URLs of the same server, and a download matches its page's sha256."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORTNIGHT_")}
    args = ["demo", "--weeks", "1", "--dir", str(tmp_path / "demo")]
    with subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            url, seen = None, []
            for line in proc.stdout:
                seen.append(line)
                if line.startswith("serving "):
                    url = line.split(" at ")[1].split()[0]
                    break
            assert url, "".join(seen)
            page = requests.get(url + "index.html", timeout=10).text
            links = re.findall(r'<a class="dl" href="([^"]+)"', page)
            assert links and all(link.startswith(url + "composes/") for link in links)
            body = requests.get(links[0], timeout=10).content
            shown = re.sub(r"<wbr>", "", page)  # a checksum is drawn in groups
            assert hashlib.sha256(body).hexdigest() in shown
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def add_unsigned_release_key(log: Log) -> None:
    """An attacker with push access and no root key: one edit of trust.json, one commit."""
    doc = json.loads(log.log.trust_path.read_text())
    attacker = CryptoSigner.generate_ed25519().public_key
    doc["signed"]["keys"][attacker.keyid] = attacker.to_dict()
    doc["signed"]["roles"]["release"]["keyids"].append(attacker.keyid)
    log.log.trust_path.write_text(json.dumps(doc, indent=2))
    log.git("commit", "-q", "-am", "trust: add a release key")


def test_verify_pins_the_root_and_rejects_an_unsigned_trust_change(
    make_log: Callable[..., Log],
) -> None:
    log = make_log()
    first = run_invoke("verify", "--repo", str(log.repo))
    assert first.returncode == 0, first.stderr
    fingerprint = log.log.load_root().chain.fingerprint
    assert f"note: no pinned root; trusting root {fingerprint} on first use" in first.stderr
    second = run_invoke("verify", "--repo", str(log.repo))
    assert second.returncode == 0 and "note:" not in second.stderr
    wrong = run_invoke("verify", "--repo", str(log.repo), "--root", "f" * 64)
    assert wrong.returncode == 4
    assert_one_line_error(wrong.stderr, f"root fingerprint {fingerprint} does not match")
    env_pin = run_invoke("verify", "--repo", str(log.repo), env={"FORTNIGHT_ROOT": "f" * 64})
    assert env_pin.returncode == 4 and "does not match the pinned root ffff" in env_pin.stderr
    add_unsigned_release_key(log)
    for args in (("verify",), ("status",)):
        proc = run_invoke(*args, "--repo", str(log.repo))
        assert proc.returncode == 4, proc.stderr
        assert_one_line_error(
            proc.stderr, "manifests/trust.json differs from manifests/trust/1.json"
        )


def test_trust_show_prints_the_chain(make_log: Callable[..., Log], tmp_path: Path) -> None:
    log = make_log()
    gen = run_invoke(
        "keys.generate",
        "--role",
        "root",
        "--out",
        str(tmp_path / "k"),
        "--repo",
        str(log.repo),
        env=log.env,
    )
    assert gen.returncode == 0, gen.stderr
    show = run_invoke("trust.show", "--repo", str(log.repo))
    assert show.returncode == 0, show.stderr
    rows = [line for line in show.stdout.splitlines() if re.match(r"^│ [12] ", line)]
    assert len(rows) == 2 and "never" in rows[0]
    root_keys = log.log.load_trust().roles["root"].keyids
    assert all(k[:12] in rows[1] for k in root_keys) and len(root_keys) == 2
    fingerprint = log.log.load_root().chain.fingerprint
    assert f"root fingerprint: {fingerprint}" in show.stdout


def test_trust_upgrade_signs_a_legacy_trust_file(
    make_log: Callable[..., Log], tmp_path: Path
) -> None:
    """A log from before root metadata: refused with the command to run, which signs it."""
    log = make_log()
    signed = json.loads(log.log.trust_path.read_text())["signed"]
    roles = {r: signed["roles"][r] for r in ("compose", "test", "release")}
    keys = {k: signed["keys"][k] for r in roles.values() for k in r["keyids"]}
    shutil.rmtree(log.log.root / "trust")
    legacy = {"spec_version": "1", "keys": keys, "roles": roles}
    log.log.trust_path.write_text(json.dumps(legacy, indent=2))
    log.git("add", "-A", "manifests")
    log.git("commit", "-q", "-m", "log: before root metadata")
    old = run_invoke("verify", "--repo", str(log.repo))
    assert old.returncode == 4
    assert_one_line_error(old.stderr, "manifests/trust.json: unsigned trust file")
    assert "run 'invoke trust.upgrade' with FORTNIGHT_KEY_ROOT set" in old.stderr
    nokey = run_invoke("trust.upgrade", "--repo", str(log.repo))
    assert nokey.returncode == 2
    assert_one_line_error(nokey.stderr, "FORTNIGHT_KEY_ROOT is not set")
    env = {"FORTNIGHT_KEY_ROOT": log.env["FORTNIGHT_KEY_ROOT"]}
    up = run_invoke("trust.upgrade", "--repo", str(log.repo), env=env)
    assert up.returncode == 0, up.stderr
    chain = log.log.load_root().chain
    assert f"root fingerprint: {chain.fingerprint}" in up.stdout
    assert chain.trust.roles["root"].keyids == [log.signers["root"].public_key.keyid]
    assert chain.trust.roles["timestamp"].keyids == []
    assert log.commits()[0] == "trust: signed root version 1 (upgrade)"
    again = run_invoke("trust.upgrade", "--repo", str(log.repo), env=env)
    assert again.returncode == 2
    assert_one_line_error(again.stderr, "already signed root metadata; nothing to upgrade")
    assert run_invoke("verify", "--repo", str(log.repo)).returncode == 0


def test_trust_threshold_and_remove_write_root_versions(
    make_log: Callable[..., Log], tmp_path: Path
) -> None:
    log = make_log()
    repo = ("--repo", str(log.repo))
    old = log.signers["compose"].public_key.keyid
    gen = run_invoke(
        "keys.generate", "--role", "compose", "--out", str(tmp_path / "k"), *repo, env=log.env
    )
    assert gen.returncode == 0, gen.stderr
    steps: list[tuple[tuple[str, ...], dict[str, str], int, str]] = [
        (
            ("trust.threshold", "--role", "compose", "--threshold", "2"),
            {},
            2,
            "FORTNIGHT_KEY_ROOT is not set",
        ),
        (
            ("trust.threshold", "--role", "compose", "--threshold", "3"),
            log.env,
            2,
            "role compose has 2 key(s)",
        ),
        (
            ("trust.threshold", "--role", "compose", "--threshold", "2"),
            log.env,
            0,
            "root version 3 written",
        ),
        (
            ("trust.remove", "--keyid", old),
            log.env,
            2,
            "role compose would keep 1 key(s) for a threshold of 2",
        ),
        (("trust.remove", "--keyid", "0" * 64), log.env, 2, "not a key in trust.json"),
        (
            ("trust.threshold", "--role", "compose", "--threshold", "1"),
            log.env,
            0,
            "root version 4 written",
        ),
        (("trust.remove", "--keyid", old), log.env, 0, "root version 5 written"),
    ]
    for args, env, code, fragment in steps:
        proc = run_invoke(*args, *repo, env=env)
        assert proc.returncode == code, (args, proc.stderr)
        if code:
            assert_one_line_error(proc.stderr, fragment)
        else:
            assert fragment in proc.stdout
    trust = log.log.load_trust()
    assert old not in trust.keys and trust.roles["compose"].threshold == 1
    assert len(trust.roles["compose"].keyids) == 1
    assert log.commits()[0] == f"trust: remove key {old[:12]}"
    assert run_invoke("verify", *repo).returncode == 0


TOKENS = {
    "GITHUB_TOKEN": "ghp_LEAKCANARY0000github",
    "GH_TOKEN": "gho_LEAKCANARY1111gh",
    "VAULT_TOKEN": "hvs.LEAKCANARY2222vault",
    "AZURE_CLIENT_SECRET": "az~LEAKCANARY3333azure",
}


@pytest.mark.parametrize("sandbox", ["none", "bwrap"])
def test_a_test_that_leaks_secrets_records_none_of_them(
    sandbox: str,
    tmp_path: Path,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    """A failing test prints its environment, the runner's (from /proc), and the signing key
    in three forms: nothing of it reaches the manifest, git, the log store or the task output."""
    key = tmp_path / "log-keys" / "test.key"
    leak = (
        'echo "gh=$GITHUB_TOKEN vault=$VAULT_TOKEN azure=$AZURE_CLIENT_SECRET g=$GH_TOKEN"; env; '
        "tr '\\0' '\\n' < /proc/$PPID/environ; "
        f"cat {key}; grep -v -- ----- {key}; base64 -w0 {key}; echo; exit 1"
    )
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text()
    toml = toml.replace(
        "[battery.suites.images]",
        f'[battery.suites.leak]\n[[battery.suites.leak.tests]]\nname = "leak"\n'
        f"command = '''{leak}'''\ntypes = [\"qcow2\"]\narches = [\"x86_64\"]\n\n"
        "[battery.suites.images]",
    )
    log = make_log(product_toml=toml.encode())
    tree = make_compose_tree()
    env = {**log.env, **TOKENS}
    record = run_invoke(
        "compose.record", "--source", str(tree.root), "--repo", str(log.repo), env=env
    )
    assert record.returncode == 0, record.stderr
    logs = tmp_path / "logs"
    args = ("--suite", "leak", "--no-tracker", "--logs", str(logs), "--sandbox", sandbox)
    proc = run_invoke(
        "test.run", "--compose-id", "Fedora-28-20180425.0", "--repo", str(log.repo), *args, env=env
    )
    assert proc.returncode == 0, proc.stderr
    [manifest] = (log.repo / "manifests/atomic-host/tests/Fedora-28-20180425.0").glob("leak-*.json")
    [case] = json.loads(manifest.read_text())["signed"]["tests"]
    assert case["outcome"] == "FAILED"
    [stored] = [p for p in logs.rglob("*") if p.is_file()]
    log_text = stored.read_text()
    pem = key.read_bytes()
    forms = [
        *TOKENS.values(),
        *(line for line in pem.decode().splitlines() if not line.startswith("-----")),
        base64.b64encode(pem).decode(),
    ]
    everywhere = {
        "manifest": manifest.read_text(),
        "git": log.git("log", "-p", "--all", "--format=%B"),
        "repository": "".join(
            p.read_text(errors="replace") for p in log.repo.rglob("*") if p.is_file()
        ),
        "log store": log_text,
        "task output": proc.stdout + proc.stderr,
    }
    for where, text in everywhere.items():
        for secret in forms:
            assert secret not in text, f"{secret[:12]}… in the {where}"
    assert "gh= vault= azure= g=" in log_text  # the variables never reached the test
    if sandbox == "bwrap":
        # Not readable at all (its path is a secret-looking variable's value: redacted too).
        assert log_text.count("[redacted]: No such file or directory") == 3
        assert not any(name in log_text for name in TOKENS)  # not even the runner's /proc
    else:
        # The runner's /proc/PID/environ shows them; the values are redacted.
        assert all(f"{name}=[redacted]" in log_text for name in TOKENS)
        assert "[redacted]" in case["log"]["tail"]


def test_an_unknown_sandbox_is_a_one_line_error(make_log: Callable[..., Log]) -> None:
    log = make_log()
    args = ("--compose-id", "Fedora-28-20180425.0", "--repo", str(log.repo), "--no-tracker")
    proc = run_invoke("test.run", *args, "--sandbox", "docker", env=log.env)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--sandbox docker: unknown sandbox")
