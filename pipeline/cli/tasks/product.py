"""``product.new``, ``product.list``, ``product.check``: start and inspect a log's products."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.setup import now, open_log, product_of, writable_log
from pipeline.errors import ConfigError


def like_option(like: str) -> str:
    """``--like``: one of the bundled kinds of product.

    Raises:
        ConfigError: another value.
    """
    from pipeline.core.product_template import LIKES  # noqa: PLC0415

    if like not in LIKES:
        raise ConfigError(f"--like {like}: unknown kind", hint=f"use one of {', '.join(LIKES)}")
    return like


@task(
    name="new",
    help={
        "name": "the product's id: lower case, digits and '-' (its folder under manifests/)",
        "display_name": "the name people read on the site, e.g. 'MyOS Cloud'",
        "base": "the base release version, e.g. 28",
        "like": "cloud-base (default) or atomic-host: which images and tests to start from",
        "variant": "select images of this compose variant (instead of the preset subvariants)",
        "subvariant": "select images of this subvariant (default: the preset's)",
        "download_url": "where users download images: https://…/{compose_id}/compose/ or /path/",
        "anchor": "the first release day, YYYY-MM-DD (default: today)",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
        "dry_run": "print the product.toml; write nothing",
        "no_commit": "write product.toml but do not commit",
    },
)
@boundary
def product_new(
    c: Context,
    name: str,
    display_name: str,
    base: str,
    like: str = "cloud-base",
    variant: str | None = None,
    subvariant: str | None = None,
    download_url: str = "",
    anchor: str | None = None,
    repo: str | None = None,
    dry_run: bool = False,
    no_commit: bool = False,
) -> None:
    """Start a product: write a commented, validated product.toml and commit it."""
    from pipeline.core.product_template import NewProduct  # noqa: PLC0415
    from pipeline.stages.products import new_product  # noqa: PLC0415

    try:
        first = date.fromisoformat(anchor) if anchor else now().date()
    except ValueError:
        raise ConfigError(f"--anchor {anchor}: not a date", hint="use YYYY-MM-DD") from None
    new = NewProduct(
        name=name,
        display_name=display_name,
        base=base,
        anchor=first,
        like="atomic-host" if like_option(like) == "atomic-host" else "cloud-base",
        variants=[variant] if variant else [],
        subvariants=[subvariant] if subvariant else [],
        download_url=download_url,
    )
    log = writable_log(repo, os.environ)
    result = new_product(log, new, dry_run=dry_run, commit=not no_commit)
    if dry_run:
        print(result.text, end="")
        console.err.print(f"dry run: would write {result.path}")
        return
    done = f", commit {result.commit[:12]}" if result.commit else ""
    console.out.print(f"created: {result.path}{done}")
    console.out.print(f"next: 'product.check {name}', then record a compose (see the README)")


@task(name="list", help={"repo": "the manifest log (default: $FORTNIGHT_REPO or .)"})
@boundary
def product_list(c: Context, repo: str | None = None) -> None:
    """List the log's products (each product.toml validated) and which is the default."""
    from pipeline.stages.products import list_products  # noqa: PLC0415

    log = open_log(repo, os.environ)
    configs = list_products(log)
    if not configs:
        console.out.print(f"no product in {log.repo}; start one with 'product.new'")
        return
    try:
        default: str | None = product_of(None, log, os.environ)
    except ConfigError:
        default = None
    console.out.print(console.products_table(configs, default))


@task(
    name="check",
    help={
        "product": "the product to check (default: the log's default product)",
        "file": "check this product.toml (or its folder) instead of the log's",
        "repo": "the manifest log (default: $FORTNIGHT_REPO or .)",
    },
)
@boundary
def product_check(
    c: Context, product: str | None = None, file: str | None = None, repo: str | None = None
) -> None:
    """Validate a product.toml and explain what it configures; exit 2 naming a bad field."""
    from pipeline.stages.products import check_product_file  # noqa: PLC0415

    if file:
        config = check_product_file(Path(file))
    else:
        log = open_log(repo, os.environ)
        config = check_product_file(log.product_dir(product_of(product, log, os.environ)))
    for line in console.explain_product(config):
        console.out.print(line, highlight=False)
