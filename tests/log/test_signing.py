"""Signing, trust and fail-closed verification: a tamper corpus, one case per reason."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from pipeline.core.models.common import ROLES, Role, RoleName, Trust
from pipeline.errors import KeyConfigError
from pipeline.log.signing import (
    ManifestRejected,
    add_key_to_trust,
    dump_envelope,
    generate_key,
    load_signer,
    sign_manifest,
    signed_bytes,
    verify_manifest,
)
from pipeline.log.sslib import CryptoSigner
from tests.conftest import Log, make_compose

REL = PurePosixPath("atomic-host/composes/Fedora-Atomic-22-20150915.0.json")


@pytest.fixture
def trust(role_signers: dict[RoleName, CryptoSigner]) -> Trust:
    t = Trust(keys={}, roles={r: Role(keyids=[]) for r in ROLES})
    for role, signer in role_signers.items():
        t = add_key_to_trust(t, role, signer.public_key)
    return t


def good_bytes(signer: CryptoSigner, **overrides: Any) -> bytes:
    return sign_manifest(make_compose(**overrides), [signer])


def resign(payload: dict[str, Any], *signers: CryptoSigner) -> bytes:
    data = signed_bytes(payload)
    return dump_envelope(payload, [s.sign(data) for s in signers])


def test_good_manifest_verifies_and_round_trips(
    trust: Trust, role_signers: dict[RoleName, CryptoSigner]
) -> None:
    raw = good_bytes(role_signers["compose"])
    manifest = verify_manifest(raw, REL, trust)
    assert manifest == make_compose()
    doc = json.loads(raw)
    assert list(doc) == ["signatures", "signed"]  # sorted keys, readable in review
    assert raw.decode().startswith('{\n  "signatures"')


def _tampered(case: str, signers: dict[RoleName, CryptoSigner]) -> tuple[bytes, PurePosixPath]:
    compose = signers["compose"]
    payload = make_compose().signed_dict()
    if case == "unsigned":
        return dump_envelope(payload, []), REL
    if case == "bad signature":
        doc = json.loads(good_bytes(compose))
        doc["signed"]["images"][0]["size"] += 1
        return json.dumps(doc).encode(), REL
    if case == "unknown key":
        return resign(payload, CryptoSigner.generate_ed25519()), REL
    if case == "wrong role":
        return resign(payload, signers["test"]), REL
    if case == "path does not match identity":
        return good_bytes(compose), PurePosixPath(
            "atomic-host/composes/Fedora-Atomic-22-20150916.0.json"
        )
    if case == "schema error":
        payload["surprise"] = "extra field"
        return resign(payload, compose), REL
    if case == "not valid JSON":
        return good_bytes(compose)[:-20], REL
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "unsigned",
        "bad signature",
        "unknown key",
        "wrong role",
        "path does not match identity",
        "schema error",
        "not valid JSON",
    ],
)
def test_tamper_corpus_rejected_with_its_reason(
    case: str, trust: Trust, role_signers: dict[RoleName, CryptoSigner]
) -> None:
    raw, rel = _tampered(case, role_signers)
    with pytest.raises(ManifestRejected) as exc:
        verify_manifest(raw, rel, trust)
    assert exc.value.reason.startswith(case), exc.value.reason


def test_threshold_not_met(trust: Trust, role_signers: dict[RoleName, CryptoSigner]) -> None:
    second = CryptoSigner.generate_ed25519()
    t = add_key_to_trust(trust, "compose", second.public_key)
    roles = dict(t.roles)
    roles["compose"] = Role(keyids=roles["compose"].keyids, threshold=2)
    t = Trust(keys=t.keys, roles=roles)
    payload = make_compose().signed_dict()
    one = resign(payload, role_signers["compose"])
    with pytest.raises(ManifestRejected, match=r"^threshold not met: 1 of 2 required compose"):
        verify_manifest(one, REL, t)
    # The same key twice is still one key.
    twice = resign(payload, role_signers["compose"], role_signers["compose"])
    with pytest.raises(ManifestRejected, match=r"^threshold not met: 1 of 2"):
        verify_manifest(twice, REL, t)
    both = resign(payload, role_signers["compose"], second)
    assert verify_manifest(both, REL, t) == make_compose()


def test_one_bad_signature_beside_enough_good_ones_is_accepted(
    trust: Trust, role_signers: dict[RoleName, CryptoSigner]
) -> None:
    raw = resign(make_compose().signed_dict(), role_signers["compose"], role_signers["test"])
    assert verify_manifest(raw, REL, trust).product == "atomic-host"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda p: p.__setitem__("_type", "mystery"),
            "schema error: _type: unknown kind 'mystery'",
        ),
        (lambda p: p["images"][0].__setitem__("size", 1.5), "schema error: not canonical JSON"),
        (lambda p: p.__setitem__("created", "2015-09-15 12:00"), "schema error: created"),
        (lambda p: p["images"][0].__setitem__("size", "593363456"), "schema error: images.0.size"),
        (lambda p: p.__setitem__("product", "other"), "path does not match identity"),
        (lambda p: p.__setitem__("compose_id", "../../escape"), "schema error: compose_id"),
    ],
)
def test_payload_problems(
    mutate: Callable[[dict[str, Any]], None],
    reason: str,
    trust: Trust,
    role_signers: dict[RoleName, CryptoSigner],
) -> None:
    payload = make_compose().signed_dict()
    mutate(payload)
    data = json.dumps({"signed": payload, "signatures": []})
    if "not canonical" not in reason:
        data = resign(payload, role_signers["compose"]).decode()
    with pytest.raises(ManifestRejected) as exc:
        verify_manifest(data.encode(), REL, trust)
    assert exc.value.reason.startswith(reason), exc.value.reason


def test_envelope_shape_is_checked(trust: Trust) -> None:
    with pytest.raises(ManifestRejected, match="^schema error: envelope"):
        verify_manifest(b'{"signed": {}, "signatures": [], "extra": 1}', REL, trust)


# --- keys ------------------------------------------------------------------------------


def test_generate_key_writes_0600_outside_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    key = generate_key("release", tmp_path / "keys", repo)
    assert key.private_path == (tmp_path / "keys" / "release.key").resolve()
    assert os.stat(key.private_path).st_mode & 0o777 == 0o600
    assert key.env_line("release") == f"FORTNIGHT_KEY_RELEASE={key.private_path}"
    with pytest.raises(KeyConfigError, match="already exists"):
        generate_key("release", tmp_path / "keys", repo)


def test_generate_key_refuses_the_repository(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="inside the repository"):
        generate_key("compose", tmp_path / "manifests" / "keys", tmp_path)
    assert not (tmp_path / "manifests").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "FORTNIGHT_KEY_COMPOSE is not set"),
        ({"FORTNIGHT_KEY_COMPOSE": "/nonexistent/compose.key"}, "cannot read key file"),
        ({"FORTNIGHT_KEY_COMPOSE": "weird:thing"}, "unknown key URI scheme 'weird:'"),
    ],
)
def test_load_signer_errors(env: dict[str, str], message: str, trust: Trust) -> None:
    with pytest.raises(KeyConfigError, match=message):
        load_signer("compose", env, trust)


def test_load_signer_checks_role_and_format(make_log: Callable[..., Log], tmp_path: Path) -> None:
    log = make_log()
    trust = log.log.load_trust()
    with pytest.raises(KeyConfigError, match="is not a compose key in trust.json"):
        load_signer("compose", {"FORTNIGHT_KEY_COMPOSE": log.env["FORTNIGHT_KEY_TEST"]}, trust)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    with pytest.raises(KeyConfigError, match="not an unencrypted PEM private key"):
        load_signer("compose", {"FORTNIGHT_KEY_COMPOSE": str(garbage)}, trust)
    no_keys = Trust(keys={}, roles={r: Role(keyids=[]) for r in ROLES})
    with pytest.raises(KeyConfigError, match="trust.json has no compose key"):
        load_signer("compose", {"FORTNIGHT_KEY_COMPOSE": log.env["FORTNIGHT_KEY_COMPOSE"]}, no_keys)


def test_file2_uri_and_plain_path_sign_the_same(make_log: Callable[..., Log]) -> None:
    log = make_log()
    trust = log.log.load_trust()
    path = log.env["FORTNIGHT_KEY_RELEASE"]
    plain = load_signer("release", {"FORTNIGHT_KEY_RELEASE": path}, trust)
    uri = load_signer("release", {"FORTNIGHT_KEY_RELEASE": f"file2:{path}"}, trust)
    assert plain.public_key.keyid == uri.public_key.keyid == log.signers["release"].public_key.keyid
    assert plain.sign(b"x").signature == uri.sign(b"x").signature  # Ed25519 is deterministic
