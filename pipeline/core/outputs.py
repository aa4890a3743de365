"""Machine-readable files published beside each release: Fedora's CHECKSUM and SHA256SUMS.

Pure functions over a compose manifest's images; the site build writes their output.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.core.models.manifests import Image


def _by_name(images: Iterable[Image]) -> list[Image]:
    return sorted(images, key=lambda i: i.filename)


def checksum_file(images: Iterable[Image]) -> str:
    """Fedora's CHECKSUM format: per file ``# FILE: N bytes`` then ``SHA256 (FILE) = HEX``.

    This is the body Fedora clearsigns; ``sha256sum -c`` reads it too (BSD-style lines).
    """
    lines = []
    for img in _by_name(images):
        lines.append(f"# {img.filename}: {img.size} bytes")
        lines.append(f"SHA256 ({img.filename}) = {img.checksums.sha256}")
    return "".join(f"{line}\n" for line in lines)


def sha256sums(images: Iterable[Image]) -> str:
    """``sha256sum``'s own format: ``HEX  FILE`` per line."""
    return "".join(f"{img.checksums.sha256}  {img.filename}\n" for img in _by_name(images))
