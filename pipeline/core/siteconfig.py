"""The log's own settings: ``site.toml`` at the root of a manifest log, loaded at the edge.

It says what the site is called, which product is its front door, where it is
published, and which product a task acts on when ``--product`` is not given, so one
code install serves any log. Every key is optional.
"""

# No ``from __future__ import annotations`` in this module: pydantic would evaluate every
# annotation string when it creates the model classes, and every task imports them at
# start-up (it cost about 10 ms of each; ``tests/cli/test_startup.py`` keeps it out).

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationError

from pipeline.core.models.common import ProductName, StrictModel
from pipeline.errors import ConfigError, describe_validation_error

SITE_FILE = "site.toml"
PRODUCT_ENV = "FORTNIGHT_PRODUCT"


def check_base_url(value: str) -> str:
    """``base_url``: empty (relative links only) or an absolute http(s) URL.

    Raises:
        ValueError: anything else (``file://``, a bare path).
    """
    if value and not value.startswith(("https://", "http://")):
        raise ValueError(f"must be an absolute http(s) URL or empty, got {value!r}")
    return value.rstrip("/")


class SiteConfig(StrictModel):
    """``site.toml``: the log's site identity and default product."""

    #: The site's name, in every page title; default "<primary display name> downloads".
    name: str = ""
    #: The product whose download page is the front door; default the first product.
    primary: ProductName | None = None
    #: Absolute site URL for feeds and the stream's links; empty for relative links only.
    base_url: Annotated[str, AfterValidator(check_base_url)] = ""
    #: The product tasks act on without ``--product`` (and without ``$FORTNIGHT_PRODUCT``).
    default_product: ProductName | None = None


def load_site_config(repo: Path) -> SiteConfig:
    """``<repo>/site.toml``, or the defaults when there is none.

    Raises:
        ConfigError: the file is not TOML or not valid.
    """
    path = repo / SITE_FILE
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        return SiteConfig()
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    try:
        return SiteConfig.model_validate(raw, strict=True)
    except ValidationError as e:
        raise ConfigError(
            f"{path}: {describe_validation_error(e)}",
            hint="see the README, 'Site identity'",
        ) from e


def default_product(
    explicit: str | None,
    env: Mapping[str, str],
    site: SiteConfig,
    products: Sequence[str],
    where: Path,
) -> str:
    """The product a task acts on: ``--product``, else ``$FORTNIGHT_PRODUCT``, else
    ``default_product`` in site.toml, else the log's only product.

    Raises:
        ConfigError: none of these names one (no product, or several).
    """
    chosen = explicit or env.get(PRODUCT_ENV, "").strip() or site.default_product
    if chosen:
        return chosen
    if len(products) == 1:
        return products[0]
    if not products:
        raise ConfigError(
            f"{where}: no product in this log",
            hint="create one with 'product.new NAME --display-name TEXT --base VERSION'",
        )
    raise ConfigError(
        f"{where}: several products ({', '.join(products)}) and no --product",
        hint=f"pass --product, set {PRODUCT_ENV}, or default_product in {SITE_FILE}",
    )
