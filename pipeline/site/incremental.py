"""Incremental builds: what the last build wrote, and whether a product is unchanged since.

``<output>/.fortnight/build.json`` remembers, per product, a key made of the product's git
tree, ``trust.json``, the code and theme, the settings and the day being built for, and the
digest of every file written (each product's list in its own file under
``.fortnight/products/``). :class:`LastBuild` is the one place that reads it and answers
whether a product is unchanged: the same key, and every file it wrote still there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.fsutil import atomic_write
from pipeline.log.git import Git
from pipeline.log.layout import MANIFESTS, NON_MANIFEST_DIRS
from pipeline.site.output import Output, ProductRecord
from pipeline.site.settings import SiteSettings

STATE_DIR = ".fortnight"
BUILD_RECORD = "build.json"
RECORD_PATH = f"{STATE_DIR}/{BUILD_RECORD}"
#: Compiled templates (Jinja's bytecode cache, keyed by each template's source).
TEMPLATE_CACHE = f"{STATE_DIR}/templates"
#: Bump when the build record's shape changes.
RECORD_FORMAT = 4
#: Each product's file list, in its own file (named in the build record).
PRODUCT_RECORDS = "products"
#: The folders of the package whose code the pages depend on.
CODE_FOLDERS = ("core", "site")


@dataclass
class LastBuild:
    """The last build's record, and what changed since: whether a product is unchanged.

    A product is unchanged when its key (its git tree and folders' times, ``trust.json``,
    the code key, the navigation and the day) is the one it was last built for and every
    file it wrote is still in the output. A product with uncommitted changes, or a log
    that is not a git repository, has no tree: it is always built.
    """

    site: SiteSettings
    code: str
    trust: str  # digest of trust.json's bytes
    nav: list[tuple[str, str]]
    now: datetime
    #: Product name ("" for the site's own files) -> what the last build wrote.
    previous: dict[str, ProductRecord]
    trees: dict[str, str]
    complete: dict[str, bool]

    @classmethod
    def read(
        cls, site: SiteSettings, code: str, trust: str, nav: list[tuple[str, str]], now: datetime
    ) -> LastBuild:
        """Read the record (none when ``--force``) and look at the log and the output."""
        previous = {} if site.force else load_record(site.output, code)
        # Whether each product's files are all still in the output (tens of thousands of
        # stat calls) is checked in a thread while git describes the products' folders.
        with ThreadPoolExecutor(max_workers=1) as pool:
            presence = pool.submit(_complete_products, str(site.output), previous)
            trees = product_trees(site.repo) if site.cache else {}
            complete = presence.result()
        return cls(site, code, trust, nav, now, previous, trees, complete)

    def record(self, name: str) -> ProductRecord:
        """What the last build wrote for product ``name`` (empty: nothing)."""
        return self.previous.get(name, ProductRecord())

    def tree(self, name: str) -> str:
        """Product ``name``'s fingerprint in the log (empty: always build)."""
        return self.trees.get(name, "")

    def all_there(self, name: str) -> bool:
        """Whether every file the last build wrote for ``name`` is still in the output."""
        return self.complete.get(name, False)

    def key(self, tree: str, newest: str) -> str:
        """A product's build key (empty: always build)."""
        if not tree:
            return ""  # uncommitted changes, or not git: always build
        return product_key(self.code, tree, self.trust, self.nav, self.now, newest)

    def unchanged(self, name: str) -> bool:
        """Whether product ``name``'s pages and files are what the last build left."""
        old = self.record(name)
        key = self.key(self.tree(name), old.newest)
        return bool(key) and key == old.key and self.all_there(name)

    def product_record(self, name: str, tree: str, newest: str, out: Output) -> ProductRecord:
        """The record of a product's build that wrote ``out``, saved in its own file (so
        workers save theirs in parallel)."""
        root = str(self.site.output)
        folders = {d: _mtime(os.path.join(root, d)) for d in _folders_of(out.files)}
        record = ProductRecord(
            self.key(tree, newest), tree, newest, out.files, out.inputs, out.extras, folders
        )
        store_product_record(self.site.output, name, record)
        return record

    def save(self, records: dict[str, ProductRecord], built: bool) -> None:
        """Write the build record when anything was ``built`` or changed, or it is missing."""
        output = self.site.output
        if built or records != self.previous or not (output / RECORD_PATH).is_file():
            save_record(output, self.code, records)


def load_record(output: Path, code_key: str) -> dict[str, ProductRecord]:
    """The last build's record (empty when missing or corrupt).

    Written by other code, theme or settings, only its file digests are kept: files whose
    bytes come out the same are still not rewritten, but every page is rendered again and
    every product rebuilt.
    """
    folder = output / STATE_DIR
    try:
        raw = json.loads((folder / BUILD_RECORD).read_text())
        if raw.get("format") != RECORD_FORMAT:
            return {}
        records = {}
        for name, head in raw["products"].items():
            stored = str(head["record"])
            if not re.fullmatch(r"[\w.-]+\.json", stored):
                return {}
            body = json.loads((folder / PRODUCT_RECORDS / stored).read_text())
            records[name] = ProductRecord(
                head["key"], head["tree"], head["newest"], **body, stored=stored
            )
    except (OSError, ValueError, TypeError, KeyError):
        return {}
    if raw.get("code") != code_key:
        return {name: ProductRecord(files=r.files) for name, r in records.items()}
    return records


def store_product_record(output: Path, name: str, record: ProductRecord) -> None:
    """Write one product's file list to its own file, named by its digest (``stored``).

    Nothing names the file until :func:`save_record` writes ``build.json``, so each worker
    writes its product's as soon as it is done, in parallel.
    """
    parts = output / STATE_DIR / PRODUCT_RECORDS
    parts.mkdir(parents=True, exist_ok=True)
    body = {
        "files": record.files,
        "inputs": record.inputs,
        "extras": record.extras,
        "folders": record.folders,
    }
    # Compact and in build order (which is fixed): it lists every file written.
    data = json.dumps(body, separators=(",", ":")).encode()
    record.stored = f"{name or '_site'}-{hashlib.sha256(data).hexdigest()[:16]}.json"
    atomic_write(parts / record.stored, data)  # even when there: it may be damaged


def save_record(output: Path, code_key: str, records: dict[str, ProductRecord]) -> None:
    """Write the build record last: it is only ever as new as the files it describes.

    Each product's file list goes to its own file, named by its digest, which is written
    only when it changed; ``build.json`` names them and is written last (atomically), and
    then the files it no longer names are deleted.
    """
    folder = output / STATE_DIR
    parts = folder / PRODUCT_RECORDS
    heads = {}
    for name, r in sorted(records.items()):
        if not r.stored or not (parts / r.stored).is_file():
            store_product_record(output, name, r)
        heads[name] = {"key": r.key, "tree": r.tree, "newest": r.newest, "record": r.stored}
    body = {"format": RECORD_FORMAT, "code": code_key, "products": heads}
    atomic_write(folder / BUILD_RECORD, json.dumps(body, indent=1, sort_keys=True).encode())
    named = {r.stored for r in records.values()}
    for path in parts.iterdir():
        if path.name not in named:
            with contextlib.suppress(OSError):
                path.unlink()


# --- keys for incremental builds ------------------------------------------------------------


def code_key(settings: SiteSettings, extra: dict[str, Any]) -> str:
    """A digest of the code, theme and settings a build's output depends on."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for folder in CODE_FOLDERS:
        for path in sorted((package / folder).rglob("*.py")):  # subpackages too
            name = path.relative_to(package).as_posix()
            h.update(name.encode() + b"\0" + path.read_bytes())
    if settings.theme.is_dir():
        for path in sorted(settings.theme.rglob("*")):
            if path.is_file():
                h.update(str(path.relative_to(settings.theme)).encode() + b"\0")
                h.update(path.read_bytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def product_trees(repo: Path) -> dict[str, str]:
    """Per product folder, a fingerprint of its committed content and its folders.

    The git tree id of ``manifests/<product>`` at HEAD, plus the newest modification time
    of the product's folders: a file added, removed or renamed (committed or not) changes
    its folder's time, so it is noticed without git scanning for untracked files (which
    costs seconds on a long history). A product with modified tracked files gets no entry
    and is always rebuilt. Not a git repository: no entries.
    """

    git = Git(repo)
    root = repo / MANIFESTS
    times = _FolderTimes.start(root)  # runs while git does
    listing = git.output("ls-tree", "-z", "HEAD", f"{MANIFESTS}/")
    # Tracked files changed (in the work tree or staged); untracked ones show in the folders'
    # times below (git's scan for them costs seconds on a long history).
    status = git.output(
        "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=no",
        "--", MANIFESTS,
    )  # fmt: skip
    if listing is None or status is None:
        return {}
    trees = {}
    for entry in listing.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        name = path.rsplit("/", 1)[-1]
        if len(parts) == 3 and parts[1] == "tree" and name not in NON_MANIFEST_DIRS:
            trees[name] = parts[2]  # the root chain counts through trust.json's digest
    dirty = set()
    for entry in status.decode("utf-8", "surrogateescape").split("\0"):
        parts = entry[3:].split("/")
        if len(parts) > 2:
            dirty.add(parts[1])
    newest = times.result()
    return {
        name: f"{tree}:{newest[name] if name in newest else _folders_mtime(str(root / name))}"
        for name, tree in trees.items()
        if name not in dirty
    }


class _FolderTimes:
    """:func:`_folders_mtime` of every product folder at once, from one GNU ``find`` run in
    the background (fourteen thousand folders at ten years: a tenth of a second, against
    several times that from Python). Where ``find`` is missing or not GNU, the answer is
    empty and the folders are walked from Python instead."""

    def __init__(self, proc: subprocess.Popen[bytes] | None) -> None:
        self.proc = proc

    @classmethod
    def start(cls, root: Path) -> _FolderTimes:
        args = ["find", str(root), "-mindepth", "1", "-maxdepth", "3", "-type", "d"]
        try:
            proc = subprocess.Popen(
                [*args, "-printf", "%P\\t%T@\\n"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            proc = None
        return cls(proc)

    def result(self) -> dict[str, int]:
        """Product folder name -> the newest time (ns) of it and its folders."""
        if self.proc is None:
            return {}
        out, _ = self.proc.communicate()
        if self.proc.returncode != 0:
            return {}
        newest: dict[str, int] = {}
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            path, tab, stamp = line.rpartition("\t")
            seconds, dot, fraction = stamp.partition(".")
            if not tab or not dot or not seconds.isdigit() or not fraction.isdigit():
                return {}  # not GNU find's output: walk from Python
            ns = int(seconds) * 1_000_000_000 + int(fraction[:9].ljust(9, "0"))
            name = path.partition("/")[0]
            if ns > newest.get(name, -1):
                newest[name] = ns
        return newest


def _folders_mtime(top: str) -> int:
    """The newest modification time (ns) of a product folder and its folders.

    Manifests live two or three levels down (``<kind>/<file>``, ``tests/<compose>/<file>``):
    the times of ``top``, of each kind's folder and of the folders in those change when a
    file is added, removed or renamed there. Files themselves are never stat'ed.
    """
    newest = os.stat(top).st_mtime_ns
    for depth_one in _subfolders(top):
        newest = max(newest, depth_one.stat(follow_symlinks=False).st_mtime_ns)
        for depth_two in _subfolders(depth_one.path):
            newest = max(newest, depth_two.stat(follow_symlinks=False).st_mtime_ns)
    return newest


def _subfolders(path: str) -> list[os.DirEntry[str]]:
    with os.scandir(path) as entries:
        return [e for e in entries if e.is_dir(follow_symlinks=False)]


def product_key(
    code: str, tree: str, trust: str, nav: list[tuple[str, str]], now: datetime, newest: str
) -> str:
    """The key a product's pages are built for.

    When ``now`` is past every manifest of the product (the usual case), the pages depend
    on ``now`` only through its day (ages in days, the cycle, staleness), so the key
    holds the day; otherwise it holds the exact moment.
    """
    moment = iso_key(now)
    when = now.astimezone(UTC).date().isoformat() if newest and moment >= newest else moment
    body = json.dumps([code, tree, trust, nav, when])
    return hashlib.sha256(body.encode()).hexdigest()


# --- rendering -------------------------------------------------------------------------------


def _folders_of(files: Iterable[str]) -> set[str]:
    """The folders (below the output's top) that ``files`` (output paths) are in."""
    return {head for rel in files if (head := rel.rpartition("/")[0])}


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _complete_products(root: str, records: dict[str, ProductRecord]) -> dict[str, bool]:
    """Per product of the last build, whether every file it wrote is still there.

    A file deleted, renamed or replaced changes its folder's modification time. A folder
    only one product writes to holds all of that product's files when it still has the
    time the product's build left it with (``ProductRecord.folders``): one ``stat`` per
    folder, none per file, and no look into the folders. Files at the output's top (where
    Pelican writes its pages) or in folders several products share (``streams/``), and
    records without folder times, are looked up file by file.
    """
    isfile, join = os.path.isfile, os.path.join
    folders = {name: _folders_of(record.files) for name, record in records.items()}
    owners = Counter(d for found in folders.values() for d in found)
    complete = {}
    for name, record in records.items():
        noted = record.folders
        mine = {d for d in folders[name] if owners[d] == 1 and d in noted}
        loose = [rel for rel in record.files if rel.rpartition("/")[0] not in mine]
        complete[name] = all(isfile(join(root, rel)) for rel in loose) and all(
            _mtime(join(root, d)) == noted[d] for d in mine
        )
    return complete


def iso_key(ts: datetime) -> str:
    """A timestamp in the form :func:`product_key` compares with ``now.isoformat()``."""
    return ts.astimezone(UTC).isoformat()
