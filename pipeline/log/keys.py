"""Adding a trusted key to the log: generate it, trust it in the next signed root version."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.core.models.common import RoleName
from pipeline.log.git import PushConfig
from pipeline.log.signing import GeneratedKey, add_key_to_trust, generate_key
from pipeline.log.sslib import Signer
from pipeline.log.trust import next_version
from pipeline.log.writer import LogWriter


def add_trusted_key(
    writer: LogWriter,
    role: RoleName,
    out_dir: Path,
    root_signers: Sequence[Signer],
    *,
    commit: bool = True,
    push: PushConfig | None = None,
) -> GeneratedKey:
    """Generate a key pair for ``role`` and trust its public key in the next root
    version, signed by ``root_signers`` (and by the new key itself for ``root``).

    If writing fails, the new private key is removed and nothing is committed.

    Raises:
        KeyConfigError: ``out_dir`` is inside the repository, or the key file exists.
        ConfigError: the root signers do not meet a threshold, or the key is already
            trusted under another keyid.
        TrustError: the root chain does not verify.
        StoreError: git failed.
    """
    writer.require_repo()
    with writer.lock():
        chain = writer.reader.load_root().chain
        key = generate_key(role, out_dir, writer.repo)
        try:
            signers = list(root_signers)
            if role == "root":
                signers.append(key.signer())
            trust = add_key_to_trust(chain.trust, role, key.public_key)
            message = f"trust: add {role} key {key.public_key.keyid[:12]}"
            writer.write_root_held(next_version(chain, trust, signers), message, commit, push)
        except BaseException:
            key.private_path.unlink(missing_ok=True)
            raise
    return key
