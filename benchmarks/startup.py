"""Benchmark the start-up of the operator's everyday tasks against a bare ``import invoke``.

Usage (from the repository root)::

    python benchmarks/startup.py [--dir DIR] [--weeks 4] [--repeats 9]

It makes a demo manifest log (``invoke demo --no-serve --weeks N --dir DIR``; reused when
``DIR/log`` already exists), warms the verification cache once, then times, each
``--repeats`` times in a fresh process (in rounds: one run of each per round), with
``FORTNIGHT_REPO`` pointing at that log:

- the floor: ``python -c "import invoke"`` (the interpreter and invoke itself);
- ``invoke --list``, ``invoke status`` and ``invoke release.cut --dry-run``, ``invoke verify``.

Each command runs once untimed first, with bytecode writing on (``PYTHONDONTWRITEBYTECODE``
is dropped from the runs' environment), so the timed runs find compiled modules and the
verification cache as every run after an install's first does.

It prints the median wall time of each (and the median CPU time, user + system, which a
busy machine disturbs less), its distance from the floor against the target
(each task within 0.35 s of the floor), and which of the heavy modules (boto3, botocore,
pelican, fedora_messaging) each command loaded (``sys.modules`` at exit): these tasks
use none of them, so none should load. Targets are informational: the exit status is 0
whatever the figures, non-zero only on an error.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET_OVER_FLOOR = 0.35  # seconds
HEAVY = ("boto3", "botocore", "pelican", "fedora_messaging")
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--list",),
    ("status",),
    ("release.cut", "--dry-run"),
    ("verify",),
)


def _invoke() -> str:
    found = BIN / "invoke"
    if found.exists():
        return str(found)
    located = shutil.which("invoke")
    if located is None:
        raise SystemExit("error: invoke is not installed; run: pip install -e '.[test]'")
    return located


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run."""
    cpu = _cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):  # status exits 1 when the page is stale: still a run
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
        raise SystemExit(f"error: {' '.join(argv)} exited {done.returncode}: {tail}")
    return elapsed, _cpu() - cpu


_PROBE = """
import atexit, json, sys
heavy = {heavy!r}
def report():
    loaded = {{m.split(".")[0] for m, mod in sys.modules.items() if mod is not None}}
    sys.stderr.write("HEAVY " + json.dumps(sorted(loaded & set(heavy))) + "\\n")
atexit.register(report)
sys.argv = ["invoke", *{args!r}]
from invoke.main import program
program.run()
"""


def _heavy_imports(command: Sequence[str], env: dict[str, str]) -> list[str]:
    """Which heavy modules a run of ``invoke COMMAND`` actually loaded (``sys.modules`` at exit)."""
    code = _PROBE.format(heavy=HEAVY, args=list(command))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    line = next((x for x in done.stderr.splitlines() if x.startswith("HEAVY ")), None)
    if line is None:
        raise SystemExit(
            f"error: could not probe 'invoke {' '.join(command)}': {done.stderr[-300:]}"
        )
    names: list[str] = json.loads(line.removeprefix("HEAVY "))
    return names


def _medians(
    argvs: Sequence[Sequence[str]], env: dict[str, str], repeats: int
) -> list[tuple[float, float]]:
    """Median wall and CPU time of each command (on a busy machine the CPU time is the
    steadier figure). The commands take turns, one run each per round, so a machine
    that gets slower or faster during the benchmark moves the floor and the tasks alike."""
    runs: list[list[tuple[float, float]]] = [[] for _ in argvs]
    for _ in range(repeats):
        for argv, times in zip(argvs, runs, strict=True):
            times.append(_run(argv, env))
    return [
        (statistics.median(r[0] for r in times), statistics.median(r[1] for r in times))
        for times in runs
    ]


def _make_log(workdir: Path, weeks: int, env: dict[str, str]) -> Path:
    log = workdir / "log"
    if not (log / ".git").exists():
        print(f"making a {weeks}-week demo log in {workdir} ...", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
        argv = [_invoke(), "demo", "--no-serve", "--weeks", str(weeks), "--dir", str(workdir)]
        subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True)
    return log


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to make (or reuse) the demo log")
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="fortnight-startup-"))
    # Bytecode is written and reused, as on every run after an install's first: with
    # PYTHONDONTWRITEBYTECODE set, each run would compile every module changed since its
    # .pyc was written again, and time the compiler.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FORTNIGHT_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    log = _make_log(workdir.resolve(), args.weeks, env)
    env["FORTNIGHT_REPO"] = str(log)
    env["FORTNIGHT_KEY_RELEASE"] = str(log.parent / "keys" / "release.key")
    invoke = _invoke()
    # Warm the verification cache and the bytecode, as a daily run finds them.
    for command in COMMANDS:
        _run([invoke, *command], env)

    floor, *timed = _medians(
        [[sys.executable, "-c", "import invoke"], *([invoke, *c] for c in COMMANDS)],
        env,
        args.repeats,
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.repeats} runs each")
    print(
        f"{'command':<28}{'median':>9}{'over floor':>12}  {'target':<8}"
        f"{'cpu':>7}{'over floor':>12}  heavy imports"
    )
    floor_label = 'python -c "import invoke"'
    print(f"{floor_label:<28}{floor[0]:>8.3f}s{'':>12}  {'':<8}{floor[1]:>6.3f}s")
    for command, (wall, cpu) in zip(COMMANDS, timed, strict=True):
        over = wall - floor[0]
        verdict = "ok" if over <= TARGET_OVER_FLOOR else "MISSED"
        heavy = ", ".join(_heavy_imports(command, env)) or "none"
        label = "invoke " + " ".join(command)
        print(
            f"{label:<28}{wall:>8.3f}s{over:>+11.3f}s  {verdict:<8}"
            f"{cpu:>6.3f}s{cpu - floor[1]:>+11.3f}s  {heavy}"
        )
    print(f"target: each task within {TARGET_OVER_FLOOR:.2f} s of the floor, no heavy imports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
