"""Benchmark importing a large JUnit report: time, peak memory and the manifest's size.

Usage (from the repository root)::

    python benchmarks/junit.py [--cases 200000] [--failures 50] [--max-cases 1000]

It makes a scratch manifest log (throwaway keys) with one recorded compose (the real
Fedora 28 metadata, its AtomicHost images as small generated files), writes a JUnit
report with ``--cases`` test cases (``--failures`` of them failing, with a failure text,
and some output), and runs ``invoke test.import`` on it in a child process. It prints the
report's size, the import's wall time, its peak RSS (``resource.getrusage`` of the
import's process, measured by a small wrapper process), and the size of the signed
manifest it committed, with the counts it records. The exit status is 0 whatever the
figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.core.models.common import ROLES  # noqa: E402
from pipeline.log.sslib import CryptoSigner  # noqa: E402
from tests.conftest import compose_tree, new_log  # noqa: E402

COMPOSE_ID = "Fedora-28-20180425.0"
# Runs the command and prints its peak RSS (kB): the import's alone, not compose.record's.
PEAK = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
    "print('peak_kb=%d' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
    "file=sys.stderr); sys.exit(r.returncode)"
)


def write_report(path: Path, cases: int, failures: int) -> None:
    """A report in the shape pytest writes, streamed to disk."""
    every = max(1, cases // max(1, failures)) if failures else 0
    with path.open("w") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="big">\n')
        for i in range(cases):
            f.write(
                f'<testcase classname="tests.test_mod{i % 97}" name="test_case_{i}" time="0.01"'
            )
            if every and i % every == 0 and i // every < failures:
                f.write(
                    '><failure message="assert 1 == 2">Traceback (most recent call last):\n'
                    f"  File tests/test_mod.py, line {i}\nAssertionError</failure></testcase>\n"
                )
            else:
                f.write("/>\n")
        f.write("</testsuite></testsuites>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--failures", type=int, default=50)
    parser.add_argument("--max-cases", type=int, default=0, help="0: the default (1000)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fortnight-junit-"))
    try:
        signers = {role: CryptoSigner.generate_ed25519() for role in ROLES}
        log = new_log(folder, signers)
        tree = compose_tree(folder, COMPOSE_ID)
        env = {**os.environ, **log.env, "FORTNIGHT_REPO": str(log.repo)}
        invoke = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
        subprocess.run(
            [*invoke, "compose.record", "--source", str(tree.root)],
            env=env,
            check=True,
            capture_output=True,
        )
        report = folder / "junit.xml"
        write_report(report, args.cases, args.failures)
        cmd = [*invoke, "test.import", "--compose-id", COMPOSE_ID, "--suite", "openqa"]
        cmd += ["--junit", str(report), "--no-tracker"]
        if args.max_cases:
            cmd += ["--max-cases", str(args.max_cases)]
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", PEAK, *cmd], env=env, capture_output=True, text=True, check=False
        )
        took = time.perf_counter() - started
        peak_mb = int(proc.stderr.strip().splitlines()[-1].split("=")[1]) / 1024
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(proc.returncode)
        manifest = next((log.repo / "manifests/atomic-host/tests").rglob("openqa-*.json"))
        counts = next(line for line in proc.stdout.splitlines() if "test case(s)" in line)
        print(f"report: {args.cases} cases, {report.stat().st_size / 1e6:.1f} MB")
        print(f"test.import: {took:.1f} s wall, peak RSS {peak_mb:.0f} MB (the child process)")
        print(f"manifest: {manifest.stat().st_size / 1e3:.1f} kB signed")
        print(counts.split(" the report:")[0])
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
