"""The root of trust: signed, versioned root metadata, verified from a pinned version 1.

Every version is kept at ``manifests/trust/<N>.json`` (an envelope like a manifest's, its
``signed`` payload a :class:`~pipeline.core.models.common.RootMetadata`), and
``manifests/trust.json`` is a byte-identical copy of the newest. Version 1 is signed by a
threshold of its own ``root`` keys; version N+1 by a threshold of version N's ``root`` keys
and a threshold of its own (TUF's root chain). Versions are consecutive from 1.

Verification starts from a pin, never from the checkout: the pin is the sha256 (hex) of the
canonical signed bytes of version 1, given explicitly (``--root``, ``FORTNIGHT_ROOT``),
kept in ``git config fortnight.root`` of the clone, or recorded there on first use.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import ValidationError
from securesystemslib.exceptions import Error as SslibError

from pipeline.core.models.common import (
    ROLES,
    Envelope,
    Role,
    RoleName,
    RootMetadata,
    Trust,
    format_timestamp,
)
from pipeline.errors import ConfigError, KeyConfigError, TrustError, describe_validation_error
from pipeline.fsutil import atomic_write
from pipeline.log.git import Git
from pipeline.log.layout import TRUST_DIR, TRUST_FILE
from pipeline.log.signing import (
    KEY_ENV_PREFIX,
    ManifestRejected,
    add_key_to_trust,
    check_trust_keys,
    dump_envelope,
    loads_strict,
    signed_bytes,
)
from pipeline.log.sslib import CryptoSigner, Signer, SSlibKey
from pipeline.log.sslib import Signature as SslibSignature

PIN_CONFIG = "fortnight.root"
ROOT_KEY_ENV = f"{KEY_ENV_PREFIX}ROOT"
UPGRADE_HINT = (
    "run 'invoke trust.upgrade' with FORTNIGHT_KEY_ROOT set (see README, 'Keys and trust')"
)
_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")
_VERSION_FILE_RE = re.compile(r"^[1-9][0-9]*\.json$")


@dataclass(frozen=True)
class Pin:
    """The expected fingerprint of root version 1, and where it came from."""

    fingerprint: str
    source: str  # "--root", "FORTNIGHT_ROOT", "git config fortnight.root"


@dataclass(frozen=True)
class RootVersion:
    """One verified root version: its file, bytes and payload."""

    path: str  # relative to the repository, e.g. manifests/trust/2.json
    raw: bytes
    signed: RootMetadata
    payload: dict[str, Any]


@dataclass(frozen=True)
class RootChain:
    """Every root version, verified in order; the newest one's trust is the log's."""

    versions: list[RootVersion]

    @property
    def newest(self) -> RootVersion:
        """The version whose keys the log trusts now."""
        return self.versions[-1]

    @property
    def trust(self) -> Trust:
        """The keys and roles of the newest version."""
        return self.newest.signed.trust()

    @property
    def fingerprint(self) -> str:
        """The fingerprint of version 1: what a pin names."""
        return root_fingerprint(self.versions[0].payload)


@dataclass(frozen=True)
class PinnedChain:
    """A chain verified from a pin; ``recorded`` when the pin was recorded just now (TOFU)."""

    chain: RootChain
    pin: Pin
    recorded: bool


def root_fingerprint(payload: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical signed bytes of a root version."""
    return hashlib.sha256(signed_bytes(payload)).hexdigest()


def _rel(root: Path, path: Path) -> str:
    return f"{root.name}/{path.relative_to(root).as_posix()}"


# --- reading ---------------------------------------------------------------------------


def _parse_json(raw: bytes, where: str) -> Any:
    """The one parse of root metadata: strict JSON (:func:`pipeline.log.signing.loads_strict`).

    Raises:
        TrustError: ``<where>: not valid JSON: <what>``.
    """
    try:
        return loads_strict(raw)
    except ManifestRejected as e:
        raise TrustError(f"{where}: {e.reason}") from None


def _version_files(root: Path) -> list[Path]:
    """``manifests/trust/<N>.json`` in version order, checked to be 1..N with no gap.

    Raises:
        TrustError: a stray file, a version given twice, or a gap.
    """
    folder = root / TRUST_DIR
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    numbered: dict[int, Path] = {}
    for path in files:
        if not _VERSION_FILE_RE.match(path.name) or not path.is_file():
            raise TrustError(
                f"{_rel(root, path)}: not a root version file (expected <version>.json)"
            )
        numbered[int(path.name[:-5])] = path
    for expected, number in enumerate(sorted(numbered), start=1):
        if number != expected:
            raise TrustError(
                f"{_rel(root, folder)}: root version {expected} is missing "
                f"(versions are consecutive from 1; found {number})"
            )
    return [numbered[n] for n in sorted(numbered)]


def _read_version(root: Path, path: Path, number: int) -> tuple[RootVersion, Envelope]:
    where = _rel(root, path)
    raw = path.read_bytes()
    doc = _parse_json(raw, where)
    try:
        envelope = Envelope.model_validate(doc, strict=True)
        signed = RootMetadata.model_validate(envelope.signed, strict=True)
    except ValidationError as e:
        raise TrustError(f"{where}: not root metadata ({describe_validation_error(e)})") from e
    try:
        check_trust_keys(signed.trust(), source=where)
    except ConfigError as e:
        # A root version whose keys do not count once does not verify (fail closed).
        raise TrustError(e.message, hint=e.hint) from None
    if signed.version != number:
        raise TrustError(
            f"{where}: holds root version {signed.version}, its file name says {number}"
        )
    return RootVersion(where, raw, signed, envelope.signed), envelope


def valid_signers(envelope: Envelope, data: bytes, role: Role, trust: Trust) -> int:
    """How many distinct keys of ``role`` made a valid signature over ``data``."""
    valid: set[str] = set()
    for sig in envelope.signatures:
        if sig.keyid not in role.keyids or sig.keyid in valid:
            continue
        key = SSlibKey.from_dict(sig.keyid, trust.keys[sig.keyid].model_dump(mode="json"))
        try:
            key.verify_signature(SslibSignature(sig.keyid, sig.sig), data)
        except SslibError:
            continue
        valid.add(sig.keyid)
    return len(valid)


def _check_signed(version: RootVersion, envelope: Envelope, by: Trust, whose: str) -> None:
    try:
        data = signed_bytes(version.payload)
    except ManifestRejected as e:
        raise TrustError(f"{version.path}: {e.reason}") from e
    role = by.roles["root"]
    count = valid_signers(envelope, data, role, by)
    if count < role.threshold:
        raise TrustError(
            f"{version.path}: root version {version.signed.version} is not signed by a "
            f"threshold of {whose} root keys ({count} of {role.threshold})"
        )


def _check_legacy(root: Path) -> None:
    """A trust.json without signatures and no trust/ folder is the old, unsigned format."""
    path = root / TRUST_FILE
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return
    if isinstance(doc, dict) and "signed" not in doc:
        raise TrustError(
            f"{_rel(root, path)}: unsigned trust file (the format before root metadata)",
            hint=UPGRADE_HINT,
        )


def read_chain(root: Path, pin: str | None, now: datetime) -> RootChain:
    """Verify the root chain under ``root`` (the ``manifests`` folder) from version 1.

    Raises:
        ConfigError: there is no ``trust.json`` (not a manifest log).
        TrustError: with the first reason the chain does not hold (unsigned legacy
            file, gap, bad or missing signatures, pin mismatch, trust.json not the newest
            version, expired).
    """
    trust_path = root / TRUST_FILE
    if not trust_path.is_file():
        raise ConfigError(
            f"{_rel(root, trust_path)}: not found",
            hint="run 'invoke init' to create a manifest log",
        )
    files = _version_files(root)
    if not files:
        _check_legacy(root)
        raise TrustError(f"{_rel(root, root / TRUST_DIR)}: no root versions", hint=UPGRADE_HINT)
    versions: list[RootVersion] = []
    for number, path in enumerate(files, start=1):
        version, envelope = _read_version(root, path, number)
        if versions:
            previous = versions[-1].signed
            _check_signed(version, envelope, previous.trust(), f"version {previous.version}'s")
        _check_signed(version, envelope, version.signed.trust(), "its own")
        if number == 1 and pin is not None:
            _check_pin(version, pin)
        versions.append(version)
    chain = RootChain(versions)
    if trust_path.read_bytes() != chain.newest.raw:
        raise TrustError(f"{_rel(root, trust_path)} differs from {chain.newest.path}")
    expires = chain.newest.signed.expires
    if expires is not None and expires <= now:
        raise TrustError(
            f"{chain.newest.path}: root expired on {format_timestamp(expires)}",
            hint="root key holders must sign a new version with a later expiry",
        )
    return chain


def _check_pin(version: RootVersion, pin: str) -> None:
    actual = root_fingerprint(version.payload)
    if actual != pin:
        raise TrustError(
            f"{version.path}: root fingerprint {actual} does not match the pinned root {pin}",
            hint="this log's root of trust is not the one you pinned; do not use it",
        )


# --- the pin ---------------------------------------------------------------------------


def parse_pin(value: str, source: str) -> Pin:
    """A pin from ``--root``/``FORTNIGHT_ROOT``: a fingerprint, or a file holding one or
    holding root version 1 (``trust/1.json``).

    Raises:
        ConfigError: neither a fingerprint nor a readable file with one.
    """
    text = value.strip().lower()
    if _FINGERPRINT_RE.match(text):
        return Pin(text, source)
    path = Path(value)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"{source} {value}: not a fingerprint (64 hex digits) nor a readable file "
            f"({e.strerror})",
            hint="give the fingerprint 'invoke init' printed, or the log's trust/1.json",
        ) from e
    if _FINGERPRINT_RE.match(raw.strip().decode("utf-8", "replace").lower()):
        return Pin(raw.strip().decode().lower(), source)
    try:
        envelope = Envelope.model_validate(json.loads(raw), strict=True)
        signed = RootMetadata.model_validate(envelope.signed, strict=True)
    except (ValueError, ValidationError) as e:
        raise ConfigError(
            f"{source} {value}: neither a fingerprint nor root metadata",
            hint="give the fingerprint 'invoke init' printed, or the log's trust/1.json",
        ) from e
    if signed.version != 1:
        raise ConfigError(
            f"{source} {value}: holds root version {signed.version}, a pin is version 1",
            hint="give the log's trust/1.json",
        )
    return Pin(root_fingerprint(envelope.signed), source)


def configured_pin(git: Git) -> Pin | None:
    """The pin in ``git config fortnight.root`` of the clone, if any.

    Raises:
        ConfigError: the configured value is not a fingerprint.
    """
    if not git.is_repo():
        return None
    value = git.run("config", "--get", PIN_CONFIG, check=False).stdout.strip()
    if not value:
        return None
    if not _FINGERPRINT_RE.match(value):
        raise ConfigError(
            f"git config {PIN_CONFIG}: {value!r} is not a fingerprint (64 hex digits)",
            hint=f"fix it with 'git config {PIN_CONFIG} FINGERPRINT'",
        )
    return Pin(value, f"git config {PIN_CONFIG}")


def load_pinned(
    root: Path, git: Git, pin: Pin | None = None, now: datetime | None = None
) -> PinnedChain:
    """Verify the chain from ``pin``, else the clone's configured pin, else trust it on
    first use and record its fingerprint in ``git config fortnight.root``.

    Raises:
        ConfigError: not a manifest log, or a bad configured pin.
        TrustError: the chain does not hold (see :func:`read_chain`).
    """
    pin = pin or configured_pin(git)
    chain = read_chain(root, pin.fingerprint if pin else None, now or datetime.now(UTC))
    if pin is not None:
        return PinnedChain(chain, pin, recorded=False)
    recorded = git.is_repo()
    if recorded:
        git.run("config", PIN_CONFIG, chain.fingerprint)
    return PinnedChain(chain, Pin(chain.fingerprint, "first use"), recorded)


# --- writing ---------------------------------------------------------------------------


def sign_root(
    trust: Trust, version: int, signers: Sequence[Signer], expires: datetime | None = None
) -> bytes:
    """The bytes of root ``version`` trusting ``trust``, signed by every signer."""
    signed = RootMetadata(version=version, expires=expires, keys=trust.keys, roles=trust.roles)
    payload = signed.model_dump(mode="json", by_alias=True)
    data = signed_bytes(payload)
    return dump_envelope(payload, [s.sign(data) for s in signers])


def first_version(trust: Trust, signers: Sequence[Signer]) -> bytes:
    """Root version 1, checked to be signed by a threshold of its own root keys.

    Raises:
        ConfigError: the signers do not meet the root threshold of ``trust``.
    """
    raw = sign_root(trust, 1, signers)
    _check_new(raw, 1, [trust])
    return raw


def next_version(chain: RootChain, trust: Trust, signers: Sequence[Signer]) -> bytes:
    """The next root version trusting ``trust``, checked to be signed by a threshold of
    the newest version's root keys and of its own (keeping the newest's expiry).

    Raises:
        ConfigError: the signers do not meet either threshold.
    """
    number = chain.newest.signed.version + 1
    raw = sign_root(trust, number, signers, chain.newest.signed.expires)
    _check_new(raw, number, [chain.trust, trust])
    return raw


def _check_new(raw: bytes, number: int, by: list[Trust]) -> None:
    envelope = Envelope.model_validate(json.loads(raw), strict=True)
    version = RootVersion(
        f"manifests/trust/{number}.json",
        raw,
        RootMetadata.model_validate(envelope.signed, strict=True),
        envelope.signed,
    )
    for trust, whose in zip(by, ["the current", "its own"][-len(by) :], strict=True):
        try:
            _check_signed(version, envelope, trust, whose)
        except TrustError as e:
            raise ConfigError(
                e.message,
                hint="set FORTNIGHT_KEY_ROOT (and _2.._9) to enough root keys",
            ) from e


def write_version(root: Path, raw: bytes) -> list[Path]:
    """Write a new root version and its ``trust.json`` copy; return both paths.

    Raises:
        ConfigError: the version file exists already.
    """
    number = json.loads(raw)["signed"]["version"]
    path = root / TRUST_DIR / f"{number}.json"
    if path.exists():
        raise ConfigError(f"{_rel(root, path)}: already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, raw)
    atomic_write(root / TRUST_FILE, raw)
    return [path, root / TRUST_FILE]


def empty_trust() -> Trust:
    """Every role, with no keys yet."""
    return Trust(keys={}, roles={r: Role(keyids=[], threshold=1) for r in ROLES})


def legacy_trust(root: Path) -> Trust:
    """The keys and roles of an unsigned (legacy) ``trust.json``, missing roles added empty.

    Raises:
        ConfigError: there is no unsigned trust.json to upgrade, or it is invalid.
    """
    path = root / TRUST_FILE
    where = _rel(root, path)
    if (root / TRUST_DIR).is_dir():
        raise ConfigError(f"{where}: already signed root metadata; nothing to upgrade")
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{where}: not found", hint="run 'invoke init'") from None
    except ValueError as e:
        raise ConfigError(f"{where}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or "signed" in doc:
        raise ConfigError(f"{where}: not an unsigned trust file")
    roles = {r: {"keyids": [], "threshold": 1} for r in ROLES} | dict(doc.get("roles", {}))
    try:
        return Trust.model_validate({**doc, "roles": roles})
    except ValidationError as e:
        raise ConfigError(f"{where}: {describe_validation_error(e)}") from e


def root_key_signers(env: Mapping[str, str]) -> list[Signer]:
    """The root keys a new root of trust starts from: ``FORTNIGHT_KEY_ROOT`` and
    ``_2`` … ``_9``, each a private key file (or ``file2:`` path); there is no trust yet to
    check them against.

    Raises:
        KeyConfigError: ``FORTNIGHT_KEY_ROOT`` is unset, a file unreadable or not a key.
    """
    names = [f"{ROOT_KEY_ENV}{s}" for s in ["", *(f"_{n}" for n in range(2, 10))]]
    signers: dict[str, Signer] = {}
    for var in names:
        value = env.get(var, "").strip().removeprefix("file2:")
        if not value:
            continue
        try:
            pem = Path(value).read_bytes()
            signer = CryptoSigner(load_pem_private_key(pem, password=None))
        except OSError as e:
            raise KeyConfigError(f"{var}={value}: cannot read key file ({e.strerror})") from e
        except (ValueError, TypeError, SslibError) as e:
            raise KeyConfigError(
                f"{var}={value}: not an unencrypted PEM private key ({e})",
                hint="use the file written by 'invoke keys.generate --role root'",
            ) from e
        signers.setdefault(signer.public_key.keyid, signer)
    if not signers:
        raise KeyConfigError(
            f"{ROOT_KEY_ENV} is not set",
            hint="a root of trust needs a root key: create one with "
            "'invoke keys.generate --role root --out DIR' and set FORTNIGHT_KEY_ROOT to it",
        )
    return list(signers.values())


def with_root_keys(trust: Trust, signers: Sequence[Signer]) -> Trust:
    """``trust`` with every signer's public key in the ``root`` role."""
    for signer in signers:
        trust = add_key_to_trust(trust, "root", signer.public_key)
    return trust


def created(git: Git, path: str) -> str | None:
    """When ``path`` (relative to the repository) was first committed, if it was."""
    out = git.run("log", "--diff-filter=A", "--format=%cI", "--", path, check=False).stdout
    lines = out.split()
    return lines[-1] if lines else None


def remove_key(trust: Trust, keyid: str) -> Trust:
    """A copy of ``trust`` without ``keyid`` (in ``keys`` and every role).

    Raises:
        ConfigError: the key is not trusted, or a role would have fewer keys than its
            threshold.
    """
    if keyid not in trust.keys:
        raise ConfigError(
            f"--keyid {keyid}: not a key in trust.json", hint="see 'invoke trust.show'"
        )
    roles = {}
    for name, role in trust.roles.items():
        keyids = [k for k in role.keyids if k != keyid]
        if keyid in role.keyids and len(keyids) < role.threshold:
            raise ConfigError(
                f"--keyid {keyid[:12]}: role {name} would keep {len(keyids)} key(s) "
                f"for a threshold of {role.threshold}",
                hint="add its replacement first ('invoke keys.generate') or lower the threshold",
            )
        roles[name] = Role(keyids=keyids, threshold=role.threshold)
    keys = {k: v for k, v in trust.keys.items() if k != keyid}
    return Trust(keys=keys, roles=roles)


def set_threshold(trust: Trust, role: RoleName, threshold: int) -> Trust:
    """A copy of ``trust`` where ``role`` needs ``threshold`` signatures.

    Raises:
        ConfigError: the threshold is below 1 or above the role's number of keys.
    """
    keyids = trust.roles[role].keyids
    if not 1 <= threshold <= len(keyids):
        raise ConfigError(
            f"--threshold {threshold}: role {role} has {len(keyids)} key(s)",
            hint="a threshold is between 1 and the number of the role's keys",
        )
    return Trust(
        keys=trust.keys, roles=trust.roles | {role: Role(keyids=keyids, threshold=threshold)}
    )
