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
(cache format, Python and pydantic versions, and the sources of ``pipeline.core.models``,
``pipeline.log.signing`` and this module): another trust, or another version of the rules,
finds an empty cache and verifies afresh.

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
``seg-*.pickle``, each a magic line, a JSON header (format, the fingerprint, the body's
length and sha256) and a pickle of ``{path: (blob id, model)}`` for paths of that product.
A partition is read the first time one of its files is looked up, so a load of one
product unpickles only that product's results; reading a partition merges its segments
(newer wins); a load that verified new files appends one small segment to each partition
it touched, and a partition with many segments is compacted into fewer. A hit still
needs the path *and* the blob id to match, whatever segment the entry was read from.
Segments are written to a temp file and renamed. Anything unexpected (a truncated or
corrupt segment, another format, a digest mismatch, a class outside ``pipeline.core.models``)
makes that segment count as absent; failing to write is ignored. The unpickler only
resolves model classes of :mod:`pipeline.core.models`, :class:`datetime.datetime` and this
module's rebuild function, so a corrupt file cannot run code through pickle. The cache
is trusted like the rest of ``.git`` (whoever can write there can already run code
through git hooks): do not restore it from an untrusted source, e.g. a CI cache shared
with forks.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import io
import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pydantic
from pydantic import BaseModel

from pipeline.core.models import common, manifests
from pipeline.core.models.common import Manifest, Trust
from pipeline.fsutil import atomic_create, atomic_write
from pipeline.log.git import Git
from pipeline.log.signing import ManifestRejected, verify_manifest

CACHE_DIR = "fortnight-cache"
#: Verified manifests' bytes by git blob id, under CACHE_DIR (see :class:`BlobStore`).
BLOB_DIR = "blobs"
#: Bump when the layout or the pickled form changes.
FORMAT = 2
MAGIC = b"fortnight-verify-cache\n"
#: Compact when a load finds more segments than this.
MAX_SEGMENTS = 8
#: Fingerprint folders (other trusts or code versions) kept besides the current one.
KEEP_OTHER_FINGERPRINTS = 2
#: Git file modes of regular files: the blob id is then the file's content identity.
REGULAR_MODES = frozenset({"100644", "100755"})

Entries = dict[str, tuple[str, Manifest]]
#: The modules whose model classes may be cached (pickled and unpickled), by name.
MODEL_MODULES = {m.__name__: m for m in (common, manifests)}


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


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob of ``data`` (SHA-1 of ``blob <size>\\0<data>``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


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


# --- segments ----------------------------------------------------------------------------------

_new = object.__new__
_setattr = object.__setattr__


def _rebuild(cls: type[BaseModel], values: dict[str, Any], fields_set: set[str]) -> BaseModel:
    """A validated model, restored from a cache written right after it was validated."""
    model = _new(cls)
    _setattr(model, "__dict__", values)
    _setattr(model, "__pydantic_fields_set__", fields_set)
    _setattr(model, "__pydantic_extra__", None)
    _setattr(model, "__pydantic_private__", None)
    return model


class _Pickler(pickle.Pickler):
    """Pickles models compactly: class, field values, set fields (no per-model state dict).

    Equal strings and equal hashable sub-models (an image reference repeated in every test
    case, the same base release in every compose) are written once and shared when read
    back: frozen models can be shared, and a load builds far fewer objects.
    """

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._fields_sets: dict[frozenset[str], set[str]] = {}
        self._shared: dict[Any, Any] = {}
        #: Per type: None (not a model), False (a model that cannot be hashed), True.
        self._kinds: dict[type, bool | None] = {}

    def _kind(self, cls: type) -> bool | None:
        kind = self._kinds.get(cls, ...)
        if kind is ...:
            if not issubclass(cls, BaseModel):
                kind = None
            elif cls.__module__ not in MODEL_MODULES:
                raise pickle.PicklingError(f"cannot cache {cls.__qualname__}")
            else:
                kind = True
            self._kinds[cls] = kind
        return kind

    def _share(self, value: Any) -> Any:
        cls = type(value)
        if cls is str:
            return self._shared.setdefault(value, value)
        if cls is list:
            return [self._share(v) for v in value]
        if self._kind(cls):
            try:
                return self._shared.setdefault(value, value)
            except TypeError:  # it holds a list: never hashable, stop trying for its class
                self._kinds[cls] = False
        return value

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if self._kind(cls) is None:
            return NotImplemented
        if obj.__pydantic_extra__:
            raise pickle.PicklingError(f"cannot cache {cls.__qualname__} with extra fields")
        key = frozenset(obj.model_fields_set)
        fields_set = self._fields_sets.setdefault(key, set(key))
        shared = self._shared
        values = {}
        for name, value in obj.__dict__.items():
            vcls = type(value)
            if vcls is str:
                values[name] = shared.setdefault(value, value)
            elif vcls is list or self._kinds.get(vcls) or vcls not in self._kinds:
                values[name] = self._share(value)
            else:
                values[name] = value
        return _rebuild, (cls, values, fields_set)


class _Unpickler(pickle.Unpickler):
    """Resolves only model classes, datetimes and :func:`_rebuild`: nothing else runs."""

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "_rebuild":
            return _rebuild
        if module == "datetime" and name in ("datetime", "timezone", "timedelta"):
            return super().find_class(module, name)
        if module in MODEL_MODULES:
            found = getattr(MODEL_MODULES[module], name, None)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def encode_segment(fingerprint: str, entries: Entries) -> bytes:
    """A segment file's bytes: magic, JSON header, pickled entries."""
    buf = io.BytesIO()
    _Pickler(buf).dump(entries)
    body = buf.getvalue()
    header = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + body


def decode_segment(fingerprint: str, data: bytes) -> Entries | None:
    """The entries of a segment, or None if it is not a sound segment of ``fingerprint``."""
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        header = json.loads(data[len(MAGIC) : end])
    except ValueError:
        return None
    body = memoryview(data)[end + 1 :]
    if (
        not isinstance(header, dict)
        or header.get("format") != FORMAT
        or header.get("fingerprint") != fingerprint
        or header.get("length") != len(body)
        or header.get("sha256") != hashlib.sha256(body).hexdigest()
    ):
        return None
    try:
        with gc_paused():
            entries = _Unpickler(io.BytesIO(body)).load()
    except Exception:  # a corrupt cache is a missing cache, whatever went wrong
        return None
    return entries if isinstance(entries, dict) else None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector: building many long-lived objects (a log's worth of
    models) is several times faster when it does not rescan them at every threshold."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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

    Use :meth:`open`, then :meth:`get` for each file, :func:`verify_files` (which calls
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
        entries of files that are gone. Never raises: a cache that cannot be written is a
        cache miss next time.
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
            except Exception:
                pass  # a cache that cannot be written is only slower next time
        if wrote:
            with contextlib.suppress(Exception):
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


# --- verifying many files: in this process, and in worker processes ---------------------------

#: Verify in worker processes (one per further core) when at least this many files miss.
PARALLEL_MIN_FILES = 2000


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def verify_files(
    root: Path,
    names: Sequence[str],
    trust: Trust,
    cache: VerifyCache | None,
    *,
    jobs: int | None = None,
) -> tuple[dict[str, Manifest], dict[str, str]]:
    """Verify the manifest files ``names`` (relative to ``root``) with ``verify_manifest``.

    Returns the verified models and the rejection reasons, by name. With many files
    and several cores, shares of them are verified by worker processes running the
    same code (``python -c ...``) while this process verifies its own share; a worker
    that fails has its share verified here instead, so the outcome never depends on it.

    Raises:
        OSError: a file could not be read (as without workers).
    """
    verified: dict[str, Manifest] = {}
    rejected: dict[str, str] = {}
    jobs = cpu_count() if jobs is None else jobs
    if jobs < 2 or len(names) < PARALLEL_MIN_FILES:
        _verify_here(root, names, trust, cache, verified, rejected)
        return verified, rejected
    shares = [list(names[i::jobs]) for i in range(jobs)]
    fingerprint = cache.fingerprint if cache is not None else ""
    with tempfile.TemporaryDirectory(prefix="fortnight-verify-") as tmp:
        workers = [
            _start_worker(Path(tmp) / str(i), root, share, trust, fingerprint)
            for i, share in enumerate(shares[1:], 1)
        ]
        _verify_here(root, shares[0], trust, cache, verified, rejected)
        for worker, share in zip(workers, shares[1:], strict=True):
            result = _finish_worker(worker, share, fingerprint)
            if result is None:
                _verify_here(root, share, trust, cache, verified, rejected)
                continue
            segments, reasons = result
            for _, _, entries in segments:
                verified.update((name, entry[1]) for name, entry in entries.items())
            rejected.update(reasons)
            if cache is not None:
                for partition, raw, entries in segments:
                    cache.adopt(partition, raw, entries)
    return verified, rejected


def _verify_here(
    root: Path,
    names: Sequence[str],
    trust: Trust,
    cache: VerifyCache | None,
    verified: dict[str, Manifest],
    rejected: dict[str, str],
) -> None:
    for name in names:
        rel = PurePosixPath(name)
        data = (root / rel).read_bytes()
        try:
            manifest = verify_manifest(data, rel, trust)
        except ManifestRejected as e:
            rejected[name] = e.reason
            continue
        verified[name] = manifest
        if cache is not None:
            cache.put(name, data, manifest)


@dataclass
class _Worker:
    process: subprocess.Popen[bytes] | None
    output: Path


def _start_worker(
    base: Path, root: Path, names: list[str], trust: Trust, fingerprint: str
) -> _Worker:
    output = base.with_suffix(".out")
    request = base.with_suffix(".json")
    try:
        request.write_text(
            json.dumps(
                {
                    "root": str(root),
                    "names": names,
                    "trust": trust.model_dump_json(),
                    "fingerprint": fingerprint,
                }
            )
        )
        env = dict(os.environ)
        # The worker must import this very package, installed or not.
        package_parent = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH", "")) if p
        )
        process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, str(request), str(output)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except OSError:
        return _Worker(None, output)
    return _Worker(process, output)


def _finish_worker(
    worker: _Worker, names: list[str], fingerprint: str
) -> tuple[list[tuple[str, bytes, Entries]], dict[str, str]] | None:
    """A worker's segments (partition, raw bytes, entries) and rejections, if sound."""
    if worker.process is None or worker.process.wait() != 0:
        return None
    try:
        data = worker.output.read_bytes()
    except OSError:
        return None
    end = data.find(b"\n")
    try:
        header = json.loads(data[:end]) if end >= 0 else None
    except ValueError:
        return None
    if not isinstance(header, dict):
        return None
    reasons, layout = header.get("reasons"), header.get("segments")
    if (
        not isinstance(reasons, dict)
        or not all(isinstance(r, str) for r in reasons.values())
        or not isinstance(layout, list)
    ):
        return None
    segments: list[tuple[str, bytes, Entries]] = []
    seen: set[str] = set()
    offset = end + 1
    for item in layout:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or type(item[1]) is not int
            or item[1] < 0
        ):
            return None
        partition, length = item
        raw = data[offset : offset + length]
        offset += length
        entries = decode_segment(fingerprint, raw)
        if (
            entries is None
            or len(raw) != length
            or not all(
                partition_of(n) == partition
                and n not in seen
                and type(e) is tuple
                and len(e) == 2
                and isinstance(e[1], Manifest)
                for n, e in entries.items()
            )
        ):
            return None
        seen.update(entries)
        segments.append((partition, raw, entries))
    if (
        offset != len(data)
        or len(seen) + len(reasons) != len(names)
        or not all(n in seen or n in reasons for n in names)
    ):
        return None
    return segments, reasons


_WORKER_CODE = "import pipeline.log.cache as v; v.worker_main()"


def worker_main(argv: Sequence[str] | None = None) -> None:
    """A worker process: verify the files a request names; write models and reasons.

    Its output is a JSON header line (the rejection reasons, and the partition and
    length of each segment), then one segment per partition.
    """
    request_path, output_path = (sys.argv[1:] if argv is None else argv)[:2]
    request = json.loads(Path(request_path).read_text())
    root = Path(request["root"])
    trust = Trust.model_validate_json(request["trust"], strict=True)
    by_partition: dict[str, Entries] = {}
    reasons: dict[str, str] = {}
    with gc_paused():
        for name in request["names"]:
            rel = PurePosixPath(name)
            data = (root / rel).read_bytes()
            try:
                manifest = verify_manifest(data, rel, trust)
            except ManifestRejected as e:
                reasons[name] = e.reason
                continue
            partition = partition_of(name)
            if partition is None:  # never from a walk of the log; the caller verifies the share
                raise SystemExit(3)
            by_partition.setdefault(partition, {})[name] = (git_blob_id(data), manifest)
        bodies = [
            (partition, encode_segment(request["fingerprint"], entries))
            for partition, entries in sorted(by_partition.items())
        ]
    header = {"reasons": reasons, "segments": [[p, len(body)] for p, body in bodies]}
    with open(output_path, "wb") as out:
        out.write(json.dumps(header).encode() + b"\n")
        for _, body in bodies:
            out.write(body)


# --- the blob store ----------------------------------------------------------------------------


class BlobStore:
    """Manifests' bytes, one read-only file per git blob id (``<id[:2]>/<id[2:]>``).

    The site's manifest mirror hard-links these files, not the work tree's: a new link
    changes a file's ctime, and git, which compares ctimes, would then read and hash every
    linked manifest again at each ``git status`` (seconds on a long log; the index is
    never refreshed without taking its lock, which a read-only build does not). The
    published copies are also no longer the work tree's files: an edit made in place in
    the work tree cannot reach them.

    A file is stored only after its bytes were read and found to be that blob, so a
    stored file always holds its blob. Deleting the store (with the rest of the cache)
    is always safe.
    """

    def __init__(self, root: Path) -> None:
        self.root = str(root)

    @classmethod
    def of(cls, git_dir: Path) -> BlobStore:
        """The store of the repository whose git folder is ``git_dir``."""
        return cls(git_dir / CACHE_DIR / BLOB_DIR)

    def path(self, oid: str) -> str:
        """Where blob ``oid`` is (or would be) stored."""
        return f"{self.root}/{oid[:2]}/{oid[2:]}"

    def held(self) -> set[str]:
        """The ids of every stored blob (one listing per folder, not a stat per file)."""
        found: set[str] = set()
        try:
            folders = [e.name for e in os.scandir(self.root) if len(e.name) == 2]
        except OSError:
            return found
        for folder in folders:
            with contextlib.suppress(OSError):
                found.update(folder + name for name in os.listdir(f"{self.root}/{folder}"))
        return found

    def fill(self, wanted: Mapping[str, str], root: Path) -> set[str]:
        """Store the blobs of ``wanted`` (file under ``root`` -> git blob id) not yet held;
        the ids of those held afterwards.

        A file whose bytes are no longer its blob (changed since git listed it) is not
        stored. Never raises: what cannot be stored is left out, and linked from the work
        tree instead.
        """
        held = self.held()
        for name, oid in wanted.items():
            if oid in held:
                continue
            try:
                data = (root / name).read_bytes()
                if git_blob_id(data) != oid:
                    continue
                self._add(oid, data)
            except OSError:
                continue
            held.add(oid)
        return held

    def _add(self, oid: str, data: bytes) -> None:
        # Read-only (the output's links share the inode); no fsync: the store is a cache.
        atomic_create(Path(self.path(oid)), data, mode=0o444, durable=False)


def remove(git_dir: Path) -> None:
    """Delete the whole cache of a repository (always safe)."""
    shutil.rmtree(git_dir / CACHE_DIR, ignore_errors=True)


__all__ = [
    "BLOB_DIR",
    "CACHE_DIR",
    "FORMAT",
    "BlobStore",
    "VerifyCache",
    "clean_blob_ids",
    "code_fingerprint",
    "cpu_count",
    "decode_segment",
    "encode_segment",
    "gc_paused",
    "git_blob_id",
    "partition_of",
    "remove",
    "trust_fingerprint",
    "verify_files",
    "worker_main",
]
