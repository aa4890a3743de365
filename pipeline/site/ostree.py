"""Ship each product's public OSTree repository with the site (``<product>/<site_path>/``)
and its GPG public key (``<product>/<site_path>.gpg``).

Files are hard links into the output (a copy across file systems), skipped when unchanged
(same size and time). They go in the order a client must never see reversed: objects,
deltas and ``config`` first, then ``summary`` and ``summary.sig``, then the refs, so a
ref or summary never names an object the site does not have yet. ``site.publish``
uploads in the same order (see :func:`pipeline.site.publish.plan`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipeline.core.config import ProductConfig
from pipeline.core.pages.links import Urls
from pipeline.core.pages.ostree import ostree_key_path, ostree_repo_path
from pipeline.errors import SiteError
from pipeline.log.layout import MANIFESTS
from pipeline.site.output import Output
from pipeline.stages.ostree import ostree_setup

#: What of a repository is served, in the order it is shipped.
CONTENT = ("config", "objects", "deltas", "delta-indexes")
SUMMARY = ("summary", "summary.sig")
REFS = "refs/heads"


def _files(top: Path) -> Iterator[Path]:
    """Every regular file under ``top``, sorted (no symlinks followed)."""
    if not top.is_dir():
        if top.is_file():
            yield top
        return
    for folder, dirs, names in os.walk(top):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink() and not name.endswith(".lock"):
                yield path


def repo_files(repo: Path) -> Iterator[tuple[str, Path]]:
    """The repository's served files, relative to it, in shipping order."""
    for part in (*CONTENT, *SUMMARY, REFS):
        for path in _files(repo / part):
            yield path.relative_to(repo).as_posix(), path


def ship_ostree(out: Output, product: ProductConfig, checkout: Path, env: Mapping[str, str]) -> int:
    """Put the product's public repository and key (``gpg_public_key``, in the product's
    folder) into ``out``; return the files shipped.

    Raises:
        SiteError: ``[ostree] gpg_public_key`` names a file that is not there.
    """
    setup = ostree_setup(product, checkout, env)
    if setup is None:
        return 0
    urls = Urls(product.name)
    shipped = 0
    config = setup.config
    if config.gpg_public_key:
        key = checkout / MANIFESTS / product.name / config.gpg_public_key
        if not key.is_file():
            raise SiteError(
                f"{product.name}/product.toml: [ostree] gpg_public_key {key} not found",
                hint="export the public key there (gpg --armor --export KEY)",
            )
        out.copy(ostree_key_path(urls, config.site_path), str(key))
        shipped += 1
    if setup.public.exists():
        base = ostree_repo_path(urls, config.site_path)
        for rel, path in repo_files(setup.public.path):
            out.copy(base + rel, str(path))
            shipped += 1
    return shipped
