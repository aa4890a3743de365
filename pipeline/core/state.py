"""Derived state: one pure function from (verified manifests, product config, now).

The release decision, the tracker reconciliation, ``invoke status`` and the
site all call :func:`derive`, so they can never disagree. Same log, same
``now``: same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal, TypeVar

from pipeline.core.config import ProductConfig, ReleasePolicy
from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import (
    CaseResult,
    CloudImagesManifest,
    ComposeManifest,
    ReleaseManifest,
    ResultManifest,
    RevocationManifest,
    TrackerEventManifest,
    VerdictManifest,
)

M = TypeVar("M", bound=Manifest)
Status = Literal["pending", "passed", "failed", "no-image", "failed-manual"]
FAILING: frozenset[str] = frozenset({"failed", "no-image", "failed-manual"})

ImageKey = tuple[str, str, str, str, int]


@dataclass(frozen=True)
class TestView:
    """The result that counts for one test on one image (the latest run's)."""

    __test__ = False  # not a pytest class

    suite: str
    run: str
    case: CaseResult
    waived_by: VerdictManifest | None = None

    @property
    def counts_as_failure(self) -> bool:
        """A blocking failure that no operator waived."""
        return self.case.outcome == "FAILED" and self.case.blocking and self.waived_by is None


@dataclass(frozen=True)
class SuiteView:
    """One suite's standing on one compose."""

    name: str
    runs: list[ResultManifest]
    results: list[TestView]
    missing: list[str]  # images that still wait for results, e.g. "aarch64 qcow2"

    @property
    def blocking_failures(self) -> list[TestView]:
        """Blocking tests whose latest result failed and is not waived."""
        return [t for t in self.results if t.counts_as_failure]

    @property
    def advisory_failures(self) -> list[TestView]:
        """Advisory tests whose latest result failed (they warn, never block)."""
        return [t for t in self.results if t.case.outcome == "FAILED" and not t.case.blocking]

    @property
    def waived(self) -> list[TestView]:
        """Blocking failures an operator waived."""
        return [t for t in self.results if t.waived_by is not None]

    @property
    def verdict(self) -> str:
        """PASSED, WARNED, FAILED, or pending."""
        if self.blocking_failures:
            return "FAILED"
        if not self.runs or self.missing:
            return "pending"
        return "WARNED" if self.advisory_failures else "PASSED"


@dataclass(frozen=True)
class ComposeView:
    """A compose, its derived status, and why."""

    compose: ComposeManifest
    status: Status
    reasons: list[str]
    suites: dict[str, SuiteView]
    verdicts: list[VerdictManifest]

    @property
    def compose_id(self) -> str:
        """The compose id."""
        return self.compose.compose_id

    @property
    def failing(self) -> bool:
        """Failed, produced no image, or failed by an operator."""
        return self.status in FAILING


@dataclass
class BugView:
    """A tracker bug as the log knows it, from its tracker-event manifests."""

    bug: str  # e.g. bz1234, local3
    backend: str
    bug_id: str
    url: str
    events: list[TrackerEventManifest] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """Opened (or adopted) and not closed since."""
        return not any(e.action == "closed" for e in self.events)

    @property
    def composes(self) -> set[str]:
        """Composes already reported on this bug."""
        return {e.compose_id for e in self.events if e.action in ("opened", "commented")}

    @property
    def summary(self) -> str:
        """The bug's title, from its opening event."""
        return next((e.summary for e in self.events if e.summary), "") or ""


@dataclass(frozen=True)
class ReleaseView:
    """A release decision, and whether it still stands."""

    manifest: ReleaseManifest
    revocation: RevocationManifest | None
    #: Why a release that stood no longer does: withdrawn, or its compose failed since.
    fallen: str | None

    @property
    def release_id(self) -> str:
        """The release id (the cycle date, ``.N`` for a later decision in the cycle)."""
        return self.manifest.release_id

    @property
    def is_release(self) -> bool:
        """An image was released (not a stale decision)."""
        return self.manifest.decision == "release"

    @property
    def stands(self) -> bool:
        """A release that is neither withdrawn nor failed since."""
        return self.is_release and self.fallen is None

    @property
    def released(self) -> datetime:
        """When it was decided."""
        return self.manifest.created


@dataclass(frozen=True)
class Freshness:
    """Whether the page shows a fresh image, and if not, why."""

    stale: bool
    reason: str | None


def cycle_day(policy: ReleasePolicy, at: datetime) -> date | None:
    """The release day of the cycle ``at`` falls in (None before the first release day)."""
    day = at.astimezone(UTC).date()
    if day < policy.anchor:
        return None
    k = (day - policy.anchor).days // policy.cadence_days
    return policy.anchor + timedelta(days=k * policy.cadence_days)


def next_release_day(policy: ReleasePolicy, at: datetime) -> date:
    """The first release day after ``at``'s date."""
    current = cycle_day(policy, at)
    if current is None:
        return policy.anchor
    return current + timedelta(days=policy.cadence_days)


@dataclass(frozen=True)
class State:
    """Everything derived from the log for one product at one moment."""

    product: ProductConfig
    now: datetime
    composes: list[ComposeView]  # oldest first
    bugs: dict[str, BugView]
    releases: list[ReleaseView] = field(default_factory=list)  # oldest first
    #: The newest cloud-images run of each compose, by compose id.
    clouds: dict[str, CloudImagesManifest] = field(default_factory=dict)

    @property
    def current(self) -> ReleaseView | None:
        """The newest release that still stands: what the page offers."""
        return next((r for r in reversed(self.releases) if r.stands), None)

    @property
    def current_compose(self) -> ComposeView | None:
        """The compose of the current release (its images are what the page offers)."""
        current = self.current
        return self.compose(current.manifest.compose_id or "") if current else None

    @property
    def withdrawn(self) -> list[ReleaseView]:
        """Releases that no longer stand (withdrawn, or their compose failed since)."""
        return [r for r in self.releases if r.is_release and r.fallen is not None]

    @property
    def latest_decision(self) -> ReleaseView | None:
        """The newest release decision of any kind."""
        return self.releases[-1] if self.releases else None

    def release(self, release_id: str) -> ReleaseView | None:
        """One release decision by id."""
        return next((r for r in self.releases if r.release_id == release_id), None)

    @property
    def cycle(self) -> date | None:
        """The release day of the current cycle."""
        return cycle_day(self.product.release, self.now)

    @property
    def next_release_day(self) -> date:
        """The next release day after now."""
        return next_release_day(self.product.release, self.now)

    @property
    def freshness(self) -> Freshness:
        """Fresh, or stale and why (see README, "Freshness")."""
        policy = self.product.release
        latest = self.latest_decision
        cycle = self.cycle
        if cycle is None:
            # Before the first release day nothing is promised yet.
            return Freshness(False, f"the first release day is {policy.anchor}")
        last_day = date.fromisoformat(latest.manifest.cycle) if latest else policy.anchor
        overdue = self.now.astimezone(UTC).date() - last_day
        if overdue.days > policy.cadence_days + policy.grace_days:
            since = f"since the cycle of {last_day}" if latest else "yet"
            return Freshness(True, f"no release decision {since}: is the pipeline running?")
        current = self.current
        latest_in_cycle = [
            r for r in self.releases if latest and r.manifest.cycle == latest.manifest.cycle
        ]
        if latest and not any(r.is_release for r in latest_in_cycle):
            return Freshness(
                True,
                f"the cycle of {latest.manifest.cycle} produced no image that passed its tests",
            )
        if current is None:
            return Freshness(True, "no image has been released yet")
        previous_cycle = cycle - timedelta(days=policy.cadence_days)
        if date.fromisoformat(current.manifest.cycle) < previous_cycle:
            return Freshness(
                True, f"the newest good image is from the cycle of {current.manifest.cycle}"
            )
        return Freshness(False, None)

    def compose(self, compose_id: str) -> ComposeView | None:
        """One compose's view, if it is recorded."""
        return next((c for c in self.composes if c.compose_id == compose_id), None)

    @property
    def decided(self) -> list[ComposeView]:
        """Composes whose status is known (not pending), oldest first."""
        return [c for c in self.composes if c.status != "pending"]

    @property
    def open_bugs(self) -> list[BugView]:
        """Bugs the log believes are open, oldest first."""
        return [b for b in self.bugs.values() if b.is_open]


def compose_order(c: ComposeManifest) -> tuple[str, int, datetime, str]:
    """Newest last: by compose date, then respin, then when recorded."""
    return (c.date, c.respin, c.created, c.compose_id)


def derive(manifests: Iterable[Manifest], product: ProductConfig, now: datetime) -> State:
    """Derive the product's state from verified manifests (of any product) at ``now``.

    Manifests of other products, and manifests created after ``now``, are ignored;
    the order of ``manifests`` does not matter.
    """
    by_kind: dict[type[Manifest], list[Manifest]] = defaultdict(list)
    for m in manifests:
        if m.product == product.name and m.created <= now:
            by_kind[type(m)].append(m)

    def of(kind: type[M]) -> list[M]:
        return by_kind.get(kind, [])  # type: ignore[return-value]

    results: dict[str, list[ResultManifest]] = defaultdict(list)
    for r in of(ResultManifest):
        results[r.compose_id].append(r)
    verdicts: dict[str, list[VerdictManifest]] = defaultdict(list)
    for v in of(VerdictManifest):
        verdicts[v.compose_id].append(v)
    views = [
        _compose_view(
            c,
            results.get(c.compose_id, []),
            sorted(verdicts.get(c.compose_id, []), key=lambda v: v.number),
            product,
        )
        for c in sorted(of(ComposeManifest), key=compose_order)
    ]
    return State(
        product=product,
        now=now,
        composes=views,
        bugs=_bugs(of(TrackerEventManifest)),
        releases=_releases(of(ReleaseManifest), of(RevocationManifest), views),
        clouds=_newest_clouds(of(CloudImagesManifest)),
    )


def _newest_clouds(runs: list[CloudImagesManifest]) -> dict[str, CloudImagesManifest]:
    newest: dict[str, CloudImagesManifest] = {}
    for m in sorted(runs, key=lambda m: (m.compose_id, m.run)):
        newest[m.compose_id] = m
    return newest


def _bugs(events: list[TrackerEventManifest]) -> dict[str, BugView]:
    bugs: dict[str, BugView] = {}
    rank = {"opened": 0, "commented": 1, "closed": 2}
    for e in sorted(events, key=lambda e: (e.created, rank[e.action], e.event_id)):
        view = bugs.setdefault(e.bug, BugView(e.bug, e.backend, e.bug_id, e.url))
        view.events.append(e)
    return bugs


def _releases(
    releases: list[ReleaseManifest], revocations: list[RevocationManifest], views: list[ComposeView]
) -> list[ReleaseView]:
    by_id = {v.compose_id: v for v in views}
    revoked = {r.release_id: r for r in revocations}
    out = []
    for r in sorted(releases, key=lambda r: (r.cycle, r.sequence)):
        revocation = revoked.get(r.release_id)
        fallen = None
        if r.decision == "release":
            compose = by_id.get(r.compose_id or "")
            if revocation is not None:
                fallen = f"withdrawn by {revocation.operator}: {revocation.reason}"
            elif compose is None:
                fallen = f"compose {r.compose_id} is not in the log"
            elif compose.failing:
                fallen = f"compose {compose.compose_id} is {compose.status} since"
        out.append(ReleaseView(r, revocation, fallen))
    return out


def _compose_view(
    compose: ComposeManifest,
    runs: list[ResultManifest],
    verdicts: list[VerdictManifest],
    product: ProductConfig,
) -> ComposeView:
    suites = _suite_views(compose, runs, verdicts, product)
    fails = [v for v in verdicts if v.action == "fail"]
    if compose.outcome == "no-image":
        return ComposeView(compose, "no-image", [f"no image: {compose.reason}"], suites, verdicts)
    if fails:
        reasons = [f"failed by {v.operator}: {v.reason}" for v in fails]
        return ComposeView(compose, "failed-manual", reasons, suites, verdicts)
    failures = [
        f"{s.name}: blocking test {t.case.name} failed"
        + (f" on {t.case.image.arch} {t.case.image.type}" if t.case.image else "")
        + (f" ({t.case.reason})" if t.case.reason else "")
        for s in suites.values()
        for t in s.blocking_failures
    ]
    if failures:
        return ComposeView(compose, "failed", failures, suites, verdicts)
    pending = [
        f"{s.name}: " + (f"waiting for {', '.join(s.missing)}" if s.runs else "no results yet")
        for s in suites.values()
        if s.verdict == "pending"
    ]
    if pending:
        return ComposeView(compose, "pending", pending, suites, verdicts)
    reasons = [
        f"{s.name}: advisory test {t.case.name} failed"
        for s in suites.values()
        for t in s.advisory_failures
    ]
    reasons += [
        f"{s.name}: {t.case.name} waived by {t.waived_by.operator}: {t.waived_by.reason}"
        for s in suites.values()
        for t in s.waived
        if t.waived_by is not None
    ]
    return ComposeView(compose, "passed", reasons, suites, verdicts)


def _suite_views(
    compose: ComposeManifest,
    runs: list[ResultManifest],
    verdicts: list[VerdictManifest],
    product: ProductConfig,
) -> dict[str, SuiteView]:
    by_suite: dict[str, list[ResultManifest]] = defaultdict(list)
    for run in runs:
        by_suite[run.suite].append(run)
    names = sorted(set(product.battery.suites) | set(by_suite))
    waivers = [v for v in verdicts if v.action == "waive"]
    views = {}
    for name in names:
        suite_runs = sorted(by_suite.get(name, []), key=lambda r: (r.started, r.run))
        latest: dict[tuple[str, ImageKey | None], TestView] = {}
        covered: set[ImageKey] = set()
        for run in suite_runs:  # later runs override earlier ones, test by test
            covered.update(a.key() for a in run.artifacts)
            for case in run.tests:
                key = (case.name, case.image.key() if case.image else None)
                waiver = next(
                    (w for w in waivers if w.test == case.name and w.suite in (None, name)), None
                )
                latest[key] = TestView(
                    name, run.run, case, waiver if case.outcome == "FAILED" else None
                )
        views[name] = SuiteView(
            name, suite_runs, list(latest.values()), _missing(compose, name, covered, product)
        )
    return views


def _missing(
    compose: ComposeManifest, suite: str, covered: set[ImageKey], product: ProductConfig
) -> list[str]:
    spec = product.battery.suites.get(suite)
    if spec is None or spec.external or spec.tunir is not None:
        applies = [
            img
            for img in compose.images
            if spec is None
            or (
                (not spec.types or img.type in spec.types)
                and (not spec.arches or img.arch in spec.arches)
            )
        ]
        if spec is None or spec.external:
            return []  # any run of an imported or unknown suite covers the compose
    else:
        applies = [
            img
            for img in compose.images
            if any(t.applies_to(img.type, img.arch) for t in spec.tests)
        ]
    return [f"{img.arch} {img.type}" for img in applies if img.key() not in covered]


def summary(state: State) -> dict[str, object]:
    """The stable, documented JSON shape of ``invoke status --json`` for one product."""
    current = state.current
    fresh = state.freshness
    open_bug = state.open_bugs[-1] if state.open_bugs else None
    latest = state.composes[-1] if state.composes else None
    return {
        "display_name": state.product.display_name,
        "current": None
        if current is None
        else {
            "release_id": current.release_id,
            "compose_id": current.manifest.compose_id,
            "released": current.manifest.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "base": current.manifest.base.label(),
        },
        "stale": fresh.stale,
        "stale_reason": fresh.reason if fresh.stale else None,
        "open_bug": None if open_bug is None else {"bug": open_bug.bug, "url": open_bug.url},
        "withdrawn": [
            {"release_id": r.release_id, "compose_id": r.manifest.compose_id, "reason": r.fallen}
            for r in state.withdrawn
        ],
        "latest_compose": None
        if latest is None
        else {"id": latest.compose_id, "status": latest.status},
        "pending": [c.compose_id for c in state.composes if c.status == "pending"],
        "next_release_day": state.next_release_day.isoformat(),
    }
