"""Import a JUnit XML report: streamed, size-capped, and at most so many cases per manifest.

The report is read in chunks through expat's pull parser, and each ``<testcase>`` is
dropped from the tree once judged, so memory stays bounded however many cases it holds.
The manifest counts every case by outcome and records at most ``max_cases`` of them:
every failure first (blocking before advisory), then the cases that failed in an earlier
run (so a re-run that passes them is recorded), then the others in report order. The
full report goes to the log store, its sha256 in the manifest.
"""

from __future__ import annotations

import fnmatch
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, cast

from pipeline.core.models.manifests import (
    CaseCounts,
    CaseResult,
    ComposeManifest,
    Image,
    ImageRef,
    LogRef,
    ResultManifest,
    suite_verdict,
)
from pipeline.core.models.manifests import TestOutcome as Outcome
from pipeline.core.redact import Redactor
from pipeline.errors import InputError
from pipeline.stages.testing import TAIL_BYTES, Clock, LogStore, new_run_id

#: The default cap on a JUnit report's size.
DEFAULT_MAX_JUNIT_BYTES = 64 * 1024 * 1024
#: The default cap on the test cases one manifest records (the counts cover them all).
DEFAULT_MAX_CASES = 1000
CHUNK = 1 << 20
#: Finished elements are dropped from their parent this many at a time.
DROP_BATCH = 256
#: The longest reason kept inline (the full text is in the stored report).
REASON_CHARS = 1000


_OUTCOMES: tuple[Outcome, ...] = ("PASSED", "FAILED", "SKIPPED")


@dataclass(frozen=True)
class JunitLimits:
    """How large a report may be, and how many cases a manifest records."""

    max_bytes: int = DEFAULT_MAX_JUNIT_BYTES
    max_cases: int = DEFAULT_MAX_CASES


DEFAULT_LIMITS = JunitLimits()


@dataclass
class _Case:
    """One judged ``<testcase>`` (before it becomes a :class:`CaseResult`)."""

    index: int
    name: str
    blocking: bool
    outcome: Outcome
    reason: str | None
    tail: str | None
    duration_ms: int


@dataclass
class _Kept:
    """The cases a manifest will record, by priority, each list at most ``cap`` long."""

    cap: int
    prefer: Collection[str]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_OUTCOMES, 0))
    lists: tuple[list[_Case], ...] = field(default_factory=lambda: ([], [], [], []))

    def add(self, case: _Case) -> None:
        self.counts[case.outcome] += 1
        if case.outcome == "FAILED":
            bucket = self.lists[0 if case.blocking else 1]
        else:
            bucket = self.lists[2 if case.name in self.prefer else 3]
        if len(bucket) < self.cap:
            bucket.append(case)

    def chosen(self) -> list[_Case]:
        """The cases to record, in report order."""
        out: list[_Case] = []
        for bucket in self.lists:
            out.extend(bucket[: self.cap - len(out)])
        return sorted(out, key=lambda c: c.index)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def import_junit(
    xml_path: Path,
    compose: ComposeManifest,
    suite: str,
    *,
    advisory: Sequence[str],
    images: Sequence[Image],
    logs: LogStore,
    clock: Clock,
    runner: str,
    limits: JunitLimits = DEFAULT_LIMITS,
    prefer: Collection[str] = (),
) -> ResultManifest:
    """Turn a JUnit XML report into a test-result manifest for ``suite``.

    Tests whose name matches an ``advisory`` fnmatch pattern only warn; all others block.
    ``prefer`` names tests to record first after the failures (those that failed before).

    Raises:
        InputError: the file is missing, too large, not XML (or in an unknown encoding),
            not a JUnit report, or a test case is malformed.
    """
    kept = _Kept(limits.max_cases, frozenset(prefer))
    for case in _judged_cases(xml_path, advisory, limits.max_bytes):
        kept.add(case)
    if kept.total == 0:
        raise InputError(f"--junit {xml_path}: no <testcase> in it")
    started = clock()
    run_id = new_run_id(started)
    rel = PurePosixPath(compose.product, compose.compose_id, suite, run_id, "junit.xml")
    report = logs.put(rel, xml_path, keep_tail=False)
    tests = [_result(case, report, logs.redactor) for case in kept.chosen()]
    return ResultManifest(
        product=compose.product,
        created=clock(),
        compose_id=compose.compose_id,
        suite=suite,
        run=run_id,
        origin="junit",
        runner=runner,
        started=started,
        finished=clock(),
        arches=sorted({img.arch for img in images}),
        artifacts=[ImageRef.of(img) for img in images],
        tests=tests,
        result=suite_verdict(tests),
        counts=CaseCounts(
            total=kept.total,
            passed=kept.counts["PASSED"],
            failed=kept.counts["FAILED"],
            skipped=kept.counts["SKIPPED"],
            recorded=len(tests),
        ),
        report=report,
    )


def _result(case: _Case, report: LogRef, redactor: Redactor) -> CaseResult:
    """A case as recorded, its failure text and log tail redacted as a run's logs are."""
    tail = redactor.apply(case.tail) if case.tail else None
    return CaseResult(
        name=case.name,
        blocking=case.blocking,
        outcome=case.outcome,
        reason=redactor.apply(case.reason) if case.reason else None,
        duration_ms=case.duration_ms,
        log=report.model_copy(update={"tail": tail}) if tail else report,
    )


def _judged_cases(xml_path: Path, advisory: Sequence[str], max_bytes: int) -> Iterator[_Case]:
    """Every ``<testcase>`` of the report, judged, streamed.

    Raises:
        InputError: see :func:`import_junit`.
    """
    try:
        with xml_path.open("rb") as f:
            yield from _stream(f, xml_path, advisory, max_bytes)
    except OSError as e:
        raise InputError(f"--junit {xml_path}: cannot read ({e.strerror})") from None
    except ET.ParseError as e:
        raise InputError(
            f"--junit {xml_path}: not valid XML ({e})",
            hint="pass the JUnit XML report your test tool wrote",
        ) from None
    except (LookupError, ValueError) as e:  # an encoding Python does not know
        raise InputError(
            f"--junit {xml_path}: cannot be decoded ({str(e).splitlines()[0][:120]})",
            hint="write the report in UTF-8",
        ) from None


def _stream(
    f: BinaryIO, xml_path: Path, advisory: Sequence[str], max_bytes: int
) -> Iterator[_Case]:
    """Feed the report in chunks; judge each ``<testcase>`` as it ends, then drop every
    finished element from its parent (in batches: finished children are always a prefix
    of their parent's, since the parser appends in document order)."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    stack: list[ET.Element] = []
    finished: list[int] = []  # per open element: how many of its children have ended
    read = number = 0
    while chunk := f.read(CHUNK):
        read += len(chunk)
        if read > max_bytes:
            raise InputError(
                f"--junit {xml_path}: larger than the {max_bytes} byte limit for a report",
                hint="raise it with --max-junit-bytes or FORTNIGHT_MAX_JUNIT_BYTES",
            )
        parser.feed(chunk)
        for pair in parser.read_events():
            event, elem = pair[0], cast(ET.Element, pair[1])  # type: ignore[misc]
            if event == "start":
                if not stack:
                    _check_root(elem, xml_path)
                stack.append(elem)
                finished.append(0)
                continue
            stack.pop()
            finished.pop()
            if elem.tag == "testcase":
                number += 1
                yield _judge(xml_path, number, elem, advisory)
            if stack:
                finished[-1] += 1
                if finished[-1] >= DROP_BATCH:
                    del stack[-1][: finished[-1]]
                    finished[-1] = 0
    parser.close()


def _check_root(root: ET.Element, xml_path: Path) -> None:
    if root.tag not in ("testsuites", "testsuite"):
        raise InputError(
            f"--junit {xml_path}: root element is <{str(root.tag)[:60]}>, "
            "expected <testsuites> or <testsuite>"
        )


def _judge(xml_path: Path, number: int, case: ET.Element, advisory: Sequence[str]) -> _Case:
    """One ``<testcase>`` judged; it blocks unless it matches an ``advisory`` pattern.

    Raises:
        InputError: the case has no name, or its time is not a number.
    """
    name = case.get("name") or ""
    if not name.strip():
        raise InputError(f"--junit {xml_path}: <testcase> number {number} has no name")
    classname = case.get("classname")
    full = f"{classname}.{name}" if classname else name
    try:
        seconds = float(case.get("time") or 0)
        duration_ms = max(0, min(round(seconds * 1000), 2**53))
    except (ValueError, OverflowError):
        raise InputError(
            f"--junit {xml_path}: test {full[:120]!r}: time {case.get('time', '')[:40]!r} "
            "is not a number"
        ) from None
    outcome, reason, tail = _classify(case)
    blocking = not any(
        fnmatch.fnmatchcase(full, p) or fnmatch.fnmatchcase(name, p) for p in advisory
    )
    return _Case(number, full, blocking, outcome, reason, tail, duration_ms)


def _classify(case: ET.Element) -> tuple[Outcome, str | None, str | None]:
    """A JUnit test case's outcome, the reason for a failure or skip, and a log tail."""
    for tag in ("failure", "error"):
        problem = case.find(tag)
        if problem is not None:
            message = (problem.get("message") or "").strip()
            detail = (problem.text or "").strip()
            first = message or (detail.splitlines()[0] if detail else tag)
            return "FAILED", first[:REASON_CHARS], (detail or message)[-TAIL_BYTES:] or None
    skipped = case.find("skipped")
    if skipped is not None:
        return "SKIPPED", (skipped.get("message") or "").strip()[:REASON_CHARS] or None, None
    return "PASSED", None, None


__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_CASES",
    "DEFAULT_MAX_JUNIT_BYTES",
    "JunitLimits",
    "import_junit",
]
