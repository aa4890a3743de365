"""A compose's page: its images, every suite's results and logs, its bugs and release."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from pipeline.core.pages.dashboard import compose_notes
from pipeline.core.pages.download import type_rank
from pipeline.core.pages.formatting import compose_date, http_url, safe_relpath
from pipeline.core.pages.links import Link, Urls
from pipeline.core.pages.releases import withdrawal_of_compose
from pipeline.core.state import ComposeView, State, SuiteView
from pipeline.core.units import human_size


class ResultRow(NamedTuple):
    """One test's latest result on one image (a named tuple, not a frozen dataclass: a
    ten-year history has a hundred thousand rows, and a tuple is made several times faster)."""

    name: str
    image: str
    blocking: bool
    outcome: str
    reason: str | None
    duration: str
    log: str | None
    waived: str | None
    tail: str | None


@dataclass(frozen=True)
class SuiteDetail:
    """A suite's detail on the compose page."""

    name: str
    verdict: str
    runs: list[tuple[str, str, str]]  # (run id, runner, manifest href)
    blocking: list[ResultRow]
    advisory: list[ResultRow]
    missing: list[str]


@dataclass(frozen=True)
class ComposePage:
    """Everything about one compose."""

    compose_id: str
    date: str
    status: str
    reasons: list[str]
    notes: list[str]
    images: list[tuple[str, str, str, str, str]]  # (arch, type, filename, size, sha256)
    suites: list[SuiteDetail]
    bugs: list[Link]
    release: str | None
    #: Why the release that shipped it no longer stands (``withdrawn by …: …``).
    withdrawn: str | None
    manifest: str
    log_url: str | None


def compose_page(
    state: State,
    view: ComposeView,
    urls: Urls,
    bugs: dict[str, list[Link]],
    releases: dict[str, str],
    has_log: Callable[[str], bool],
) -> ComposePage:
    """The page of one compose; ``has_log`` says whether a log path is in the log store."""
    c = view.compose
    return ComposePage(
        compose_id=view.compose_id,
        date=compose_date(c.date),
        status=view.status,
        reasons=view.reasons,
        notes=compose_notes(view),
        images=[
            (i.arch, i.type, i.filename, human_size(i.size), i.checksums.sha256)
            for i in sorted(c.images, key=lambda i: (i.arch, *type_rank(i.type)))
        ],
        suites=[_suite_detail(s, urls, has_log) for s in view.suites.values()],
        bugs=bugs.get(view.compose_id, []),
        release=releases.get(view.compose_id),
        withdrawn=withdrawal_of_compose(state).get(view.compose_id),
        manifest=urls.manifest(c),
        log_url=http_url(c.log_url),
    )


def _suite_detail(s: SuiteView, urls: Urls, has_log: Callable[[str], bool]) -> SuiteDetail:
    rows = []
    for t in s.results:
        case = t.case
        log = case.log.path if case.log and safe_relpath(case.log.path) else None
        rows.append(
            ResultRow(
                name=case.name,
                image=f"{case.image.arch} {case.image.type}" if case.image else "",
                blocking=case.blocking,
                outcome=case.outcome,
                reason=case.reason,
                duration=f"{case.duration_ms / 1000:.1f} s",
                log=urls.log(log) if log and has_log(log) else None,
                waived=(
                    f"waived by {t.waived_by.operator}: {t.waived_by.reason}"
                    if t.waived_by
                    else None
                ),
                tail=case.log.tail if case.log and case.outcome == "FAILED" else None,
            )
        )
    rows.sort(key=lambda r: (r.image, r.name))
    return SuiteDetail(
        name=s.name,
        verdict=s.verdict,
        runs=[(r.run, r.runner, urls.manifest(r)) for r in s.runs],
        blocking=[r for r in rows if r.blocking],
        advisory=[r for r in rows if not r.blocking],
        missing=s.missing,
    )
