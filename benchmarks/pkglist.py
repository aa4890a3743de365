"""Benchmark reading an OSTree commit's package list (``rpmostree.rpmdb.pkglist``).

The functions timed are ``pipeline.adapters.pkglist.parse_pkglist`` (the GVariant text
parser) and ``OstreeRepo.package_list`` (``ostree show`` plus the parser).

Usage (from the repository root)::

    python benchmarks/pkglist.py [--rpms 450,1500,50000] [--repeats 5]

For each size it writes a list of that many rpms (Fedora Atomic Host has about 450), and
prints its text size, the median time of ``parse_pkglist`` against a regex split of the
same text (the floor: one pass, no checks), and, while the text fits in one command-line
argument (``ostree commit --add-metadata``), of ``package_list`` on a real commit against
the bare ``ostree show`` (the command's own cost). The largest size the limits allow
(50,000 rpms, about 3 MB) shows the worst hostile case. It ends with the process's peak
RSS. Informational: exit status 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Run as a plain script, ``sys.path[0]`` is ``benchmarks/``: make the repository importable.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipeline.adapters.ostree import OstreeRepo  # noqa: E402
from pipeline.adapters.pkglist import PKGLIST_KEY, format_pkglist, parse_pkglist  # noqa: E402


def rpms(count: int) -> list[tuple[str, int, str, str, str]]:
    """``count`` plausible rpms, names long enough to look like Fedora's."""
    return [
        (f"package-{i:05d}-libs", i % 3, f"1.{i % 97}.{i % 13}", f"{i % 50 + 1}.fc28", "x86_64")
        for i in range(count)
    ]


def median(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def commit(folder: Path, text: str) -> tuple[OstreeRepo, str]:
    repo = OstreeRepo(folder / "repo")
    repo.init("archive")
    tree = folder / "tree"
    tree.mkdir()
    (tree / "f").write_text("x")
    checksum = repo.commit("bench", tree, "1", "bench", metadata={PKGLIST_KEY: text})
    return repo, checksum


def real_commit(text: str, repeats: int) -> tuple[float, float]:
    """Median seconds of ``package_list`` and of the bare ``ostree show`` on a commit."""
    with tempfile.TemporaryDirectory(prefix="fortnight-bench-") as tmp:
        repo, checksum = commit(Path(tmp), text)
        key = f"--print-metadata-key={PKGLIST_KEY}"
        cmd = ["ostree", "show", f"--repo={repo.path}", key, checksum]
        assert repo.package_list(checksum) is not None
        read = median(lambda: repo.package_list(checksum), repeats)
        show = median(lambda: subprocess.run(cmd, capture_output=True, check=True), repeats)
    return read, show


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rpms", default="450,1500,50000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    floor_re = re.compile(r"'[^']*'|[0-9]+")
    print(
        f"{'rpms':>7} {'text':>10} {'parse':>9} {'floor':>9} {'ratio':>6} {'read':>9} {'show':>9}"
    )
    for count in (int(n) for n in args.rpms.split(",")):
        text = format_pkglist(rpms(count))
        parse = median(lambda t=text: parse_pkglist(t), args.repeats)  # type: ignore[misc]
        floor = median(lambda t=text: floor_re.findall(t), args.repeats)  # type: ignore[misc]
        read = show = ""
        if len(text) < 120_000:  # one command-line argument holds at most 128 KiB
            seconds = real_commit(text, args.repeats)
            read, show = (f"{s:8.3f}s" for s in seconds)
        print(
            f"{count:>7} {len(text):>9}B {parse:8.3f}s {floor:8.3f}s {parse / floor:5.1f}x "
            f"{read:>9} {show:>9}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
