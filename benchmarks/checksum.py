"""Benchmark the image checksum path of compose ingestion.

The function timed is ``pipeline.adapters.hashing.verify_checksums``.

Usage (from the repository root)::

    python benchmarks/checksum.py [--size-gib 2] [--dir DIR]

Two image files of ``--size-gib`` GiB each are written by a child process, which computes
their size and sha256 while writing; this process then warms the page cache, measures a
plain ``hashlib`` loop (the floor) and ``verify_checksums`` on one and on two images, and
prints the figures against their targets. The generated files are removed at the end.

Generation runs in a child process so that the peak RSS reported is that of the process
that did the hashing and nothing memory-heavy besides. Targets are informational: the exit
status is 0 whatever the figures, and non-zero only on an error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

# Run as a plain script, ``sys.path[0]`` is ``benchmarks/``: make the repository importable.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rich.progress import Progress  # noqa: E402

from pipeline.adapters.hashing import HashJob, verify_checksums  # noqa: E402
from pipeline.errors import FortnightError  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
BLOCK = 64 * MiB  # random block written repeatedly (with a distinct counter) to generate images
READ_CHUNK = 1 << 20  # the floor reads 1 MiB at a time, like verify_checksums
IMAGES = 2
REPEATS = 3
SLACK = 64 * MiB  # free space to keep beyond the images themselves

ONE_IMAGE_TARGET = 0.9  # x the floor
TWO_IMAGE_TARGET = 1.6  # x the single-image floor, on 2 cores
RSS_TARGET_MB = 100.0


class ImageSpec(TypedDict):
    """One generated image, as the generating child reports it on stdout."""

    name: str
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    label: str
    value: str
    ratio: str = ""
    target: str = ""
    verdict: str = ""


# --- generation (child process) ---------------------------------------------------------------


def generate_image(path: Path, size: int) -> ImageSpec:
    """Write ``size`` bytes of random-looking data to ``path``; return its size and sha256.

    One 64 MiB block of ``os.urandom`` is written over and over, its first 8 bytes replaced
    by the offset so no two blocks are equal. The digest is computed from the bytes written,
    independently of the code under test. The file is fsynced so that no writeback competes
    with the measurements.
    """
    block = bytearray(os.urandom(BLOCK))
    view = memoryview(block)
    digest = hashlib.sha256()
    written = 0
    with path.open("wb") as f:
        while written < size:
            view[:8] = written.to_bytes(8, "little")
            n = min(BLOCK, size - written)
            digest.update(view[:n])
            f.write(view[:n])
            written += n
        f.flush()
        os.fsync(f.fileno())
    return ImageSpec(name=path.name, path=str(path), size=written, sha256=digest.hexdigest())


def image_paths(directory: Path) -> list[Path]:
    """Where the images go."""
    return [directory / f"checksum-bench-{i}.img" for i in range(1, IMAGES + 1)]


def generate_only(directory: Path, size: int) -> int:
    """Child entry point: write the images, print their specs as JSON on stdout."""
    specs = [generate_image(path, size) for path in image_paths(directory)]
    json.dump(specs, sys.stdout)
    return 0


def generate_in_child(directory: Path, size_gib: float) -> list[ImageSpec]:
    """Run this script with ``--generate-only`` and read back what it wrote."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--generate-only",
        "--dir",
        str(directory),
        "--size-gib",
        repr(size_gib),
    ]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    raw = json.loads(out)
    if not isinstance(raw, list) or len(raw) != IMAGES:
        raise RuntimeError(f"generator printed unexpected output: {out[:200]!r}")
    return cast(list[ImageSpec], raw)


# --- measurement (this process) ---------------------------------------------------------------


def warm_cache(paths: Sequence[Path]) -> float:
    """Read every file once so that all timed runs hash from the page cache; seconds taken."""
    buf = bytearray(READ_CHUNK)
    start = time.perf_counter()
    for path in paths:
        with path.open("rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    return time.perf_counter() - start


def sha256_floor(path: Path) -> str:
    """The floor: the plainest streaming sha256 there is."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(READ_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def best_of(run: Callable[[], object], repeats: int = REPEATS) -> float:
    """Fastest wall time of ``repeats`` runs, in seconds."""
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def mem_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None where there is no such file."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def mibps(size: int, seconds: float) -> float:
    """Throughput in MiB/s."""
    return size / MiB / seconds


def verdict(ok: bool) -> str:
    """The word shown next to a target."""
    return "PASS" if ok else "MISS"


def print_table(rows: Sequence[Row]) -> None:
    """Left-aligned label, right-aligned figures."""
    header = Row("measurement", "figure", "ratio", "target", "result")
    widths = [
        max(len(getattr(r, f)) for r in [header, *rows])
        for f in ("label", "value", "ratio", "target", "verdict")
    ]
    for r in [header, *rows]:
        print(
            f"  {r.label:<{widths[0]}}  {r.value:>{widths[1]}}  {r.ratio:>{widths[2]}}"
            f"  {r.target:<{widths[3]}}  {r.verdict}".rstrip()
        )


def measure(specs: Sequence[ImageSpec]) -> None:
    """Warm the cache, time every variant, print the table."""
    jobs = [HashJob(s["name"], s["path"], s["size"], s["sha256"]) for s in specs]
    paths = [Path(s["path"]) for s in specs]
    size = specs[0]["size"]
    cores = len(os.sched_getaffinity(0))

    total = sum(s["size"] for s in specs)
    available = mem_available()
    if available is not None and available < total:
        print(
            f"warning: the images ({total / GiB:.2f} GiB) may not fit in the page cache "
            f"(MemAvailable {available / GiB:.2f} GiB): figures may include disk reads"
        )
    warm = warm_cache(paths)
    print(
        f"warming page cache: read each image once before timing "
        f"({total / GiB:.2f} GiB in {warm:.2f} s); every timed run hashes from the page cache"
    )
    rss_before = peak_rss_mb()

    def floor() -> None:
        if (got := sha256_floor(paths[0])) != specs[0]["sha256"]:
            raise RuntimeError(f"floor loop computed {got}, generator wrote {specs[0]['sha256']}")

    rich_sink = Progress(disable=True)

    print(f"timing: best of {REPEATS} runs each, {cores} core(s) available ...", flush=True)
    floor_s = best_of(floor)
    one_null_s = best_of(lambda: verify_checksums(jobs[:1]))
    one_rich_s = best_of(lambda: verify_checksums(jobs[:1], progress=rich_sink))
    two_s = best_of(lambda: verify_checksums(jobs))
    rss = peak_rss_mb()

    floor_tp = mibps(size, floor_s)
    one_null = mibps(size, one_null_s) / floor_tp
    one_rich = mibps(size, one_rich_s) / floor_tp
    two = mibps(total, two_s) / floor_tp
    workers = min(len(jobs), cores)

    def fig(nbytes: int, seconds: float) -> str:
        return f"{mibps(nbytes, seconds):7.0f} MiB/s in {seconds:6.3f} s"

    two_target = f">= {TWO_IMAGE_TARGET:.2f}x (2 cores)"
    if cores < 2:
        two_target += f"; only {cores} here"
    print()
    print_table(
        [
            Row("sha256 floor: hashlib, f.read(1 MiB), 1 image", fig(size, floor_s), "1.00x"),
            Row(
                "verify_checksums, 1 image, NullProgress (default)",
                fig(size, one_null_s),
                f"{one_null:.2f}x",
                f">= {ONE_IMAGE_TARGET:.2f}x",
                verdict(one_null >= ONE_IMAGE_TARGET),
            ),
            Row(
                "verify_checksums, 1 image, rich Progress(disable=True)",
                fig(size, one_rich_s),
                f"{one_rich:.2f}x",
                f">= {ONE_IMAGE_TARGET:.2f}x",
                verdict(one_rich >= ONE_IMAGE_TARGET),
            ),
            Row(
                f"verify_checksums, 2 images, {workers} workers (aggregate)",
                fig(total, two_s),
                f"{two:.2f}x",
                two_target,
                verdict(two >= TWO_IMAGE_TARGET),
            ),
            Row(
                "peak RSS of this process (ru_maxrss)",
                f"{rss:.1f} MB",
                "",
                f"< {RSS_TARGET_MB:.0f} MB",
                verdict(rss < RSS_TARGET_MB),
            ),
        ]
    )
    print()
    print(
        f"ratios are to the single-image floor; peak RSS is of pid {os.getpid()}, which only "
        f"measured (images were written by a child process); it was {rss_before:.1f} MB "
        f"after imports and cache warming, before the first timed run"
    )


# --- driver -----------------------------------------------------------------------------------


def positive_gib(text: str) -> float:
    """argparse type: a positive number of GiB, fractions allowed."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or int(value * GiB) < 1:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark verify_checksums against a plain hashlib loop."
    )
    parser.add_argument(
        "--size-gib",
        type=positive_gib,
        default=2.0,
        help="size of each of the two images, in GiB (default 2; 0.25 is quick)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to write the images (default: a fresh temporary folder, "
        "removed at the end); the images are removed at the end either way",
    )
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def check_free_space(directory: Path, size: int) -> None:
    """Exit with one line if ``directory`` cannot hold the images."""
    probe = directory.resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = IMAGES * size + SLACK
    if free < need:
        sys.exit(
            f"error: not enough free disk space in {probe}: {IMAGES} images of "
            f"{size / GiB:.2f} GiB need {need / GiB:.2f} GiB, {free / GiB:.2f} GiB is free "
            f"(pass --dir elsewhere or a smaller --size-gib)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Generate, measure, clean up."""
    args = parse_args(argv)
    size_gib: float = args.size_gib
    size = int(size_gib * GiB)
    if args.generate_only:
        if args.dir is None:
            sys.exit("error: --generate-only needs --dir")
        return generate_only(Path(args.dir), size)

    own_dir = args.dir is None
    directory = Path(tempfile.gettempdir()) if own_dir else Path(args.dir)
    check_free_space(directory, size)
    if own_dir:
        directory = Path(tempfile.mkdtemp(prefix="checksum-bench-"))
    else:
        directory.mkdir(parents=True, exist_ok=True)

    print(f"checksum benchmark: {IMAGES} images of {size / GiB:.2f} GiB in {directory}")
    print(
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"{len(os.sched_getaffinity(0))} core(s) available"
    )
    try:
        print(
            "generating images in a child process (size and sha256 computed while writing) ...",
            flush=True,
        )
        start = time.perf_counter()
        specs = generate_in_child(directory, size_gib)
        print(f"generated {len(specs)} images in {time.perf_counter() - start:.1f} s")
        measure(specs)
    except FortnightError as e:
        print(f"error: {e.diagnostics()}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print(f"error: image generation failed (exit status {e.returncode})", file=sys.stderr)
        return 1
    finally:
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for path in image_paths(directory):
                path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
