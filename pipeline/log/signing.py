"""Keys, signatures and trust: sign manifests, and verify them fail-closed.

The bytes that get signed come from one function, :func:`signed_bytes`: the OLPC
canonical JSON of the ``signed`` payload. Verification always uses the payload
exactly as read from the file, never a re-serialised model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from pydantic import ValidationError
from securesystemslib.exceptions import Error as SslibError
from securesystemslib.exceptions import FormatError, UnverifiedSignatureError
from securesystemslib.formats import encode_canonical

from pipeline.core.models.common import (
    Envelope,
    Manifest,
    PublicKey,
    Role,
    RoleName,
    Signature,
    Trust,
)
from pipeline.core.models.manifests import KINDS
from pipeline.errors import ConfigError, KeyConfigError, describe_validation_error
from pipeline.fsutil import atomic_create
from pipeline.log.sslib import (
    SIGNER_FOR_URI_SCHEME,
    CryptoSigner,
    Key,
    Signer,
    SSlibKey,
    signer_for_scheme,
)
from pipeline.log.sslib import Signature as SslibSignature
from pipeline.log.strictjson import StrictJSONError, loads_strict_json

KEY_ENV_PREFIX = "FORTNIGHT_KEY_"
KEYID_ENV_PREFIX = "FORTNIGHT_KEYID_"


class ManifestRejected(Exception):
    """One manifest failed verification; ``reason`` says why (stable wording).

    Internal to verification: callers collect these into a
    :class:`pipeline.errors.VerificationError`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def loads_strict(raw: bytes) -> Any:
    """Parse a signed file's bytes as strict JSON (see :mod:`pipeline.log.strictjson`):
    UTF-8 without a BOM, no duplicate object keys at any depth, no ``NaN``/``Infinity``,
    no lone surrogates in any string or key, at most 100 levels of nesting.

    Raises:
        ManifestRejected: ``not valid JSON: <what> [at <JSON path>]``, for example
            ``not valid JSON: duplicate key "signed" in the object at $``.
    """
    try:
        return loads_strict_json(raw)
    except StrictJSONError as e:
        raise ManifestRejected(f"not valid JSON: {e.reason}") from None


def signed_bytes(signed: Mapping[str, Any]) -> bytes:
    """The exact bytes a signature covers: canonical JSON of ``signed``.

    Raises:
        ManifestRejected: the payload holds a value canonical JSON forbids (a float).
    """
    try:
        text = encode_canonical(dict(signed))
    except FormatError as e:
        raise ManifestRejected(f"schema error: not canonical JSON ({e})") from e
    assert text is not None  # only None when writing to an output function
    return text.encode("utf-8")


def dump_envelope(signed: Mapping[str, Any], signatures: Sequence[SslibSignature]) -> bytes:
    """A manifest file's bytes: sorted keys, two-space indent, trailing newline."""
    doc = {"signed": signed, "signatures": [s.to_dict() for s in signatures]}
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def sign_manifest(manifest: Manifest, signers: Sequence[Signer]) -> bytes:
    """Sign ``manifest`` with every signer and return the file's bytes."""
    payload = manifest.signed_dict()
    data = signed_bytes(payload)
    return dump_envelope(payload, [s.sign(data) for s in signers])


# --- trust.json ----------------------------------------------------------------------


def default_keyid(key: PublicKey) -> str:
    """securesystemslib's default keyid of ``key``: the sha256 of the canonical JSON of its
    ``keytype``, ``scheme`` and ``keyval`` (what ``SSlibKey.from_crypto`` and every signer
    compute; other fields of the key dict do not count)."""
    canonical = encode_canonical(
        {"keytype": key.keytype, "scheme": key.scheme, "keyval": dict(key.keyval)}
    )
    assert canonical is not None  # only None when writing to an output function
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def key_material(key: PublicKey) -> str:
    """What makes two key entries one key: the public key value, normalised (hex in lower
    case, PEM as DER), so that one key spelled two ways is still one key."""
    public = key.keyval.get("public")
    material = _material(public) if public is not None else None
    return material or f"keyval:{encode_canonical(dict(key.keyval))}"


@functools.lru_cache(maxsize=256)
def _material(public: str) -> str | None:
    try:
        if public.lstrip().startswith("-----BEGIN"):
            der = load_pem_public_key(public.encode()).public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo
            )
            return f"der:{der.hex()}"
        return f"raw:{bytes.fromhex(public).hex()}"
    except (ValueError, UnsupportedAlgorithm):
        return None


def check_trust_keys(trust: Trust, *, source: str = "trust.json") -> None:
    """Keys count once: every keyid is its key's :func:`default_keyid`, no public key is
    listed twice (under two keyids), and no role lists a keyid twice.

    Raises:
        ConfigError: naming ``source`` and the keyid (one line).
    """
    owners: dict[str, str] = {}
    for keyid, key in trust.keys.items():
        computed = default_keyid(key)
        if keyid != computed:
            raise ConfigError(
                f"{source}: keyid {keyid} is not the id of its key "
                f"(securesystemslib computes {computed})",
                hint="list each key under its computed keyid, as 'invoke keys.generate' does",
            )
        material = key_material(key)
        if material in owners:
            raise ConfigError(
                f"{source}: keyids {owners[material]} and {keyid} are the same public key",
                hint="list each key once; a threshold counts distinct keys",
            )
        owners[material] = keyid
    for name, role in trust.roles.items():
        seen: set[str] = set()
        for keyid in role.keyids:
            if keyid in seen:
                raise ConfigError(
                    f"{source}: role {name} lists keyid {keyid} twice",
                    hint="list each key once in a role; a threshold counts distinct keys",
                )
            seen.add(keyid)


# --- keys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedKey:
    """A new key pair: where its private half went, and its public key."""

    private_path: Path
    public_key: SSlibKey

    def signer(self) -> Signer:
        """A signer with the new private key (a new root key co-signs its root version)."""
        return CryptoSigner(load_pem_private_key(self.private_path.read_bytes(), password=None))

    def env_line(self, role: RoleName) -> str:
        """The line that tells signing tasks where the key is."""
        return f"{KEY_ENV_PREFIX}{role.upper()}={self.private_path}"


def generate_key(role: RoleName, out_dir: Path, repo: Path) -> GeneratedKey:
    """Create an Ed25519 key pair, the private key at ``out_dir/<role>.key`` (0600).

    Raises:
        KeyConfigError: ``out_dir`` is inside the repository, or the key file exists.
    """
    out = out_dir.resolve()
    if out.is_relative_to(repo.resolve()):
        raise KeyConfigError(
            f"--out {out_dir}: is inside the repository {repo}",
            hint="private keys must never enter the repository; choose a folder outside it",
        )
    signer = CryptoSigner.generate_ed25519()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = out / f"{role}.key"
    if not atomic_create(path, signer.private_bytes, mode=0o600):
        raise KeyConfigError(
            f"{path}: already exists",
            hint="move it away or choose another --out; keys are never overwritten",
        )
    return GeneratedKey(private_path=path, public_key=signer.public_key)


def add_key_to_trust(trust: Trust, role: RoleName, key: Key) -> Trust:
    """A copy of ``trust`` with ``key`` added to ``role`` (idempotent).

    Raises:
        ConfigError: the result breaks :func:`check_trust_keys` (the key's keyid is not its
            computed id, or the key is already trusted under another keyid).
    """
    keys = dict(trust.keys)
    keys[key.keyid] = PublicKey.model_validate(key.to_dict(), strict=True)
    roles = dict(trust.roles)
    old = roles[role]
    if key.keyid not in old.keyids:
        roles[role] = Role(keyids=[*old.keyids, key.keyid], threshold=old.threshold)
    added = Trust(keys=keys, roles=roles)
    check_trust_keys(added)
    return added


_URI_RE = re.compile(r"^([a-z][a-z0-9+.-]*):")


def load_signers(role: RoleName, env: Mapping[str, str], trust: Trust) -> list[Signer]:
    """Every signer configured for ``role``: ``FORTNIGHT_KEY_<ROLE>``, then
    ``FORTNIGHT_KEY_<ROLE>_2`` … ``_9`` (with ``FORTNIGHT_KEYID_<ROLE>_<N>`` for URIs), as
    many as the role's threshold in ``trust.json`` needs (a threshold of two: two keys).

    Raises:
        KeyConfigError: a key is missing, unreadable or not trusted for ``role``, two
            variables hold the same key, or fewer keys are set than the threshold.
    """
    signers = [load_signer(role, env, trust)]
    for n in range(2, 10):
        if env.get(f"{KEY_ENV_PREFIX}{role.upper()}_{n}", "").strip():
            signers.append(load_signer(role, env, trust, suffix=f"_{n}"))
    keyids = [s.public_key.keyid for s in signers]
    if len(set(keyids)) != len(keyids):
        raise KeyConfigError(
            f"{KEY_ENV_PREFIX}{role.upper()}*: the same {role} key is set twice",
            hint="each variable must hold a different key",
        )
    threshold = trust.roles[role].threshold
    if len(signers) < threshold:
        raise KeyConfigError(
            f"trust.json: role {role} needs {threshold} signatures, "
            f"and {len(signers)} {role} key(s) are set",
            hint=f"set {KEY_ENV_PREFIX}{role.upper()}_{len(signers) + 1} to another {role} key",
        )
    return signers


def load_signer(
    role: RoleName, env: Mapping[str, str], trust: Trust, *, suffix: str = ""
) -> Signer:
    """The signer for ``role``, from ``FORTNIGHT_KEY_<ROLE>`` (plus ``suffix``) in ``env``.

    The value is a private key file (PEM/PKCS8) or any securesystemslib private
    key URI (``file2:``, ``gnupg:``, ``awskms:``…). For a URI whose public key
    cannot be derived locally, the role must hold one key, or
    ``FORTNIGHT_KEYID_<ROLE>`` names which.

    Raises:
        KeyConfigError: the variable is unset, the key unreadable, or not trusted for ``role``.
    """
    var = f"{KEY_ENV_PREFIX}{role.upper()}{suffix}"
    value = env.get(var, "").strip()
    if not value:
        raise KeyConfigError(
            f"{var} is not set",
            hint=f"point it at the {role} private key file or a key URI "
            f"(create one with 'invoke keys.generate --role {role} --out DIR')",
        )
    role_keyids = trust.roles[role].keyids
    if not role_keyids:
        raise KeyConfigError(
            f"trust.json has no {role} key",
            hint=f"add one with 'invoke keys.generate --role {role} --out DIR'",
        )
    match = _URI_RE.match(value)
    scheme = match.group(1) if match else None
    if scheme is None or scheme == CryptoSigner.SCHEME:
        path = Path(value[len("file2:") :] if scheme else value)
        prefix = env.get(CryptoSigner.PREFIX_ENV_VAR) if scheme else None
        if prefix:
            path = Path(prefix) / path
        return _file_signer(var, path, role, role_keyids)
    if scheme not in SIGNER_FOR_URI_SCHEME:
        raise KeyConfigError(
            f"{var}: unknown key URI scheme '{scheme}:'",
            hint=f"use a file path or one of {', '.join(sorted(SIGNER_FOR_URI_SCHEME))}",
        )
    keyid_var = f"{KEYID_ENV_PREFIX}{role.upper()}{suffix}"
    keyid = env.get(keyid_var, "").strip()
    if not keyid:
        if len(role_keyids) > 1:
            raise KeyConfigError(
                f"{var}: role {role} has {len(role_keyids)} keys",
                hint=f"set {keyid_var} to the keyid this URI signs for",
            )
        keyid = role_keyids[0]
    if keyid not in role_keyids:
        raise KeyConfigError(f"{keyid_var}: {keyid} is not a {role} key in trust.json")
    public = SSlibKey.from_dict(keyid, trust.keys[keyid].model_dump(mode="json"))
    try:
        signer_for_scheme(scheme)
        return Signer.from_priv_key_uri(value, public)
    except (SslibError, ValueError, OSError) as e:
        raise KeyConfigError(f"{var}: cannot load signer ({e})") from e


def _file_signer(var: str, path: Path, role: RoleName, role_keyids: list[str]) -> Signer:
    try:
        pem = path.read_bytes()
    except OSError as e:
        raise KeyConfigError(f"{var}={path}: cannot read key file ({e.strerror})") from e
    try:
        private = load_pem_private_key(pem, password=None)
        signer = CryptoSigner(private)
    except (ValueError, TypeError, SslibError) as e:
        raise KeyConfigError(
            f"{var}={path}: not an unencrypted PEM private key ({e})",
            hint="use the file written by 'invoke keys.generate'",
        ) from e
    if signer.public_key.keyid not in role_keyids:
        raise KeyConfigError(
            f"{var}={path}: key {signer.public_key.keyid[:12]} is not a {role} key in trust.json",
            hint=f"add it with 'invoke keys.generate --role {role}' or use the right key file",
        )
    return signer


# --- verification --------------------------------------------------------------------


def verify_manifest(raw: bytes, relpath: PurePosixPath, trust: Trust) -> Manifest:
    """Verify one manifest file's bytes stored at ``relpath`` (relative to ``manifests/``).

    Checks, in order: strict JSON (:func:`loads_strict`, so the ``signed`` object whose
    signatures are checked is the only one the bytes hold), envelope, kind, signatures
    against the kind's role and threshold (distinct keys), schema, and that the path
    matches the payload's identity.

    Raises:
        ManifestRejected: with the reason (``unsigned``, ``bad signature``,
            ``unknown key``, ``wrong role``, ``threshold not met``, ``schema error``,
            ``path does not match identity``, ``not valid JSON``).
    """
    doc = loads_strict(raw)
    try:
        envelope = Envelope.model_validate(doc, strict=True)
    except ValidationError as e:
        raise ManifestRejected(f"schema error: envelope {describe_validation_error(e)}") from e
    kind_name = envelope.signed.get("_type")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        raise ManifestRejected(f"schema error: _type: unknown kind {kind_name!r}")
    data = signed_bytes(envelope.signed)
    if not envelope.signatures:
        raise ManifestRejected("unsigned: no signatures")
    _check_signatures(envelope, kind.ROLE, trust, data)
    try:
        manifest = kind.model_validate(envelope.signed, strict=True)
    except ValidationError as e:
        raise ManifestRejected(f"schema error: {describe_validation_error(e)}") from e
    expected = manifest.relpath()
    if relpath != expected:
        raise ManifestRejected(f"path does not match identity: its payload belongs at {expected}")
    return manifest


def _check_signatures(envelope: Envelope, role_name: RoleName, trust: Trust, data: bytes) -> None:
    role = trust.roles[role_name]
    valid: set[str] = set()  # distinct keys, by public key value: keyids can be made up
    problems: list[str] = []
    for sig in envelope.signatures:
        problem = _check_one(sig, role_name, role, trust, data)
        if problem is None:
            valid.add(key_material(trust.keys[sig.keyid]))
        else:
            problems.append(problem)
    if len(valid) >= role.threshold:
        return
    if not valid and problems:
        raise ManifestRejected(problems[0])
    raise ManifestRejected(
        f"threshold not met: {len(valid)} of {role.threshold} required {role_name} signatures"
    )


def _check_one(
    sig: Signature, role_name: RoleName, role: Role, trust: Trust, data: bytes
) -> str | None:
    short = sig.keyid[:12]
    if sig.keyid not in trust.keys:
        return f"unknown key: {short} is not in trust.json"
    if sig.keyid not in role.keyids:
        roles = [n for n, r in trust.roles.items() if sig.keyid in r.keyids]
        return (
            f"wrong role: key {short} signs for {', '.join(roles) or 'no role'}, "
            f"this kind needs a {role_name} key"
        )
    key = SSlibKey.from_dict(sig.keyid, trust.keys[sig.keyid].model_dump(mode="json"))
    try:
        key.verify_signature(SslibSignature(sig.keyid, sig.sig), data)
    except (UnverifiedSignatureError, SslibError):
        return f"bad signature from key {short}"
    return None
