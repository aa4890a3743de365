"""The manifest log on disk and in git: one handle over reading and writing it.

:class:`ManifestLog` composes a :class:`~pipeline.log.reader.LogReader` (walk,
verify, the verification cache) and a :class:`~pipeline.log.writer.LogWriter`
(the checkout's lock, write once, commit, push); key handling is in
:mod:`pipeline.log.keys` and the layout in :mod:`pipeline.log.layout`. This
module also creates a new log (:func:`init_log`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.core.models.common import Manifest, RoleName, Trust
from pipeline.fsutil import atomic_create
from pipeline.log import keys
from pipeline.log.blobs import BlobStore
from pipeline.log.git import Git, PushConfig
from pipeline.log.reader import LogReader, LogReport, Verified
from pipeline.log.signing import GeneratedKey
from pipeline.log.sslib import Signer
from pipeline.log.trust import Pin, PinnedChain, write_version
from pipeline.log.writer import LogWriter, PendingManifest, WriteOptions, WriteResult


class ManifestLog:
    """The signed manifest log in a git work tree: a reader and a writer of one checkout."""

    def __init__(self, repo: Path, *, cache: bool = True) -> None:
        self.reader = LogReader(repo, cache=cache)
        self.writer = LogWriter(self.reader)
        self.repo = repo
        self.root = self.reader.root
        self.git: Git = self.reader.git

    @property
    def cache(self) -> bool:
        """Reuse earlier verification results (``pipeline.log.cache``, outside git)."""
        return self.reader.cache

    @cache.setter
    def cache(self, value: bool) -> None:
        self.reader.cache = value

    @property
    def pin(self) -> Pin | None:
        """The pinned root (``--root``, ``FORTNIGHT_ROOT``); None: the clone's, or first use."""
        return self.reader.pin

    @pin.setter
    def pin(self, value: Pin | None) -> None:
        self.reader.pin = value

    @property
    def trust_path(self) -> Path:
        """Where ``trust.json`` lives."""
        return self.reader.trust_path

    def load_trust(self) -> Trust:
        """See :meth:`LogReader.load_trust`."""
        return self.reader.load_trust()

    def load_root(self, pin: Pin | None = None) -> PinnedChain:
        """See :meth:`LogReader.load_root`."""
        return self.reader.load_root(pin)

    def product_names(self) -> list[str]:
        """See :meth:`LogReader.product_names`."""
        return self.reader.product_names()

    def product_dir(self, product: str) -> Path:
        """See :meth:`LogReader.product_dir`."""
        return self.reader.product_dir(product)

    def blob_store(self) -> BlobStore | None:
        """See :meth:`LogReader.blob_store`."""
        return self.reader.blob_store()

    def manifest_files(self) -> list[PurePosixPath]:
        """See :meth:`LogReader.manifest_files`."""
        return self.reader.manifest_files()

    def verify_all(self, trust: Trust, products: Collection[str] | None = None) -> LogReport:
        """See :meth:`LogReader.verify_all`."""
        return self.reader.verify_all(trust, products)

    def load_verified(
        self, trust: Trust, products: Collection[str] | None = None
    ) -> list[Verified]:
        """See :meth:`LogReader.load_verified`."""
        return self.reader.load_verified(trust, products)

    def read(self, rel: PurePosixPath, trust: Trust) -> Manifest:
        """See :meth:`LogReader.read`."""
        return self.reader.read(rel, trust)

    def lock(self) -> AbstractContextManager[None]:
        """See :meth:`LogWriter.lock` (re-entrant within one ``ManifestLog``)."""
        return self.writer.lock()

    def require_repo(self) -> None:
        """See :meth:`LogWriter.require_repo`."""
        self.writer.require_repo()

    def write(
        self,
        pending: Sequence[PendingManifest],
        trust: Trust,
        *,
        message: str,
        commit: bool = True,
        push: PushConfig | None = None,
        dry_run: bool = False,
        signers: Sequence[Signer] = (),
    ) -> WriteResult:
        """See :meth:`LogWriter.write`."""
        return self.writer.write(
            pending,
            trust,
            message=message,
            commit=commit,
            push=push,
            dry_run=dry_run,
            signers=signers,
        )

    def record(
        self,
        manifests: Sequence[Manifest],
        signers: Sequence[Signer],
        trust: Trust,
        message: str,
        options: WriteOptions,
    ) -> WriteResult:
        """See :meth:`LogWriter.record`."""
        return self.writer.record(manifests, signers, trust, message, options)

    def settle(
        self,
        scopes: Collection[str],
        trust: Trust,
        options: WriteOptions,
        signers: Sequence[Signer] = (),
    ) -> WriteResult:
        """See :meth:`LogWriter.settle`."""
        return self.writer.settle(scopes, trust, options, signers)

    def configured_remote(self) -> str | None:
        """See :meth:`LogWriter.configured_remote`."""
        return self.writer.configured_remote()

    def commit_file(self, path: Path, message: str, *, push: PushConfig | None = None) -> str:
        """See :meth:`LogWriter.commit_file`."""
        return self.writer.commit_file(path, message, push=push)

    def add_trusted_key(
        self,
        role: RoleName,
        out_dir: Path,
        root_signers: Sequence[Signer],
        *,
        commit: bool = True,
        push: PushConfig | None = None,
    ) -> GeneratedKey:
        """See :func:`pipeline.log.keys.add_trusted_key`."""
        return keys.add_trusted_key(
            self.writer, role, out_dir, root_signers, commit=commit, push=push
        )

    def write_root(
        self, raw: bytes, message: str, *, commit: bool = True, push: PushConfig | None = None
    ) -> list[Path]:
        """See :meth:`LogWriter.write_root`."""
        return self.writer.write_root(raw, message, commit=commit, push=push)


def dump_json(data: Any) -> bytes:
    """Readable JSON for non-signed files: sorted keys, two-space indent."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def init_log(repo: Path, products: dict[str, bytes], root_json: bytes) -> bool:
    """Create a manifest log at ``repo``: a git repository with root version 1
    (``root_json``, from :func:`pipeline.log.trust.first_version`) and products.

    Safe to re-run: an existing log is left as it is and False is returned.

    Raises:
        StoreError: git failed, or ``repo`` is a git repository of something else.
    """
    log = ManifestLog(repo)
    if log.trust_path.exists():
        return False
    repo.mkdir(parents=True, exist_ok=True)
    if not log.git.is_repo():
        log.git.run("init", "--quiet", "--initial-branch=main")
    if log.git.run("config", "user.email", check=False).returncode != 0:
        # A scratch log needs an identity to commit; production checkouts have their own.
        log.git.run("config", "user.email", "fortnight@localhost")
        log.git.run("config", "user.name", "Fortnight")
    log.root.mkdir(parents=True, exist_ok=True)
    written = write_version(log.root, root_json)
    ignore = repo / ".gitignore"
    if not ignore.exists():
        # The default log store and site output live beside the manifests, never in git.
        atomic_create(ignore, b"/logs/\n/output/\n")
        written.append(ignore)
    for name, toml in products.items():
        path = log.product_dir(name) / "product.toml"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_create(path, toml)
            written.append(path)
    log.git.commit_paths([p.relative_to(repo).as_posix() for p in written], "log: initialise")
    return True
