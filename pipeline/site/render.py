"""Rendering a product: the theme's templates filled with the page models, and its files.

Every value a template prints is computed in :mod:`pipeline.core.pages`; this module
hands the models to the templates and writes pages and files through
:class:`~pipeline.site.output.Output`, which skips what is unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

import feedgenerator
from jinja2 import Environment, Template
from markupsafe import Markup

from pipeline.core import pages
from pipeline.core.config import ProductConfig
from pipeline.core.models.common import Manifest
from pipeline.core.outputs import checksum_file, sha256sums
from pipeline.core.pages.formatting import sha_groups
from pipeline.core.state import ComposeView, State
from pipeline.log.blobs import BlobStore
from pipeline.log.layout import MANIFESTS
from pipeline.log.store import ManifestLog
from pipeline.site.output import Output
from pipeline.site.settings import SiteSettings


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
    #: ``frozen: …`` when the log's newest checkpoint has expired (every page says so).
    frozen: str = ""
    _templates: dict[str, Template] = field(default_factory=dict)
    _parts: dict[tuple[str, ...], Markup] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A checksum wraps only between groups of 16 characters: <wbr> between them, and
        # site.css keeps code.sha from breaking anywhere else (lighter than a span a group).
        self.env.filters["sha_wbr"] = lambda digest: Markup("<wbr>").join(sha_groups(digest))

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
            "site_url": self.site.site_url,
            "frozen": self.frozen,
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
    blobs = blobs or {}
    product = _ProductPages(state, renderer, out)
    product.overview()
    product.composes(blobs)
    product.bugs_and_archive()
    product.files()
    _mirror(out, manifests, str(log.root), blobs, store, held)


class _ProductPages:
    """The pages and files of one product, written in a fixed order (the build record
    lists them in it)."""

    def __init__(self, state: State, renderer: Renderer, out: Output) -> None:
        self.state = state
        self.renderer = renderer
        self.out = out
        self.urls = pages.Urls(state.product.name)

    def _draw(self, template: str, rel: str, **values: Any) -> Callable[[Any], bytes]:
        """Render ``template`` at ``rel`` with a page model."""

        def draw(page: Any) -> bytes:
            product = self.state.product
            return self.renderer.render(template, rel, product=product, page=page, **values)

        return draw

    def overview(self) -> None:
        """The download page (also the site's index for the primary product) and the
        dashboard's pages."""
        state, urls, out = self.state, self.urls, self.out
        download = pages.download_page(state)
        primary = state.product.name == self.renderer.site.primary
        for rel in [urls.download()] + (["index.html"] if primary else []):
            out.page(rel, _static(download), self._draw("download.html", rel, urls=urls))
        for dash in pages.dashboard_pages(state, urls):
            out.page(dash.href, _static(dash), self._draw("dashboard.html", dash.href))

    def composes(self, blobs: dict[str, str]) -> None:
        """A page per compose, with the test logs it links brought along."""
        state, urls, out = self.state, self.urls, self.out
        bugs = pages.compose_bugs(state, urls)
        releases = pages.release_of_compose(state)
        withdrawn = pages.withdrawal_of_compose(state)
        shipped = {c: f"{r} {withdrawn.get(c)}" for c, r in releases.items()}
        logs = _Logs(self.renderer.site, out, urls)
        config = hashlib.sha256(state.product.model_dump_json().encode()).hexdigest()
        exists = logs.exists if logs.root else None
        for view in state.composes:
            rel = urls.compose(view.compose_id)
            key = _compose_key(view, blobs, config, bugs, shipped, exists)

            def model(view: ComposeView = view) -> pages.ComposePage:
                return pages.compose_page(state, view, urls, bugs, releases, logs.bring)

            out.page(rel, model, self._draw("compose.html", rel), key)

    def bugs_and_archive(self) -> None:
        """A page per bug tracked here, and the release archive."""
        state, urls, out, renderer = self.state, self.urls, self.out, self.renderer
        known = {c.compose_id for c in state.composes}
        for bug in pages.local_bugs(state):
            rel = urls.bug(bug.bug)
            out.page(rel, _static(pages.bug_page(bug, urls, known)), self._draw("bug.html", rel))
        rel = urls.archive()
        out.page(
            rel,
            _static(pages.archive_rows(state, urls)),
            lambda rows: renderer.render("archive.html", rel, product=state.product, rows=rows),
        )
        for notes in self.notes:
            out.page(notes.href, _static(notes), self._draw("notes.html", notes.href, urls=urls))

    @functools.cached_property
    def notes(self) -> list[pages.ReleaseNotes]:
        """Every release's notes (computed once per build)."""
        return pages.all_release_notes(self.state, self.urls)

    def files(self) -> None:
        """CHECKSUM files, the stream, the Atom feed and the "latest" pointers."""
        state, urls, out, renderer = self.state, self.urls, self.out, self.renderer
        for release, images in pages.released_images(state):
            out.write(urls.checksum(release.release_id), checksum_file(images).encode())
            out.write(urls.sha256sums(release.release_id), sha256sums(images).encode())
        for notes in self.notes:
            document = pages.changes_document(notes, state.product.name)
            text = json.dumps(document, indent=2, sort_keys=True) + "\n"
            out.write(notes.json_href, text.encode())
        stream = pages.stream(state, renderer.site.site_url)
        out.write(urls.stream(), (json.dumps(stream, indent=2, sort_keys=True) + "\n").encode())
        out.write(urls.feed(), atom_feed(state, urls, renderer.site))
        for latest in pages.latest_pointers(state):
            out.write(latest.name_path, (latest.filename + "\n").encode())
            out.write(latest.path, renderer.render("redirect.html", latest.path, latest=latest))


def _static(value: object) -> Callable[[], object]:
    return lambda: value


class _Logs:
    """The log store's test logs, as compose pages ask for them: whether one is there
    (asked once per path), and bringing one along with the page that links it."""

    def __init__(self, site: SiteSettings, out: Output, urls: pages.Urls) -> None:
        self.root = str(site.logs) if site.logs else None
        self.out = out
        self.urls = urls
        self.known: dict[str, bool] = {}

    def exists(self, path: str) -> bool:
        if self.root is None or not pages.safe_relpath(path):
            return False
        found = self.known.get(path)
        if found is None:
            found = self.known[path] = os.path.isfile(os.path.join(self.root, path))
        return found

    def bring(self, path: str) -> bool:
        found = self.exists(path)
        if found:
            self.out.copy(self.urls.log(path), os.path.join(str(self.root), path))
        return found


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
        changes = f" {entry.changes} Notes: {base}{entry.notes}" if entry.changes else ""
        feed.add_item(
            title=entry.title,
            link=base + entry.link,
            description=entry.summary + changes,
            unique_id=entry.id,
            pubdate=datetime.fromisoformat(entry.updated),
            updateddate=datetime.fromisoformat(entry.updated),
        )
    text: str = feed.writeString("utf-8")
    return text.encode()


# --- the Pelican generator -------------------------------------------------------------------
