"""The site: a Pelican plugin whose generator turns the verified log into pages and files.

``pelicanconf.py`` lists this module in ``PLUGINS``; :func:`register` adds
:class:`FortnightGenerator`, which for every product under ``manifests/`` loads and
verifies its manifests (fail closed), derives its state (:func:`pipeline.core.state.derive`,
the function ``invoke status`` uses) and writes its download page, dashboard, compose
and bug pages, release archive, CHECKSUM files, stream, Atom feed, "latest" pointers,
test logs and a copy of the signed manifests. Human-written pages in ``content/`` go
through Pelican's own page generator, with the same theme.

Incremental: ``<output>/.fortnight/build.json`` remembers, per product, a key made of the
product's git tree, ``trust.json``, the code and theme, the settings and the day being
built for, and the digest of every file written (each product's list in its own file under
``.fortnight/products/``). A product whose key is unchanged is not loaded again; a page
whose inputs are unchanged is not rendered again (a compose page is recognised by the git
blob ids of its manifests, without building its model); a file whose bytes are unchanged
is not rewritten; files a product no longer produces are removed. Same log and same
``--at``: byte-identical output.

An existing file is replaced atomically (temp file, then rename), a new one is created
in place, and the build record is written last, so an interrupted build leaves complete
files and a re-run finishes the job.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import re
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import feedgenerator
from jinja2 import Environment, FileSystemBytecodeCache, Template
from markupsafe import Markup
from pelican import Pelican, signals
from pelican.generators import Generator
from pelican.log import FatalLogger
from pelican.log import console as pelican_console
from pelican.settings import read_settings

from pipeline import errors
from pipeline.core import pages
from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models import Manifest, Trust
from pipeline.core.state import ComposeView, State, derive
from pipeline.errors import ConfigError, FortnightError, SiteError, VerificationError
from pipeline.fsutil import atomic_write
from pipeline.log.blobs import BlobStore
from pipeline.log.store import MANIFESTS, TRUST_FILE, ManifestLog

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

logger = logging.getLogger(__name__)


# --- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteSettings:
    """The plugin's settings, read from Pelican's (``FORTNIGHT_*`` and ``SITEURL``)."""

    repo: Path
    output: Path
    theme: Path
    at: datetime | None
    logs: Path | None
    primary: str
    site_url: str
    site_name: str
    force: bool
    cache: bool
    workers: int

    @classmethod
    def from_pelican(cls, settings: dict[str, Any]) -> SiteSettings:
        at = settings.get("FORTNIGHT_AT")
        logs = settings.get("FORTNIGHT_LOGS")
        return cls(
            repo=Path(settings.get("FORTNIGHT_REPO") or ".").resolve(),
            output=Path(settings["OUTPUT_PATH"]).resolve(),
            theme=Path(settings["THEME"]).resolve(),
            at=at if isinstance(at, datetime) else None,
            logs=Path(logs).resolve() if logs else None,
            primary=str(settings.get("FORTNIGHT_PRIMARY") or "atomic-host"),
            site_url=str(settings.get("FORTNIGHT_SITEURL") or ""),
            site_name=str(settings.get("SITENAME") or "Fortnight"),
            force=bool(settings.get("FORTNIGHT_FORCE")),
            cache=bool(settings.get("FORTNIGHT_CACHE", True)),
            workers=int(settings.get("FORTNIGHT_WORKERS") or os.cpu_count() or 1),
        )

    def now(self) -> datetime:
        """The moment the site describes: ``--at``, else now (whole seconds)."""
        return self.at or datetime.now(UTC).replace(microsecond=0)


# --- output files ----------------------------------------------------------------------------


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
        for path in sorted((package / folder).glob("*.py")):
            h.update(f"{folder}/{path.name}".encode() + b"\0" + path.read_bytes())
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

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )

    root = repo / MANIFESTS
    times = _FolderTimes.start(root)  # runs while git does
    listing = git("ls-tree", "-z", "HEAD", f"{MANIFESTS}/")
    # Tracked files changed (in the work tree or staged); untracked ones show in the folders'
    # times below (git's scan for them costs seconds on a long history).
    status = git(
        "--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=no",
        "--", MANIFESTS,
    )  # fmt: skip
    if listing.returncode != 0 or status.returncode != 0:
        return {}
    trees = {}
    for entry in listing.stdout.split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "tree":
            trees[path.rsplit("/", 1)[-1]] = parts[2]
    dirty = set()
    for entry in status.stdout.split("\0"):
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


def root_of(rel: str) -> str:
    """The relative prefix from a page at ``rel`` back to the site root (``../../``)."""
    return "../" * rel.count("/")


@dataclass
class Renderer:
    """Renders the theme's templates with what every page needs.

    The parts every page repeats (the site's navigation, a product's tabs) depend only on
    the page's folder depth and section: each is rendered once per build from the theme
    (``includes/nav.html``, the ``product_tabs`` macro) and reused.
    """

    env: Environment
    site: SiteSettings
    nav: list[tuple[str, str]]  # (product name, display name)
    content_pages: list[tuple[str, str]]  # (title, url)
    _templates: dict[str, Template] = field(default_factory=dict)
    _parts: dict[tuple[str, ...], Markup] = field(default_factory=dict)

    def _template(self, name: str) -> Template:
        tpl = self._templates.get(name)
        if tpl is None:
            tpl = self._templates[name] = self.env.get_template(name)
        return tpl

    def _common(self, rel: str) -> dict[str, Any]:
        return {
            "root": root_of(rel),
            "here": rel,
            "nav": self.nav,
            "content_pages": self.content_pages,
            "primary": self.site.primary,
            "site_name": self.site.site_name,
        }

    def chrome(self, rel: str) -> Markup:
        """The site navigation of the page at ``rel`` (which entry is current follows from
        its first folder, or its name at the top)."""
        key = ("nav", root_of(rel), rel.split("/", 1)[0])
        part = self._parts.get(key)
        if part is None:
            html = self._template("includes/nav.html").render(self._common(rel))
            part = self._parts[key] = Markup(html)  # rendered with autoescape on
        return part

    def tabs(self, product: ProductConfig, current: str, root: str) -> Markup:
        """A product's tabs (the theme's ``product_tabs`` macro), rendered once per build."""
        key = ("tabs", product.name, current, str(root))
        part = self._parts.get(key)
        if part is None:
            macros: Any = self._template("includes/macros.html").module
            part = self._parts[key] = Markup(macros.product_tabs(product, current, root))
        return part

    def render(self, template: str, rel: str, **values: Any) -> bytes:
        html = self._template(template).render(
            **self._common(rel), chrome=self.chrome(rel), tabs=self.tabs, **values
        )
        return html.encode()


def build_product(
    state: State,
    manifests: list[Manifest],
    log: ManifestLog,
    renderer: Renderer,
    out: Output,
    blobs: dict[str, str] | None = None,
    store: BlobStore | None = None,
    held: Collection[str] = (),
) -> None:
    """Write every page and file of one product into ``out``.

    ``blobs`` (manifest name -> git blob id) lets a compose page be kept without building
    its model when its manifests, bugs and release are what the last build saw. The
    manifest mirror links the ``store``'s file of each blob it ``held``, else the work
    tree's file.
    """
    product = state.product.name
    urls = pages.Urls(product)
    site = renderer.site
    blobs = blobs or {}

    def render(template: str, rel: str, **values: Any) -> Callable[[Any], bytes]:
        def draw(page: Any) -> bytes:
            return renderer.render(template, rel, product=state.product, page=page, **values)

        return draw

    def static(value: object) -> Callable[[], object]:
        return lambda: value

    download = pages.download_page(state)
    targets = [urls.download()] + (["index.html"] if product == site.primary else [])
    for rel in targets:
        out.page(rel, static(download), render("download.html", rel, urls=urls))

    for dash in pages.dashboard_pages(state, urls):
        out.page(dash.href, static(dash), render("dashboard.html", dash.href))

    bugs = pages.compose_bugs(state, urls)
    releases = pages.release_of_compose(state)
    logs = str(site.logs) if site.logs else None
    known_logs: dict[str, bool] = {}

    def log_exists(path: str) -> bool:
        if logs is None or not pages.safe_relpath(path):
            return False
        found = known_logs.get(path)
        if found is None:
            found = known_logs[path] = os.path.isfile(os.path.join(logs, path))
        return found

    def has_log(path: str) -> bool:
        found = log_exists(path)
        if found:
            out.copy(urls.log(path), os.path.join(str(logs), path))
        return found

    config = hashlib.sha256(state.product.model_dump_json().encode()).hexdigest()
    for view in state.composes:
        rel = urls.compose(view.compose_id)
        key = _compose_key(view, blobs, config, bugs, releases, log_exists if logs else None)

        def model(view: ComposeView = view) -> pages.ComposePage:
            return pages.compose_page(state, view, urls, bugs, releases, has_log)

        out.page(rel, model, render("compose.html", rel), key)

    known = {c.compose_id for c in state.composes}
    for bug in pages.local_bugs(state):
        rel = urls.bug(bug.bug)
        out.page(rel, static(pages.bug_page(bug, urls, known)), render("bug.html", rel))

    rel = urls.archive()
    rows = pages.archive_rows(state, urls)
    out.page(
        rel,
        static(rows),
        lambda rows: renderer.render("archive.html", rel, product=state.product, rows=rows),
    )

    from pipeline.core.outputs import checksum_file, sha256sums  # noqa: PLC0415 - same layer

    for release, images in pages.released_images(state):
        out.write(urls.checksum(release.release_id), checksum_file(images).encode())
        out.write(urls.sha256sums(release.release_id), sha256sums(images).encode())

    stream = pages.stream(state, site.site_url)
    out.write(urls.stream(), (json.dumps(stream, indent=2, sort_keys=True) + "\n").encode())
    out.write(urls.feed(), atom_feed(state, urls, site))

    for latest in pages.latest_pointers(state):
        out.write(latest.name_path, (latest.filename + "\n").encode())
        out.write(latest.path, renderer.render("redirect.html", latest.path, latest=latest))

    _mirror(out, manifests, str(log.root), blobs, store, held)


def _mirror(
    out: Output,
    manifests: list[Manifest],
    root: str,
    blobs: dict[str, str],
    store: BlobStore | None,
    held: Collection[str],
) -> None:
    """Put the product's signed manifests under ``manifests/``, in the log's layout: each
    a link to its blob in the ``store`` when it ``held`` it, else to the file under
    ``root``."""
    for m in manifests:
        name = m.relname()
        blob = blobs.get(name)
        if store is not None and blob is not None and blob in held:
            src = store.path(blob)
        else:
            src = os.path.join(root, name)
        out.copy(f"{MANIFESTS}/{name}", src, blob)


def _compose_key(
    view: ComposeView,
    blobs: dict[str, str],
    config: str,
    bugs: dict[str, list[pages.Link]],
    releases: dict[str, str],
    log_exists: Callable[[str], bool] | None,
) -> str | None:
    """Everything a compose page shows depends on, named without building its model.

    The blob ids of the compose's manifests (the compose, its test results and verdicts),
    the product's configuration, the bugs and release naming the compose, and which of
    its test logs the log store holds (``log_exists``; None: there is no log store). None
    when git does not vouch for one of the manifests (then the model itself is the key).
    """
    parts = [config, repr(bugs.get(view.compose_id)), repr(releases.get(view.compose_id))]
    runs = [r for s in view.suites.values() for r in s.runs]
    if log_exists is not None:
        parts += [
            f"log:{case.log.path}:{log_exists(case.log.path)}"
            for r in runs
            for case in r.tests
            if case.log is not None
        ]
    names = [view.compose.relname()]
    names += [r.relname() for r in runs]
    names += [v.relname() for v in view.verdicts]
    for name in names:
        blob = blobs.get(name)
        if blob is None:
            return None
        parts.append(blob)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def atom_feed(state: State, urls: pages.Urls, site: SiteSettings) -> bytes:
    """The product's releases as an Atom feed (feedgenerator, Pelican's own feed writer)."""
    base = site.site_url.rstrip("/") + "/" if site.site_url else ""
    feed = feedgenerator.Atom1Feed(
        title=f"{state.product.display_name} releases",
        link=base + urls.download(),
        description=f"Every release decision of {state.product.display_name}",
        feed_url=base + urls.feed(),
        language="en",
    )
    entries = pages.feed_entries(state, urls)
    if not entries:  # feedgenerator would say "updated now": keep the output reproducible
        anchor = datetime.combine(state.product.release.anchor, time(), tzinfo=UTC)
        feed.latest_post_date = lambda: anchor
    for entry in entries:
        feed.add_item(
            title=entry.title,
            link=base + entry.link,
            description=entry.summary,
            unique_id=entry.id,
            pubdate=datetime.fromisoformat(entry.updated),
            updateddate=datetime.fromisoformat(entry.updated),
        )
    text: str = feed.writeString("utf-8")
    return text.encode()


# --- the Pelican generator -------------------------------------------------------------------


class FortnightGenerator(Generator):  # type: ignore[misc]  # Pelican is untyped
    """Pelican generator for the pages and files made from the manifest log."""

    def generate_context(self) -> None:
        """Load, verify and decide what to build, before Pelican writes anything."""
        self.site = site = SiteSettings.from_pelican(self.settings)
        self.log = ManifestLog(site.repo, cache=site.cache)
        self.products = self._products()
        self.nav = [(p.name, p.display_name) for p in self.products]
        # Pelican's own pages (content/) share the navigation.
        self.context["FORTNIGHT_NAV"] = self.nav
        self.context["FORTNIGHT_PAGES"] = self.content_pages = content_pages(self.context)
        self.report = self.context.setdefault("FORTNIGHT_REPORT", BuildReport())
        self.trust_bytes = (
            self.log.trust_path.read_bytes() if self.log.trust_path.is_file() else b""
        )
        trust = self.log.load_trust()
        self.code = code_key(
            site,
            {
                "site_url": site.site_url,
                "primary": site.primary,
                "site_name": site.site_name,
                "logs": str(site.logs),
                "pages": self.content_pages,
            },
        )
        self.previous = {} if site.force else load_record(site.output, self.code)
        # Whether each product's files are all still in the output (tens of thousands of
        # stat calls) is checked in a thread while git describes the products' folders.
        with ThreadPoolExecutor(max_workers=1) as pool:
            presence = pool.submit(_complete_products, str(site.output), self.previous)
            trees = product_trees(site.repo) if site.cache else {}
            complete = presence.result()
        self.trust_digest = hashlib.sha256(self.trust_bytes).hexdigest()
        self.now = site.now()
        self.records: dict[str, ProductRecord] = {}
        with contextlib.suppress(OSError):  # no cache: templates are compiled each build
            cache_dir = site.output / TEMPLATE_CACHE
            cache_dir.mkdir(parents=True, exist_ok=True)
            self.env.bytecode_cache = FileSystemBytecodeCache(str(cache_dir))
        # A build is one pass over templates that do not change while it runs: without
        # this, Jinja checks each template's file times at every page, for the page and
        # for each template it extends or imports.
        self.env.auto_reload = False
        self.renderer = Renderer(self.env, site, self.nav, self.content_pages)
        jobs = []
        for product in self.products:
            old = self.previous.get(product.name, ProductRecord())
            tree = trees.get(product.name, "")
            key = self.key(tree, old.newest)
            if key and key == old.key and complete.get(product.name, False):
                self.records[product.name] = old
                self.report.products_skipped.append(product.name)
                continue
            jobs.append(
                ProductJob(self, product, tree, old, trust, complete.get(product.name, False))
            )
        # Every product that needs building is loaded and verified before anything is
        # written (fail closed): in worker processes, one per product, when that helps.
        self.workers = Workers.start(jobs, site.workers) if len(jobs) > 1 else None
        if self.workers is None:
            for job in jobs:
                job.prepare()
        self.jobs = jobs

    def key(self, tree: str, newest: str) -> str:
        """A product's build key (empty: always build)."""
        if not tree:
            return ""  # uncommitted changes, or not git: always build
        return product_key(self.code, tree, self.trust_digest, self.nav, self.now, newest)

    def _products(self) -> list[ProductConfig]:
        names = self.log.product_names()
        if not names:
            raise ConfigError(
                f"{self.log.root}: no product folder with a product.toml",
                hint="run 'invoke init' or pass --repo with the release repository",
            )
        configs = [load_product(self.log.root, name) for name in names]
        primary = self.site.primary
        return sorted(configs, key=lambda c: (c.name != primary, c.name))

    def generate_output(self, writer: Any) -> None:
        """Write the changed products' pages and files, then the build record."""
        site, records = self.site, self.records
        shared = Output(site.output, self.report, self.previous.get("", ProductRecord()))
        shared.write(f"{MANIFESTS}/{TRUST_FILE}", self.trust_bytes)
        shared.remove_stale()
        site_record = self.previous.get("")
        if site_record is None or site_record.files != shared.files:
            site_record = ProductRecord(files=shared.files)
        records[""] = site_record
        if self.workers is not None:
            results = self.workers.finish()
        else:
            results = [job.write() for job in self.jobs]
        for job, (record, report) in zip(self.jobs, results, strict=True):
            records[job.product.name] = record
            self.report.add(report)
            self.report.products_built.append(job.product.name)
        for name in set(self.previous) - set(records):
            Output(site.output, self.report, self.previous[name]).remove_stale()
        if self.jobs or records != self.previous or not (site.output / RECORD_PATH).is_file():
            save_record(site.output, self.code, records)


class ProductJob:
    """One product's build: :meth:`prepare` (load, verify, derive), then :meth:`write`."""

    def __init__(
        self,
        gen: FortnightGenerator,
        product: ProductConfig,
        tree: str,
        old: ProductRecord,
        trust: Trust,
        all_there: bool = False,
    ) -> None:
        self.gen = gen
        self.product = product
        self.tree = tree
        self.old = old
        self.trust = trust
        #: Whether every file of ``old`` was still in the output when the build began.
        self.all_there = all_there

    def prepare(self) -> None:
        """Load and verify the product's manifests (fail closed) and derive its state.

        Raises:
            VerificationError: a manifest of the product failed verification.
        """
        gen = self.gen
        verified = gen.log.load_verified(self.trust, products=[self.product.name])
        everything = [v.manifest for v in verified]
        #: Manifest name -> git blob id, for the files git vouches for.
        self.blobs = {v.name: v.blob for v in verified if v.blob is not None}
        self.newest = max((iso_key(m.created) for m in everything), default="")
        self.manifests = [m for m in everything if m.created <= gen.now]
        self.state = derive(self.manifests, self.product, gen.now)
        # The mirror's links come from the blob store (filled from the work tree here, as
        # needed: not the output, so before every product has verified is fine).
        self.store = gen.log.blob_store()
        self.held = self.store.fill(self.blobs, gen.log.root) if self.store else set()

    def write(self) -> tuple[ProductRecord, BuildReport]:
        """Write the product's pages and files; the record of what was written."""
        gen = self.gen
        report = BuildReport()
        out = Output(gen.site.output, report, self.old, all_there=self.all_there)
        build_product(
            self.state, self.manifests, gen.log, gen.renderer, out, self.blobs,
            self.store, self.held,
        )  # fmt: skip
        out.remove_stale()
        key = gen.key(self.tree, self.newest)
        root = str(gen.site.output)
        folders = {d: _mtime(os.path.join(root, d)) for d in _folders_of(out.files)}
        record = ProductRecord(
            key, self.tree, self.newest, out.files, out.inputs, out.extras, folders
        )
        store_product_record(gen.site.output, self.product.name, record)  # here: in parallel
        return record, report


class Workers:
    """Product jobs in forked worker processes, in two phases.

    Each worker prepares its product (load, verify, derive) and reports its size; only when
    every product verified are they told to write (fail closed across products). At most
    ``slots`` of them load at once (a semaphore) or write at once: writes are handed out
    largest product first, the next as soon as one finishes, so the last to finish is a
    small one and no core idles while a big product is written alone. Forking shares the
    loaded theme and settings; results come back as small records.
    """

    def __init__(self, procs: list[tuple[Any, Any]], sizes: list[int], slots: int) -> None:
        self.procs = procs
        self.sizes = sizes
        self.slots = slots

    @classmethod
    def start(cls, jobs: list[ProductJob], workers: int) -> Workers | None:
        """Fork one worker per job, or None (run in-process) when forking is not safe here.

        Raises:
            FortnightError: a product failed to load or verify (the first, in product order).
        """
        if workers <= 1 or threading.active_count() > 1 or "fork" not in mp.get_all_start_methods():
            return None  # a process with threads cannot fork safely
        ctx = mp.get_context("fork")
        busy = ctx.BoundedSemaphore(workers)  # at most ``workers`` load at once
        procs = []
        for job in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_work, args=(job, child, busy), daemon=True)
            proc.start()
            child.close()
            procs.append((proc, parent))
        answers = [cls._receive(conn, proc) for proc, conn in procs]
        pool = cls(procs, [a if isinstance(a, int) else 0 for a in answers], workers)
        failed = next((a for a in answers if isinstance(a, FortnightError)), None)
        if failed is not None:
            pool.stop()
            raise failed
        return pool

    @staticmethod
    def _receive(conn: Any, proc: Any) -> int | FortnightError:
        """A prepared worker's size, or what went wrong."""
        try:
            kind, payload = conn.recv()
        except EOFError:
            return SiteError(f"a site worker died (exit code {proc.exitcode})")
        if kind == "ok":
            return int(payload)
        return _rebuild_error(payload)

    def finish(self) -> list[tuple[ProductRecord, BuildReport]]:
        """Let the workers write, largest first, ``slots`` at a time; their records, in job
        order.

        Raises:
            FortnightError: a worker failed while writing.
        """
        waiting = sorted(range(len(self.procs)), key=lambda i: -self.sizes[i])
        writing: dict[Any, int] = {}
        results: dict[int, tuple[ProductRecord, BuildReport]] = {}
        while waiting or writing:
            while waiting and len(writing) < self.slots:
                i = waiting.pop(0)
                conn = self.procs[i][1]
                conn.send(True)
                writing[conn] = i
            ready: list[Any] = mp_connection.wait(list(writing))
            for conn in ready:
                i = writing.pop(conn)
                try:
                    kind, payload = conn.recv()
                except EOFError:
                    self.stop()
                    code = self.procs[i][0].exitcode
                    raise SiteError(f"a site worker died (exit code {code})") from None
                if kind != "done":
                    self.stop()
                    raise _rebuild_error(payload)
                results[i] = payload
        for proc, _ in self.procs:
            proc.join()
        return [results[i] for i in range(len(self.procs))]

    def stop(self) -> None:
        """Tell every worker still waiting to stop without writing; end them all."""
        for proc, conn in self.procs:
            with contextlib.suppress(OSError, ValueError):
                conn.send(False)
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def _work(job: ProductJob, conn: Any, busy: Any) -> None:
    """A worker: prepare, report its size, wait for the go, write, report."""
    try:
        with busy:
            job.prepare()
        conn.send(("ok", len(job.manifests)))
        if not conn.recv():
            return
        result = job.write()
        conn.send(("done", result))
    except Exception as e:  # reported to the parent, which raises it at the boundary
        conn.send(("error", _describe_error(e)))


def _describe_error(e: Exception) -> tuple[str, Any]:
    """A picklable description of an error, rebuilt by :func:`_rebuild_error`."""
    if isinstance(e, VerificationError):
        return ("verification", e.failures)
    if isinstance(e, FortnightError):
        return (type(e).__name__, (e.message, e.hint))
    return ("other", f"{type(e).__name__}: {e}")


def _rebuild_error(payload: tuple[str, Any]) -> FortnightError:
    kind, data = payload
    if kind == "verification":
        return VerificationError(data)
    if kind == "other":
        return SiteError(f"site build failed: {data}", hint="set FORTNIGHT_DEBUG=1 and re-run")
    cls = getattr(errors, kind, SiteError)
    message, hint = data
    return cls(message, hint=hint) if issubclass(cls, FortnightError) else SiteError(message)


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


def content_pages(context: dict[str, Any]) -> list[tuple[str, str]]:
    """The human-written pages (content/pages), as (title, url), for the navigation."""
    return [(str(p.title), str(p.url)) for p in context.get("pages", [])]


def iso_key(ts: datetime) -> str:
    """A timestamp in the form :func:`product_key` compares with ``now.isoformat()``."""
    return ts.astimezone(UTC).isoformat()


def get_generators(_pelican: Pelican) -> type[Generator]:
    return FortnightGenerator


def register() -> None:
    """Pelican's plugin entry point."""
    signals.get_generators.connect(get_generators)


# --- building ---------------------------------------------------------------------------------


class _Warnings(logging.Handler):
    """Collects Pelican's warnings and errors, so a failed build can say what went wrong."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().splitlines()[0] if record.msg else "")


@contextlib.contextmanager
def fatal_warnings() -> Iterator[_Warnings]:
    """Make Pelican's warnings fatal for the duration (and collect them)."""
    handler = _Warnings()
    root = logging.getLogger()
    saved, quiet = FatalLogger.fatal_lvl, pelican_console.quiet
    FatalLogger.fatal_lvl = logging.WARNING
    pelican_console.quiet = True  # our task prints its own summary line
    root.addHandler(handler)
    try:
        yield handler
    finally:
        FatalLogger.fatal_lvl, pelican_console.quiet = saved, quiet
        root.removeHandler(handler)


def build_site(
    conf: Path,
    repo: Path,
    output: Path,
    *,
    at: datetime | None = None,
    logs: Path | None = None,
    force: bool = False,
    cache: bool = True,
    overrides: dict[str, Any] | None = None,
) -> BuildReport:
    """Build the site from the log at ``repo`` into ``output`` with the settings file ``conf``.

    Raises:
        VerificationError: a manifest failed verification (nothing of its product is written).
        ConfigError: a product.toml or trust.json is invalid, or the settings file is missing.
        SiteError: Pelican or a template failed, or warned (warnings are fatal).
    """
    if not conf.is_file():
        raise ConfigError(f"{conf}: settings file not found", hint="run from the repository root")
    override: dict[str, Any] = {
        "FORTNIGHT_REPO": str(repo),
        "OUTPUT_PATH": str(output),
        "FORTNIGHT_AT": at,
        "FORTNIGHT_LOGS": str(logs) if logs else None,
        "FORTNIGHT_FORCE": force,
        "FORTNIGHT_CACHE": cache,
        **(overrides or {}),
    }
    with fatal_warnings() as warnings:
        try:
            settings = read_settings(str(conf), override=override)
            pelican = Pelican(settings)
            report = BuildReport()
            pelican.settings["FORTNIGHT_REPORT"] = report
            pelican.run()
        except FortnightError:
            raise
        except Exception as e:
            reason = warnings.messages[-1] if warnings.messages else f"{type(e).__name__}: {e}"
            raise SiteError(
                f"site build failed: {reason}",
                hint="fix it and re-run (set FORTNIGHT_DEBUG=1 for the traceback)",
            ) from e
    return report


def site_server(output: Path, bind: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``output``, bound (the port is known) but not serving yet.

    Raises:
        SiteError: the address is in use or cannot be bound.
    """
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(output))
    try:
        return ThreadingHTTPServer((bind, port), handler)
    except OSError as e:
        raise SiteError(
            f"--bind {bind} --port {port}: cannot listen: {e.strerror}",
            hint="pick another --port (0 picks a free one)",
        ) from e


def serve_forever(server: ThreadingHTTPServer, output: Path) -> None:
    """Serve until interrupted (Ctrl-C), printing the URL."""
    host, port = server.server_address[:2]
    print(f"serving {output} at http://{host!s}:{port}/  (Ctrl-C stops)", flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def serve_site(output: Path, bind: str, port: int) -> None:
    """Serve ``output`` over HTTP until interrupted, printing the URL (``invoke site.serve``).

    Raises:
        SiteError: the address is in use or cannot be bound.
    """
    serve_forever(site_server(output, bind, port), output)
