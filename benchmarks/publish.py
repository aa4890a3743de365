"""Benchmark ``site.publish``: a whole site, then the same site with one more release.

Usage (from the repository root)::

    python benchmarks/publish.py [--years 1] [--products 2] [--workers 8] [--site DIR]

It generates a synthetic site folder shaped like the real build's (per product: a page
per nightly compose, its signed manifest and test logs, a paginated dashboard, bug pages,
a release archive with CHECKSUM and SHA256SUMS every 14 days, "latest" pointers, a stream
and a feed; a root index and the theme), publishes it to moto's S3 server on 127.0.0.1,
then adds one day (a compose and a release) and publishes again. For each publish it
prints the objects and bytes uploaded, the objects left unchanged and deleted, and the
time. By default the site is the real build (``pipeline.site.build.build_site``) of the
synthetic history of benchmarks/history.py (``--years``, ``--products``, reused from
``--dir``), and the second publish follows one more nightly compose and release decision
committed to it, rebuilt; ``--synthetic`` publishes a generated folder shaped like it
instead, and ``--site DIR`` an existing built site (published twice, unchanged, so the
second figures are the cost of a no-op publish).

The figures are informational: no targets, the exit status is 0 unless something failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

# Run as a plain script, ``sys.path[0]`` is ``benchmarks/``: make the repository importable.
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CONF = REPO / "pelicanconf.py"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from pipeline.adapters.aws.s3 import s3_client_factory  # noqa: E402
from pipeline.site import build as sitebuild  # noqa: E402
from pipeline.site.publish import PublishReport, publish  # noqa: E402

BUCKET = "fortnight-benchmark"
START = date(2015, 1, 6)
PER_PAGE = 50
CADENCE = 14
ARCHES = ("x86_64", "aarch64")


def html(title: str, *links: str, body: str = "") -> str:
    anchors = "\n".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<link rel="stylesheet" href="/theme/css/site.css"></head><body><h1>{title}</h1>'
        f"<ul>{anchors}</ul>{body}</body></html>\n"
    )


class SiteWriter:
    """Writes files under ``root``, only when their bytes change (as the real build does)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, data: str | bytes) -> None:
        raw = data.encode() if isinstance(data, str) else data
        path = self.root / rel
        if path.is_file() and path.read_bytes() == raw:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)


def product_site(out: SiteWriter, product: str, days: int) -> None:
    """One product's pages and files for ``days`` nightly composes."""
    ids = [f"{product}-{(START + timedelta(days=d)).strftime('%Y%m%d')}.0" for d in range(days)]
    releases = [(START + timedelta(days=d)).isoformat() for d in range(0, days, CADENCE)]
    nav = ("../index.html", "../dashboard/", "../releases/")
    for n, cid in enumerate(ids):
        bug = f"{1000 + n // 30}"
        out.write(
            f"{product}/composes/{cid}.html",
            html(
                cid,
                *nav,
                f"../bugs/{bug}.html",
                f"../../manifests/{product}/composes/{cid}.json",
                *(f"../../logs/{cid}/{arch}/smoke.log" for arch in ARCHES),
                body="<p>" + "compose details " * 60 + "</p>",
            ),
        )
        out.write(
            f"manifests/{product}/composes/{cid}.json",
            json.dumps({"signed": {"compose_id": cid, "pad": "x" * 1500}, "signatures": []}),
        )
        for arch in ARCHES:
            out.write(f"logs/{cid}/{arch}/smoke.log", f"{cid} {arch}: PASSED\n" * 80)
    for b in range(len(ids) // 30 + 1):
        members = [cid for n, cid in enumerate(ids) if n // 30 == b]
        out.write(
            f"{product}/bugs/{1000 + b}.html",
            html(f"bug {1000 + b}", *nav, *(f"../composes/{c}.html" for c in members)),
        )
    newest = list(reversed(ids))
    pages = max(1, -(-len(ids) // PER_PAGE))
    for p in range(1, pages + 1):
        name = "index.html" if p == 1 else f"page-{p}.html"
        chunk = newest[(p - 1) * PER_PAGE : p * PER_PAGE]
        out.write(
            f"{product}/dashboard/{name}",
            html(f"dashboard {p}", "../index.html", *(f"../composes/{c}.html" for c in chunk)),
        )
    for rid in releases:
        for name in ("CHECKSUM", "SHA256SUMS"):
            out.write(f"{product}/releases/{rid}/{name}", f"SHA256 ({product}-{rid}.qcow2) = 00\n")
        out.write(f"manifests/{product}/releases/{rid}.json", json.dumps({"release_id": rid}))
    out.write(
        f"{product}/releases/index.html",
        html("archive", "../index.html", *(f"{r}/CHECKSUM" for r in reversed(releases))),
    )
    for arch in ARCHES:
        latest = f"latest/{product}/{arch}/qcow2"
        out.write(f"{latest}/latest", f"{product}-{releases[-1]}.{arch}.qcow2\n")
        out.write(f"{latest}/index.html", html("latest", f"https://dl.example.org/{releases[-1]}"))
    out.write(
        f"{product}/index.html",
        html(product, "../index.html", "dashboard/", "releases/", f"../feeds/{product}.atom"),
    )
    out.write(f"streams/{product}.json", json.dumps({"stream": product, "release": releases[-1]}))
    entries = "".join(f"<entry><id>{c}</id></entry>" for c in newest[:20])
    out.write(f"feeds/{product}.atom", f"<feed>{entries}</feed>\n")


def synthetic_site(root: Path, products: int, days: int) -> None:
    """A whole site: ``products`` products with ``days`` composes each, the theme, the root."""
    out = SiteWriter(root)
    names = [f"product-{i}" for i in range(products)]
    for name in names:
        product_site(out, name, days)
    out.write("theme/css/site.css", "body { font-family: sans-serif }\n" * 40)
    out.write("manifests/trust.json", json.dumps({"keys": {}, "roles": {}}))
    out.write("index.html", html("Fortnight", *(f"{n}/" for n in names)))
    out.write(".fortnight/build.json", "{}\n")  # the build record: never published


def show(label: str, report: PublishReport, seconds: float) -> None:
    mib = report.bytes_uploaded / (1 << 20)
    print(
        f"{label:<14} uploaded {report.uploaded:>6} objects {mib:>9.2f} MiB  "
        f"unchanged {report.unchanged:>6}  deleted {report.deleted:>4}  {seconds:>7.2f} s"
    )


def real_site(
    base: Path, years: int, nproducts: int
) -> tuple[Callable[[], Path], Callable[[], str]]:
    """The real build of a synthetic history (benchmarks/site.py's scratch clone), and a
    function that commits one more release (a nightly compose, then the release day's
    decision) and builds again."""
    bench = _load_site_benchmark()
    with contextlib.redirect_stdout(sys.stderr):
        history_log = bench.history.ensure_history(base, years, nproducts, 2)
    scratch = bench.scratch_for(base, history_log, years, nproducts)
    moment = bench.moment_for(scratch, nproducts)

    def build() -> Path:
        sitebuild.build_site(CONF, scratch.log, scratch.output, at=moment.build_at)
        return Path(scratch.output)

    def add_release() -> str:
        bench.commit_compose(scratch, moment, 0)
        return str(bench.commit_release(scratch, moment))

    shutil.rmtree(scratch.output, ignore_errors=True)
    return build, add_release


def _load_site_benchmark() -> Any:
    """benchmarks/site.py as a module (its name clashes with the stdlib's ``site``)."""
    spec = importlib.util.spec_from_file_location("site_benchmark", BENCH / "site.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("benchmarks/site.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules["site_benchmark"] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:  # noqa: PLR0915 - a script's linear story
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, default=1, help="history per product (real build)")
    parser.add_argument("--products", type=int, default=4)
    parser.add_argument("--workers", type=int, default=8, help="parallel uploads per stage")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "fortnight-bench")
    parser.add_argument("--site", type=Path, help="publish this built site instead")
    parser.add_argument(
        "--synthetic", action="store_true", help="a generated folder instead of the real build"
    )
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
        factory = s3_client_factory(url)
        target = f"s3://{BUCKET}/site"
        with tempfile.TemporaryDirectory() as scratch:
            days = int(args.years * 365)
            if args.site is not None:
                site, step = args.site, None
            elif args.synthetic:
                site = Path(scratch, "output")
                synthetic_site(site, args.products, days)
                step = "synthetic"
            else:
                build, add_release = real_site(args.dir, args.years, args.products)
                site = build()
                step = "real"
            files = sum(1 for p in site.rglob("*") if p.is_file() and ".fortnight" not in p.parts)
            print(f"site: {site} ({files} files), {args.workers} workers, moto S3 at {url}")

            start = time.perf_counter()
            first = publish(site, target, client_factory=factory, workers=args.workers)
            show("first publish", first, time.perf_counter() - start)

            if step == "synthetic":
                synthetic_site(site, args.products, days + CADENCE)  # 14 composes, 1 release
                label = "+14 days"
            elif step == "real":
                label = f"+1 compose and {add_release()}"
                build()
            else:
                label = "unchanged"
            start = time.perf_counter()
            again = publish(site, target, client_factory=factory, workers=args.workers)
            show(label, again, time.perf_counter() - start)
            stages = len(again.plan.stages())
            print(
                f"second publish: {again.uploaded} of {files} objects uploaded "
                f"({again.bytes_uploaded:,} bytes), {again.deleted} deleted, in {stages} stages"
            )
            for key in again.uploaded_keys:
                print(f"  up: {key}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
