"""Benchmark ``fortnight-verify`` on the site of a long history, from a folder.

Usage (from the repository root)::

    python benchmarks/verify_site.py [--years 10] [--products 4] [--dir DIR] [--repeats 3]

It generates (or reuses, from ``--dir``) the signed history of ``benchmarks/history.py``,
builds its site once with the history's ``site`` key (so the site has its signed
``site-index.json``), then times ``pipeline.cli.verify_site.main`` on the output folder:
cold (no state, a cold page cache is not forced) and warm (the same state folder again),
best of ``--repeats``. Target: warm under 5 s at 10 years. Informational: the exit status is
0 whatever the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import history  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: E402

from pipeline.cli.verify_site import main as verify_main  # noqa: E402
from pipeline.core.models.common import format_timestamp  # noqa: E402
from pipeline.log.sslib import CryptoSigner  # noqa: E402
from pipeline.log.store import ManifestLog  # noqa: E402
from pipeline.site.build import build_site  # noqa: E402


def timed(argv: list[str]) -> tuple[float, int, str]:
    """Seconds, exit status and output of one ``fortnight-verify`` run."""
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = verify_main(argv)
    return time.perf_counter() - start, code, out.getvalue().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--products", type=int, default=4)
    parser.add_argument("--dir", help="work dir; histories there are reused (default: temp)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="fortnight-verify-bench-"))
    repo = history.ensure_history(base, args.years, args.products, args.workers)
    keys = json.loads((repo.parent / "keys.json").read_text())
    site_key = CryptoSigner(load_pem_private_key(keys["site"].encode(), password=None))
    out = repo.parent / "site"
    at = datetime.combine(history.END, datetime.min.time(), UTC)
    start = time.perf_counter()
    build_site(REPO / "pelicanconf.py", repo, out, at=at, site_signers=[site_key])
    print(f"site built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    fingerprint = ManifestLog(repo).load_root().chain.fingerprint
    claimed = len(json.loads((out / "site-index.json").read_bytes())["signed"]["files"])
    state = base / "verify-state"
    shutil.rmtree(state, ignore_errors=True)
    argv = [str(out), "--root", fingerprint, "--state", str(state), "--at", format_timestamp(at)]
    cold, code, text = timed(argv)
    if code != 0:
        print(f"fortnight-verify failed: {text}", file=sys.stderr)
        return 1
    warm = min(timed(argv)[0] for _ in range(args.repeats))
    print(f"{args.years} years x {args.products} products: {claimed:,} claimed files")
    print(f"fortnight-verify (folder): first run {cold:.2f} s, warm {warm:.2f} s (target < 5 s)")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
