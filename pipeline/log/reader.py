"""Reading the manifest log: walk ``manifests/``, verify, report.

:class:`LogReader` never writes to the log (the verification cache it uses lives
outside git, see :mod:`pipeline.log.cache`).
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.core.models.common import Checkpoint, Manifest, Trust
from pipeline.errors import StoreError, TrustError, VerificationError
from pipeline.log.blobs import BlobStore
from pipeline.log.cache import CACHE_DIR, VerifyCache
from pipeline.log.checkpoints import INDEX_PATH, UPGRADE_HINT, VerifiedLog, verify_chain
from pipeline.log.coverage import covered
from pipeline.log.git import Git
from pipeline.log.layout import (
    INDEX_FILE,
    MANIFESTS,
    NON_MANIFEST_DIRS,
    TRUST_FILE,
    product_scope,
)
from pipeline.log.parallel import verify_files
from pipeline.log.segments import gc_paused
from pipeline.log.signing import verify_manifest
from pipeline.log.stranded import find_uncommitted
from pipeline.log.trust import Pin, PinnedChain, RootChain, load_pinned


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
    #: The newest checkpoint (verified with the index; None: a log with no manifests yet).
    head: Checkpoint | None = field(default=None, compare=False)

    def counts(self) -> Counter[str]:
        """Verified manifests per kind."""
        return Counter(v.manifest.KIND for v in self.verified)


class LogReader:
    """Read and verify the signed manifest log in a git work tree."""

    def __init__(self, repo: Path, *, cache: bool = True) -> None:
        self.repo = repo
        self.root = repo / MANIFESTS
        self.git = Git(repo)
        #: Reuse earlier verification results (``pipeline.log.cache``, outside git).
        self.cache = cache
        #: The pinned root (``--root``, ``FORTNIGHT_ROOT``); None: the clone's, or first use.
        self.pin: Pin | None = None
        self._chain: RootChain | None = None  # the root chain verified last

    @property
    def trust_path(self) -> Path:
        """Where ``trust.json`` lives."""
        return self.root / TRUST_FILE

    def load_trust(self) -> Trust:
        """The trust of the newest root version, verified from the pinned root.

        Raises:
            ConfigError: not a manifest log.
            TrustError: the root chain does not verify (see :mod:`pipeline.log.trust`).
        """
        return self.load_root().chain.trust

    def load_root(self, pin: Pin | None = None) -> PinnedChain:
        """The root chain verified from ``pin`` (else :attr:`pin`, else the clone's pin,
        else trust on first use); see :func:`pipeline.log.trust.load_pinned`."""
        pinned = load_pinned(self.root, self.git, pin or self.pin)
        self._chain = pinned.chain
        return pinned

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

    def manifest_names(self, products: Collection[str] | None = None) -> list[str]:
        """:meth:`manifest_files` as strings, in the same order; a faster walk for large logs.

        With ``products``, only the files under ``manifests/<product>/`` of those products
        (the same names, in the same order, as filtering the whole walk).

        Raises:
            ValueError: a name in ``products`` is not a product folder name.
        """
        found: list[str] = []
        if products is None:
            stack: list[tuple[str, str]] = [("", str(self.root))]
        else:
            stack = [
                (f"{name}/", os.path.join(self.root, name))
                for name in product_scope(products) or ()
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
        scope = product_scope(products)
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

    def _cache_dir(self) -> Path | None:
        """``<git dir>/fortnight-cache`` when the cache is on and this is a repository."""
        if not self.cache:
            return None
        try:
            return self.git.git_dir() / CACHE_DIR
        except StoreError:  # not a repository, or no git: no cache
            return None

    def verify_log(self, trust: Trust, cache_dir: Path | None = None) -> VerifiedLog:
        """Verify the index and the checkpoint chain (:mod:`pipeline.log.checkpoints`)
        with the keys of every root version and ``trust`` (the newest).

        Raises:
            TrustError: naming the first file that does not hold, or a rollback.
        """
        chain = self._chain
        if chain is None or chain.trust != trust:
            chain = self.load_root().chain
        trusts = [v.signed.trust() for v in chain.versions]
        if trusts[-1] != trust:
            trusts.append(trust)
        if cache_dir is None:
            cache_dir = self._cache_dir()
        return verify_chain(self.root, self.git, trusts, cache_dir)

    def _verify_all(self, trust: Trust, products: frozenset[str] | None) -> LogReport:
        cache_dir = self._cache_dir()
        chain = self.verify_log(trust, cache_dir)
        names, cache = self._walk_and_open_cache(trust, products)
        if chain.head is None and names:
            raise TrustError(
                f"{MANIFESTS}/{INDEX_FILE}: missing, and {len(names)} manifest(s) to cover: "
                "the log predates checkpoints",
                hint=UPGRADE_HINT,
            )
        verified: dict[str, Manifest] = {}
        misses: list[str] = []
        for name in names:
            hit = cache.get(name) if cache is not None else None
            if hit is None:
                misses.append(name)
            else:
                verified[name] = hit
        checked = verify_files(self.root, misses, trust, cache)
        verified.update(checked.verified)
        rejected = checked.rejected
        report = LogReport(head=chain.head)
        blobs = cache.blob_ids if cache is not None else {}
        failures = covered(self.root, chain, names, products, blobs, cache_dir, checked.sha256)
        names, failures = self._skip_unrecorded(names, failures, verified)
        for path, reason in failures:
            name = path.removeprefix(f"{MANIFESTS}/")
            if verified.pop(name, None) is not None or name not in rejected:
                rejected[name] = reason
            if name not in verified and name not in names:
                report.failures.append((path, reason))
        for name in names:
            manifest = verified.get(name)
            if manifest is None:
                report.failures.append((f"{MANIFESTS}/{name}", rejected[name]))
            else:
                report.verified.append(Verified(name, manifest, blobs.get(name)))
        if cache is not None:
            cache.save(set(names))
        return report

    def _walk_and_open_cache(
        self, trust: Trust, products: frozenset[str] | None
    ) -> tuple[list[str], VerifyCache | None]:
        """The manifest names and the opened cache (None when off or nothing to verify)."""
        # git names the files' content identities (for the cache) while the folders are
        # walked: both mostly wait on the kernel.
        with ThreadPoolExecutor(max_workers=1) as pool:
            opening = (
                pool.submit(VerifyCache.open, self.repo, MANIFESTS, trust, products)
                if self.cache
                else None
            )
            names = self.manifest_names(products)
            cache = opening.result() if opening is not None else None
        if not names:
            cache = None
        return names, cache

    def _skip_unrecorded(
        self,
        names: list[str],
        failures: list[tuple[str, str]],
        verified: Mapping[str, Manifest],
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Leave out of a load the manifests that are neither in ``log.idx`` nor committed:
        what a killed write left behind before appending it (the next write of its kind
        appends and commits it; ``invoke verify`` lists it as uncommitted). A committed
        manifest missing from the index stays a failure (a rewritten history), and so does a
        file whose signatures do not verify."""
        unindexed = {p for p, reason in failures if reason.startswith(f"not in {INDEX_PATH}")}
        if not unindexed:
            return names, failures
        pending = {
            f"{MANIFESTS}/{p}" for p in find_uncommitted(self.git).manifests if str(p) in verified
        }
        skip = unindexed & pending
        if not skip:
            return names, failures
        kept = [n for n in names if f"{MANIFESTS}/{n}" not in skip]
        return kept, [(p, r) for p, r in failures if p not in skip]

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
