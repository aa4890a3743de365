"""The output folder: what a product's build wrote, and writing only what changed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core import pages
from pipeline.errors import SiteError


@dataclass
class ProductRecord:
    """What one product's last build wrote, and the key it was built for."""

    key: str = ""
    tree: str = ""
    newest: str = ""  # the newest manifest's created time, ISO
    #: Site path -> sha256 of what was written, or ``blob:<git blob id>`` / ``copy:<size>:<mtime>``
    #: for a file linked or copied in.
    files: dict[str, str] = field(default_factory=dict)
    #: Site path -> digest of the page model a page was rendered from (pages that have one).
    inputs: dict[str, str] = field(default_factory=dict)
    #: Page path -> the files it brought along (test logs it links): kept with the page.
    extras: dict[str, list[str]] = field(default_factory=dict)
    #: Folder (below the output's top) -> its modification time (ns) when the product's
    #: build was done with it: how a later build tells that the files are all still there.
    folders: dict[str, int] = field(default_factory=dict, compare=False)
    #: The file under ``.fortnight/products/`` this record was read from or saved to.
    stored: str = field(default="", compare=False)


@dataclass
class BuildReport:
    """What a build did."""

    products_built: list[str] = field(default_factory=list)
    products_skipped: list[str] = field(default_factory=list)
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    pages: int = 0
    reused: int = 0  # pages whose model was unchanged: not even rendered

    def add(self, other: BuildReport) -> None:
        """Add the counts of a product built elsewhere (a worker process)."""
        self.written += other.written
        self.unchanged += other.unchanged
        self.removed += other.removed
        self.pages += other.pages
        self.reused += other.reused


class Output:
    """The output folder: writes only what changed, and remembers what it wrote.

    A file that exists is replaced atomically (temp file, then rename); a new file is
    created in place, exclusively (no reader can know its name before the build record,
    and the pages that link to it, are written). The hot path works on ``str`` paths and
    tries the common case first (the folder exists, the file does not): a cold build of
    a long history writes tens of thousands of files.
    """

    def __init__(
        self, root: Path, report: BuildReport, old: ProductRecord, *, all_there: bool = False
    ) -> None:
        self.root = str(root)
        self.report = report
        self.old = old
        #: Every file of ``old`` was still in the output when the build began (checked from
        #: its folders' times): they are not looked up one by one again.
        self.all_there = all_there
        self.files: dict[str, str] = {}
        self.inputs: dict[str, str] = {}
        self.extras: dict[str, list[str]] = {}
        self._page: list[str] | None = None  # files the page being built brings along

    def path(self, rel: str) -> str:
        if not pages.safe_relpath(rel):
            raise SiteError(f"refusing to write {rel!r}: not a path inside the output folder")
        return os.path.join(self.root, rel)

    def write(self, rel: str, data: bytes) -> None:
        """Write ``data`` at ``rel`` unless the last build wrote the same bytes there."""
        self._put(rel, hashlib.sha256(data).hexdigest(), lambda path: _create(path, data))

    def _put(self, rel: str, mark: str, make: Callable[[str], bool]) -> None:
        """Make the file at ``rel`` with ``make(path)`` (False: ``path`` exists), unless the
        last build put the same one (``mark``) there.

        A new file is made in place; one that exists is replaced atomically.
        """
        self.files[rel] = mark
        path = self.path(rel)
        known = self.old.files.get(rel)
        if known == mark and self._there(path):
            self.report.unchanged += 1
            return
        if known is None and make(path):
            self.report.written += 1
            return
        tmp = f"{path}.fortnight-tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # left by an interrupted build
        make(tmp)
        os.replace(tmp, path)
        self.report.written += 1

    def page(
        self,
        rel: str,
        model: Callable[[], object],
        render: Callable[[Any], bytes],
        key: str | None = None,
    ) -> None:
        """Write a page rendered from ``model()``, unless the last build rendered the same.

        ``key`` names the page's whole input when it can be told without building the
        model (a compose page: the blob ids of its manifests, and the bugs and release
        naming it); otherwise the model is built and its ``repr`` is the key (the models
        are frozen dataclass trees). The theme, settings and navigation are in the build's
        code key. Files the model brought along (test logs it linked) are kept with it.
        """
        self.report.pages += 1
        if key is not None and self._reuse(rel, key):
            return
        brought: list[str] = []
        self._page = brought
        try:
            built = model()
        finally:
            self._page = None
        if key is None:
            key = hashlib.sha256(repr(built).encode()).hexdigest()
            if self._reuse(rel, key):
                return
        self.inputs[rel] = key
        if brought:
            self.extras[rel] = brought
        self.write(rel, render(built))

    def _reuse(self, rel: str, key: str) -> bool:
        """Keep the page at ``rel`` (and what it brought) if the last build made it from
        the same ``key`` and it is still there."""
        old = self.old
        digest = old.files.get(rel)
        if not digest or old.inputs.get(rel) != key or not self._there(self.path(rel)):
            return False
        brought = old.extras.get(rel, [])
        if not all(f in old.files and self._there(self.path(f)) for f in brought):
            return False
        self.inputs[rel] = key
        self.files[rel] = digest
        for f in brought:
            self.files[f] = old.files[f]
        if brought:
            self.extras[rel] = brought
        self.report.unchanged += 1
        self.report.reused += 1
        return True

    def _there(self, path: str) -> bool:
        """Whether a file the last build wrote is still at ``path``."""
        return self.all_there or os.path.isfile(path)

    def copy(self, rel: str, src: str, identity: str | None = None) -> None:
        """Put a file (a manifest, a log) at ``rel``: a hard link when it can, else a copy.

        Skipped when the last build put the same file there: the same ``identity`` (a git
        blob id), or else the same size and modification time. Manifests are write-once in
        the log, so a link shares bytes that never change.
        """
        if identity is None:
            st = os.stat(src)
            mark = f"copy:{st.st_size}:{st.st_mtime_ns}"
        else:
            mark = f"blob:{identity}"
        if self._page is not None and rel not in self._page:
            self._page.append(rel)
        if self.files.get(rel) == mark:
            return  # already put there by this build (a log two tests share)
        self._put(rel, mark, lambda path: _link(src, path))

    def remove_stale(self) -> None:
        """Delete files the last build wrote that this one does not produce."""
        for rel in sorted(set(self.old.files) - set(self.files)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(rel))
                self.report.removed += 1


def _create(path: str, data: bytes) -> bool:
    """Write ``data`` to a new file at ``path``, making its folders; False if it exists."""
    try:
        f = open(path, "xb")  # noqa: SIM115 - closed below
    except FileExistsError:
        return False
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        f = open(path, "xb")  # noqa: SIM115 - closed below
    with f:
        f.write(data)
    return True


def _link(src: str, path: str) -> bool:
    """Hard-link ``src`` at ``path`` (a copy across file systems), making its folders;
    False if ``path`` exists."""
    try:
        os.link(src, path)
    except FileExistsError:
        return False
    except FileNotFoundError:
        if not os.path.exists(src):
            raise
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return _link(src, path)
    except OSError:  # another file system, or links not allowed: copy
        if os.path.lexists(path):
            return False
        shutil.copy2(src, path)
    return True
