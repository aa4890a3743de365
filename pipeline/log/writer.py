"""Writing the manifest log: write once, commit, push, under the checkout's lock.

Writes are atomic and never overwrite. A mutating call holds an exclusive lock
on the checkout, so concurrent processes serialise instead of racing on git's
index, and each call makes at most one commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.core.models.common import Manifest, Trust
from pipeline.errors import ConflictError, KeyConfigError, StoreError, VerificationError
from pipeline.fsutil import atomic_create, atomic_write
from pipeline.log.git import Git, PushConfig
from pipeline.log.layout import MANIFESTS
from pipeline.log.reader import LogReader
from pipeline.log.signing import ManifestRejected, sign_manifest, verify_manifest
from pipeline.log.sslib import Signer
from pipeline.log.stranded import find_uncommitted, scope_of
from pipeline.log.trust import write_version


@dataclass(frozen=True)
class PendingManifest:
    """A signed manifest ready to be written: its place, its bytes, its model."""

    path: PurePosixPath
    data: bytes
    manifest: Manifest


@dataclass(frozen=True)
class WriteOptions:
    """How a mutating task writes: commit or not, push or not, or only show the plan."""

    dry_run: bool = False
    commit: bool = True
    push: PushConfig | None = None


@dataclass
class WriteResult:
    """What a write did (or, with ``dry_run``, would do)."""

    written: list[PurePosixPath] = field(default_factory=list)
    unchanged: list[PurePosixPath] = field(default_factory=list)
    #: Verified manifests of the same product and kind that an earlier run left
    #: uncommitted (killed before its commit, or ``--no-commit``), committed with this
    #: write (with ``dry_run``: that would be).
    recovered: list[PurePosixPath] = field(default_factory=list)
    #: Manifests left uncommitted by this write or an earlier one (``commit=False``).
    uncommitted: list[PurePosixPath] = field(default_factory=list)
    commit: str | None = None
    pushed: bool = False
    dry_run: bool = False

    def did_anything(self) -> bool:
        """Whether the write did (or would do) anything at all."""
        return bool(
            self.written or self.recovered or self.uncommitted or self.commit or self.pushed
        )


class LogWriter:
    """Write, commit and push to the log that ``reader`` reads (it checks what exists)."""

    def __init__(self, reader: LogReader) -> None:
        self.reader = reader
        self._thread_lock = threading.RLock()
        self._lock_depth = 0

    @property
    def repo(self) -> Path:
        """The git work tree."""
        return self.reader.repo

    @property
    def root(self) -> Path:
        """The ``manifests/`` folder."""
        return self.reader.root

    @property
    def git(self) -> Git:
        """The git runner of the work tree."""
        return self.reader.git

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the checkout's exclusive lock (blocking) for a read-modify-commit.

        Re-entrant within one writer: a caller may hold it around several writes.
        """
        with self._thread_lock:
            if self._lock_depth:
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            lock_path = self.git.git_dir() / "fortnight.lock"
            with open(lock_path, "a+b") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                self._lock_depth = 1
                try:
                    yield
                finally:
                    self._lock_depth = 0
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def require_repo(self) -> None:
        """Check the log is a git work tree with a trust file.

        Raises:
            StoreError: it is not.
        """
        if not self.git.is_repo():
            raise StoreError(
                f"{self.repo}: not a git repository",
                hint="run 'invoke init --repo DIR' or pass --repo",
            )

    def write(
        self,
        pending: Sequence[PendingManifest],
        trust: Trust,
        *,
        message: str,
        commit: bool = True,
        push: PushConfig | None = None,
        dry_run: bool = False,
    ) -> WriteResult:
        """Write new manifests, commit them in one commit, and push.

        A manifest whose identity exists with the same content (ignoring
        ``created`` and signatures) is an unchanged no-op. Nothing is written
        unless every manifest can be.

        Raises:
            ConflictError: an identity exists with different content.
            VerificationError: an existing file at that identity does not verify.
            StoreError: git failed; files written by this call are removed.
        """
        self.require_repo()
        result = WriteResult(dry_run=dry_run)
        with self.lock():
            new: list[PendingManifest] = []
            for item in pending:
                if self._existing_matches(item, trust):
                    result.unchanged.append(item.path)
                else:
                    new.append(item)
            scopes = {scope_of(p.path) for p in pending}
            stranded = self.stranded(scopes, trust, tidy=not dry_run)
            result.written = [p.path for p in new]
            if dry_run:
                result.recovered = stranded
                return result
            self._write_files(new)
            if not commit:
                result.uncommitted = sorted({*stranded, *result.written})
            elif new or stranded:
                paths = [PurePosixPath(MANIFESTS) / p for p in (*result.written, *stranded)]
                others = [p for p in stranded if p not in result.unchanged]
                try:
                    result.commit = self.git.commit_paths(paths, _with_recovered(message, others))
                except StoreError:
                    self._unwrite(new)
                    raise
                result.recovered = stranded
            if push is not None and commit:
                self.git.push_with_retry(push)
                result.pushed = True
        return result

    def stranded(
        self, scopes: Collection[str], trust: Trust, *, tidy: bool = True
    ) -> list[PurePosixPath]:
        """Verified manifests under ``manifests/<scope>`` that git has not committed.

        A file that does not verify is left alone (``invoke verify`` names it). With
        ``tidy``, temp files of an interrupted write are removed: the caller holds the
        lock, so no write is under way.
        """
        if not scopes:
            return []  # (no scope would mean the whole log to find_uncommitted)
        found = find_uncommitted(self.git, sorted(scopes))
        for temp in found.temp if tidy else []:
            (self.root / temp).unlink(missing_ok=True)
        kept = []
        for rel in found.manifests:
            try:
                self.reader.read(rel, trust)
            except ManifestRejected:
                continue
            kept.append(rel)
        return kept

    def settle(self, scopes: Collection[str], trust: Trust, options: WriteOptions) -> WriteResult:
        """Commit (and push, when asked) what earlier runs left uncommitted under ``scopes``,
        for a task that found nothing new to record (see :meth:`write`).

        Raises:
            StoreError: git failed.
        """
        self.require_repo()
        result = WriteResult(dry_run=options.dry_run)
        with self.lock():
            stranded = self.stranded(scopes, trust, tidy=not options.dry_run)
            if options.dry_run or not options.commit:
                (result.recovered if options.dry_run else result.uncommitted).extend(stranded)
                return result
            if stranded:
                paths = [PurePosixPath(MANIFESTS) / p for p in stranded]
                message = _with_recovered("log: commit manifests left uncommitted", stranded)
                result.commit = self.git.commit_paths(paths, message)
                result.recovered = stranded
            if options.push is not None:
                self.git.push_with_retry(options.push)
                result.pushed = True
        return result

    def record(
        self,
        manifests: Sequence[Manifest],
        signers: Sequence[Signer],
        trust: Trust,
        message: str,
        options: WriteOptions,
    ) -> WriteResult:
        """Sign ``manifests`` and write them in one commit (see :meth:`write`).

        Each signed file is verified against ``trust`` before anything is written, so a
        manifest that would fail verification (too few signatures for the role's
        threshold, a key of another role) is never committed.

        Raises:
            KeyConfigError: the signers cannot produce a manifest that verifies.
        """
        pending = [PendingManifest(m.relpath(), sign_manifest(m, signers), m) for m in manifests]
        for item in pending:
            try:
                verify_manifest(item.data, item.path, trust)
            except ManifestRejected as e:
                raise KeyConfigError(
                    f"manifests/{item.path}: signing it gave a manifest that does not verify ({e})",
                    hint="set as many keys of the role as its threshold in trust.json",
                ) from e
        return self.write(
            pending,
            trust,
            message=message,
            commit=options.commit,
            push=options.push,
            dry_run=options.dry_run,
        )

    def _existing_matches(self, item: PendingManifest, trust: Trust) -> bool:
        path = self.root / item.path
        if not path.exists():
            return False
        try:
            existing = self.reader.read(item.path, trust)
        except ManifestRejected as e:
            raise VerificationError([(f"{MANIFESTS}/{item.path}", e.reason)]) from e
        if _content(existing) == _content(item.manifest):
            return True
        differing = sorted(
            k
            for k in set(_content(existing)) | set(_content(item.manifest))
            if _content(existing).get(k) != _content(item.manifest).get(k)
        )
        raise ConflictError(
            f"{MANIFESTS}/{item.path}: already recorded with different content "
            f"(differs in {', '.join(differing)})",
            hint="manifests are append-only; record a correction as a new manifest",
        )

    def _write_files(self, items: Sequence[PendingManifest]) -> None:
        done: list[PendingManifest] = []
        try:
            for item in items:
                if not atomic_create(self.root / item.path, item.data):
                    raise ConflictError(
                        f"{MANIFESTS}/{item.path}: appeared while writing",
                        hint="re-run; another process recorded it first",
                    )
                done.append(item)
        except BaseException:
            self._unwrite(done)
            raise

    def _unwrite(self, items: Sequence[PendingManifest]) -> None:
        for item in items:
            with contextlib.suppress(FileNotFoundError):
                (self.root / item.path).unlink()
            rel = str(PurePosixPath(MANIFESTS) / item.path)
            self.git.run("reset", "--quiet", "--", rel, check=False)

    def configured_remote(self) -> str | None:
        """The remote in ``git config fortnight.remote``, if set: then pushing is the default."""
        if not self.git.is_repo():
            return None
        out = self.git.run("config", "--get", "fortnight.remote", check=False).stdout.strip()
        return out or None

    def commit_file(self, path: Path, message: str, *, push: PushConfig | None = None) -> str:
        """Commit one non-manifest file of the log (``trust.json``, ``product.toml``).

        Raises:
            StoreError: the log is not a git work tree, or git failed.
        """
        self.require_repo()
        with self.lock():
            return self.commit_held(path, message, push)

    def commit_held(self, path: Path, message: str, push: PushConfig | None) -> str:
        """:meth:`commit_file` for a caller that already checked the repo and holds the lock.

        Raises:
            StoreError: git failed.
        """
        rel = path.resolve().relative_to(self.repo.resolve())
        commit = self.git.commit_paths([rel.as_posix()], message)
        if push is not None:
            self.git.push_with_retry(push)
        return commit

    def write_root(
        self, raw: bytes, message: str, *, commit: bool = True, push: PushConfig | None = None
    ) -> list[Path]:
        """Write a signed root version (:mod:`pipeline.log.trust`) and ``trust.json``, and
        commit both; on failure both are restored."""
        self.require_repo()
        with self.lock():
            return self.write_root_held(raw, message, commit, push)

    def write_root_held(
        self, raw: bytes, message: str, commit: bool, push: PushConfig | None
    ) -> list[Path]:
        """:meth:`write_root` for a caller that already checked the repo and holds the lock."""
        trust_path = self.reader.trust_path
        before = trust_path.read_bytes() if trust_path.exists() else None
        written: list[Path] = []
        try:
            written = write_version(self.root, raw)
            if commit:
                rels = [p.relative_to(self.repo).as_posix() for p in written]
                self.git.commit_paths(rels, message)
                if push is not None:
                    self.git.push_with_retry(push)
        except BaseException:
            if written:
                written[0].unlink(missing_ok=True)
                self.git.run("reset", "--quiet", "--", str(written[0]), check=False)
            if before is not None:
                atomic_write(trust_path, before)
            raise
        return written


def _with_recovered(message: str, recovered: Sequence[PurePosixPath]) -> str:
    """The commit message, naming the manifests an earlier run left uncommitted."""
    if not recovered:
        return message
    names = "\n".join(f"- {MANIFESTS}/{p}" for p in recovered)
    return f"{message}\n\nAlso commits what an earlier run left uncommitted:\n{names}\n"


def _content(manifest: Manifest) -> dict[str, Any]:
    data = manifest.signed_dict()
    data.pop("created", None)
    return data
