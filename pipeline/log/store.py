"""The manifest log on disk and in git: read, verify, write once, commit, push.

Layout: ``<repo>/manifests/trust.json`` and ``<repo>/manifests/<product>/<kind dir>/…``.
Writes are atomic and never overwrite. A mutating call holds an exclusive lock
on the checkout, so concurrent processes serialise instead of racing on git's
index, and each call makes at most one commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.core.models.common import Manifest, RoleName, Trust
from pipeline.errors import ConflictError, KeyConfigError, StoreError, VerificationError
from pipeline.fsutil import atomic_create, atomic_write
from pipeline.log.blobs import BlobStore
from pipeline.log.cache import VerifyCache
from pipeline.log.git import Git, PushConfig
from pipeline.log.parallel import verify_files
from pipeline.log.segments import gc_paused
from pipeline.log.signing import (
    GeneratedKey,
    ManifestRejected,
    add_key_to_trust,
    generate_key,
    load_trust,
    save_trust,
    sign_manifest,
    verify_manifest,
)
from pipeline.log.sslib import Signer

MANIFESTS = "manifests"
TRUST_FILE = "trust.json"
#: Folders under ``manifests/`` that hold no manifests.
NON_MANIFEST_DIRS = frozenset({"schema"})


@dataclass(frozen=True, slots=True)
class Verified:
    """A manifest that passed verification, with where it was read from."""

    name: str  # relative to ``manifests/``, ``/``-separated
    manifest: Manifest
    #: The git blob id of the bytes verified, when git vouches for them (a clean tracked
    #: file): a content identity, for callers that must notice a file changing. Not part
    #: of equality: a load with the cache and one without verify the same things.
    blob: str | None = field(default=None, compare=False)

    @property
    def path(self) -> PurePosixPath:
        """:attr:`name` as a path (made on demand: a load makes tens of thousands)."""
        return PurePosixPath(self.name)


@dataclass
class LogReport:
    """The outcome of verifying the whole log."""

    verified: list[Verified] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        """Verified manifests per kind."""
        return Counter(v.manifest.KIND for v in self.verified)


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
    commit: str | None = None
    pushed: bool = False
    dry_run: bool = False


class ManifestLog:
    """The signed manifest log in a git work tree."""

    def __init__(self, repo: Path, *, cache: bool = True) -> None:
        self.repo = repo
        self.root = repo / MANIFESTS
        self.git = Git(repo)
        #: Reuse earlier verification results (``pipeline.log.cache``, outside git).
        self.cache = cache
        self._thread_lock = threading.RLock()
        self._lock_depth = 0

    @property
    def trust_path(self) -> Path:
        """Where ``trust.json`` lives."""
        return self.root / TRUST_FILE

    def load_trust(self) -> Trust:
        """Read ``trust.json`` (see :func:`pipeline.log.signing.load_trust`)."""
        return load_trust(self.trust_path)

    def product_names(self) -> list[str]:
        """Every product of the log: the folders under ``manifests/`` with a product.toml."""
        if not self.root.is_dir():
            return []
        return sorted(p.parent.name for p in self.root.glob("*/product.toml"))

    def product_dir(self, product: str) -> Path:
        """The folder of one product's configuration and manifests."""
        return self.root / product

    def blob_store(self) -> BlobStore | None:
        """Where verified manifests' bytes are kept by blob id, for links that leave the
        work tree alone (:class:`pipeline.log.blobs.BlobStore`); None without the cache
        or outside git."""
        if not self.cache:
            return None
        try:
            return BlobStore.of(self.git.git_dir())
        except StoreError:
            return None

    def manifest_files(self) -> list[PurePosixPath]:
        """Every manifest file in the log, relative to ``manifests/``, sorted."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.rglob("*.json"):
            rel = PurePosixPath(path.relative_to(self.root).as_posix())
            if len(rel.parts) == 1 or rel.parts[0] in NON_MANIFEST_DIRS:
                continue
            if any(part.startswith(".") for part in rel.parts):
                continue
            found.append(rel)
        return sorted(found)

    def verify_all(self, trust: Trust, products: Collection[str] | None = None) -> LogReport:
        """Verify every manifest; collect failures instead of stopping at the first.

        ``products`` limits the load to the manifest files under ``manifests/<product>/``
        of those products: only they are walked, looked up in the cache, verified and
        reported, so a failure elsewhere in the log does not show (``invoke verify``
        checks the whole log). None (the default) verifies the whole log.

        With the cache on (the default), a tracked file that git reports unchanged and
        whose bytes verified before under the same trust is not checked again (see
        :mod:`pipeline.log.cache`); every other file is read and verified. The report
        is the same either way.

        Raises:
            ValueError: a name in ``products`` is not a product folder name.
        """
        scope = _product_scope(products)
        with gc_paused():
            report = self._verify_all(trust, scope)
            # The loaded manifests are long-lived (a task keeps them until it exits): move
            # them, and everything else alive now, out of the cycle collector's generations
            # so later collections (``derive`` allocates a lot) do not rescan them again and
            # again. Freezing only exempts objects from cyclic-GC scans: refcounting still
            # frees them when the last reference goes (models hold no reference cycles).
            # Garbage cycles that earlier code left uncollected are frozen too and stay
            # until ``gc.unfreeze()``; a load makes none. Freeze before the collector is
            # back on: its first pass would otherwise scan everything just loaded.
            gc.freeze()
        return report

    def _verify_all(self, trust: Trust, products: frozenset[str] | None) -> LogReport:
        # git names the files' content identities (for the cache) while the folders are
        # walked: both mostly wait on the kernel.
        with ThreadPoolExecutor(max_workers=1) as pool:
            opening = (
                pool.submit(VerifyCache.open, self.repo, MANIFESTS, trust, products)
                if self.cache
                else None
            )
            names = self._manifest_names(products)
            cache = opening.result() if opening is not None else None
        if not names:
            cache = None
        verified: dict[str, Manifest] = {}
        misses: list[str] = []
        for name in names:
            hit = cache.get(name) if cache is not None else None
            if hit is None:
                misses.append(name)
            else:
                verified[name] = hit
        fresh, rejected = verify_files(self.root, misses, trust, cache)
        verified.update(fresh)
        report = LogReport()
        blobs = cache.blob_ids if cache is not None else {}
        for name in names:
            manifest = verified.get(name)
            if manifest is None:
                report.failures.append((f"{MANIFESTS}/{name}", rejected[name]))
            else:
                report.verified.append(Verified(name, manifest, blobs.get(name)))
        if cache is not None:
            cache.save(set(names))
        return report

    def _manifest_names(self, products: Collection[str] | None = None) -> list[str]:
        """:meth:`manifest_files` as strings, in the same order; a faster walk for large logs.

        With ``products``, only the files under ``manifests/<product>/`` of those products
        (the same names, in the same order, as filtering the whole walk).
        """
        found: list[str] = []
        if products is None:
            stack: list[tuple[str, str]] = [("", str(self.root))]
        else:
            stack = [
                (f"{name}/", os.path.join(self.root, name))
                for name in _product_scope(products) or ()
            ]
        while stack:
            prefix, folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                rel = f"{prefix}{name}"
                if entry.is_dir(follow_symlinks=False):
                    if prefix or name not in NON_MANIFEST_DIRS:
                        stack.append((f"{rel}/", entry.path))
                elif prefix and name.endswith(".json"):
                    found.append(rel)
        found.sort(key=lambda r: r.split("/"))
        return found

    def load_verified(
        self, trust: Trust, products: Collection[str] | None = None
    ) -> list[Verified]:
        """Every manifest (of ``products``, if given), verified; fail closed.

        Fail closed covers what is loaded: with ``products``, a bad manifest of another
        product does not fail this load (``invoke verify`` checks the whole log).

        Raises:
            VerificationError: any manifest loaded failed verification.
            ValueError: a name in ``products`` is not a product folder name.
        """
        report = self.verify_all(trust, products)
        if report.failures:
            raise VerificationError(report.failures)
        return report.verified

    def read(self, rel: PurePosixPath, trust: Trust) -> Manifest:
        """Read and verify one manifest.

        Raises:
            ManifestRejected: it failed verification.
        """
        return verify_manifest((self.root / rel).read_bytes(), rel, trust)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the checkout's exclusive lock (blocking) for a read-modify-commit.

        Re-entrant within one ``ManifestLog``: a caller may hold it around several writes.
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
            if dry_run:
                result.written = [p.path for p in new]
                return result
            self._write_files(new)
            result.written = [p.path for p in new]
            if commit and new:
                paths = [PurePosixPath(MANIFESTS) / p.path for p in new]
                try:
                    result.commit = self.git.commit_paths(paths, message)
                except StoreError:
                    self._unwrite(new)
                    raise
            if push is not None and commit:
                self.git.push_with_retry(push)
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
            existing = self.read(item.path, trust)
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
        """Commit one non-manifest file of the log (``trust.json``, ``product.toml``)."""
        self.require_repo()
        with self.lock():
            return self._commit_file(path, message, push)

    def _commit_file(self, path: Path, message: str, push: PushConfig | None) -> str:
        rel = path.resolve().relative_to(self.repo.resolve())
        commit = self.git.commit_paths([rel.as_posix()], message)
        if push is not None:
            self.git.push_with_retry(push)
        return commit

    def add_trusted_key(
        self, role: RoleName, out_dir: Path, *, commit: bool = True, push: PushConfig | None = None
    ) -> GeneratedKey:
        """Generate a key pair for ``role`` and trust its public key, in one commit.

        If the commit fails, ``trust.json`` is restored and the new private key removed.

        Raises:
            KeyConfigError: ``out_dir`` is inside the repository, or the key file exists.
            ConfigError: ``trust.json`` is invalid.
            StoreError: git failed.
        """
        self.require_repo()
        with self.lock():
            before = self.trust_path.read_bytes() if self.trust_path.exists() else None
            trust = self.load_trust()
            key = generate_key(role, out_dir, self.repo)
            try:
                save_trust(self.trust_path, add_key_to_trust(trust, role, key.public_key))
                if commit:
                    self._commit_file(
                        self.trust_path, f"trust: add {role} key {key.public_key.keyid[:12]}", push
                    )
            except BaseException:
                if before is not None:
                    atomic_write(self.trust_path, before)
                key.private_path.unlink(missing_ok=True)
                raise
        return key


def _product_scope(products: Collection[str] | None) -> frozenset[str] | None:
    """``products`` as a set of product folder names, checked (None stays None).

    Raises:
        ValueError: a name is not one folder directly under ``manifests/`` that can hold
            manifests (empty, hidden, with a slash, or ``schema``), or ``products`` is a
            single string.
    """
    if products is None:
        return None
    if isinstance(products, str):
        raise ValueError(f"products must be a collection of names, not the string {products!r}")
    scope = frozenset(products)
    for name in scope:
        if (
            not isinstance(name, str)
            or not name
            or name.startswith(".")
            or "/" in name
            or "\0" in name
            or name in NON_MANIFEST_DIRS
        ):
            raise ValueError(f"not a product name: {name!r}")
    return scope


def _content(manifest: Manifest) -> dict[str, Any]:
    data = manifest.signed_dict()
    data.pop("created", None)
    return data


def dump_json(data: Any) -> bytes:
    """Readable JSON for non-signed files: sorted keys, two-space indent."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def init_log(repo: Path, products: dict[str, bytes], trust_json: bytes) -> bool:
    """Create a manifest log at ``repo``: a git repository with ``trust.json`` and products.

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
    written = [log.trust_path]
    log.root.mkdir(parents=True, exist_ok=True)
    atomic_create(log.trust_path, trust_json)
    ignore = repo / ".gitignore"
    if not ignore.exists():
        # The default log store lives beside the manifests but never in git.
        atomic_create(ignore, b"/logs/\n")
        written.append(ignore)
    for name, toml in products.items():
        path = log.product_dir(name) / "product.toml"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_create(path, toml)
            written.append(path)
    log.git.commit_paths([p.relative_to(repo).as_posix() for p in written], "log: initialise")
    return True
