"""Keeping secrets from test commands: the sandbox, the key files, the battery's settings."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.core.config import load_product
from pipeline.errors import ConfigError
from pipeline.stages.isolation import Sandbox, allowed_env, signing_key_files
from tests.conftest import ROOT, ComposeTree, Log, StaticServer
from tests.stages.test_testing import recorded, run

COMPOSE = "Fedora-28-20180425.0"


def battery_toml(tests: dict[str, str], extra: str = "") -> bytes:
    """The default product.toml with a suite ``jail`` of ``tests`` (name: command) on one image."""
    suite = "".join(
        f'[[battery.suites.jail.tests]]\nname = "{name}"\ncommand = """{command}"""\n'
        'types = ["qcow2"]\narches = ["x86_64"]\ntimeout = 5\n\n'
        for name, command in tests.items()
    )
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text()
    return toml.replace(
        "[battery.suites.images]", f"{extra}\n[battery.suites.jail]\n{suite}[battery.suites.images]"
    ).encode()


def test_a_sandboxed_test_cannot_read_keys_write_outside_or_reach_the_network(
    tmp_path: Path,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    serve_dir: Callable[[Path], StaticServer],
) -> None:
    server = serve_dir(tmp_path)
    key = tmp_path / "log-keys" / "test.key"
    escaped = ROOT / f".escaped-{tmp_path.name}"  # / is read-only in the sandbox
    fetch = f"python -c \"import urllib.request as u; u.urlopen('{server.url}', timeout=3)\""
    tests = {
        "key": f"cat {key}",
        "other-keys": f"ls {key.parent}/release.key",
        "write": f"touch {escaped}",
        "own-tmp": f"touch {tmp_path}/in-tmp",  # /tmp is the sandbox's own
        "net": fetch,
        "works": 'echo ok > "$FORTNIGHT_SCRATCH/f" && cmp -s "$FORTNIGHT_IMAGE" "$FORTNIGHT_IMAGE"'
        " && touch /tmp/mine && python -c 'import pipeline'",
        "timeout": "sleep 300 & wait",
    }
    log = make_log(product_toml=battery_toml(tests))
    product = recorded(log, make_compose_tree())
    plain = run(log, product, COMPOSE, tmp_path / "plain", suite="jail")
    outcome = {t.name: t.outcome for t in plain.manifests[0].tests}
    assert outcome == {n: "FAILED" if n == "timeout" else "PASSED" for n in tests}, outcome
    escaped.unlink()
    (tmp_path / "in-tmp").unlink()

    jailed = run(log, product, COMPOSE, tmp_path / "jailed", suite="jail", sandbox="bwrap")
    cases = {t.name: t for t in jailed.manifests[0].tests}
    assert {n: c.outcome for n, c in cases.items()} == {
        **{n: "FAILED" for n in tests},
        "works": "PASSED",
        "own-tmp": "PASSED",
    }
    tails = {n: c.log.tail or "" for n, c in cases.items() if c.log}
    assert "No such file or directory" in tails["key"]
    assert "No such file or directory" in tails["other-keys"]
    assert "Read-only file system" in tails["write"] and not escaped.exists()
    assert not (tmp_path / "in-tmp").exists()
    assert "URLError" in tails["net"]
    assert cases["timeout"].reason == "timed out after 5 s (killed)"
    assert cases["timeout"].duration_ms < 15_000


def test_the_sandbox_needs_bubblewrap(
    tmp_path: Path, make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    log = make_log(product_toml=battery_toml({"t": "true"}, 'sandbox = "bwrap"'))
    product = recorded(log, make_compose_tree())
    assert product.battery.sandbox == "bwrap"
    (tmp_path / "bin").mkdir()
    with pytest.raises(ConfigError, match="sandbox bwrap: bwrap is not installed") as e:
        run(log, product, COMPOSE, tmp_path, suite="jail", env={"PATH": str(tmp_path / "bin")})
    assert "install bubblewrap" in e.value.hint


def test_the_sandbox_refuses_keys_beside_the_images(
    tmp_path: Path, make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    log = make_log(product_toml=battery_toml({"t": "true"}))
    tree = make_compose_tree()
    product = recorded(log, tree)
    beside = tree.root / "test.key"
    shutil.copy(log.keydir / "test.key", beside)
    env = {"PATH": os.environ["PATH"], "FORTNIGHT_KEY_TEST": str(beside)}
    with pytest.raises(ConfigError, match=rf"sandbox bwrap: {tree.root} holds a signing key"):
        run(log, product, COMPOSE, tmp_path, suite="jail", env=env, sandbox="bwrap")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FORTNIGHT_KEY_TEST": "/keys/test.key"}, ["/keys/test.key"]),
        ({"FORTNIGHT_KEY_TEST": " file2:/keys/t.key "}, ["/keys/t.key"]),
        (
            {"FORTNIGHT_KEY_TEST": "file2:t.key", "CRYPTO_SIGNER_PATH_PREFIX": "/pre"},
            ["/pre/t.key"],
        ),
        ({"FORTNIGHT_KEY_TEST_2": "/a/2.key", "FORTNIGHT_KEY_RELEASE": "/b/r.key"}, None),
        ({"FORTNIGHT_KEY_TEST": "gnupg:?id=abc", "FORTNIGHT_KEY_X": "awskms:alias/k"}, []),
        ({"FORTNIGHT_KEYID_TEST": "/not/a/key", "FORTNIGHT_KEY_TEST": " "}, []),
    ],
    ids=["path", "file2", "file2-prefix", "several", "kms-gpg", "keyid-blank"],
)
def test_signing_key_files(env: dict[str, str], expected: list[str] | None) -> None:
    files = [str(p) for p in signing_key_files(env)]
    assert files == (expected if expected is not None else ["/b/r.key", "/a/2.key"])


def test_allowed_env_and_the_sandbox_command_line(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "TZ": "UTC", "X": "1", "GITHUB_TOKEN": "t", "FORTNIGHT_KEY_TEST": "k"}
    assert allowed_env(base, ["X", "FORTNIGHT_KEY_TEST"]) == {"PATH": "/bin", "TZ": "UTC", "X": "1"}
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".netrc").write_text("machine x password y")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "FORTNIGHT_KEY_TEST": "/k/t.key"}
    sandbox = Sandbox.bubblewrap(env, network=False)
    argv = sandbox.argv(Path("/s"), Path("/img"))
    assert "--share-net" not in argv and "--unshare-all" in argv and argv[-1] == "--"
    # Hidden last, so that no bind re-exposes them.
    assert argv.index("/k") > argv.index("/s") > argv.index("/img")
    assert argv[argv.index(str(tmp_path / ".ssh")) - 1] == "--tmpfs"
    netrc = argv.index(str(tmp_path / ".netrc"))
    assert argv[netrc - 2 : netrc] == ["--ro-bind", "/dev/null"]
    assert "--share-net" in Sandbox.bubblewrap(env, network=True).argv(Path("/s"), Path("/i"))


@pytest.mark.parametrize(
    ("battery", "message"),
    [
        ('pass_env = ["FORTNIGHT_KEY_TEST"]', "FORTNIGHT_KEY_TEST: signing keys are never passed"),
        ('pass_env = ["fortnight_keyid_test"]', "fortnight_keyid_test: signing keys are never"),
        ('pass_env = ["MY-VAR"]', "battery.pass_env.0: String should match pattern"),
        ('pass_env = "MY_VAR"', "battery.pass_env: Input should be a valid list"),
        ('sandbox = "docker"', "battery.sandbox: Input should be 'none' or 'bwrap'"),
        ("sandbox_network = 1", "battery.sandbox_network: Input should be a valid boolean"),
    ],
    ids=["key", "keyid-any-case", "not-a-name", "not-a-list", "sandbox", "network"],
)
def test_bad_battery_isolation_settings(battery: str, message: str, tmp_path: Path) -> None:
    folder = tmp_path / "atomic-host"
    folder.mkdir()
    (folder / "product.toml").write_bytes(battery_toml({"t": "true"}, battery))
    with pytest.raises(ConfigError, match=message):
        load_product(tmp_path, "atomic-host")
