"""A sample compose of a product (``compose.sample``): try the battery before real composes.

The real Fedora 28 metadata's images of the product's variant (or of the variant holding
its subvariants), with small well-formed image files from :mod:`pipeline.demo.samples`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.core.config import ProductConfig
from pipeline.demo.samples import F28_METADATA, write_compose_tree
from pipeline.errors import ConfigError

BrokenKind = Literal["format", "name"]
BROKEN_KINDS: tuple[BrokenKind, ...] = ("format", "name")


@dataclass(frozen=True)
class Sample:
    """A written sample compose: its folder and the images it holds."""

    compose_dir: Path
    compose_id: str
    images: list[tuple[str, str]]  # (arch, type), as selected by the product
    broken: tuple[str, str] | None


def sample_variant(config: ProductConfig) -> tuple[str, list[tuple[str, str]]]:
    """The variant of the bundled metadata the product selects, and its (arch, type) images.

    Raises:
        ConfigError: the product selects no image of the bundled metadata.
    """
    images = json.loads((F28_METADATA / "images.json").read_text())["payload"]["images"]
    for variant, by_arch in sorted(images.items()):
        chosen = sorted(
            {
                (arch, img["type"])
                for arch, imgs in by_arch.items()
                for img in imgs
                if config.images.selects(variant, img["subvariant"], img["type"], arch)
            },
            key=lambda a: (a[0] != "x86_64", a),
        )
        if chosen:
            return variant, chosen
    raise ConfigError(
        f"{config.name}: [images] selects nothing of the sample metadata (Fedora 28: variants "
        f"{', '.join(sorted(images))})",
        hint="a sample needs a variant or subvariant, type and arch that Fedora 28 has",
    )


def write_sample(
    config: ProductConfig, out: Path, compose_id: str, broken: BrokenKind | None = None
) -> Sample:
    """Write a sample compose of ``config`` at ``out`` (its ``compose/`` folder inside).

    ``broken="format"`` damages the first image's header (the blocking format check
    fails); ``broken="name"`` drops the arch from its file name (the advisory name check
    warns).

    Raises:
        ConfigError: the product selects no sample image, or ``out`` is not empty.
    """
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: not empty", hint="pass a new folder with --out")
    variant, images = sample_variant(config)
    arches = tuple(sorted({arch for arch, _ in images}))
    first = images[0] if broken else None
    try:
        compose_dir = write_compose_tree(
            out,
            compose_id,
            version=config.base.version,
            arches=arches,
            variant=variant,
            broken=frozenset([first]) if first and broken == "format" else frozenset(),
            odd_name=frozenset([first]) if first and broken == "name" else frozenset(),
        )
    except ValueError as e:  # an image type without a sample writer, or a bad compose id
        raise ConfigError(f"compose.sample: {e}") from e
    return Sample(compose_dir, compose_id, images, first)
