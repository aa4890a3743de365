"""Writing the manifest log: write once, commit, push, under the checkout's lock.

Writes are atomic and never overwrite. A mutating call holds an exclusive lock
on the checkout, so concurrent processes serialise instead of racing on git's
index, and each call makes at most one commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.core.models.common import Manifest, Trust
from pipeline.core.models.manifests import KINDS
from pipeline.errors import (
    ConflictError,
    KeyConfigError,
    StoreError,
    TrustError,
    VerificationError,
)
from pipeline.fsutil import atomic_create, atomic_write
from pipeline.log.checkpoints import (
    DEFAULT_VALIDITY,
    IndexEntry,
    newest,
    next_checkpoint,
    parse_index,
    read_index,
)
from pipeline.log.git import Git, PushConfig
from pipeline.log.layout import CHECKPOINT_DIR, INDEX_FILE, MANIFESTS
from pipeline.log.reader import LogReader
from pipeline.log.signing import ManifestRejected, loads_strict, sign_manifest, verify_manifest
from pipeline.log.sslib import Signer
from pipeline.log.stranded import (
    INDEX_PATHS,
    find_uncommitted,
    index_dirty,
    index_to_head,
    scope_of,
    uncommitted_checkpoints,
    with_recovered,
)
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
    #: How long the checkpoint a write signs stays fresh (see :mod:`pipeline.log.checkpoints`).
    validity: timedelta = DEFAULT_VALIDITY


@dataclass(frozen=True)
class Appended:
    """What appending to the index wrote: the index's bytes before, and the checkpoint."""

    index_before: bytes
    checkpoint: Path

    def undo(self, root: Path) -> None:
        """Put the index back and remove the checkpoint."""
        self.checkpoint.unlink(missing_ok=True)
        if self.index_before:
            atomic_write(root / INDEX_FILE, self.index_before)
        else:
            (root / INDEX_FILE).unlink(missing_ok=True)


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
        signers: Sequence[Signer] = (),
        validity: timedelta = DEFAULT_VALIDITY,
        scopes: Collection[str] = (),
    ) -> WriteResult:
        """Write new manifests, append them to ``log.idx`` with the next checkpoint signed
        by ``signers`` (:mod:`pipeline.log.checkpoints`), commit all in one commit, and push.

        A manifest whose identity exists with the same content (ignoring
        ``created`` and signatures) is an unchanged no-op. Nothing is written
        unless every manifest can be. Verified manifests an earlier run left uncommitted
        under the scopes of ``pending`` (and ``scopes``) go into the same commit: appended
        to the index first if a kill left them out of it (see :meth:`_verify_or_tidy`).

        Raises:
            ConflictError: an identity exists with different content.
            VerificationError: an existing file at that identity does not verify.
            TrustError: the log index or its checkpoints do not verify (nothing is written).
            KeyConfigError: there are new manifests but no signers for the checkpoint.
            StoreError: git failed; files written by this call are removed.
        """
        self.require_repo()
        result = WriteResult(dry_run=dry_run)
        with self.lock():
            # Fail closed: never append to a log whose index or checkpoints do not verify
            # (a real write first tidies what a killed write left half done).
            self._verify_or_tidy(trust, tidy=not dry_run)
            new: list[PendingManifest] = []
            for item in pending:
                if self._existing_matches(item, trust):
                    result.unchanged.append(item.path)
                else:
                    new.append(item)
            stranded = self.stranded(
                {*scopes, *(scope_of(p.path) for p in pending)}, trust, tidy=not dry_run
            )
            result.written = [p.path for p in new]
            if dry_run:
                result.recovered = stranded
                return result
            self._write_files(new)
            try:
                appended = self._append_recovering(new, stranded, signers, validity)
            except BaseException:
                self._unwrite(new)
                raise
            if not commit:
                result.uncommitted = sorted({*stranded, *result.written})
            elif new or stranded or appended is not None:
                others = [p for p in stranded if p not in result.unchanged]
                result.commit = self._commit(
                    new, appended, with_recovered(message, others), also=stranded
                )
                result.recovered = stranded
            if push is not None and commit:
                self.git.push_with_retry(
                    push, lambda theirs: self._rebuild(theirs, signers, validity)
                )
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

    def settle(
        self,
        scopes: Collection[str],
        trust: Trust,
        options: WriteOptions,
        signers: Sequence[Signer] = (),
    ) -> WriteResult:
        """Commit (and push, when asked) what earlier runs left uncommitted under ``scopes``,
        for a task that found nothing new to record (see :meth:`write`): the same write
        with nothing new.

        Raises:
            TrustError: the log index or its checkpoints do not verify.
            StoreError: git failed.
        """
        return self.write(
            [],
            trust,
            message="log: commit manifests left uncommitted",
            commit=options.commit,
            push=options.push,
            dry_run=options.dry_run,
            signers=signers,
            validity=options.validity,
            scopes=scopes,
        )

    def _append_recovering(
        self,
        new: Sequence[PendingManifest],
        stranded: Sequence[PurePosixPath],
        signers: Sequence[Signer],
        validity: timedelta,
    ) -> Appended | None:
        """Append ``new`` and the ``stranded`` manifests the index lacks (a kill between
        writing a manifest and appending it) with one new checkpoint; None when there is
        nothing to append.

        Raises:
            KeyConfigError: there is something to append but no signers.
        """
        indexed = {e.name for e in parse_index(read_index(self.root))}
        lost = [
            PendingManifest(rel, raw := (self.root / rel).read_bytes(), _model_of(raw, str(rel)))
            for rel in stranded
            if str(rel) not in indexed
        ]
        items = [*new, *lost]
        if not items:
            return None
        if not signers:
            raise KeyConfigError(
                f"{MANIFESTS}/{items[0].path}: no key to sign the log's checkpoint with",
                hint="record manifests through the invoke tasks (they load the role's keys)",
            )
        return self._append(items, signers, validity)

    def _append(
        self, new: Sequence[PendingManifest], signers: Sequence[Signer], validity: timedelta
    ) -> Appended:
        """Append ``new`` to ``log.idx`` and write the next checkpoint (not committed)."""
        before = read_index(self.root)
        entries = parse_index(before)
        added = [IndexEntry(hashlib.sha256(p.data).hexdigest(), str(p.path)) for p in new]
        previous = newest(self.root)
        at = max(p.manifest.created for p in new)
        raw = next_checkpoint(
            previous.signed if previous else None, [*entries, *added], signers, at, validity
        )
        number = previous.signed.number + 1 if previous else 1
        path = self.root / CHECKPOINT_DIR / f"{number}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not atomic_create(path, raw):
            raise ConflictError(
                f"{MANIFESTS}/{CHECKPOINT_DIR}/{number}.json: appeared while writing",
                hint="re-run; another process recorded first",
            )
        try:
            atomic_write(self.root / INDEX_FILE, before + b"".join(e.line() for e in added))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Appended(before, path)

    def _commit(
        self,
        new: Sequence[PendingManifest],
        appended: Appended | None,
        message: str,
        *,
        also: Sequence[PurePosixPath] = (),
    ) -> str:
        """Commit ``new``, the manifests ``also`` left uncommitted, and the index with every
        checkpoint not committed yet (and any other uncommitted manifest the index names,
        so a committed index never names a file git does not have)."""
        indexed = {e.name for e in parse_index(read_index(self.root))}
        pending = find_uncommitted(self.git)
        others = [p for p in pending.manifests if str(p) in indexed]
        names = {*(p.path for p in new), *also, *others}
        paths = [PurePosixPath(MANIFESTS) / p for p in sorted(names)]
        paths += [PurePosixPath(MANIFESTS) / INDEX_FILE, *uncommitted_checkpoints(self.git)]
        try:
            return self.git.commit_paths(paths, message)
        except StoreError:
            self._unwrite(new)
            if appended is not None:
                appended.undo(self.root)
            for rel in INDEX_PATHS:
                self.git.run("reset", "--quiet", "--", rel, check=False)
            raise

    def _verify_or_tidy(self, trust: Trust, *, tidy: bool) -> None:
        """Verify the index and checkpoints; with ``tidy``, undo what a killed write left
        half done to them and verify again.

        A write creates the next checkpoint, then rewrites ``log.idx``, then commits: a kill
        in between leaves a work tree whose index and checkpoints disagree. If they do not
        verify and git has uncommitted changes to them, they go back to HEAD's (never
        published, so nothing is lost: the manifests they covered are re-appended by the
        write that finds them uncommitted) and the clone's memory of checkpoints goes back
        to HEAD's newest. Committed history is never touched: if HEAD itself does not
        verify, the write fails closed.
        """
        try:
            self.reader.verify_log(trust)
            return
        except TrustError:
            if not (tidy and index_dirty(self.git)):
                raise
        index_to_head(self.git, self.root)
        self.reader.verify_log(trust)

    def _rebuild(self, theirs: str, signers: Sequence[Signer], validity: timedelta) -> None:
        """Put this checkout's last commit (manifests, index line(s), checkpoint) on top of
        ``theirs``: the same manifests, appended after the remote's, with a new checkpoint.

        Raises:
            StoreError: more than this one commit is unpushed, or it is not a recording.
            ConflictError: the remote recorded one of the same manifests differently.
        """
        ahead = self.git.run("rev-list", "HEAD", f"^{theirs}").stdout.split()
        prefix = f"{MANIFESTS}/"
        changed = self.git.run(
            "diff", "--name-status", "--no-renames", "HEAD~1", "HEAD"
        ).stdout.splitlines()
        ours = [c.split("\t", 1)[1] for c in changed if c.startswith("A\t")]
        names = [
            n.removeprefix(prefix)
            for n in ours
            if n != prefix + INDEX_FILE and not n.startswith(f"{prefix}{CHECKPOINT_DIR}/")
        ]
        others = [c for c in changed if not c.startswith("A\t")]
        if len(ahead) != 1 or others not in ([], [f"M\t{prefix}{INDEX_FILE}"]) or not names:
            raise StoreError(
                f"cannot put {len(ahead)} unpushed commit(s) on the remote's log",
                hint="push or drop the older unpushed commits by hand, then re-run",
            )
        message = self.git.run("log", "-1", "--format=%B").stdout.strip()
        data = {n: (self.root / n).read_bytes() for n in names}
        self.git.run("reset", "--quiet", "--keep", theirs)
        new: list[PendingManifest] = []
        for name, raw in data.items():
            path = self.root / name
            if path.exists():
                if path.read_bytes() != raw:
                    raise ConflictError(
                        f"{prefix}{name}: the remote recorded it with other content",
                        hint="manifests are append-only; record a correction as a new manifest",
                    )
                continue
            new.append(PendingManifest(PurePosixPath(name), raw, _model_of(raw, name)))
        if not new:
            return
        self._write_files(new)
        try:
            appended = self._append(new, signers, validity)
        except BaseException:
            self._unwrite(new)
            raise
        self._commit(new, appended, message)

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
            signers=signers,
            validity=options.validity,
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


def _model_of(raw: bytes, name: str) -> Manifest:
    """The model of a manifest this checkout recorded (its kind from its payload).

    Raises:
        StoreError: the bytes are not a manifest any more.
    """
    try:
        signed = loads_strict(raw)["signed"]
        return KINDS[signed["_type"]].model_validate(signed)
    except (ManifestRejected, KeyError, TypeError, ValueError) as e:
        raise StoreError(f"{MANIFESTS}/{name}: not a manifest after rebasing ({e})") from e


def _content(manifest: Manifest) -> dict[str, Any]:
    data = manifest.signed_dict()
    data.pop("created", None)
    return data
