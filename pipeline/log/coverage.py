"""Every manifest file is the one the log index recorded, and every recorded one is there.

:func:`check_coverage` compares the manifest files of a load with ``manifests/log.idx``
(verified by :func:`pipeline.log.checkpoints.verify_chain`): a file the index does not name,
a file whose sha256 differs from its line, and a line whose file is gone are each a
failure naming the file. A file this load verified is compared by the sha256 of the
bytes it verified (``read``, from :func:`pipeline.log.parallel.verify_files`): it is not
read again. Hashing every other file on every load would cost a read of the whole log, so
the sha256 of a clean tracked file is kept by its git blob id (the same bytes) in
``<git dir>/fortnight-cache/digests/<product>``: fixed-width ASCII records, a cache like
the verification cache (deleting it only makes the next load slower).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from pipeline.fsutil import atomic_write
from pipeline.log.checkpoints import INDEX_PATH, VerifiedLog
from pipeline.log.layout import MANIFESTS

_RECORD = 40 + 64  # a git blob id and a sha256, in hex


class DigestCache:
    """sha256 of blob ids, per product folder, under ``directory`` (None: no cache)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._parts: dict[str, dict[str, str]] = {}
        self._dirty: set[str] = set()

    def _part(self, product: str) -> dict[str, str]:
        part = self._parts.get(product)
        if part is None:
            part = {}
            if self.directory is not None:
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    text = (self.directory / product).read_bytes().decode("ascii")
                    part = {
                        text[i : i + 40]: text[i + 40 : i + _RECORD]
                        for i in range(0, len(text) - _RECORD + 1, _RECORD)
                    }
            self._parts[product] = part
        return part

    def get(self, product: str, blob: str) -> str | None:
        """The sha256 of the bytes of ``blob``, if known."""
        return self._part(product).get(blob)

    def put(self, product: str, blob: str, sha256: str) -> None:
        """Remember the sha256 of the bytes of ``blob``."""
        if len(blob) == 40 and len(sha256) == 64:
            self._part(product)[blob] = sha256
            self._dirty.add(product)

    def save(self) -> None:
        """Write what changed (failing to write only makes the next load slower)."""
        if self.directory is None:
            return
        for product in self._dirty:
            data = "".join(b + s for b, s in self._parts[product].items()).encode("ascii")
            with contextlib.suppress(OSError):
                self.directory.mkdir(parents=True, exist_ok=True)
                atomic_write(self.directory / product, data)
        self._dirty.clear()


def _digest(
    root: Path, name: str, blob: str | None, cache: DigestCache, read: str | None
) -> str | None:
    """The sha256 of the file ``name``: ``read`` (of the bytes this load verified), else
    by its blob id from ``cache``, else of its bytes now (None: it cannot be read)."""
    product = name.split("/", 1)[0]
    if read is not None:
        sha = read
    else:
        known = cache.get(product, blob) if blob is not None else None
        if known is not None:
            return known
        try:
            sha = hashlib.sha256((root / name).read_bytes()).hexdigest()
        except OSError:
            return None
    if blob is not None:
        cache.put(product, blob, sha)
    return sha


def check_coverage(
    root: Path,
    digests: Mapping[str, str],
    names: Sequence[str],
    blob_ids: Mapping[str, str],
    cache: DigestCache,
    read: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Failures ``(manifests/<name>, reason)`` where the files of ``names`` and the index
    lines ``digests`` (name: sha256, of the same product folders) disagree; empty when
    they agree. ``read`` gives the sha256 of the bytes this load verified, by name: those
    files are not read again."""
    read = {} if read is None else read
    indexed = dict(digests)
    failures: list[tuple[str, str]] = []
    for name in names:
        want = indexed.pop(name, None)
        if want is None:
            failures.append(
                (f"{MANIFESTS}/{name}", f"not in {INDEX_PATH}: no checkpoint covers it")
            )
            continue
        got = _digest(root, name, blob_ids.get(name), cache, read.get(name))
        if got != want:
            failures.append(
                (
                    f"{MANIFESTS}/{name}",
                    f"changed since it was recorded (sha256 {str(got)[:12]}…, "
                    f"{INDEX_PATH} says {want[:12]}…)",
                )
            )
    for name in indexed:
        failures.append(
            (f"{MANIFESTS}/{name}", f"missing: recorded in {INDEX_PATH} but the file is gone")
        )
    cache.save()
    return failures


def _coverage_key(raw: bytes, names: Sequence[str], blob_ids: Mapping[str, str]) -> str | None:
    """What a coverage result depends on: the index bytes and each file's content identity;
    None when a file has none (untracked, modified: it is always checked)."""
    try:
        listing = "\n".join(f"{name} {blob_ids[name]}" for name in names)
    except KeyError:
        return None
    digest = hashlib.sha256(raw)
    digest.update(listing.encode())
    return digest.hexdigest()


def covered(
    root: Path,
    log: VerifiedLog,
    names: Sequence[str],
    products: Collection[str] | None,
    blob_ids: Mapping[str, str],
    cache_dir: Path | None,
    read: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """:func:`check_coverage` of ``names`` (of ``products``) against the verified index
    (``read``: the sha256 of the bytes this load verified, by name), skipped when the same
    index and the same files (by git blob id) passed before: a marker under
    ``<cache_dir>/coverage/`` records the last key that passed per scope."""
    key = _coverage_key(log.raw, names, blob_ids) if cache_dir is not None else None
    marker = None
    if key is not None and cache_dir is not None:
        scope = "all" if products is None else "+".join(sorted(products))
        marker = cache_dir / "coverage" / hashlib.sha256(scope.encode()).hexdigest()[:32]
        with contextlib.suppress(OSError):
            if marker.read_text() == key:
                return []
    digests = DigestCache(cache_dir / "digests" if cache_dir is not None else None)
    failures = check_coverage(root, log.digests(products), names, blob_ids, digests, read)
    if not failures and marker is not None and key is not None:
        with contextlib.suppress(OSError):
            marker.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(marker, key.encode())
    return failures
