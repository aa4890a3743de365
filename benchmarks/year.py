"""Benchmark the simulated year: the demo's pipeline, day by day, over a year of nights.

Usage (from the repository root)::

    python benchmarks/year.py [--days 365] [--seed 2018] [--dir DIR] [--arches x86_64]
                              [--site-every 30] [--default-battery]

Plays :func:`pipeline.demo.simulate.year_script` through :class:`pipeline.demo.simulate.Simulation`
(compose.record, test.run, tracker.sync, the operator's fail, withdrawal and base switch,
release.cut: the functions the tasks call) in a scratch manifest log under ``--dir``
(default: a temporary folder, removed afterwards), with the year's battery
(:data:`pipeline.demo.simulate.FAST_BATTERY`, shell one-liners; ``--default-battery`` runs the
product's own, one ``python -m pipeline.checks`` per test and image). Every
``--site-every`` days, and on the last, it builds the site for that moment (incremental,
into the same folder, as a scheduled ``site.build`` would).

It prints the summary the test checks (days fresh, stale, with a withdrawn release;
releases, stale cycles, bugs opened and closed, tracker outages) and the wall time per
phase: compose (writing and recording the compose), test (the battery and its results),
sync (the tracker), operator, cut (release.cut), state (the day's derived state), site
builds, and a final ``verify_all``, with the per-day cost of the first and last 30 days to
show how it grows with the log. The exit status is 0 whatever the figures, and non-zero
only on an error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from datetime import time as dtime
from pathlib import Path

# Run as a plain script, ``sys.path[0]`` is ``benchmarks/``: make the repository importable.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipeline.core.state import ReleaseView  # noqa: E402
from pipeline.demo.simulate import (  # noqa: E402
    PRODUCT,
    DayReport,
    Simulation,
    with_battery,
    year_script,
)

START = date(2018, 1, 1)
#: year_script's story (a failing cycle, the missed cut, the operator fail) needs nine
#: release days: the first is day 7, then every 14 days.
MIN_DAYS = 7 + 8 * 14 + 1


@dataclass
class SiteBuilds:
    """How many site builds, and their wall time."""

    builds: int = 0
    seconds: float = 0.0


def order(release: ReleaseView) -> tuple[str, int]:
    """A release decision's place: its cycle, then its sequence in the cycle."""
    return (release.manifest.cycle, release.manifest.sequence)


def main(argv: list[str] | None = None) -> int:
    """Run the year and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=2018)
    parser.add_argument("--dir", type=Path, help="work folder (kept); default: a temporary one")
    parser.add_argument("--arches", default="x86_64", help="comma-separated (default x86_64)")
    parser.add_argument("--site-every", type=int, default=30, help="0: only on the last day")
    parser.add_argument("--workers", type=int, default=2, help="images tested at once")
    parser.add_argument(
        "--default-battery", action="store_true", help="the product's own battery (slow)"
    )
    args = parser.parse_args(argv)
    if args.days < MIN_DAYS:
        parser.error(f"--days must be at least {MIN_DAYS} (the year's story needs nine cycles)")

    if args.dir:
        run(args, Path(args.dir) / "year")
        return 0
    with tempfile.TemporaryDirectory(prefix="fortnight-year-") as scratch:
        run(args, Path(scratch) / "year")
    return 0


def run(args: argparse.Namespace, workdir: Path) -> None:
    """Play the year in ``workdir`` and print what happened and where the time went."""
    from pipeline.site.build import build_site  # noqa: PLC0415 - Pelican is slow to import

    started = time.perf_counter()
    script = year_script(args.seed, START, args.days)
    toml = (REPO / "manifests" / PRODUCT / "product.toml").read_bytes()
    if not args.default_battery:
        toml = with_battery(toml)
    arches = tuple(a for a in args.arches.split(",") if a)
    sim = Simulation(workdir, script, product_toml=toml, arches=arches, workers=args.workers)
    days = {"fresh": 0, "stale": 0, "withdrawn shown": 0, "no release": 0, "before anchor": 0}
    per_day: list[float] = []
    site = SiteBuilds()
    last = time.perf_counter()

    def on_day(n: int, day: DayReport) -> None:
        nonlocal last
        state = day.state
        assert state is not None  # Simulation.step fills it in
        if state.cycle is None:
            days["before anchor"] += 1
        elif state.current is None:
            days["no release"] += 1
        else:
            days["stale" if state.freshness.stale else "fresh"] += 1
        current = state.current
        if any(current is None or order(r) > order(current) for r in state.withdrawn):
            days["withdrawn shown"] += 1  # the page warns of a release newer than its own
        now = time.perf_counter()
        per_day.append(now - last)
        every = args.site_every
        if (every and n % every == every - 1) or n == script.days - 1:
            build_site(
                REPO / "pelicanconf.py",
                sim.repo,
                sim.www,
                at=sim.at(n, dtime(23)),
                logs=sim.logs.root,
            )
            site.builds += 1
            site.seconds += time.perf_counter() - now
        last = time.perf_counter()
        if n % 30 == 29:
            print(f"  day {n + 1:3}/{script.days}  {time.perf_counter() - started:6.1f} s")

    totals = sim.run(on_day)
    verify_started = time.perf_counter()
    report = sim.log.verify_all(sim.log.load_trust())
    verify = time.perf_counter() - verify_started
    wall = time.perf_counter() - started
    current = sim.state(sim.at(script.days - 1, dtime(23))).current
    print(
        f"\n{script.days} days from {script.start} (seed {args.seed}, arches "
        f"{', '.join(arches)}, {'default' if args.default_battery else 'fast'} battery) "
        f"in {workdir}"
    )
    print("days:      " + ", ".join(f"{v} {k}" for k, v in days.items()))
    print(
        f"decisions: {totals.releases} releases, {totals.stale_cycles} stale cycles, "
        f"{totals.withdrawn} withdrawn; current {current.release_id if current else 'none'}"
    )
    print(
        f"tracker:   bugs {totals.bugs_opened} opened, {totals.bugs_closed} closed; "
        f"{totals.tracker_outages} outages"
    )
    print(f"log:       {len(report.verified)} manifests, {len(report.failures)} failures")
    phases = [
        *sorted(sim.timings.items(), key=lambda kv: -kv[1]),
        ("site", site.seconds),
        ("verify", verify),
    ]
    print_times(wall, script.days, phases, site, per_day)


def print_times(
    wall: float,
    days: int,
    phases: list[tuple[str, float]],
    site: SiteBuilds,
    per_day: list[float],
) -> None:
    """The wall time, per phase and per day."""
    print(f"\nwall time  {wall:7.1f} s")
    for phase, seconds in phases:
        note = f"{1000 * seconds / days:6.1f} ms/day"
        if phase == "site":
            note = f"{site.builds} builds, {seconds / max(site.builds, 1):.2f} s each"
        elif phase == "verify":
            note = "verify_all of the whole log at the end"
        print(f"  {phase:<9}{seconds:7.1f} s  {note}")
    head, tail = per_day[:30], per_day[-30:]
    print(
        f"  per day (site builds apart): first 30 days {1000 * sum(head) / len(head):.0f} ms, "
        f"last 30 days {1000 * sum(tail) / len(tail):.0f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
