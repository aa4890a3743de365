"""Derived state: one pure function from (verified manifests, product config, now).

The release decision, the tracker reconciliation, ``invoke status`` and the
site all call :func:`derive`, so they can never disagree. Same log, same
``now``: same answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pipeline.config import ProductConfig
from pipeline.models import (
    CaseResult,
    ComposeManifest,
    Manifest,
    ResultManifest,
    TrackerEventManifest,
    VerdictManifest,
)

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
class State:
    """Everything derived from the log for one product at one moment."""

    product: ProductConfig
    now: datetime
    composes: list[ComposeView]  # oldest first
    bugs: dict[str, BugView]

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
    """Derive the product's state from verified manifests (of any product) at ``now``."""
    composes: list[ComposeManifest] = []
    results: dict[str, list[ResultManifest]] = defaultdict(list)
    verdicts: dict[str, list[VerdictManifest]] = defaultdict(list)
    events: list[TrackerEventManifest] = []
    for m in manifests:
        if m.product != product.name or m.created > now:
            continue
        if isinstance(m, ComposeManifest):
            composes.append(m)
        elif isinstance(m, ResultManifest):
            results[m.compose_id].append(m)
        elif isinstance(m, VerdictManifest):
            verdicts[m.compose_id].append(m)
        elif isinstance(m, TrackerEventManifest):
            events.append(m)
    views = [
        _compose_view(
            c,
            results.get(c.compose_id, []),
            sorted(verdicts.get(c.compose_id, []), key=lambda v: v.number),
            product,
        )
        for c in sorted(composes, key=compose_order)
    ]
    bugs: dict[str, BugView] = {}
    rank = {"opened": 0, "commented": 1, "closed": 2}
    for e in sorted(events, key=lambda e: (e.created, rank[e.action], e.event_id)):
        view = bugs.setdefault(e.bug, BugView(e.bug, e.backend, e.bug_id, e.url))
        view.events.append(e)
    return State(product=product, now=now, composes=views, bugs=bugs)


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
