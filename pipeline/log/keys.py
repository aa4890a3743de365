"""Adding a trusted key to the log: generate it, trust it, commit ``trust.json``."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.models.common import RoleName
from pipeline.fsutil import atomic_write
from pipeline.log.git import PushConfig
from pipeline.log.signing import GeneratedKey, add_key_to_trust, generate_key, save_trust
from pipeline.log.writer import LogWriter


def add_trusted_key(
    writer: LogWriter,
    role: RoleName,
    out_dir: Path,
    *,
    commit: bool = True,
    push: PushConfig | None = None,
) -> GeneratedKey:
    """Generate a key pair for ``role`` and trust its public key, in one commit.

    If the commit fails, ``trust.json`` is restored and the new private key removed.

    Raises:
        KeyConfigError: ``out_dir`` is inside the repository, or the key file exists.
        ConfigError: ``trust.json`` is invalid.
        StoreError: git failed.
    """
    writer.require_repo()
    trust_path = writer.reader.trust_path
    with writer.lock():
        before = trust_path.read_bytes() if trust_path.exists() else None
        trust = writer.reader.load_trust()
        key = generate_key(role, out_dir, writer.repo)
        try:
            save_trust(trust_path, add_key_to_trust(trust, role, key.public_key))
            if commit:
                writer.commit_held(
                    trust_path, f"trust: add {role} key {key.public_key.keyid[:12]}", push
                )
        except BaseException:
            if before is not None:
                atomic_write(trust_path, before)
            key.private_path.unlink(missing_ok=True)
            raise
    return key
