"""Benchmark the OSTree promotion of a release against the same raw ``ostree`` commands.

Usage (from the repository root)::

    python benchmarks/ostree.py [--files 20000] [--changed 400] [--repeats 5] [--dir DIR]

It makes a compose repository with two commits of a tree of ``--files`` files (the second
changes ``--changed`` of them and adds as many; both carry ``version`` metadata and are
bound to the public ref) and a throwaway GPG key, and a public repository (archive mode)
where the first commit is the released one. Then, ``--repeats`` times each, alternating,
on a fresh copy of that public repository:

- the floor, the commands Fedora's two-week script ran by hand: ``ostree pull-local``,
  ``ostree gpg-sign``, ``ostree static-delta generate --from --to``, ``ostree reset``,
  ``ostree summary -u --gpg-sign``;
- Fortnight's promotion of the second commit, as ``release.cut`` runs it around the
  release manifest (:func:`pipeline.stages.ostree.prepare` then
  :func:`pipeline.stages.ostree.apply`), which also checks the commit's ref binding and
  that each step is not done already.

It prints the median wall time of each and their ratio (target: at most 1.2x the floor).
The exit status is 0 whatever the figures, non-zero only on an error.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.adapters.ostree import GpgKey, OstreeRepo, generate_gpg_key
from pipeline.core.config import OstreeConfig
from pipeline.core.models.manifests import OstreePromotion
from pipeline.stages.ostree import OstreeSetup, apply, prepare

REF = "fedora/28/x86_64/atomic-host"
SOURCE_REF = "fedora/28/x86_64/updates/atomic-host"
TARGET = 1.2


def make_tree(folder: Path, files: int, changed: int, generation: int) -> None:
    """``files`` small files in 100 folders; generation 2 changes and adds ``changed``."""
    for i in range(files):
        path = folder / f"usr/share/d{i % 100:02d}/f{i}"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"file {i}\n" * (1 + i % 7)
        if generation == 2 and i < changed:
            text += "changed\n"
        path.write_text(text)
    if generation == 2:
        for i in range(changed):
            (folder / f"usr/share/new/n{i}").parent.mkdir(parents=True, exist_ok=True)
            (folder / f"usr/share/new/n{i}").write_text(f"new {i}\n")


def setup_repos(work: Path, files: int, changed: int) -> tuple[OstreeRepo, GpgKey, str, str]:
    """The compose repository with both commits, the key, and the two commit checksums."""
    source = OstreeRepo(work / "compose")
    source.init("archive")
    commits = []
    for generation in (1, 2):
        tree = work / f"tree{generation}"
        make_tree(tree, files, changed, generation)
        commits.append(
            source.commit(SOURCE_REF, tree, f"28.{generation}", f"gen {generation}", bind=[REF])
        )
        shutil.rmtree(tree)
    fpr, _public = generate_gpg_key(work / "gnupg", "Benchmark", "bench@example.invalid")
    return source, GpgKey(fpr, work / "gnupg"), commits[0], commits[1]


def base_public(work: Path, source: OstreeRepo, key: GpgKey, first: str) -> Path:
    """The public repository with the first commit released (signed, ref, summary)."""
    public = OstreeRepo(work / "public-base")
    public.init("archive")
    public.pull_local(source, first)
    public.sign(first, key)
    public.set_ref(REF, first)
    public.update_summary(key)
    return public.path


def fresh_copy(base: Path, dest: Path) -> OstreeRepo:
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["cp", "-a", str(base), str(dest)], check=True)
    return OstreeRepo(dest)


def floor(repo: OstreeRepo, source: OstreeRepo, key: GpgKey, first: str, second: str) -> None:
    """The raw commands, as run by hand."""
    home = key.homedir_args()
    repo.run("pull-local", str(source.path), second, what="pull-local")
    repo.run("gpg-sign", second, key.key_id, *home, what="gpg-sign")
    repo.run("static-delta", "generate", f"--from={first}", f"--to={second}", what="delta")
    repo.run("reset", REF, second, what="reset")
    repo.run("summary", "-u", f"--gpg-sign={key.key_id}", *home, what="summary")


def fortnight(repo: OstreeRepo, source: OstreeRepo, key: GpgKey, first: str, second: str) -> None:
    """Fortnight's promotion of the second commit."""
    setup = OstreeSetup(OstreeConfig(), repo, source, key)
    planned = [
        OstreePromotion(arch="x86_64", ref=REF, commit=second, version="28.2", previous=first)
    ]
    prepare(setup, planned)
    apply(setup, planned)


def timed(run: Callable[..., None], *args: object) -> float:
    started = time.perf_counter()
    run(*args)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--changed", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="fortnight-bench-ostree-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"making a {args.files}-file tree, two commits ...", flush=True)
        source, key, first, second = setup_repos(work, args.files, args.changed)
        base = base_public(work, source, key, first)
        times: dict[str, list[float]] = {"floor": [], "fortnight": []}
        for _ in range(args.repeats):
            for name, fn in (("floor", floor), ("fortnight", fortnight)):
                repo = fresh_copy(base, work / "public")
                times[name].append(timed(fn, repo, source, key, first, second))
                assert repo.resolve(REF) == second
                assert repo.has_delta(first, second)
        floor_s = statistics.median(times["floor"])
        ours = statistics.median(times["fortnight"])
        n = args.changed
        print(f"tree: {args.files} files; the second commit changes {n} and adds {n}")
        print(f"floor (raw ostree commands): median {floor_s:.3f} s of {args.repeats}")
        print(f"fortnight promotion:         median {ours:.3f} s of {args.repeats}")
        verdict = "within" if ours <= TARGET * floor_s else "over"
        print(f"ratio: {ours / floor_s:.2f}x ({verdict} the {TARGET}x target)")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
