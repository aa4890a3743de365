"""The site: a Pelican plugin whose generator turns the verified log into pages and files.

``pelicanconf.py`` lists this module in ``PLUGINS``; :func:`register` adds
:class:`FortnightGenerator`, which for every product under ``manifests/`` loads and
verifies its manifests (fail closed), derives its state (:func:`pipeline.core.state.derive`,
the function ``invoke status`` uses) and writes its download page, dashboard, compose
and bug pages, release archive, CHECKSUM files, stream, Atom feed, "latest" pointers,
test logs and a copy of the signed manifests. Human-written pages in ``content/`` go
through Pelican's own page generator, with the same theme.

The parts, one module each: :mod:`~pipeline.site.settings` (the plugin's settings),
:mod:`~pipeline.site.incremental` (the build record; whether a product is unchanged),
:mod:`~pipeline.site.render` (templates and page models), :mod:`~pipeline.site.output`
(writing only what changed), :mod:`~pipeline.site.workers` (a product's job, forked
workers), :mod:`~pipeline.site.build` (running Pelican) and :mod:`~pipeline.site.serve`.

Incremental: a product whose key is unchanged is not loaded again; a page whose inputs
are unchanged is not rendered again (a compose page is recognised by the git blob ids of
its manifests, without building its model); a file whose bytes are unchanged is not
rewritten; files a product no longer produces are removed. Same log and same ``--at``:
byte-identical output.

An existing file is replaced atomically (temp file, then rename), a new one is created
in place, and the build record is written last, so an interrupted build leaves complete
files and a re-run finishes the job.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import markdown  # type: ignore[import-untyped]  # Pelican's Markdown; no stubs installed
from jinja2 import FileSystemBytecodeCache
from markupsafe import Markup
from pelican import Pelican, signals
from pelican.generators import Generator

from pipeline.core.config import ProductConfig, load_product
from pipeline.errors import ConfigError
from pipeline.log.checkpoints import checkpoint_files, frozen_message
from pipeline.log.layout import CHECKPOINT_DIR, INDEX_FILE, MANIFESTS, TRUST_FILE
from pipeline.log.store import ManifestLog
from pipeline.site.incremental import TEMPLATE_CACHE, LastBuild, code_key
from pipeline.site.ostree import ship_ostree
from pipeline.site.output import BuildReport, Output, ProductRecord
from pipeline.site.render import Renderer
from pipeline.site.settings import SiteSettings
from pipeline.site.workers import ProductJob, Workers, prepare_all


class FortnightGenerator(Generator):  # type: ignore[misc]  # Pelican is untyped
    """Pelican generator for the pages and files made from the manifest log."""

    def generate_context(self) -> None:
        """Load, verify and decide what to build, before Pelican writes anything."""
        site = SiteSettings.from_pelican(self.settings)
        self.log = ManifestLog(site.repo, cache=site.cache)
        configs = self._products()
        self.site = site = site.with_log(configs)
        self.products = sorted(configs, key=lambda c: (c.name != site.primary, c.name))
        self.nav = [(p.name, p.display_name) for p in self.products]
        # Pelican's own pages (content/) share the navigation, the site's name and its
        # products (the About page names them from their product.toml).
        self.context["FORTNIGHT_NAV"] = self.nav
        self.context["SITENAME"] = site.site_name
        self.context["FORTNIGHT_PRIMARY"] = site.primary
        self.context["FORTNIGHT_PRODUCTS"] = [
            (p.name, p.display_name, p.base.label(), product_blurb(site.repo, p.name))
            for p in self.products
        ]
        self.context["FORTNIGHT_PAGES"] = self.content_pages = content_pages(self.context)
        self.report = self.context.setdefault("FORTNIGHT_REPORT", BuildReport())
        self.root_chain = self.log.load_root().chain
        self.trust_bytes = self.root_chain.newest.raw  # verified equal to trust.json
        trust = self.root_chain.trust
        # The "Verify a download" page shows the fingerprint users pin (content/pages).
        self.context["FORTNIGHT_ROOT_FINGERPRINT"] = self.root_chain.fingerprint
        self.now = site.now()
        # Past the newest checkpoint's expiry every page says the log is frozen.
        head = self.log.reader.verify_log(trust).head
        self.frozen = frozen_message(head) if head and head.expires <= self.now else ""
        self.context["frozen"] = self.frozen
        self.code = code_key(
            site,
            {
                "site_url": site.site_url,
                "primary": site.primary,
                "site_name": site.site_name,
                "logs": str(site.logs),
                "pages": self.content_pages,
                "frozen": self.frozen,
            },
        )
        trust_digest = hashlib.sha256(self.trust_bytes).hexdigest()
        self.last = LastBuild.read(site, self.code, trust_digest, self.nav, self.now)
        self.records: dict[str, ProductRecord] = {}
        with contextlib.suppress(OSError):  # no cache: templates are compiled each build
            cache_dir = site.output / TEMPLATE_CACHE
            cache_dir.mkdir(parents=True, exist_ok=True)
            self.env.bytecode_cache = FileSystemBytecodeCache(str(cache_dir))
        # A build is one pass over templates that do not change while it runs: without
        # this, Jinja checks each template's file times at every page, for the page and
        # for each template it extends or imports.
        self.env.auto_reload = False
        self.renderer = Renderer(self.env, site, self.nav, self.content_pages, self.frozen)
        jobs = []
        for product in self.products:
            name = product.name
            if self.last.unchanged(name):
                self.records[name] = self.last.record(name)
                self.report.products_skipped.append(name)
                continue
            old, tree = self.last.record(name), self.last.tree(name)
            jobs.append(ProductJob(self, product, tree, old, trust, self.last.all_there(name)))
        # Every product that needs building is loaded and verified before anything is
        # written (fail closed): in worker processes, one per product, when that helps.
        self.workers = Workers.start(jobs, site.workers) if len(jobs) > 1 else None
        if self.workers is None:
            prepare_all(jobs)
        self.jobs = jobs

    def _products(self) -> list[ProductConfig]:
        """The log's products, each product.toml validated."""
        names = self.log.product_names()
        if not names:
            raise ConfigError(
                f"{self.log.root}: no product folder with a product.toml",
                hint="start one with 'product.new NAME --display-name TEXT --base VERSION'",
            )
        return [load_product(self.log.root, name) for name in names]

    def generate_output(self, writer: Any) -> None:
        """Write the changed products' pages and files, then the build record."""
        site, records = self.site, self.records
        previous = self.last.previous
        shared = Output(site.output, self.report, self.last.record(""))
        shared.write(f"{MANIFESTS}/{TRUST_FILE}", self.trust_bytes)
        for version in self.root_chain.versions:  # the whole root chain, for users to verify
            shared.write(version.path, version.raw)
        for product in self.products:  # repositories change outside the log: every build
            ship_ostree(shared, product, self.log.repo, site.ostree_env)
        # The log index and its checkpoints: users check the log is the one the site shows.
        index = self.log.root / INDEX_FILE
        if index.is_file():
            shared.write(f"{MANIFESTS}/{INDEX_FILE}", index.read_bytes())
        for path in checkpoint_files(self.log.root):
            shared.write(f"{MANIFESTS}/{CHECKPOINT_DIR}/{path.name}", path.read_bytes())
        shared.remove_stale()
        site_record = previous.get("")
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
        for name in set(previous) - set(records):
            Output(site.output, self.report, previous[name]).remove_stale()
        self.last.save(records, built=bool(self.jobs))


def product_blurb(repo: Path, product: str) -> Markup:
    """A product's own words for the About page: the log's ``content/products/<product>.md``
    (Markdown, written by the log's maintainers as Pelican pages are), or nothing."""
    path = repo / "content" / "products" / f"{product}.md"
    if not path.is_file():
        return Markup("")
    text = path.read_text(encoding="utf-8")
    return Markup(markdown.markdown(text, extensions=["extra"], output_format="html"))


def content_pages(context: dict[str, Any]) -> list[tuple[str, str]]:
    """The human-written pages (content/pages), as (title, url), for the navigation."""
    return [(str(p.title), str(p.url)) for p in context.get("pages", [])]


def get_generators(_pelican: Pelican) -> type[Generator]:
    return FortnightGenerator


def register() -> None:
    """Pelican's plugin entry point."""
    signals.get_generators.connect(get_generators)
