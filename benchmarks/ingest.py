"""Benchmark reading a compose's metadata against ``json.loads`` of the same file.

Usage (from the repository root)::

    python benchmarks/ingest.py [--images 1000,4000,16000] [--repeats 5] [--productmd]

For each size it writes a synthetic Pungi compose into a scratch folder: the real Fedora 28
``composeinfo.json`` and an ``images.json`` grown from the real Fedora 28 images (each copy
with its own path and subvariant, so every image is distinct, as in a large compose). Then
it times, best of ``--repeats``:

- the floor: reading ``images.json`` and ``json.loads`` of its bytes;
- ``load_compose`` (both files read, parsed, checked; productmd objects built);
- ``load_compose`` followed by the product's image selection and manifest
  (``build_compose_manifest``), what ``compose.record --dry-run`` does before any output.

It prints seconds, the ratio to the floor (target: ``load_compose`` within 2x of the floor
plus a constant) and seconds per 1,000 images, which stays flat when the cost is linear.
``--productmd`` also times productmd's own ``Images.deserialize`` (quadratic: minutes at
16,000 images; it is skipped above 4,000). The exit status is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.adapters.ingest import load_compose  # noqa: E402
from pipeline.core.config import load_product  # noqa: E402
from pipeline.stages.compose import build_compose_manifest  # noqa: E402

REAL = REPO / "tests" / "fixtures" / "real"
INFO = REAL / "fedimg-vcr-Fedora-28-20180425.0-composeinfo.json"
IMAGES = REAL / "fedimg-vcr-Fedora-28-20180425.0-images.json"
NOW = datetime(2018, 4, 26, tzinfo=UTC)  # a fixed "now" for the manifests built


def grow(doc: dict[str, Any], count: int) -> dict[str, Any]:
    """``doc`` with ``count`` distinct images, copied round-robin from its own."""
    real = [
        (variant, arch, image)
        for variant, arches in doc["payload"]["images"].items()
        for arch, images in arches.items()
        for image in images
    ]
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for k in range(count):
        variant, arch, image = real[k % len(real)]
        name = image["path"].rsplit("/", 1)[-1]
        copied = dict(image, path=f"{variant}/{arch}/copy{k}/{name}")
        if k >= len(real):
            copied["subvariant"] = f"{image['subvariant']}{k}"
        out.setdefault(variant, {}).setdefault(arch, []).append(copied)
    grown = copy.deepcopy(doc)
    grown["payload"]["images"] = out
    return grown


def best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run(count: int, folder: Path, repeats: int, with_productmd: bool) -> None:
    meta = folder / f"c{count}" / "compose" / "metadata"
    meta.mkdir(parents=True)
    shutil.copy(INFO, meta / "composeinfo.json")
    images_json = meta / "images.json"
    images_json.write_text(json.dumps(grow(json.loads(IMAGES.read_bytes()), count), indent=4))
    product = load_product(REPO / "manifests", "atomic-host")
    source = str(folder / f"c{count}")
    floor = best(lambda: json.loads(images_json.read_bytes()), repeats)
    load = best(lambda: load_compose(source), repeats)
    manifest = best(
        lambda: build_compose_manifest(
            load_compose(source), product, NOW, checksums_verified=False
        ),
        repeats,
    )
    size = images_json.stat().st_size / 1e6
    print(
        f"{count:>7} images {size:7.1f} MB   json.loads {floor:7.3f} s   "
        f"load_compose {load:7.3f} s ({load / floor:4.2f}x, {load / count * 1000:.4f} s/1k)   "
        f"+ manifest {manifest:7.3f} s ({manifest / floor:4.2f}x)"
    )
    if with_productmd and count <= 4000:
        import productmd.images  # noqa: PLC0415 - only for the comparison

        data = json.loads(images_json.read_bytes())
        theirs = best(lambda: productmd.images.Images().deserialize(copy.deepcopy(data)), 1)
        print(f"{'':>7}        productmd Images.deserialize {theirs:7.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", default="1000,4000,16000", help="sizes, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (best counts)")
    parser.add_argument("--productmd", action="store_true", help="also time productmd's loader")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fortnight-ingest-"))
    try:
        for count in (int(n) for n in args.images.split(",")):
            run(count, folder, args.repeats, args.productmd)
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
