"""The simulated year: 365 days through the demo's code path, checked every day.

:class:`pipeline.demo.simulate.Simulation` plays :func:`pipeline.demo.simulate.year_script` (seeded:
nights that fail a blocking test, fail only an advisory test or produce no image; tracker
outages; a release day whose ``release.cut`` did not run; an operator fail; a withdrawal; a
switch to a Beta base) through the real stages, as ``invoke demo`` does. The battery is
:data:`pipeline.demo.simulate.FAST_BATTERY` (the default battery's tests as shell one-liners)
on one arch, so a night costs milliseconds of process start-up rather than an interpreter's
per test; every other step is the demo's.

After each day (at 23:00 UTC) the derived state is checked against :class:`Model`, an
oracle computed from the script alone with the README's rules (the nights' outcomes, the
release decision, freshness, the tracker), and against these properties, where *cycle*
is the one of today (release days are ``anchor + k x 14``; ``cycle`` is the latest on or
before today) and *the cycle was cut* means ``release.cut`` ran on some day from the
release day to today:

1. **Fresh when one passed.** If the cycle was cut on or after the day of a compose X that
   is *passed* today (every blocking test passed and no operator failed it), of the base
   that is eligible today (after the switch only Fedora 29 composes are), not part of a
   withdrawn release, and newer than every compose an earlier cycle released, then the
   page is fresh and offers a release of this cycle (on the release day, or later in the
   cycle under policy ``retry``).
2. **Otherwise stale, with the previous image and the bug.** If the cycle was cut, no
   such X exists and the cycle has only a stale decision, the page is stale and offers
   the newest earlier release that still stands; when the tracker knows the newest
   compose fails (it synced since), the open bug is the one the banner links.
3. **Missed cut and grace.** On a release day whose ``release.cut`` did not run, the
   cycle has no decision and the previous cycle's image is still fresh (it stays so for
   ``grace_days`` past the next release day); the next day's run decides the cycle.
4. **Never a bad image.** The current release stands: it is not withdrawn and its
   compose is ``passed`` (not failed by an operator since). Withdrawn releases stay
   withdrawn and are never released again.
5. **One bug.** At most one failure bug is open, and it is open exactly when the newest
   compose at the last successful tracker sync was failing.
6. **Verified.** Every task loads the product's manifests verified (fail closed);
   :meth:`ManifestLog.verify_all` checks the whole log every four weeks and at the end.

On sampled days (every 30 days, and the days of interest: the first stale day, the
missed cut, the operator fail, the withdrawal, the base switch, the last day) the site is
built for that moment and its download page shows the same: the release and compose, the
banners (``stale``, ``withdrawn``, ``prerelease``, ``none``) and the bug link.

``pytest -s`` shows the summary.
"""

from __future__ import annotations

import re
import time as clock
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path

import pytest

from pipeline.core.state import State
from pipeline.demo.simulate import (
    PRODUCT,
    DayReport,
    Script,
    Simulation,
    Totals,
    with_battery,
    year_script,
)
from tests.conftest import ROOT
from tests.sitekit import Page

SEED = 2018
START = date(2018, 1, 1)
DAYS = 365
CADENCE, GRACE = 14, 2
PASSES = {"good": "passed", "advisory": "passed", "blocking": "failed", "no-image": "no-image"}


# --- the oracle ----------------------------------------------------------------------------


@dataclass
class Night:
    """One compose as the model sees it."""

    day: int
    version: str
    status: str  # passed, failed, no-image, failed-manual


@dataclass
class Decision:
    """One release decision: ``night`` is the released compose's day, None when stale."""

    cycle: int  # the release day's number
    sequence: int
    night: int | None
    revoked: bool = False


@dataclass
class Expect:
    """What the page must show at the end of one day."""

    current: Decision | None
    stale: bool
    withdrawn: list[Decision]  # fallen releases newer than the current one
    bug_open: bool
    premise: bool  # property 1's premise holds
    cycle_cut: bool
    cycle_released: bool  # the cycle has a release decision (standing or not)


@dataclass
class Model:
    """The script's year by the README's rules, without the pipeline."""

    script: Script
    nights: list[Night] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    base: str = "28"
    bug_open: bool = False
    opened: int = 0
    closed: int = 0
    cuts: set[int] = field(default_factory=set)

    @property
    def first(self) -> int:
        return (self.script.anchor - self.script.start).days

    def cycle(self, n: int) -> int | None:
        return None if n < self.first else self.first + (n - self.first) // CADENCE * CADENCE

    def stands(self, d: Decision) -> bool:
        return d.night is not None and not d.revoked and self.nights[d.night].status == "passed"

    def current(self) -> Decision | None:
        return next((d for d in reversed(self.decisions) if self.stands(d)), None)

    def eligible(self, k: int, floor: int) -> bool:
        """Night ``k`` may be released: passed, right base, never withdrawn, newer."""
        night = self.nights[k]
        revoked = {d.night for d in self.decisions if d.revoked}
        return (
            night.status == "passed"
            and night.version == self.base
            and k not in revoked
            and k > floor
        )

    def morning(self, n: int) -> None:
        """Day ``n`` until the cut: compose (02:00), tests (03:00), sync (04:00), operator
        (10:00)."""
        s = self.script
        self.nights.append(Night(n, self.base, PASSES[s.nights[n]]))
        if n not in s.tracker_down:
            failing = self.nights[-1].status != "passed"
            if failing and not self.bug_open:
                self.opened += 1
            elif not failing and self.bug_open:
                self.closed += 1
            self.bug_open = failing
        if n == s.operator_fail:
            newest = next(x for x in reversed(self.nights) if x.status == "passed")
            newest.status = "failed-manual"
        if n == s.withdraw and (current := self.current()) is not None:
            current.revoked = True
        if n == s.base_switch:
            self.base = str(int(self.base) + 1)

    def evening(self, n: int) -> Expect:
        """Day ``n`` from the cut (12:00) on: what the page shows at the end of the day."""
        if n not in self.script.missed_cut:
            self.cut(n)
        return self.expect(n)

    def cut(self, n: int) -> None:
        c = self.cycle(n)
        if c is None:
            return
        self.cuts.add(n)
        in_cycle = [d for d in self.decisions if d.cycle == c]
        if any(self.stands(d) for d in in_cycle):
            return
        current = self.current()
        floor = current.night if current and current.night is not None else -1
        chosen = next((k for k in range(n, -1, -1) if self.eligible(k, floor)), None)
        if in_cycle and chosen is None:
            return
        self.decisions.append(Decision(c, len(in_cycle) + 1, chosen))

    def expect(self, n: int) -> Expect:
        c = self.cycle(n)
        current = self.current()
        withdrawn = [
            d
            for d in self.decisions
            if d.night is not None
            and not self.stands(d)
            and (current is None or (d.cycle, d.sequence) > (current.cycle, current.sequence))
        ]
        if c is None:
            return Expect(current, False, withdrawn, self.bug_open, False, False, False)
        latest = self.decisions[-1] if self.decisions else None
        last_day = latest.cycle if latest else self.first
        latest_released = latest is not None and any(
            d.night is not None for d in self.decisions if d.cycle == latest.cycle
        )
        stale = (
            n - last_day > CADENCE + GRACE
            or (latest is not None and not latest_released)
            or current is None
            or current.cycle < c - CADENCE
        )
        earlier = [d.night for d in self.decisions if d.cycle < c and d.night is not None]
        floor = max(earlier, default=-1)
        cut_days = [k for k in self.cuts if c <= k <= n]
        premise = any(
            self.eligible(k, floor) and any(cut >= k for cut in cut_days) for k in range(n + 1)
        )
        released = any(d.night is not None for d in self.decisions if d.cycle == c)
        return Expect(current, stale, withdrawn, self.bug_open, premise, bool(cut_days), released)


# --- checks ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """Days by what the page showed, how often each property applied, and the time."""

    fresh: int = 0
    stale: list[int] = field(default_factory=list)
    withdrawn: int = 0  # days that end with a withdrawn release newer than the current one
    withdrawal: str = ""  # what the page showed between the withdrawal and the next cut
    no_release: int = 0
    property_1: int = 0  # days its premise held
    property_2: int = 0
    pages: int = 0
    site_seconds: float = 0.0
    verify_seconds: float = 0.0
    stale_reasons: Counter[str] = field(default_factory=Counter)


def compose_id(sim: Simulation, model: Model, night: int | None) -> str | None:
    if night is None:
        return None
    return f"Fedora-Atomic-{model.nights[night].version}-{sim.script.day(night):%Y%m%d}.0"


def release_id(sim: Simulation, d: Decision) -> str:
    cycle = sim.script.day(d.cycle).isoformat()
    return cycle if d.sequence == 1 else f"{cycle}.{d.sequence}"


def check_state(
    sim: Simulation, model: Model, n: int, state: State, want: Expect, tally: Tally
) -> None:
    """The derived state agrees with the model, and the properties hold."""
    where = f"{state.now:%Y-%m-%d %H:%M} (day {n})"
    current = state.current
    # The model's decisions, one for one, and its current and withdrawn releases.
    decided = [(r.release_id, r.manifest.compose_id) for r in state.releases]
    modelled = [(release_id(sim, d), compose_id(sim, model, d.night)) for d in model.decisions]
    assert decided == modelled, where
    assert (current.release_id if current else None) == (
        release_id(sim, want.current) if want.current else None
    ), where
    assert [r.release_id for r in state.withdrawn if r.revocation] == [
        release_id(sim, d) for d in model.decisions if d.revoked
    ], where
    fresh = state.freshness
    assert fresh.stale == want.stale, f"{where}: {fresh.reason}"
    # 4. Never a bad image.
    if current is not None:
        assert current.stands and current.revocation is None, where
        view = state.compose(current.manifest.compose_id or "")
        assert view is not None and view.status == "passed", where
    # 5. One bug, open exactly when the model's tracker says.
    assert len(state.open_bugs) == int(want.bug_open), where
    if state.now.time() != time(23):
        return  # 1-3 speak of the day after its release.cut
    cycle = model.cycle(n)
    # 1. Fresh when one passed.
    if want.premise:
        tally.property_1 += 1
        assert current is not None and not fresh.stale, where
        assert cycle is not None and current.manifest.cycle == f"{sim.script.day(cycle)}", where
    # 2. Otherwise stale, with the previous image (and the bug: see check_page).
    elif want.cycle_cut and not want.cycle_released:
        tally.property_2 += 1
        assert fresh.stale, where
        assert cycle is not None, where
        assert current is None or current.manifest.cycle < f"{sim.script.day(cycle)}", where
    # 3. Missed cut: no decision today, still fresh within the grace days.
    if n in sim.script.missed_cut:
        assert not any(r.manifest.cycle == f"{sim.script.day(n)}" for r in state.releases), where
        assert not fresh.stale, f"{where}: {fresh.reason}"
    if n - 1 in sim.script.missed_cut:
        assert state.latest_decision is not None, where
        assert state.latest_decision.manifest.cycle == f"{sim.script.day(n - 1)}", where


def check_page(sim: Simulation, model: Model, state: State, want: Expect, tally: Tally) -> None:
    """Build the site for ``state.now`` and read its download page."""
    from pipeline.site.build import build_site  # noqa: PLC0415 - Pelican loads only here

    started = clock.perf_counter()
    build_site(ROOT / "pelicanconf.py", sim.repo, sim.www, at=state.now, logs=sim.logs.root)
    tally.site_seconds += clock.perf_counter() - started
    tally.pages += 1
    page = Page(sim.www / PRODUCT / "index.html")
    where = f"page at {state.now:%Y-%m-%d %H:%M}"
    current = want.current
    banners = ["none"] if current is None else ["stale"] if want.stale else []
    banners += ["withdrawn"] * len(want.withdrawn)
    night = current.night if current is not None else None
    if night is not None and model.nights[night].version != "28":  # after the switch to a Beta
        banners.append("prerelease")
    assert page.banners == banners, where
    if current is not None:
        assert f"Release {release_id(sim, current)}" in page.text, where
        assert f"{compose_id(sim, model, current.night)}" in page.text, where
    for d in want.withdrawn:
        assert f"Release {release_id(sim, d)} was withdrawn" in page.text, where
    bug_links = [t for _, t in page.links if t.startswith("Failure bug ")]
    if banners[:1] in (["none"], ["stale"]):  # the banner links the open bug, if any
        assert bug_links == [f"Failure bug {b.bug}" for b in state.open_bugs], where
        if bug_links:
            assert (page.path.parent / page.href(bug_links[0])).is_file(), where
    else:
        assert bug_links == [], where


def days_of_interest(script: Script) -> set[int]:
    """Every 30th day, the last, and each event's day and the day after."""
    model = Model(script)
    stale = []
    for n in range(script.days):
        model.morning(n)
        if model.evening(n).stale:
            stale.append(n)
    days = {*range(0, script.days, 30), script.days - 1, *stale[:1]}
    events: list[int | None] = [script.operator_fail, script.withdraw, script.base_switch]
    for event in [*events, *script.missed_cut]:
        if event is not None:
            days |= {event, event + 1}
    return {d for d in days if d < script.days}


# --- the year --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_simulated_year(tmp_path: Path) -> None:
    started = clock.perf_counter()
    script = year_script(SEED, START, DAYS)
    product = with_battery((ROOT / "manifests" / PRODUCT / "product.toml").read_bytes())
    sim = Simulation(tmp_path / "year", script, product_toml=product, arches=("x86_64",))
    model = Model(script)
    sample = days_of_interest(script)
    tally = Tally()
    trust = sim.log.load_trust()

    def on_day(n: int, day: DayReport) -> None:
        assert day.state is not None
        model.morning(n)
        if n == script.withdraw:  # between the withdrawal (10:00) and the cut (12:00)
            midday = sim.state(sim.at(n, time(11)))
            want = model.expect(n)
            assert want.withdrawn, "the withdrawal must show before the retry releases"
            check_state(sim, model, n, midday, want, tally)
            check_page(sim, model, midday, want, tally)
            shown = midday.current.release_id if midday.current else "no image"
            tally.withdrawal = (
                f"release {release_id(sim, want.withdrawn[-1])} withdrawn at 10:00 on "
                f"{midday.now:%Y-%m-%d}; at 11:00 the page warned and offered {shown}"
            )
        want = model.evening(n)
        check_state(sim, model, n, day.state, want, tally)
        if n == script.withdraw:
            late = day.state.current.release_id if day.state.current else "nothing"
            tally.withdrawal += f"; at 12:00 release.cut released {late} (policy retry)"
        count(n, day.state, want, tally)
        if n in sample:
            check_page(sim, model, day.state, want, tally)
        if n % 28 == 27 or n == script.days - 1:
            t = clock.perf_counter()
            report = sim.log.verify_all(trust)
            tally.verify_seconds += clock.perf_counter() - t
            assert report.failures == [], f"day {n}: {report.failures}"
            signed = [
                p
                for p in sim.log.root.rglob("*.json")
                if p.name != "trust.json" and p.parent.name not in ("trust", "checkpoints")
            ]  # the root chain and the checkpoints are checked by verify_log, not listed
            assert len(report.verified) == len(signed)

    totals = sim.run(on_day)
    print(summary(sim, totals, tally, clock.perf_counter() - started))

    assert totals.composes == DAYS
    assert totals.releases == sum(d.night is not None for d in model.decisions) > 20
    assert totals.stale_cycles == sum(d.night is None for d in model.decisions) >= 1
    assert totals.withdrawn == 1
    assert (totals.bugs_opened, totals.bugs_closed) == (model.opened, model.closed)
    assert totals.bugs_opened - totals.bugs_closed in {0, 1}
    assert totals.tracker_outages == len(script.tracker_down) > 0
    before_anchor = (script.anchor - script.start).days
    assert tally.fresh + len(tally.stale) + tally.no_release == DAYS - before_anchor
    # year_script fails every night of its seventh cycle: that release day is stale.
    assert before_anchor + 6 * CADENCE in tally.stale
    assert tally.property_1 > 300 and tally.property_2 >= 1
    assert tally.pages == len(sample) + 1
    assert tally.withdrawal


def count(n: int, state: State, want: Expect, tally: Tally) -> None:
    """Tally the end of day ``n``."""
    if state.cycle is None:
        return
    if state.current is None:
        tally.no_release += 1
    elif state.freshness.stale:
        tally.stale.append(n)
        reason = re.sub(r"\d{4}-\d\d-\d\d", "DATE", state.freshness.reason or "")
        tally.stale_reasons[reason] += 1
    else:
        tally.fresh += 1
    if want.withdrawn:
        tally.withdrawn += 1


def summary(sim: Simulation, totals: Totals, tally: Tally, wall: float) -> str:
    """What the year did, and where the time went."""
    script = sim.script
    phases = ", ".join(
        f"{k} {v:.0f} s" for k, v in sorted(sim.timings.items(), key=lambda kv: -kv[1])
    )
    reasons = "; ".join(f"{n} x {r}" for r, n in tally.stale_reasons.most_common())
    return (
        f"\nsimulated year {script.start} .. {script.day(script.days - 1)} (seed {SEED}):\n"
        f"  days: {tally.fresh} fresh, {len(tally.stale)} stale, {tally.withdrawn} ending "
        f"with a withdrawn release shown, {tally.no_release} without a release, "
        f"{(script.anchor - script.start).days} before the first release day\n"
        f"  stale: {reasons or '-'}\n"
        f"  withdrawn: {tally.withdrawal}\n"
        f"  {totals.releases} releases, {totals.stale_cycles} stale cycles, "
        f"{totals.withdrawn} withdrawn; bugs {totals.bugs_opened} opened, "
        f"{totals.bugs_closed} closed; {totals.tracker_outages} tracker outages\n"
        f"  properties: 1 applied on {tally.property_1} days, 2 on {tally.property_2}; "
        f"{tally.pages} pages checked\n"
        f"  wall {wall:.0f} s: {phases}; site builds {tally.site_seconds:.0f} s; "
        f"verify_all {tally.verify_seconds:.0f} s"
    )
