"""A log's products: start one (``product.new``), list them, check one's product.toml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.config import PRODUCT_FILE, ProductConfig, load_product, parse_product
from pipeline.core.product_template import NewProduct, render_product
from pipeline.errors import ConfigError, ConflictError
from pipeline.fsutil import atomic_create
from pipeline.log.store import ManifestLog


@dataclass(frozen=True)
class NewProductResult:
    """What ``product.new`` did: the file, its parsed config, and the commit (if any)."""

    path: Path
    config: ProductConfig
    text: str
    commit: str | None


def new_product(
    log: ManifestLog, new: NewProduct, *, dry_run: bool = False, commit: bool = True
) -> NewProductResult:
    """Write ``manifests/<name>/product.toml`` for a new product, validated, and commit it.

    Raises:
        ConfigError: the options make an invalid product.toml (named field).
        ConflictError: the product already exists.
        StoreError: not a git repository, or git failed.
    """
    log.require_repo()
    path = log.product_dir(new.name) / PRODUCT_FILE
    text = render_product(new)
    config = parse_product(text.encode(), path, new.name)
    if path.exists():
        raise ConflictError(
            f"{path}: product '{new.name}' already exists",
            hint="edit its product.toml (then 'product.check'), or pick another name",
        )
    if dry_run:
        return NewProductResult(path, config, text, None)
    if not atomic_create(path, text.encode()):
        raise ConflictError(f"{path}: product '{new.name}' already exists")
    sha = log.commit_file(path, f"product: add {new.name}") if commit else None
    return NewProductResult(path, config, text, sha)


def list_products(log: ManifestLog) -> list[ProductConfig]:
    """Every product of the log, validated.

    Raises:
        ConfigError: a product.toml is invalid (named).
    """
    return [load_product(log.root, name) for name in log.product_names()]


def check_product_file(path: Path) -> ProductConfig:
    """Validate a product.toml anywhere (its folder's name is the product's).

    Raises:
        ConfigError: missing, not TOML, or invalid (the field is named).
    """
    if path.is_dir():
        path = path / PRODUCT_FILE
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from e
    return parse_product(data, path, path.resolve().parent.name)
