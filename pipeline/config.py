"""Product configuration: ``manifests/<product>/product.toml``, loaded once at the edge."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError

from pipeline.errors import ConfigError
from pipeline.models import ProductName, StrictModel
from pipeline.signing import describe_validation_error

PRODUCT_FILE = "product.toml"


class BaseRelease(StrictModel):
    """The distribution release the product is based on (e.g. Fedora 22)."""

    name: str = "Fedora"
    version: str
    prerelease: str | None = None


class ImageSelection(StrictModel):
    """Which images of a compose belong to the product.

    An image is selected when its variant is in ``variants`` or its subvariant
    is in ``subvariants``, and its type and arch are listed.
    """

    variants: list[str] = Field(default_factory=list)
    subvariants: list[str] = Field(default_factory=list)
    types: Annotated[list[str], Field(min_length=1)]
    arches: Annotated[list[str], Field(min_length=1)]
    #: Where users download an image: ``download_url + image.path``.
    #: ``{compose_id}`` is replaced. Empty: the compose's own location.
    download_url: str = ""

    def selects(self, variant: str, subvariant: str, image_type: str, arch: str) -> bool:
        """Whether an image with these attributes belongs to the product."""
        in_variant = variant in self.variants or subvariant in self.subvariants
        return in_variant and image_type in self.types and arch in self.arches


class ProductConfig(StrictModel):
    """``product.toml``: what the product is and which images it ships."""

    name: ProductName
    display_name: str
    base: BaseRelease
    images: ImageSelection


def load_product(manifests_root: Path, product: str) -> ProductConfig:
    """Load ``manifests/<product>/product.toml``.

    Raises:
        ConfigError: the file is missing, not TOML, invalid, or names another product.
    """
    path = manifests_root / product / PRODUCT_FILE
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found",
            hint=f"is '{product}' the right --product? Each product needs a product.toml",
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    try:
        config = ProductConfig.model_validate(raw, strict=True)
    except ValidationError as e:
        raise ConfigError(
            f"{path}: {describe_validation_error(e)}",
            hint="see the product.toml reference in the README",
        ) from e
    if config.name != product:
        raise ConfigError(
            f"{path}: name is '{config.name}' but the folder is '{product}'",
            hint="make them the same",
        )
    return config
