"""A cache of verification results outside git: an unchanged log loads without re-checking.

Where: ``<git dir>/fortnight-cache/`` (``.git`` is outside the work tree: the cache is
never committed or pushed). Deleting it is always safe: the next load verifies every
file again and rebuilds it.

What: for each manifest file that passed :func:`pipeline.log.signing.verify_manifest`, its
path (relative to ``manifests/``), the git blob id of the exact bytes that passed, and the
validated model. A load looks a file up by its path *and* its current blob id, so a hit
is a manifest that verified at that very path (the path-identity check holds) from the
very bytes now in the file. Entries live in a folder named by a fingerprint of the trust
the verification used (its keys, roles and thresholds) and of the code that verified
(segment format, Python and pydantic versions, and the source of every module of
``pipeline/core`` and ``pipeline/log``, see :data:`FINGERPRINTED`): another trust, or
another version of the rules, finds an empty cache and verifies afresh.

Content identity without reading every file: ``git status`` (run without optional locks,
so it never takes ``index.lock`` from a concurrent writer) names the tracked files whose
working copy differs from the index, then ``git ls-files -s`` gives the blob id of every
index entry; both are limited to the product folders being loaded. Only a tracked
regular file that git reports unchanged can hit; every other file (modified, untracked,
ignored, a symlink, a merge conflict) is read and verified as without the cache. git
decides "unchanged" by its stat data (size, mtime, ctime, inode) and re-hashes racily
clean files; a cache hit can only ever return a manifest that verified under this trust
at this path, never bytes that did not verify.

Storage: per product folder (a *partition*: ``<fingerprint>/<product>/``), segment files
``seg-*.pickle`` (:mod:`pipeline.log.segments`: a magic line, a JSON header and a pickle
of ``{path: (blob id, model)}``) for paths of that product.
A partition is read the first time one of its files is looked up, so a load of one
product unpickles only that product's results; reading a partition merges its segments
(newer wins); a load that verified new files appends one small segment to each partition
it touched, and a partition with many segments is compacted into fewer. A hit still
needs the path *and* the blob id to match, whatever segment the entry was read from.
Segments are written to a temp file and renamed. Anything unexpected (a truncated or
corrupt segment, another format, a digest mismatch, a class outside ``pipeline.core.models``)
makes that segment count as absent; failing to write is ignored. The unpickler only
resolves model classes of :mod:`pipeline.core.models`, :class:`datetime.datetime` and the
segment format's rebuild function, so a corrupt file cannot run code through pickle. The cache
is trusted like the rest of ``.git`` (whoever can write there can already run code
through git hooks): do not restore it from an untrusted source, e.g. a CI cache shared
with forks.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
import secrets
import shutil
import sys
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import pydantic

from pipeline.core.models.common import Manifest, Trust
from pipeline.fsutil import atomic_write
from pipeline.log.git import Git, git_blob_id
from pipeline.log.segments import FORMAT, Entries, decode_segment, encode_segment

CACHE_DIR = "fortnight-cache"
#: Verified manifests' bytes by git blob id, under CACHE_DIR (see
#: :class:`pipeline.log.blobs.BlobStore`); never pruned as a fingerprint folder.
BLOB_DIR = "blobs"
#: Compact when a load finds more segments than this.
MAX_SEGMENTS = 8
#: Fingerprint folders (other trusts or code versions) kept besides the current one.
KEEP_OTHER_FINGERPRINTS = 2
#: Git file modes of regular files: the blob id is then the file's content identity.
REGULAR_MODES = frozenset({"100644", "100755"})
#: What writing a segment may raise: the disk (full, read-only, not a folder), or a
#: model the segment format refuses (:mod:`pipeline.log.segments`). Either way the
#: cache is only slower next time.
UNWRITABLE = (OSError, pickle.PicklingError)


# --- fingerprints ------------------------------------------------------------------------------


#: The folders of the package whose code decides what a verified manifest is.
FINGERPRINTED = ("core", "log")


@functools.cache
def code_fingerprint() -> str:
    """What the cached results depend on besides the trust: format, versions, rules."""
    h = hashlib.sha256(f"{FORMAT}|{sys.version}|{pydantic.VERSION}".encode())
    package = Path(__file__).resolve().parents[1]
    for folder in FINGERPRINTED:
        for path in sorted((package / folder).rglob("*.py")):  # subpackages too
            name = path.relative_to(package).as_posix()
            h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def trust_fingerprint(trust: Trust) -> str:
    """The sha256 of the canonical JSON of the trust a verification used."""
    text = json.dumps(trust.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# --- content identities from git ---------------------------------------------------------------


def clean_blob_ids(
    worktree: Path, folder: str, subfolders: Collection[str] | None = None
) -> tuple[Path, dict[str, str]] | None:
    """The git dir, and the blob id of every tracked regular file under ``folder`` whose
    working copy equals its index entry, keyed by path relative to ``folder``.

    ``subfolders`` (names of folders directly under ``folder``, e.g. products) limits
    both git commands, and the answer, to those folders; None means all of ``folder``.
    None when ``worktree`` is not a git work tree or git fails.
    """
    out = Git(worktree).output("rev-parse", "--absolute-git-dir", "--show-prefix")
    if out is None:
        return None
    lines = out.decode("utf-8", "surrogateescape").split("\n")
    if len(lines) < 2:
        return None
    git_dir, prefix = Path(lines[0]), lines[1]
    top = folder.strip("/")
    wanted = None if subfolders is None else frozenset(subfolders)
    if wanted is not None and not wanted:
        return git_dir, {}
    # Literal pathspecs: a folder name is never a glob. "manifests/a" matches the folder
    # manifests/a and what is under it, never manifests/ab.
    specs = [top] if wanted is None else sorted(f"{top}/{name}" for name in wanted)
    # First what differs from the index, then the index: a file changed in between can
    # only look unchanged if it was also staged, and then the index names its new bytes.
    status = Git(worktree).output(
        "--no-optional-locks",
        "--literal-pathspecs",
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=no",
        "--no-renames",
        "--ignore-submodules=all",
        "--",
        *specs,
    )
    # -v tags each entry: "H" is a plain tracked file; lowercase (assume-unchanged) and "S"
    # (skip-worktree) mean git does not look at the working copy, so neither do we.
    listing = Git(worktree).output(
        "--literal-pathspecs",
        "ls-files",
        "--stage",
        "-v",
        "-z",
        "--full-name",
        "--",
        *specs,
    )
    if status is None or listing is None:
        return None
    return git_dir, _clean_ids(status, listing, f"{prefix}{top}/", wanted)


def _clean_ids(
    status: bytes, listing: bytes, base: str, wanted: frozenset[str] | None
) -> dict[str, str]:
    """Parse ``git status -z`` and ``git ls-files -s -v -z``: the clean blob ids under
    ``base`` (in the ``wanted`` first-level folders only, unless None)."""
    dirty: set[str] = set()
    for record in status.decode("utf-8", "surrogateescape").split("\0"):
        if len(record) > 3 and (record[1] != " " or record[0] == "U"):
            dirty.add(record[3:])
    ids: dict[str, str] = {}
    conflicted: set[str] = set()
    for record in listing.decode("utf-8", "surrogateescape").split("\0"):
        meta, tab, path = record.partition("\t")
        if not tab or not path.startswith(base):
            continue
        if wanted is not None and path[len(base) :].partition("/")[0] not in wanted:
            continue
        fields = meta.split(" ")
        if len(fields) != 4:
            continue
        tag, mode, oid, stage = fields
        if stage != "0":
            conflicted.add(path)
        elif tag == "H" and mode in REGULAR_MODES and path not in dirty:
            ids[path[len(base) :]] = oid
    for path in conflicted:
        ids.pop(path[len(base) :], None)
    return ids


# --- the cache ---------------------------------------------------------------------------------


def partition_of(path: str) -> str | None:
    """The partition of a manifest path (relative to ``manifests/``): its product folder.

    None for a path that has no product folder, or one that cannot name a folder of
    the cache (such a file is simply never cached).
    """
    head, sep, _ = path.partition("/")
    if not sep or not head or head.startswith(".") or "\0" in head:
        return None
    return head


@dataclass
class _Partition:
    """The cached results of one product folder: what its segments hold, and what is new."""

    directory: Path
    entries: Entries
    #: The segments read: file, size, entries.
    segments: list[tuple[Path, int, Entries]]
    #: Verified in this process, to be written as one new segment.
    added: Entries
    #: Segments made by worker processes, to be written as they are.
    adopted: list[tuple[bytes, Entries]]


@functools.lru_cache(maxsize=128)
def _read_segment(
    path: str, size: int, mtime_ns: int, inode: int, fingerprint: str
) -> tuple[int, Entries | None]:
    """A segment file's entries, decoded once per process for each version of the file.

    Segments are never modified in place (written to a temp file, then renamed), so a
    file with the same path, size, time and inode holds the same bytes; a long-lived
    process (the demo, ``invoke listen``) that loads the log again and again unpickles
    each segment once. The entries are shared and never mutated; the models are frozen.

    Raises:
        OSError: the file cannot be read.
    """
    data = Path(path).read_bytes()
    return len(data), decode_segment(fingerprint, data)


class VerifyCache:
    """The verification results of one log under one trust, and the files git says are clean.

    Results are partitioned by product folder (``manifests/<product>/``): each partition
    has its own segments, read the first time a file of that product is looked up, so a
    load of one product unpickles only that product's results.

    Use :meth:`open`, then :meth:`get` for each file,
    :func:`pipeline.log.parallel.verify_files` (which calls
    :meth:`put` and :meth:`adopt`) for the others, and :meth:`save` once at the end.
    """

    def __init__(self, directory: Path, fingerprint: str, blob_ids: Mapping[str, str]) -> None:
        #: The folder of this fingerprint; one sub-folder per partition.
        self.directory = directory
        self.fingerprint = fingerprint
        self.blob_ids = blob_ids
        self.partitions: dict[str, _Partition] = {}
        self.hits = 0

    @classmethod
    def open(
        cls, worktree: Path, folder: str, trust: Trust, products: Collection[str] | None = None
    ) -> VerifyCache | None:
        """The cache of the log in ``worktree`` (manifests under ``folder``) for ``trust``.

        ``products`` limits it (and the git commands it runs) to the files under
        ``folder/<product>/`` for those products; None means every file under ``folder``.
        None when git cannot tell content identities (not a git work tree, git missing):
        then verify without a cache.
        """
        found = clean_blob_ids(worktree, folder, products)
        if found is None:
            return None
        git_dir, blob_ids = found
        fingerprint = hashlib.sha256(
            f"{code_fingerprint()}|{trust_fingerprint(trust)}".encode()
        ).hexdigest()
        return cls(git_dir / CACHE_DIR / fingerprint[:32], fingerprint, blob_ids)

    def _partition(self, name: str) -> _Partition:
        part = self.partitions.get(name)
        if part is None:
            part = self._load(self.directory / name)
            self.partitions[name] = part
        return part

    def _load(self, directory: Path) -> _Partition:
        part = _Partition(directory, {}, [], {}, [])
        try:
            names = sorted(p for p in os.listdir(directory) if p.endswith(".pickle"))
        except OSError:
            return part
        for name in names:
            path = directory / name
            try:
                st = path.stat()
                size, entries = _read_segment(
                    str(path), st.st_size, st.st_mtime_ns, st.st_ino, self.fingerprint
                )
            except OSError:
                continue
            if entries is None:
                with contextlib.suppress(OSError):
                    path.unlink()  # unusable: rebuilt from the files it covered
                continue
            part.entries.update(entries)
            part.segments.append((path, size, entries))
        return part

    def get(self, path: str) -> Manifest | None:
        """The verified model of the manifest at ``path`` if its current bytes verified before."""
        oid = self.blob_ids.get(path)
        if oid is None:
            return None  # not a clean tracked file: never from the cache
        name = partition_of(path)
        if name is None:
            return None
        entry = self._partition(name).entries.get(path)
        if type(entry) is not tuple or len(entry) != 2 or entry[0] != oid:
            return None
        manifest = entry[1]
        if not isinstance(manifest, Manifest):
            return None
        self.hits += 1
        return manifest

    def put(self, path: str, data: bytes, manifest: Manifest) -> None:
        """Remember that ``data``, read at ``path``, verified as ``manifest``.

        Kept only when the bytes are what git has for a clean tracked file, so the next
        load can find them without reading the file.
        """
        oid = self.blob_ids.get(path)
        name = partition_of(path)
        if oid is not None and name is not None and git_blob_id(data) == oid:
            self._partition(name).added[path] = (oid, manifest)

    def adopt(self, partition: str, raw: bytes, entries: Entries) -> None:
        """Keep a segment a worker wrote for ``partition`` (``raw``, decoded as ``entries``)."""
        self._partition(partition).adopted.append((raw, entries))

    def save(self, present: set[str] | None = None) -> None:
        """Write what this load verified, per partition: new segments, or compact the small
        ones into one.

        ``present`` (every manifest path of the partitions loaded) lets compaction drop
        entries of files that are gone. A segment that cannot be written (see
        :data:`UNWRITABLE`) is skipped: it is a cache miss next time.
        """
        wrote = False
        for part in self.partitions.values():
            new = len(part.adopted) + (1 if part.added else 0)
            if not new:
                continue
            wrote = True
            try:
                if len(part.segments) + new <= MAX_SEGMENTS:
                    for raw, _ in part.adopted:
                        self._write(part, raw)
                    if part.added:
                        self._write(part, encode_segment(self.fingerprint, part.added))
                else:
                    self._compact(part, present)
            except UNWRITABLE:
                pass  # a cache that cannot be written is only slower next time
        if wrote:
            with contextlib.suppress(OSError):
                os.utime(self.directory)  # its age tells pruning which fingerprints are in use
                self._prune_other_fingerprints()

    def _compact(self, part: _Partition, present: set[str] | None) -> None:
        # Merge everything but the largest segment (the bulk of the partition, rarely worth
        # rewriting) and what is new into one segment, keeping only live entries.
        keep = max(part.segments, key=lambda s: s[1], default=None)
        merged: Entries = {}
        for seg in part.segments:
            if seg is not keep:
                merged.update(seg[2])
        for _, entries in part.adopted:
            merged.update(entries)
        merged.update(part.added)
        live = {
            p: e
            for p, e in merged.items()
            if (present is None or p in present) and self.blob_ids.get(p) == e[0]
        }
        self._write(part, encode_segment(self.fingerprint, live))
        for seg in part.segments:
            if seg is not keep:
                with contextlib.suppress(OSError):
                    seg[0].unlink()

    def _write(self, part: _Partition, data: bytes) -> None:
        stamp = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
        atomic_write(part.directory / f"seg-{stamp}.pickle", data)

    def _prune_other_fingerprints(self) -> None:
        others = [
            p
            for p in self.directory.parent.iterdir()
            if p != self.directory and p.name != BLOB_DIR and p.is_dir()
        ]
        others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[KEEP_OTHER_FINGERPRINTS:]:
            shutil.rmtree(old, ignore_errors=True)


def remove(git_dir: Path) -> None:
    """Delete the whole cache of a repository (always safe)."""
    shutil.rmtree(git_dir / CACHE_DIR, ignore_errors=True)


__all__ = [
    "BLOB_DIR",
    "CACHE_DIR",
    "FINGERPRINTED",
    "VerifyCache",
    "clean_blob_ids",
    "code_fingerprint",
    "partition_of",
    "remove",
    "trust_fingerprint",
]
