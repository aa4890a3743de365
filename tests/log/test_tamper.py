"""The tamper corpus: a hostile committer's edits to signed files, each rejected with its reason.

Every case starts from real bytes (signed by ``sign_manifest`` with a real key, or a
trust document checked as root metadata's trust is), changes them as an attacker with push access
but no key would, and asserts the exact reason. Add a case by adding a row to a table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from securesystemslib.signer._utils import compute_default_keyid

from pipeline.core.models.common import (
    ROLES,
    PublicKey,
    Role,
    RoleName,
    Trust,
    format_timestamp,
)
from pipeline.errors import ConfigError, TrustError, VerificationError
from pipeline.log.checkpoints import next_checkpoint, parse_index
from pipeline.log.signing import (
    ManifestRejected,
    add_key_to_trust,
    check_trust_keys,
    default_keyid,
    dump_envelope,
    key_material,
    loads_strict,
    sign_manifest,
    signed_bytes,
    verify_manifest,
)
from pipeline.log.sslib import CryptoSigner, SSlibKey
from pipeline.log.sslib import Signature as SslibSignature
from pipeline.log.store import ManifestLog
from pipeline.log.strictjson import MAX_DEPTH
from tests.conftest import make_compose, run_invoke
from tests.sitekit import History, day, scenario_withdrawn

REL = PurePosixPath("atomic-host/composes/Fedora-Atomic-22-20150915.0.json")
EVIL_URL = "https://evil.invalid/Fedora-Cloud-Atomic-22-20150915.x86_64.qcow2"


@pytest.fixture
def trust(role_signers: dict[RoleName, CryptoSigner]) -> Trust:
    t = Trust(keys={}, roles={r: Role(keyids=[]) for r in ROLES})
    for role, signer in role_signers.items():
        t = add_key_to_trust(t, role, signer.public_key)
    return t


@pytest.fixture
def good(role_signers: dict[RoleName, CryptoSigner]) -> bytes:
    return sign_manifest(make_compose(), [role_signers["compose"]])


# --- manifests: strict JSON ---------------------------------------------------------------

Tamper = Callable[[bytes], bytes]


def replace(old: str, new: str | bytes) -> Tamper:
    """Replace the first ``old`` in the file (which must hold it) with ``new``."""

    def tamper(raw: bytes) -> bytes:
        assert old.encode() in raw, old
        return raw.replace(old.encode(), new if isinstance(new, bytes) else new.encode(), 1)

    return tamper


def _forged_signed() -> str:
    payload = make_compose().signed_dict()
    payload["images"][0]["url"] = EVIL_URL
    return json.dumps(payload, indent=2, sort_keys=True)


def second_signed(*, first: bool) -> Tamper:
    """A second, forged ``signed`` object beside the real one (before or after it)."""

    def tamper(raw: bytes) -> bytes:
        forged = _forged_signed()
        if first:
            return raw.replace(b"{\n", f'{{\n  "signed": {forged},\n'.encode(), 1)
        return raw.rstrip()[:-1] + f',\n  "signed": {forged}\n}}\n'.encode()

    return tamper


def nested(depth: int) -> Tamper:
    return replace('"label": null', f'"label": {"[" * depth}{"]" * depth}')


@dataclass(frozen=True)
class Case:
    name: str
    tamper: Tamper
    reason: str  # the rejection reason starts with this

    def param(self) -> Any:
        return pytest.param(self.tamper, self.reason, id=self.name)


MANIFEST_CASES = [
    Case(
        "duplicate key: signed twice, the forged copy last",
        second_signed(first=False),
        'not valid JSON: duplicate key "signed" in the object at $',
    ),
    Case(
        "duplicate key: signed twice, the forged copy first",
        second_signed(first=True),
        'not valid JSON: duplicate key "signed" in the object at $',
    ),
    Case(
        "duplicate key: compose_id inside signed",
        replace(
            '"compose_id": "Fedora-Atomic-22-20150915.0",',
            '"compose_id": "Fedora-Atomic-22-20150915.0", "compose_id": "Evil-1",',
        ),
        'not valid JSON: duplicate key "compose_id" in the object at $.signed',
    ),
    Case(
        "duplicate key: url inside an image",
        replace('"url": ', f'"url": "{EVIL_URL}", "url": '),
        'not valid JSON: duplicate key "url" in the object at $.signed.images[0]',
    ),
    Case(
        "duplicate key: sha256 inside an image's checksums",
        replace('"sha256": ', f'"sha256": "{"b" * 64}", "sha256": '),
        'not valid JSON: duplicate key "sha256" in the object at $.signed.images[0].checksums',
    ),
    Case(
        "duplicate key: version inside release",
        replace('"version": "22"', '"version": "23", "version": "22"'),
        'not valid JSON: duplicate key "version" in the object at $.signed.release',
    ),
    Case(
        "duplicate key: keyid inside a signatures entry",
        replace('"keyid": ', f'"keyid": "{"0" * 64}", "keyid": '),
        'not valid JSON: duplicate key "keyid" in the object at $.signatures[0]',
    ),
    Case(
        "duplicate key: signatures twice",
        replace('"signatures": ', '"signatures": [], "signatures": '),
        'not valid JSON: duplicate key "signatures" in the object at $',
    ),
    Case("NaN as a size", replace('"size": 593363456', '"size": NaN'), "not valid JSON: NaN is"),
    Case(
        "Infinity as a size",
        replace('"size": 593363456', '"size": Infinity'),
        "not valid JSON: Infinity is not a JSON number",
    ),
    Case(
        "-Infinity as a respin",
        replace('"respin": 0', '"respin": -Infinity'),
        "not valid JSON: -Infinity is not a JSON number",
    ),
    Case(
        "a float that overflows to infinity",
        replace('"size": 593363456', '"size": 1e999'),
        "not valid JSON: number 1e999 is out of range",
    ),
    Case(
        "an integer too long to convert",
        replace('"size": 593363456', f'"size": {"9" * 5000}'),
        "not valid JSON: Exceeds the limit (4300 digits) for integer string conversion",
    ),
    Case(
        "lone surrogate in a value",
        replace('"label": null', '"label": "RC\\ud800"'),
        "not valid JSON: lone surrogate in the string at $.signed.label",
    ),
    Case(
        "lone low surrogate in an image path",
        replace('"path": "Cloud_Atomic', '"path": "\\udc00Cloud_Atomic'),
        "not valid JSON: lone surrogate in the string at $.signed.images[0].path",
    ),
    Case(
        "lone surrogate in a signature",
        replace('"sig": "', '"sig": "\\uDBFF'),
        "not valid JSON: lone surrogate in the string at $.signatures[0].sig",
    ),
    Case(
        "lone surrogate in a key",
        replace('"label": null', '"lab\\ud800el": null'),
        'not valid JSON: lone surrogate in the key "lab\\ud800el" of the object at $.signed',
    ),
    Case(
        "invalid UTF-8 byte",
        replace('"label": null', b'"label": "\xff"'),
        "not valid JSON: not UTF-8: byte 0xff at offset ",
    ),
    Case(
        "UTF-8-encoded surrogate (CESU-8)",
        replace('"label": null', b'"label": "\xed\xa0\x80"'),
        "not valid JSON: not UTF-8: byte 0xed at offset ",
    ),
    Case(
        "overlong UTF-8 encoding of a slash",
        replace('"path": "Cloud_Atomic', b'"path": "\xc0\xafCloud_Atomic'),
        "not valid JSON: not UTF-8: byte 0xc0 at offset ",
    ),
    Case(
        "UTF-8 byte order mark",
        lambda raw: b"\xef\xbb\xbf" + raw,
        "not valid JSON: starts with a UTF-8 byte order mark (BOM)",
    ),
    Case(
        "UTF-16 encoding",
        lambda raw: raw.decode().encode("utf-16"),
        "not valid JSON: not UTF-8: byte 0xff at offset 0",
    ),
    Case(
        f"nested {MAX_DEPTH + 50} levels deep",
        nested(MAX_DEPTH + 50),
        f"not valid JSON: nested more than {MAX_DEPTH} levels deep at $.signed.label[0][0]",
    ),
    Case(
        "nested 100000 levels deep",
        nested(100_000),
        f"not valid JSON: nested more than {MAX_DEPTH} levels deep",
    ),
    Case(
        "a second document after the first",
        lambda raw: raw + raw,
        "not valid JSON: Extra data: line 52 column 1",
    ),
    Case("truncated", lambda raw: raw.rstrip()[:-1], "not valid JSON: Expecting ',' delimiter"),
]


@pytest.mark.parametrize(("tamper", "reason"), [c.param() for c in MANIFEST_CASES])
def test_tampered_manifest_is_rejected_with_its_reason(
    tamper: Tamper, reason: str, good: bytes, trust: Trust
) -> None:
    assert verify_manifest(good, REL, trust) == make_compose()
    with pytest.raises(ManifestRejected) as exc:
        verify_manifest(tamper(good), REL, trust)
    assert exc.value.reason.startswith(reason), exc.value.reason
    assert "\n" not in exc.value.reason
    exc.value.reason.encode("ascii")  # printable anywhere, whatever the file held


def test_the_duplicate_signed_attack_is_real(good: bytes) -> None:
    """Without strict parsing, a reader taking the last duplicate sees the forged image URL
    while the first ``signed`` still carries the valid signature (and the reverse)."""
    lax = json.loads(second_signed(first=False)(good))
    assert lax["signed"]["images"][0]["url"] == EVIL_URL
    assert json.loads(good)["signatures"] == lax["signatures"]


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        pytest.param(b'{"a": "\\ud83d\\ude00"}', {"a": "\N{GRINNING FACE}"}, id="surrogate pair"),
        pytest.param(b'{"a": "\\\\ud800"}', {"a": "\\ud800"}, id="escaped backslash"),
        pytest.param(
            b'{"a": {"a": 1}, "b": {"a": 2}}',
            {"a": {"a": 1}, "b": {"a": 2}},
            id="same key in two objects",
        ),
        pytest.param(b"[1.5, -0.0, 1e308]", [1.5, -0.0, 1e308], id="finite floats"),
        pytest.param(
            b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
            json.loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH),
            id="as deep as allowed",
        ),
    ],
)
def test_strict_json_still_reads_what_is_valid(raw: bytes, parsed: Any) -> None:
    assert loads_strict(raw) == parsed


# --- keys count once ----------------------------------------------------------------------


def _upper(key: SSlibKey) -> tuple[str, PublicKey]:
    """The same key with its hex spelled in upper case: a second, correctly computed keyid."""
    spelled = key.to_dict()
    spelled["keyval"] = {"public": spelled["keyval"]["public"].upper()}
    public = PublicKey.model_validate(spelled, strict=True)
    return default_keyid(public), public


def _with_alias(trust: Trust, role: RoleName, keyid: str, key: PublicKey, threshold: int) -> Trust:
    keys = {**trust.keys, keyid: key}
    roles = dict(trust.roles)
    roles[role] = Role(keyids=[*roles[role].keyids, keyid], threshold=threshold)
    return Trust(keys=keys, roles=roles)


@pytest.mark.parametrize("alias", ["made-up keyid", "same key, hex in upper case"])
def test_one_key_under_two_keyids_counts_once(
    alias: str, trust: Trust, role_signers: dict[RoleName, CryptoSigner]
) -> None:
    """threshold 2, one compose key listed twice, and its signature copied under the second
    keyid: one key, so the threshold is not met (and the trust itself is refused)."""
    signer = role_signers["compose"]
    real = trust.keys[signer.public_key.keyid]
    if alias == "made-up keyid":
        keyid, key = "f" * 64, real
    else:
        keyid, key = _upper(signer.public_key)
    hostile = _with_alias(trust, "compose", keyid, key, threshold=2)
    payload = make_compose().signed_dict()
    sig = signer.sign(signed_bytes(payload))
    copied = SslibSignature(keyid, sig.signature)
    raw = dump_envelope(payload, [sig, copied])
    with pytest.raises(ManifestRejected) as exc:
        verify_manifest(raw, REL, hostile)
    assert exc.value.reason == "threshold not met: 1 of 2 required compose signatures"
    with pytest.raises(ConfigError):
        check_trust_keys(hostile)


def test_default_keyid_is_securesystemslibs() -> None:
    for signer in (
        CryptoSigner.generate_ed25519(),
        CryptoSigner.generate_ecdsa(),
        CryptoSigner.generate_rsa(),
    ):
        key = signer.public_key
        public = PublicKey.model_validate(key.to_dict(), strict=True)
        assert default_keyid(public) == key.keyid
        assert key.keyid == compute_default_keyid(key.keytype, key.scheme, key.keyval)
    ed = CryptoSigner.generate_ed25519().public_key
    public = PublicKey.model_validate(ed.to_dict(), strict=True)
    assert key_material(public) == key_material(_upper(ed)[1])


def test_adding_a_key_checks_it(trust: Trust, role_signers: dict[RoleName, CryptoSigner]) -> None:
    signer = role_signers["compose"]
    assert add_key_to_trust(trust, "compose", signer.public_key) == trust  # idempotent
    alias = SSlibKey.from_dict("e" * 64, signer.public_key.to_dict())
    with pytest.raises(ConfigError, match=f"trust.json: keyid {'e' * 64} is not the id"):
        add_key_to_trust(trust, "test", alias)
    keyid, upper = _upper(signer.public_key)
    spelled = SSlibKey.from_dict(keyid, upper.model_dump(mode="json"))
    with pytest.raises(ConfigError, match=f"keyids {signer.public_key.keyid} and {keyid} are"):
        add_key_to_trust(trust, "test", spelled)


def _trust_doc(trust: Trust) -> dict[str, Any]:
    return trust.model_dump(mode="json")


def _alias_doc(trust: Trust, keyid: str, key: PublicKey, role: RoleName = "compose") -> str:
    return json.dumps(_trust_doc(_with_alias(trust, role, keyid, key, threshold=1)))


def _trust_cases(trust: Trust, signer: CryptoSigner) -> dict[str, tuple[str, str]]:
    """name: (trust.json text, the start of the error after '<path>: ')."""
    keyid = signer.public_key.keyid
    real = trust.keys[keyid]
    upper_id, upper = _upper(signer.public_key)
    doubled = _trust_doc(trust)
    doubled["roles"]["compose"]["keyids"].append(keyid)
    plain = json.dumps(_trust_doc(trust), indent=2, sort_keys=True)
    attacker = CryptoSigner.generate_ed25519().public_key
    return {
        "keyid is not its key's id": (
            _alias_doc(trust, "e" * 64, real),
            f"keyid {'e' * 64} is not the id of its key (securesystemslib computes {keyid})",
        ),
        "one key under two keyids": (
            _alias_doc(trust, upper_id, upper),
            f"keyids {keyid} and {upper_id} are the same public key",
        ),
        "a role lists a keyid twice": (
            json.dumps(doubled),
            f"role compose lists keyid {keyid} twice",
        ),
        "duplicate JSON key: keys twice": (
            plain.replace(
                '"keys": {',
                f'"keys": {{"{attacker.keyid}": {json.dumps(attacker.to_dict())}}}, "keys": {{',
                1,
            ),
            'not valid JSON: duplicate key "keys" in the object at $',
        ),
        "duplicate JSON key: threshold twice": (
            plain.replace('"threshold": 1', '"threshold": 1, "threshold": 9', 1),
            'not valid JSON: duplicate key "threshold" in the object at $.roles.compose',
        ),
        "NaN threshold": (
            plain.replace('"threshold": 1', '"threshold": NaN', 1),
            "not valid JSON: NaN is not a JSON number",
        ),
        "lone surrogate in a keyid": (
            plain.replace(f'"{keyid}": {{', f'"\\ud800{keyid[1:]}": {{', 1),
            'not valid JSON: lone surrogate in the key "\\ud800',
        ),
    }


TRUST_CASES = [
    "keyid is not its key's id",
    "one key under two keyids",
    "a role lists a keyid twice",
    "duplicate JSON key: keys twice",
    "duplicate JSON key: threshold twice",
    "NaN threshold",
    "lone surrogate in a keyid",
]


def save_trust(path: Path, trust: Trust) -> None:
    path.write_text(json.dumps(trust.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")


def load_trust(path: Path) -> Trust:
    """A trust document read as :mod:`pipeline.log.trust` reads root metadata: strict JSON
    (:func:`loads_strict`), then keys count once (:func:`check_trust_keys`)."""
    raw = path.read_bytes()
    try:
        trust = Trust.model_validate(loads_strict(raw), strict=True)
    except ManifestRejected as e:
        raise ConfigError(f"{path}: {e.reason}") from None
    check_trust_keys(trust, source=str(path))
    return trust


@pytest.mark.parametrize("case", TRUST_CASES)
def test_tampered_trust_is_a_config_error(
    case: str, tmp_path: Path, trust: Trust, role_signers: dict[RoleName, CryptoSigner]
) -> None:
    path = tmp_path / "trust.json"
    save_trust(path, trust)
    assert load_trust(path) == trust
    text, message = _trust_cases(trust, role_signers["compose"])[case]
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_trust(path)
    assert exc.value.message.startswith(f"{path}: {message}"), exc.value.message
    assert "\n" not in exc.value.diagnostics()
    exc.value.diagnostics().encode("ascii")


def test_trust_with_a_bom_is_refused(tmp_path: Path, trust: Trust) -> None:
    path = tmp_path / "trust.json"
    save_trust(path, trust)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with pytest.raises(ConfigError, match="starts with a UTF-8 byte order mark"):
        load_trust(path)


# --- the log: append-only, provably (deletions, reverts, rewrites, rollbacks) ---------------


def _verify(h: History) -> None:
    log = ManifestLog(h.log.repo)
    log.load_verified(log.load_trust())


def _drop_line(h: History, name: str) -> None:
    idx = h.log.log.root / "log.idx"
    lines = idx.read_bytes().splitlines(keepends=True)
    idx.write_bytes(b"".join(line for line in lines if not line.rstrip().endswith(name.encode())))


def _release(h: History, cycle: str = "2018-05-15") -> str:
    return f"atomic-host/releases/{cycle}.json"


def delete_release(h: History) -> None:
    h.log.git("rm", "-q", f"manifests/{_release(h)}")
    h.log.git("commit", "-qm", "release: drop it")


def delete_release_and_its_line(h: History) -> None:
    delete_release(h)
    _drop_line(h, _release(h))


def revert_revocation(h: History) -> None:
    """``git revert`` of the revocation commit (the newest): file, line and checkpoint go."""
    h.log.git("revert", "--no-edit", "HEAD")


def revert_older_revocation(h: History) -> None:
    """A later recording, then the revocation taken out by hand (a revert would conflict)."""
    h.compose(day(16))
    name = "atomic-host/revocations/2018-05-15.json"
    h.log.git("rm", "-q", f"manifests/{name}")
    _drop_line(h, name)


def rewrite_old_manifest(h: History) -> None:
    """Even with the compose key: an old compose re-signed with other content."""
    old = next(iter(h.composes.values()))
    path = h.log.log.root / old.relpath()
    forged = old.model_copy(update={"images": [old.images[0].model_copy(update={"url": EVIL_URL})]})
    path.write_bytes(sign_manifest(forged, [h.log.signers["compose"]]))


def force_push_older(h: History) -> None:
    h.log.git("reset", "-q", "--hard", "HEAD~2")


def compose_key_erases_release(h: History) -> None:
    """A compose key holder rebuilds the index without the release and re-signs every
    checkpoint with the compose key; even a fresh clone (no memory) refuses it."""
    root = h.log.log.root
    delete_release_and_its_line(h)
    entries = parse_index((root / "log.idx").read_bytes())
    for path in (root / "checkpoints").iterdir():
        path.unlink()
    (root / "checkpoints" / "1.json").parent.mkdir(exist_ok=True)
    raw = next_checkpoint(None, entries, [h.log.signers["compose"]], day(20))
    (root / "checkpoints" / "1.json").write_bytes(raw)
    h.log.git("config", "--unset", "fortnight.checkpoint")


def unindexed_manifest(h: History) -> None:
    extra = make_compose(compose_id="Fedora-Atomic-22-20150930.0", date="20150930")
    path = h.log.log.root / "atomic-host" / extra.relpath().relative_to("atomic-host")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sign_manifest(extra, [h.log.signers["compose"]]))
    # pushed as a commit (an uncommitted file a kill left is skipped, not trusted)
    h.log.git("add", "--", str(path))
    h.log.git("commit", "--quiet", "-m", "compose: sneak one in without an index line")


LOG_CASES = [
    (delete_release, r"releases/2018-05-15\.json: missing: recorded in manifests/log\.idx"),
    (delete_release_and_its_line, r"checkpoints/\d+\.json: its root is not that of the first"),
    (revert_revocation, r"^rollback: this clone saw checkpoint (\d+), the log has \d+ < \1$"),
    (revert_older_revocation, r"checkpoints/\d+\.json: its root is not that of the first"),
    (rewrite_old_manifest, r"composes/Fedora-Atomic-28-\d+\.0\.json: changed since it was record"),
    (force_push_older, r"^rollback: this clone saw checkpoint (\d+), the log has \d+ < \1$"),
    (
        compose_key_erases_release,
        r"checkpoints/1\.json: adds \d+ manifest\(s\) but is not signed by a threshold "
        r"of the keys of role\(s\) release, test$",
    ),
    (unindexed_manifest, r"\.json: not in manifests/log\.idx: no checkpoint covers it"),
]


@pytest.mark.parametrize(("attack", "reason"), LOG_CASES, ids=[a.__name__ for a, _ in LOG_CASES])
def test_tampered_log_fails_closed_with_its_reason(
    make_history: Callable[..., History], attack: Callable[[History], None], reason: str
) -> None:
    h = make_history()
    scenario_withdrawn(h)
    _verify(h)  # the clone saw the whole log (and remembers its newest checkpoint)
    attack(h)
    with pytest.raises((TrustError, VerificationError)) as raised:
        _verify(h)
    assert raised.value.exit_code == 4
    assert re.search(reason, raised.value.message), raised.value.message


def test_an_expired_checkpoint_freezes_the_log(make_history: Callable[..., History]) -> None:
    h = make_history()
    scenario_withdrawn(h)
    head = h.log.log.verify_all(h.log.log.load_trust()).head
    assert head is not None and head.expires == head.time + timedelta(days=17)
    late = format_timestamp(head.expires)
    proc = run_invoke("verify", "--repo", str(h.log.repo), "--at", late)
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: manifests/checkpoints/{head.number}.json: frozen: the log's newest checkpoint "
        f"expired at {late} (signed at {format_timestamp(head.time)}); run "
        "'invoke checkpoint.refresh' with FORTNIGHT_KEY_TIMESTAMP"
    )
    just_before = format_timestamp(head.expires - timedelta(seconds=1))
    assert run_invoke("verify", "--repo", str(h.log.repo), "--at", just_before).returncode == 0
