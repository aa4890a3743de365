"""The root of trust: the root chain, its pin, and the attacks on trust.json it stops."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.core.models.common import Role, Trust, format_timestamp
from pipeline.errors import ConfigError, KeyConfigError, TrustError
from pipeline.log.signing import add_key_to_trust, load_signers
from pipeline.log.sslib import CryptoSigner, Signer
from pipeline.log.store import ManifestLog
from pipeline.log.trust import (
    PIN_CONFIG,
    Pin,
    load_pinned,
    next_version,
    parse_pin,
    root_fingerprint,
    root_key_signers,
    sign_root,
    write_version,
)
from tests.conftest import Log

PAST = datetime(2020, 1, 1, tzinfo=UTC)
FUTURE = datetime(2999, 1, 1, tzinfo=UTC)


def with_root(trust: Trust, keyids: list[str], threshold: int = 1) -> Trust:
    """``trust`` with the root role set to ``keyids`` (their keys must be in ``trust``)."""
    roles = trust.roles | {"root": Role(keyids=keyids, threshold=threshold)}
    return Trust(keys=trust.keys, roles=roles)


def add_root_keys(trust: Trust, *signers: Signer, threshold: int = 1) -> Trust:
    for signer in signers:
        trust = add_key_to_trust(trust, "root", signer.public_key)
    root = trust.roles["root"].model_copy(update={"threshold": threshold})
    return trust.model_copy(update={"roles": trust.roles | {"root": root}})


def forge(log: Log, raw: bytes, *, copy: bool = True, message: str = "trust: change") -> None:
    """Write root version bytes as anyone with push access could: no checks, one commit."""
    number = json.loads(raw)["signed"]["version"]
    path = log.log.root / "trust" / f"{number}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(raw)
    if copy:
        log.log.trust_path.write_bytes(raw)
    log.git("add", "-A", "manifests")
    log.git("commit", "-q", "-m", message)


def newest(log: Log) -> Trust:
    return log.log.load_root().chain.trust


# --- attacks, each with its rejection reason --------------------------------------------


def unsigned_change(log: Log) -> None:
    doc = json.loads(log.log.trust_path.read_text())
    attacker = CryptoSigner.generate_ed25519().public_key
    doc["signed"]["keys"][attacker.keyid] = attacker.to_dict()
    doc["signed"]["roles"]["release"]["keyids"].append(attacker.keyid)
    log.log.trust_path.write_text(json.dumps(doc, indent=2))
    log.git("commit", "-q", "-am", "trust: add a release key")


def unsigned_version(log: Log) -> None:
    trust = add_key_to_trust(newest(log), "release", CryptoSigner.generate_ed25519().public_key)
    forge(log, sign_root(trust, 2, []))


def self_signed_attacker_root(log: Log) -> None:
    attacker = CryptoSigner.generate_ed25519()
    trust = with_root(add_key_to_trust(newest(log), "root", attacker.public_key), [])
    trust = add_root_keys(trust, attacker)
    trust = with_root(trust, [attacker.public_key.keyid])
    forge(log, sign_root(trust, 2, [attacker]))


def too_few_root_keys(log: Log) -> None:
    second = CryptoSigner.generate_ed25519()
    trust = add_root_keys(newest(log), second, threshold=2)
    log.log.write_root(
        next_version(log.log.load_root().chain, trust, [log.signers["root"], second]), "v2"
    )
    more = add_key_to_trust(trust, "release", CryptoSigner.generate_ed25519().public_key)
    forge(log, sign_root(more, 3, [log.signers["root"]]))


def rotation_without_old_root(log: Log) -> None:
    new = CryptoSigner.generate_ed25519()
    trust = add_root_keys(newest(log), new)
    trust = with_root(trust, [new.public_key.keyid])
    forge(log, sign_root(trust, 2, [new]))


def rotation_new_key_does_not_sign(log: Log) -> None:
    new = CryptoSigner.generate_ed25519()
    trust = with_root(add_root_keys(newest(log), new), [new.public_key.keyid])
    forge(log, sign_root(trust, 2, [log.signers["root"]]))


def version_gap(log: Log) -> None:
    forge(log, sign_root(newest(log), 3, [log.signers["root"]]))


def duplicate_version(log: Log) -> None:
    shutil.copy(log.log.root / "trust/1.json", log.log.root / "trust/2.json")
    log.git("add", "-A", "manifests")
    log.git("commit", "-q", "-m", "trust: again")


def padded_version_name(log: Log) -> None:
    shutil.copy(log.log.root / "trust/1.json", log.log.root / "trust/01.json")
    log.git("add", "-A", "manifests")
    log.git("commit", "-q", "-m", "trust: again")


def stale_trust_json(log: Log) -> None:
    trust = add_key_to_trust(newest(log), "release", CryptoSigner.generate_ed25519().public_key)
    forge(log, sign_root(trust, 2, [log.signers["root"]]), copy=False)


def expired_root(log: Log) -> None:
    raw = sign_root(newest(log), 2, [log.signers["root"]], expires=PAST)
    forge(log, raw)


def legacy_unsigned(log: Log) -> None:
    doc = json.loads(log.log.trust_path.read_text())["signed"]
    legacy = {"spec_version": "1", "keys": doc["keys"], "roles": doc["roles"]}
    shutil.rmtree(log.log.root / "trust")
    log.log.trust_path.write_text(json.dumps(legacy, indent=2))
    log.git("add", "-A", "manifests")
    log.git("commit", "-q", "-m", "trust: back to plain")


def not_root_metadata(log: Log) -> None:
    doc = json.loads(log.log.trust_path.read_text())
    doc["signed"]["_type"] = "compose"
    raw = json.dumps(doc).encode()
    forge(log, raw)


def forged_first_version(log: Log) -> None:
    """Rewrite the whole chain from a new version 1 with the attacker's root key."""
    attacker = CryptoSigner.generate_ed25519()
    trust = with_root(add_root_keys(newest(log), attacker), [attacker.public_key.keyid])
    shutil.rmtree(log.log.root / "trust")
    forge(log, sign_root(trust, 1, [attacker]))


def duplicate_signed_key(log: Log) -> None:
    """A second ``signed`` object before the real one: root metadata is strict JSON."""
    raw = log.log.trust_path.read_text()
    forge(log, ('{"signed": {}, ' + raw.lstrip()[1:]).encode())


def keyid_not_its_keys_id(log: Log) -> None:
    """A root version signed by the root key, its release key listed twice (keys count once)."""
    doc = newest(log).model_dump(mode="json")
    keyid = log.signers["release"].public_key.keyid
    doc["keys"]["f" * 64] = doc["keys"][keyid]
    doc["roles"]["release"]["keyids"].append("f" * 64)
    forge(log, sign_root(Trust.model_validate(doc), 2, [log.signers["root"]]))


ATTACKS: list[tuple[Callable[[Log], None], str]] = [
    (unsigned_change, "manifests/trust.json differs from manifests/trust/1.json"),
    (
        unsigned_version,
        "manifests/trust/2.json: root version 2 is not signed by a threshold of "
        "version 1's root keys (0 of 1)",
    ),
    (
        self_signed_attacker_root,
        "manifests/trust/2.json: root version 2 is not signed by a threshold of "
        "version 1's root keys (0 of 1)",
    ),
    (
        too_few_root_keys,
        "manifests/trust/3.json: root version 3 is not signed by a threshold of "
        "version 2's root keys (1 of 2)",
    ),
    (
        rotation_without_old_root,
        "manifests/trust/2.json: root version 2 is not signed by a threshold of "
        "version 1's root keys (0 of 1)",
    ),
    (
        rotation_new_key_does_not_sign,
        "manifests/trust/2.json: root version 2 is not signed by a threshold of "
        "its own root keys (0 of 1)",
    ),
    (version_gap, "manifests/trust: root version 2 is missing"),
    (duplicate_version, "manifests/trust/2.json: holds root version 1, its file name says 2"),
    (padded_version_name, "manifests/trust/01.json: not a root version file"),
    (stale_trust_json, "manifests/trust.json differs from manifests/trust/2.json"),
    (expired_root, "manifests/trust/2.json: root expired on 2020-01-01T00:00:00Z"),
    (legacy_unsigned, "manifests/trust.json: unsigned trust file"),
    (
        not_root_metadata,
        "manifests/trust/1.json: not root metadata (_type: Input should be 'root')",
    ),
    (forged_first_version, "does not match the pinned root"),
    (
        duplicate_signed_key,
        'manifests/trust/1.json: not valid JSON: duplicate key "signed" in the object at $',
    ),
    (
        keyid_not_its_keys_id,
        f"manifests/trust/2.json: keyid {'f' * 64} is not the id of its key",
    ),
]


@pytest.mark.parametrize(("attack", "reason"), ATTACKS, ids=[a.__name__ for a, _ in ATTACKS])
def test_attacks_on_trust_are_rejected(
    make_log: Callable[..., Log], attack: Callable[[Log], None], reason: str
) -> None:
    log = make_log()
    pinned = log.log.load_root()  # first use: the clone pins version 1
    attack(log)
    with pytest.raises(TrustError) as exc:
        log.log.load_trust()
    assert reason in exc.value.message
    assert exc.value.exit_code == 4
    assert "\n" not in exc.value.diagnostics()
    if attack is forged_first_version:
        assert pinned.chain.fingerprint in exc.value.message
    if attack is legacy_unsigned:
        assert "invoke trust.upgrade" in exc.value.diagnostics()


def test_not_root_metadata_in_version_one_names_the_file(make_log: Callable[..., Log]) -> None:
    log = make_log()
    doc = json.loads(log.log.trust_path.read_text())
    doc["signed"]["version"] = "1"
    raw = json.dumps(doc).encode()
    (log.log.root / "trust/1.json").write_bytes(raw)
    log.log.trust_path.write_bytes(raw)
    with pytest.raises(TrustError, match=r"manifests/trust/1.json: not root metadata \(version"):
        log.log.load_trust()


# --- rotation and thresholds -------------------------------------------------------------


def test_rotation_signed_by_old_and_new_is_accepted_and_retires_the_old_key(
    make_log: Callable[..., Log],
) -> None:
    log = make_log()
    old, new = log.signers["root"], CryptoSigner.generate_ed25519()
    trust = with_root(add_root_keys(newest(log), new), [new.public_key.keyid])
    log.log.write_root(next_version(log.log.load_root().chain, trust, [old, new]), "rotate")
    assert newest(log).roles["root"].keyids == [new.public_key.keyid]
    more = add_key_to_trust(trust, "release", CryptoSigner.generate_ed25519().public_key)
    chain = log.log.load_root().chain
    with pytest.raises(ConfigError, match=r"version 3 is not signed by .* the current root keys"):
        next_version(chain, more, [old])
    forge(log, sign_root(more, 3, [old]))
    with pytest.raises(TrustError, match=r"version 2's root keys \(0 of 1\)"):
        log.log.load_trust()
    log.git("reset", "-q", "--hard", "HEAD~1")
    log.log.write_root(next_version(chain, more, [new]), "v3 by the new root key")
    assert [v.signed.version for v in log.log.load_root().chain.versions] == [1, 2, 3]


def test_a_threshold_of_two_root_keys_needs_both(make_log: Callable[..., Log]) -> None:
    log = make_log()
    second = CryptoSigner.generate_ed25519()
    trust = add_root_keys(newest(log), second, threshold=2)
    chain = log.log.load_root().chain
    with pytest.raises(
        ConfigError, match=r"not signed by a threshold of its own root keys \(1 of 2"
    ):
        next_version(chain, trust, [log.signers["root"]])
    log.log.write_root(next_version(chain, trust, [log.signers["root"], second]), "two roots")
    with pytest.raises(KeyConfigError, match="role root needs 2 signatures"):
        load_signers("root", log.env, newest(log))


def test_a_new_root_key_co_signs_its_version(make_log: Callable[..., Log], tmp_path: Path) -> None:
    log = make_log()
    key = log.log.add_trusted_key("root", tmp_path / "newroot", [log.signers["root"]])
    chain = log.log.load_root().chain
    assert chain.newest.signed.version == 2
    sigs = {s["keyid"] for s in json.loads(chain.newest.raw)["signatures"]}
    assert sigs == {log.signers["root"].public_key.keyid, key.public_key.keyid}
    assert log.commits()[0] == f"trust: add root key {key.public_key.keyid[:12]}"


def test_roles_root_and_timestamp_exist(make_log: Callable[..., Log]) -> None:
    trust = make_log().log.load_trust()
    assert trust.roles["timestamp"].threshold == 1
    assert len(trust.roles["root"].keyids) == 1


def test_an_unexpired_root_verifies(make_log: Callable[..., Log]) -> None:
    log = make_log()
    forge(log, sign_root(newest(log), 2, [log.signers["root"]], expires=FUTURE))
    assert log.log.load_root().chain.newest.signed.expires == FUTURE
    later = datetime(3000, 1, 1, tzinfo=UTC)
    with pytest.raises(TrustError, match=f"root expired on {format_timestamp(FUTURE)}"):
        load_pinned(log.log.root, log.log.git, now=later)


# --- the pin -----------------------------------------------------------------------------


def config_pin(log: Log) -> str:
    return log.log.git.run("config", "--get", PIN_CONFIG, check=False).stdout.strip()


def test_first_use_records_the_pin_in_git_config(make_log: Callable[..., Log]) -> None:
    log = make_log()
    assert config_pin(log) == ""
    first = log.log.load_root()
    assert first.recorded and first.pin.source == "first use"
    v1 = json.loads((log.log.root / "trust/1.json").read_bytes())["signed"]
    assert config_pin(log) == first.chain.fingerprint == root_fingerprint(v1)
    again = log.log.load_root()
    assert not again.recorded and again.pin.source == f"git config {PIN_CONFIG}"


@pytest.mark.parametrize("form", ["fingerprint", "upper", "file", "fingerprint-file"])
def test_root_option_pins_explicitly(
    make_log: Callable[..., Log], tmp_path: Path, form: str
) -> None:
    log = make_log()
    fingerprint = root_fingerprint(json.loads(log.log.trust_path.read_bytes())["signed"])
    value = {
        "fingerprint": fingerprint,
        "upper": fingerprint.upper(),
        "file": str(log.log.root / "trust/1.json"),
        "fingerprint-file": str(tmp_path / "pin"),
    }[form]
    (tmp_path / "pin").write_text(fingerprint + "\n")
    pinned = log.log.load_root(parse_pin(value, "--root"))
    assert pinned.pin == Pin(fingerprint, "--root") and not pinned.recorded
    assert config_pin(log) == ""  # an explicit pin is not recorded
    other = "0" * 64
    with pytest.raises(TrustError, match=f"root fingerprint {fingerprint} does not match"):
        log.log.load_root(Pin(other, "--root"))


def test_a_configured_pin_of_another_log_rejects_this_one(
    make_log: Callable[..., Log],
) -> None:
    log = make_log()
    other = CryptoSigner.generate_ed25519()
    forged = json.loads(sign_root(with_root(add_root_keys(newest(log), other), []), 1, []))
    log.git("config", PIN_CONFIG, root_fingerprint(forged["signed"]))
    with pytest.raises(TrustError, match="does not match the pinned root"):
        log.log.load_trust()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "not a fingerprint (64 hex digits) nor a readable file"),
        ("{tmp}/junk", "neither a fingerprint nor root metadata"),
        ("{tmp}/v2.json", "holds root version 2, a pin is version 1"),
    ],
)
def test_bad_root_option(
    make_log: Callable[..., Log], tmp_path: Path, value: str, reason: str
) -> None:
    log = make_log()
    (tmp_path / "junk").write_text("{}")
    (tmp_path / "v2.json").write_bytes(sign_root(newest(log), 2, [log.signers["root"]]))
    with pytest.raises(ConfigError, match=re.escape(reason)):
        parse_pin(value.format(tmp=tmp_path), "--root")


def test_bad_configured_pin(make_log: Callable[..., Log]) -> None:
    log = make_log()
    log.git("config", PIN_CONFIG, "nope")
    with pytest.raises(ConfigError, match="git config fortnight.root: 'nope' is not a fingerprint"):
        log.log.load_trust()


# --- new roots ----------------------------------------------------------------------------


def test_root_key_signers_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="FORTNIGHT_KEY_ROOT is not set"):
        root_key_signers({})
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(KeyConfigError, match="not an unencrypted PEM private key"):
        root_key_signers({"FORTNIGHT_KEY_ROOT": str(tmp_path / "bad.key")})
    signer = CryptoSigner.generate_ed25519()
    (tmp_path / "root.key").write_bytes(signer.private_bytes)
    env = {"FORTNIGHT_KEY_ROOT": f"file2:{tmp_path / 'root.key'}"}
    assert [s.public_key.keyid for s in root_key_signers(env)] == [signer.public_key.keyid]


def test_write_version_never_overwrites(make_log: Callable[..., Log]) -> None:
    log = make_log()
    with pytest.raises(ConfigError, match="trust/1.json: already exists"):
        write_version(log.log.root, (log.log.root / "trust/1.json").read_bytes())


def test_trust_files_are_not_manifests(make_log: Callable[..., Log]) -> None:
    log = make_log()
    log.write_trust(
        add_key_to_trust(newest(log), "test", CryptoSigner.generate_ed25519().public_key)
    )
    assert not [p for p in log.log.manifest_files() if p.parts[0] == "trust"]
    report = ManifestLog(log.repo).verify_all(log.log.load_trust())
    assert report.failures == []
