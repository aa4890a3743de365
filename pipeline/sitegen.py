"""The site: a Pelican plugin whose generator turns the verified log into pages and files.

``pelicanconf.py`` lists this module in ``PLUGINS``; :func:`register` adds
:class:`FortnightGenerator`, which for every product under ``manifests/`` loads and
verifies its manifests (fail closed), derives its state (:func:`pipeline.state.derive`,
the function ``invoke status`` uses) and writes its download page, dashboard, compose
and bug pages, release archive, CHECKSUM files, stream, Atom feed, "latest" pointers,
test logs and a copy of the signed manifests. Human-written pages in ``content/`` go
through Pelican's own page generator, with the same theme.

Incremental: ``<output>/.fortnight/build.json`` remembers, per product, a key made of the
product's git tree, ``trust.json``, the code and theme, the settings and the day being
built for, and the digest of every file written. A product whose key is unchanged is not
loaded again; a file whose bytes are unchanged is not rewritten; files a product no
longer produces are removed. Same log and same ``--at``: byte-identical output.

Writes are atomic per file (temp file, then rename) and the build record is written last,
so an interrupted build leaves complete files and a re-run finishes the job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import feedgenerator
from jinja2 import Environment, Template
from pelican import Pelican, signals
from pelican.generators import Generator
from pelican.log import FatalLogger
from pelican.log import console as pelican_console
from pelican.settings import read_settings

from pipeline import pages
from pipeline.config import ProductConfig, load_product
from pipeline.errors import ConfigError, FortnightError, SiteError
from pipeline.fsutil import atomic_write
from pipeline.models import Manifest
from pipeline.state import State, derive
from pipeline.store import MANIFESTS, TRUST_FILE, ManifestLog

STATE_DIR = ".fortnight"
BUILD_RECORD = "build.json"
#: Bump when the build record's shape changes.
RECORD_FORMAT = 1
CODE_FILES = ("pages.py", "sitegen.py", "state.py", "models.py", "config.py", "outputs.py")

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
    files: dict[str, str] = field(default_factory=dict)  # site path -> sha256 (or "copy:...")


@dataclass
class BuildReport:
    """What a build did."""

    products_built: list[str] = field(default_factory=list)
    products_skipped: list[str] = field(default_factory=list)
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    pages: int = 0


class Output:
    """The output folder: writes only what changed, atomically, and remembers what it wrote."""

    def __init__(self, root: Path, report: BuildReport) -> None:
        self.root = root
        self.report = report
        self._made: set[Path] = set()

    def path(self, rel: str) -> Path:
        if not pages.safe_relpath(rel):
            raise SiteError(f"refusing to write {rel!r}: not a path inside the output folder")
        return self.root / rel

    def _parent(self, path: Path) -> None:
        parent = path.parent
        if parent not in self._made:
            parent.mkdir(parents=True, exist_ok=True)
            self._made.add(parent)

    def write(self, rel: str, data: bytes, old: dict[str, str], new: dict[str, str]) -> None:
        """Write ``data`` at ``rel`` unless the last build wrote the same bytes there."""
        digest = hashlib.sha256(data).hexdigest()
        new[rel] = digest
        path = self.path(rel)
        if old.get(rel) == digest and path.is_file():
            self.report.unchanged += 1
            return
        self._parent(path)
        atomic_write(path, data)
        self.report.written += 1

    def copy(self, rel: str, src: Path, old: dict[str, str], new: dict[str, str]) -> None:
        """Copy a file (a manifest, a log) unless the same size and mtime are there already."""
        st = src.stat()
        mark = f"copy:{st.st_size}:{st.st_mtime_ns}"
        new[rel] = mark
        path = self.path(rel)
        if old.get(rel) == mark and path.is_file():
            self.report.unchanged += 1
            return
        self._parent(path)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, path)
        self.report.written += 1

    def remove_stale(self, old: dict[str, str], new: dict[str, str]) -> None:
        """Delete files the last build wrote that this one does not produce."""
        for rel in sorted(set(old) - set(new)):
            with contextlib.suppress(FileNotFoundError):
                self.path(rel).unlink()
                self.report.removed += 1


def load_record(output: Path, code_key: str) -> dict[str, ProductRecord]:
    """The last build's record, or an empty one (another code version, missing, corrupt)."""
    try:
        raw = json.loads((output / STATE_DIR / BUILD_RECORD).read_text())
        if raw.get("format") != RECORD_FORMAT or raw.get("code") != code_key:
            return {}
        return {name: ProductRecord(**rec) for name, rec in raw["products"].items()}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def save_record(output: Path, code_key: str, records: dict[str, ProductRecord]) -> None:
    """Write the build record last: it is only ever as new as the files it describes."""
    folder = output / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "format": RECORD_FORMAT,
        "code": code_key,
        "products": {
            name: {"key": r.key, "tree": r.tree, "newest": r.newest, "files": r.files}
            for name, r in sorted(records.items())
        },
    }
    atomic_write(folder / BUILD_RECORD, json.dumps(body, sort_keys=True).encode())


# --- keys for incremental builds ------------------------------------------------------------


def code_key(settings: SiteSettings, extra: dict[str, Any]) -> str:
    """A digest of the code, theme and settings a build's output depends on."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in CODE_FILES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    if settings.theme.is_dir():
        for path in sorted(settings.theme.rglob("*")):
            if path.is_file():
                h.update(str(path.relative_to(settings.theme)).encode() + b"\0")
                h.update(path.read_bytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def product_trees(repo: Path) -> dict[str, str]:
    """Per product folder, its git tree id, or no entry when it has uncommitted changes.

    A product without an entry is always rebuilt. Not a git repository: no entries.
    """

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )

    listing = git("ls-tree", "-z", "HEAD", f"{MANIFESTS}/")
    status = git(
        "--no-optional-locks",
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--",
        MANIFESTS,
    )
    if listing.returncode != 0 or status.returncode != 0:
        return {}
    trees = {}
    for entry in listing.stdout.split("\0"):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "tree":
            trees[PurePosixPath(path).name] = parts[2]
    dirty = set()
    for entry in status.stdout.split("\0"):
        rel = PurePosixPath(entry[3:]) if len(entry) > 3 else None
        if rel is not None and len(rel.parts) > 1:
            dirty.add(rel.parts[1])
    return {name: tree for name, tree in trees.items() if name not in dirty}


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
    """Renders the theme's templates with what every page needs."""

    env: Environment
    site: SiteSettings
    nav: list[tuple[str, str]]  # (product name, display name)
    content_pages: list[tuple[str, str]]  # (title, url)
    _templates: dict[str, Template] = field(default_factory=dict)

    def render(self, template: str, rel: str, **values: Any) -> bytes:
        tpl = self._templates.get(template)
        if tpl is None:
            tpl = self._templates[template] = self.env.get_template(template)
        html = tpl.render(
            root=root_of(rel),
            here=rel,
            nav=self.nav,
            content_pages=self.content_pages,
            primary=self.site.primary,
            site_name=self.site.site_name,
            **values,
        )
        return html.encode()


def build_product(
    state: State,
    manifests: list[Manifest],
    log: ManifestLog,
    renderer: Renderer,
    out: Output,
    old: dict[str, str],
) -> dict[str, str]:
    """Write every page and file of one product; returns site path -> digest."""
    new: dict[str, str] = {}
    product = state.product.name
    urls = pages.Urls(product)
    site = renderer.site

    download = pages.download_page(state)
    targets = [urls.download()]
    if product == site.primary:
        targets.append("index.html")
    for rel in targets:
        body = renderer.render(
            "download.html", rel, page=download, urls=urls, product=state.product
        )
        out.write(rel, body, old, new)
        out.report.pages += 1

    for dash in pages.dashboard_pages(state, urls):
        out.write(
            dash.href,
            renderer.render("dashboard.html", dash.href, page=dash, product=state.product),
            old,
            new,
        )
        out.report.pages += 1

    bugs = pages.compose_bugs(state, urls)
    releases = pages.release_of_compose(state)
    logs = site.logs
    known_logs: set[str] = set()

    def has_log(path: str) -> bool:
        if logs is None:
            return False
        if path in known_logs:
            return True
        src = logs / path
        if src.is_file():
            out.copy(urls.log(path), src, old, new)
            known_logs.add(path)
            return True
        return False

    for view in state.composes:
        page = pages.compose_page(state, view, urls, bugs, releases, has_log)
        rel = urls.compose(view.compose_id)
        out.write(
            rel, renderer.render("compose.html", rel, page=page, product=state.product), old, new
        )
        out.report.pages += 1

    known = {c.compose_id for c in state.composes}
    for bug in pages.local_bugs(state):
        rel = urls.bug(bug.bug)
        body = renderer.render(
            "bug.html", rel, page=pages.bug_page(bug, urls, known), product=state.product
        )
        out.write(rel, body, old, new)
        out.report.pages += 1

    rel = urls.archive()
    rows = pages.archive_rows(state, urls)
    out.write(rel, renderer.render("archive.html", rel, rows=rows, product=state.product), old, new)
    out.report.pages += 1

    from pipeline.outputs import checksum_file, sha256sums  # noqa: PLC0415 - same layer

    for release, images in pages.released_images(state):
        out.write(urls.checksum(release.release_id), checksum_file(images).encode(), old, new)
        out.write(urls.sha256sums(release.release_id), sha256sums(images).encode(), old, new)

    stream = pages.stream(state, site.site_url)
    out.write(
        urls.stream(), (json.dumps(stream, indent=2, sort_keys=True) + "\n").encode(), old, new
    )
    out.write(urls.feed(), atom_feed(state, urls, site), old, new)

    for latest in pages.latest_pointers(state):
        out.write(latest.name_path, (latest.filename + "\n").encode(), old, new)
        out.write(
            latest.path, renderer.render("redirect.html", latest.path, latest=latest), old, new
        )

    for m in manifests:
        rel = str(m.relpath())
        out.copy(f"{MANIFESTS}/{rel}", log.root / rel, old, new)
    return new


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
    for entry in pages.feed_entries(state, urls):
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
        trees = product_trees(site.repo) if site.cache else {}
        self.trust_digest = hashlib.sha256(self.trust_bytes).hexdigest()
        self.now = site.now()
        self.records: dict[str, ProductRecord] = {}
        # Verify every product that needs building before anything is written (fail closed).
        self.todo: list[tuple[ProductConfig, str, list[Manifest]]] = []
        for product in self.products:
            old = self.previous.get(product.name, ProductRecord())
            tree = trees.get(product.name, "")
            key = self._key(tree, old.newest)
            if key and key == old.key and all((site.output / f).is_file() for f in old.files):
                self.records[product.name] = old
                self.report.products_skipped.append(product.name)
                continue
            verified = self.log.load_verified(trust, products=[product.name])
            self.todo.append((product, tree, [v.manifest for v in verified]))

    def _key(self, tree: str, newest: str) -> str:
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
        site, now, records = self.site, self.now, self.records
        renderer = Renderer(self.env, site, self.nav, self.content_pages)
        out = Output(site.output, self.report)
        shared_old = self.previous.get("", ProductRecord()).files
        shared_new: dict[str, str] = {}
        out.write(f"{MANIFESTS}/{TRUST_FILE}", self.trust_bytes, shared_old, shared_new)
        records[""] = ProductRecord(files=shared_new)
        out.remove_stale(shared_old, shared_new)
        for product, tree, everything in self.todo:
            old = self.previous.get(product.name, ProductRecord())
            manifests = [m for m in everything if m.created <= now]
            state = derive(manifests, product, now)
            files = build_product(state, manifests, self.log, renderer, out, old.files)
            newest = max((iso_key(m.created) for m in everything), default="")
            out.remove_stale(old.files, files)
            records[product.name] = ProductRecord(self._key(tree, newest), tree, newest, files)
            self.report.products_built.append(product.name)
        for name in set(self.previous) - set(records):
            out.remove_stale(self.previous[name].files, {})
        save_record(site.output, self.code, records)


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


def serve_site(output: Path, bind: str, port: int) -> None:
    """Serve ``output`` over HTTP until interrupted, printing the URL (``invoke site.serve``).

    Raises:
        SiteError: the address is in use or cannot be bound.
    """
    import functools  # noqa: PLC0415
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(output))
    try:
        server = ThreadingHTTPServer((bind, port), handler)
    except OSError as e:
        raise SiteError(
            f"--bind {bind} --port {port}: cannot listen: {e.strerror}",
            hint="pick another --port (0 picks a free one)",
        ) from e
    print(
        f"serving {output} at http://{bind}:{server.server_address[1]}/  (Ctrl-C stops)", flush=True
    )
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
