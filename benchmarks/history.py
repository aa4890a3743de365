"""Benchmark deriving state from a long signed history: verification, ``derive``, ``decide``.

Usage (from the repository root)::

    python benchmarks/history.py [--years 1,5,10] [--products 4] [--dir DIR] [--workers N]

For each size it generates (or reuses, from ``--dir``) a real manifest log: a git
repository with throwaway Ed25519 keys in ``trust.json`` and, per product and day, a
nightly compose (two images; now and then one that produced no image), one test-result
manifest per image arch (some failing, some re-run, a few waived or failed by hand, a
few never tested), a release decision every 14 days (the newest passing compose, or a
stale decision when a whole cycle failed, then a late release), a few withdrawals and
failure-bug tracker events. Every file is signed through ``pipeline.log.signing.sign_manifest``
and the whole history lands in one commit, then the log index and checkpoint 1 over it
(as ``invoke checkpoint.upgrade`` writes them), so every load also verifies the checkpoint
chain and that each file is the one the index recorded.

It then times, on a warm page cache:

- the floor: read, ``json.loads`` and signature-check every manifest in a tight loop;
- cold: ``ManifestLog.load_verified`` of the whole log with the verification cache
  deleted, then ``derive`` for every product;
- warm, one product: ``pipeline.stages.load.load_state`` (load that product's manifests,
  then ``derive``) with the cache in place, as every task that works on one product
  does; the slowest product is shown;
- warm, whole log: ``load_verified`` of every product, then ``derive`` for each, as
  ``invoke status`` does;
- one decision: warm ``load_state`` + ``pipeline.core.release.decide`` for one product (the
  first one, ``atomic-host``), as ``release.cut`` does.

Targets (10 years x 4 products): cold <= 1.5x the floor, warm for one product <= 1 s,
one decision <= 1 s, cost linear in history size. The whole-log warm figure has no
target (only ``invoke verify`` and ``invoke status`` load everything). Targets are
informational: the exit status is 0 whatever the figures, and non-zero only on an error.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

# Run as a plain script, ``sys.path[0]`` is ``benchmarks/``: make the repository importable.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: E402

from pipeline.core.config import ProductConfig, load_product  # noqa: E402
from pipeline.core.models.common import ROLES, Manifest, RoleName, Trust  # noqa: E402
from pipeline.core.models.manifests import (  # noqa: E402
    BaseRef,
    BugLink,
    CaseResult,
    ComposeManifest,
    Considered,
    Image,
    ImageRef,
    LogRef,
    ReleaseManifest,
    ResultManifest,
    RevocationManifest,
    TrackerEventManifest,
    VerdictManifest,
    suite_verdict,
)
from pipeline.core.state import ComposeView, State, derive, next_release_day  # noqa: E402
from pipeline.log import cache as verifycache  # noqa: E402
from pipeline.log import parallel  # noqa: E402
from pipeline.log.freshness import upgrade  # noqa: E402
from pipeline.log.layout import CHECKPOINT_DIR, MANIFESTS, TRUST_DIR  # noqa: E402
from pipeline.log.signing import (  # noqa: E402
    add_key_to_trust,
    sign_manifest,
    signed_bytes,
)
from pipeline.log.sslib import CryptoSigner, SSlibKey  # noqa: E402
from pipeline.log.sslib import Signature as SslibSignature  # noqa: E402
from pipeline.log.store import ManifestLog, init_log  # noqa: E402
from pipeline.log.trust import empty_trust, first_version  # noqa: E402
from pipeline.stages.load import load_state  # noqa: E402

#: Bump when the generated history changes shape: cached histories are then regenerated.
GENERATOR_VERSION = 4
#: The newest day of every generated history (histories end here and reach back N years).
END = date(2025, 1, 1)
CADENCE = 14
SUITE = "images"
#: The default battery's tests (manifests/atomic-host/product.toml): name, blocking.
BATTERY: tuple[tuple[str, bool], ...] = (("checksum", True), ("format", True), ("name", False))
#: Products beyond the first are copies of atomic-host's product.toml under these names.
PRODUCTS: tuple[tuple[str, str, str], ...] = (
    ("atomic-host", "Fedora Atomic Host", "AtomicHost"),
    ("cloud-base", "Fedora Cloud Base", "CloudBase"),
    ("coreos", "Fedora CoreOS", "CoreOS"),
    ("silverblue", "Fedora Silverblue", "Silverblue"),
)
#: Image per arch of every compose: (arch, type, format, file extension).
ARCHES: tuple[tuple[str, str, str, str], ...] = (
    ("x86_64", "qcow2", "qcow2", "qcow2"),
    ("aarch64", "raw-xz", "raw.xz", "raw.xz"),
)
BASE_VERSION = "28"

COLD_TARGET = 1.5  # x the floor
WARM_TARGET_S = 1.0
DECISION_TARGET_S = 1.0
WARM_REPEATS = 3


# --- the plan: what happens on each day, decided by seeded randomness --------------------------


@dataclass(frozen=True)
class RunPlan:
    """One test-suite run on one arch's image."""

    arch: str
    started: datetime
    fail: tuple[str, ...]
    token: str  # the random part of the run id


@dataclass
class DayPlan:
    """What happens to one day's compose."""

    day: date
    compose_id: str
    outcome: Literal["images", "no-image"]
    runs: list[RunPlan] = field(default_factory=list)
    waive: str | None = None  # a blocking test an operator waived
    manual_fail: bool = False

    @functools.cached_property
    def status(self) -> str:
        """The status ``pipeline.core.state.derive`` gives the compose once its runs landed."""
        if self.outcome == "no-image":
            return "no-image"
        if self.manual_fail:
            return "failed-manual"
        latest: dict[tuple[str, str], bool] = {}
        for run in sorted(self.runs, key=lambda r: r.started):
            for name, blocking in BATTERY:
                latest[(run.arch, name)] = blocking and name in run.fail
        if any(failed and name != self.waive for (_, name), failed in latest.items()):
            return "failed"
        if {r.arch for r in self.runs} != {a[0] for a in ARCHES}:
            return "pending"
        return "passed"


@dataclass(frozen=True)
class ReleasePlan:
    """One release decision (or a withdrawal of one)."""

    at: datetime
    release_id: str
    cycle: date
    sequence: int
    compose: DayPlan | None  # None: a stale decision
    previous: str | None
    considered: tuple[tuple[DayPlan, str, str], ...]  # (compose, verdict, reason)
    open_bug: int | None


@dataclass(frozen=True)
class RevocationPlan:
    """A withdrawn release."""

    at: datetime
    release_id: str
    compose_id: str


@dataclass(frozen=True)
class EventPlan:
    """A failure-bug tracker event."""

    at: datetime
    bug: int
    action: Literal["opened", "commented", "closed"]
    compose: DayPlan


@dataclass
class ProductPlan:
    """A product's whole history, cheap to compute: no models, no signatures."""

    name: str
    short: str
    days: list[DayPlan]
    releases: list[ReleasePlan]
    revocations: list[RevocationPlan]
    events: list[EventPlan]


def at_time(day: date, hour: int, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` UTC."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def history_start(years: int) -> date:
    """The first day of a history of ``years`` years ending at :data:`END`."""
    return END - timedelta(days=365 * years)


def anchor_for(years: int) -> date:
    """The first release day: two weeks into the history."""
    return history_start(years) + timedelta(days=CADENCE - 1)


def plan_product(name: str, short: str, years: int) -> ProductPlan:
    """The deterministic history of one product (same arguments, same plan, any process)."""
    start, anchor = history_start(years), anchor_for(years)
    ndays = (END - start).days
    broken = _broken_days(name, start, anchor, ndays)
    days = [
        _plan_day(name, short, start + timedelta(days=i), start + timedelta(days=i) in broken)
        for i in range(ndays)
    ]
    releases, revocations = _plan_releases(name, days, anchor)
    events = _plan_events(days, broken)
    # A stale decision names the failure bug open at that time.
    releases = [_with_open_bug(r, events) for r in releases]
    return ProductPlan(name, short, days, releases, revocations, events)


def _broken_days(name: str, start: date, anchor: date, ndays: int) -> set[date]:
    """Days of whole failed cycles: every compose fails until a few days past release day."""
    broken: set[date] = set()
    k = 1
    while anchor + timedelta(days=k * CADENCE) < start + timedelta(days=ndays):
        rng = random.Random(f"{name}:cycle:{k}")
        if rng.random() < 0.04:
            release_day = anchor + timedelta(days=k * CADENCE)
            first = release_day - timedelta(days=CADENCE - 1)
            for i in range(CADENCE + rng.randrange(0, 6)):
                broken.add(first + timedelta(days=i))
        k += 1
    return broken


def _plan_day(name: str, short: str, day: date, broken: bool) -> DayPlan:
    rng = random.Random(f"{name}:day:{day.isoformat()}")
    cid = f"Fedora-{short}-{BASE_VERSION}-{day:%Y%m%d}.n.0"
    if broken:
        if rng.random() < 0.5:
            return DayPlan(day, cid, "no-image")
        plan = DayPlan(day, cid, "images")
        plan.runs = [
            _run(rng, day, arch, 3, ("format",) if arch == "x86_64" else ()) for arch in _arches()
        ]
        return plan
    r = rng.random()
    if r < 0.02:
        return DayPlan(day, cid, "no-image")
    plan = DayPlan(day, cid, "images")
    if r < 0.035:  # one arch's runner never reported: pending for ever
        plan.runs = [_run(rng, day, "x86_64", 3, ())]
        return plan
    plan.runs = [_run(rng, day, arch, 3, ()) for arch in _arches()]
    if r < 0.075:  # a blocking test failed on one arch
        arch = rng.choice(_arches())
        test = rng.choice(["checksum", "format"])
        plan.runs = [_run(rng, day, a, 3, (test,) if a == arch else ()) for a in _arches()]
        follow = rng.random()
        if follow < 0.6:  # re-run, passing
            plan.runs.append(_run(rng, day, arch, 6, ()))
        elif follow < 0.75:
            plan.waive = test
    elif r < 0.08:
        plan.manual_fail = True
    elif r < 0.11:  # the advisory test warns
        plan.runs = [_run(rng, day, a, 3, ("name",)) for a in _arches()]
    return plan


def _arches() -> list[str]:
    return [a[0] for a in ARCHES]


def _run(rng: random.Random, day: date, arch: str, hour: int, fail: tuple[str, ...]) -> RunPlan:
    minute = 0 if arch == "x86_64" else 30
    return RunPlan(arch, at_time(day, hour, minute), fail, f"{rng.getrandbits(24):06x}")


def _plan_releases(
    name: str, days: list[DayPlan], anchor: date
) -> tuple[list[ReleasePlan], list[RevocationPlan]]:
    """Release decisions as a daily ``release.cut`` makes them (policy ``retry``)."""
    first, end = days[0].day, days[-1].day
    releases: list[ReleasePlan] = []
    revocations: list[RevocationPlan] = []
    standing: list[ReleasePlan] = []  # releases not withdrawn, oldest first
    withdrawn: set[str] = set()
    k = 0
    while (cycle := anchor + timedelta(days=k * CADENCE)) <= end:
        rng = random.Random(f"{name}:release:{k}")
        k += 1
        for offset in range(CADENCE):
            day = cycle + timedelta(days=offset)
            if day > end:
                break
            at = at_time(day, 12)
            for rev in revocations:
                if rev.at <= at and rev.release_id not in withdrawn:
                    withdrawn.add(rev.release_id)
                    standing = [r for r in standing if r.release_id != rev.release_id]
            in_cycle = [r for r in releases if r.cycle == cycle]
            if any(r.compose is not None and r.release_id not in withdrawn for r in in_cycle):
                continue
            floor = standing[-1].compose.day if standing and standing[-1].compose else None
            low = 0 if floor is None else (floor - first).days + 1
            newer = reversed(days[low : (day - first).days + 1])
            bad = {
                r.compose.compose_id for r in releases if r.compose and r.release_id in withdrawn
            }
            chosen, considered = _choose(newer, bad)
            if in_cycle and chosen is None:
                continue  # retry: a later day of the cycle may bring a passing compose
            sequence = len(in_cycle) + 1
            rid = cycle.isoformat() if sequence == 1 else f"{cycle.isoformat()}.{sequence}"
            plan = ReleasePlan(
                at=at,
                release_id=rid,
                cycle=cycle,
                sequence=sequence,
                compose=chosen,
                previous=standing[-1].release_id if standing else None,
                considered=tuple(considered[:60]),
                open_bug=None,
            )
            releases.append(plan)
            if chosen is None:
                continue
            standing.append(plan)
            withdraw_day = day + timedelta(days=3)
            if (
                sequence == 1
                and rng.random() < 0.03
                and withdraw_day < min(end, cycle + timedelta(days=CADENCE))
            ):
                revocations.append(RevocationPlan(at_time(withdraw_day, 9), rid, chosen.compose_id))
    return releases, revocations


def _choose(
    newer: Iterable[DayPlan], bad: set[str]
) -> tuple[DayPlan | None, list[tuple[DayPlan, str, str]]]:
    """The newest passing compose not withdrawn, and what was considered (newest first)."""
    chosen: DayPlan | None = None
    considered: list[tuple[DayPlan, str, str]] = []
    for view in newer:
        if chosen is not None:
            considered.append((view, "older", "older than the chosen compose"))
        elif view.status == "passed" and view.compose_id not in bad:
            chosen = view
            considered.append((view, "chosen", "newest eligible compose"))
        else:
            considered.append((view, "rejected", view.status))
    return chosen, considered


def _plan_events(days: list[DayPlan], broken: set[date]) -> list[EventPlan]:
    """Tracker events of each whole failed stretch: opened, two comments, closed."""
    events: list[EventPlan] = []
    bug = 0
    streak = 0
    for plan in days:
        if plan.day in broken:
            if streak == 0:
                bug += 1
                events.append(EventPlan(at_time(plan.day, 7), bug, "opened", plan))
            elif streak <= 2:
                events.append(EventPlan(at_time(plan.day, 7), bug, "commented", plan))
            streak += 1
        elif streak and plan.status == "passed":
            events.append(EventPlan(at_time(plan.day, 7), bug, "closed", plan))
            streak = 0
    return events


def _with_open_bug(release: ReleasePlan, events: list[EventPlan]) -> ReleasePlan:
    if release.compose is not None:
        return release
    state: dict[int, bool] = {}
    for e in events:
        if e.at <= release.at:
            state[e.bug] = e.action != "closed"
    open_bugs = [b for b, is_open in state.items() if is_open]
    if not open_bugs:
        return release
    return ReleasePlan(
        release.at,
        release.release_id,
        release.cycle,
        release.sequence,
        release.compose,
        release.previous,
        release.considered,
        open_bugs[-1],
    )


# --- manifests from the plan -------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _images(plan: DayPlan, short: str) -> list[Image]:
    epoch = int(at_time(plan.day, 1).timestamp())
    images = []
    for arch, kind, fmt, ext in ARCHES:
        name = f"Fedora-{short}-{BASE_VERSION}-{plan.day:%Y%m%d}.n.0.{arch}.{ext}"
        path = f"{short}/{arch}/images/{name}"
        images.append(
            Image(
                variant=short,
                subvariant=short,
                type=kind,
                format=fmt,
                arch=arch,
                path=path,
                url=f"https://kojipkgs.fedoraproject.org/compose/{plan.compose_id}/compose/{path}",
                size=600_000_000 + (epoch % 9_999_991),
                checksums={"sha256": _sha(path)},  # type: ignore[arg-type]
                bootable=False,
                volume_id=None,
                implant_md5=None,
                mtime=epoch,
            )
        )
    return images


def _compose(product: str, short: str, plan: DayPlan) -> ComposeManifest:
    common: dict[str, Any] = {
        "product": product,
        "created": at_time(plan.day, 2),
        "compose_id": plan.compose_id,
        "date": f"{plan.day:%Y%m%d}",
        "respin": 0,
        "compose_type": "nightly",
        "source": f"https://kojipkgs.fedoraproject.org/compose/{plan.compose_id}/",
    }
    if plan.outcome == "no-image":
        return ComposeManifest(
            **common,
            release=None,
            outcome="no-image",
            reason="DOOMED: the compose produced no image",
            log_url=f"https://kojipkgs.fedoraproject.org/compose/{plan.compose_id}/logs/",
            checksums_verified=False,
            images=[],
        )
    return ComposeManifest(
        **common,
        release={  # type: ignore[arg-type]
            "name": "Fedora",
            "short": f"Fedora-{short}",
            "version": BASE_VERSION,
            "type": "ga",
        },
        outcome="images",
        checksums_verified=True,
        images=_images(plan, short),
    )


def _result(product: str, compose: ComposeManifest, run: RunPlan) -> ResultManifest:
    image = next(i for i in compose.images if i.arch == run.arch)
    ref = ImageRef.of(image)
    run_id = f"{run.started:%Y%m%dT%H%M%SZ}-{run.token}"
    cases = []
    for name, blocking in BATTERY:
        failed = name in run.fail
        log_path = f"{compose.compose_id}/{SUITE}-{run_id}/{run.arch}-{name}.log"
        cases.append(
            CaseResult(
                name=name,
                blocking=blocking,
                outcome="FAILED" if failed else "PASSED",
                reason="exit code 1" if failed else None,
                duration_ms=1200 + len(name) * 37,
                image=ref,
                log=LogRef(
                    path=log_path,
                    sha256=_sha(log_path),
                    size=512,
                    tail=f"{name}: {image.filename}: mismatch\n" if failed else None,
                ),
            )
        )
    finished = run.started + timedelta(minutes=4)
    return ResultManifest(
        product=product,
        created=finished,
        compose_id=compose.compose_id,
        suite=SUITE,
        run=run_id,
        origin="battery",
        runner=f"runner-{run.arch}",
        started=run.started,
        finished=finished,
        arches=[run.arch],
        artifacts=[ref],
        tests=cases,
        result=suite_verdict(cases),
    )


def _bug_url(product: str, bug: int) -> str:
    return f"bugs/{product}-{bug}.html"


def _release(product: str, plan: ReleasePlan) -> ReleaseManifest:
    chosen = plan.compose
    if chosen is not None:
        explanation = (
            f"Released {chosen.compose_id}: the newest compose that passed every blocking test"
        )
    else:
        explanation = f"No compose passed since the last release; keeping {plan.previous}"
    return ReleaseManifest(
        product=product,
        created=plan.at,
        release_id=plan.release_id,
        cycle=plan.cycle.isoformat(),
        sequence=plan.sequence,
        decision="release" if chosen else "stale",
        compose_id=chosen.compose_id if chosen else None,
        previous=plan.previous,
        base=BaseRef(name="Fedora", version=BASE_VERSION),
        policy="retry",
        open_bug=(
            BugLink(bug=f"local{plan.open_bug}", url=_bug_url(product, plan.open_bug))
            if plan.open_bug is not None
            else None
        ),
        considered=[
            Considered(compose_id=c.compose_id, status=c.status, verdict=v, reason=r)  # type: ignore[arg-type]
            for c, v, r in plan.considered
        ],
        explanation=explanation,
    )


def _event(product: str, plan: EventPlan) -> TrackerEventManifest:
    bug = f"local{plan.bug}"
    return TrackerEventManifest(
        product=product,
        created=plan.at,
        event_id=f"{bug}-{plan.action}-{plan.compose.compose_id}",
        backend="local",
        bug=bug,
        bug_id=str(plan.bug),
        url=_bug_url(product, plan.bug),
        action=plan.action,
        compose_id=plan.compose.compose_id,
        compose_status=plan.compose.status,
        summary=f"{product}: composes fail" if plan.action == "opened" else None,
        comment=f"[fortnight:{product}:{plan.compose.compose_id}] {plan.compose.status}",
    )


def _verdict(product: str, plan: DayPlan) -> VerdictManifest:
    return VerdictManifest(
        product=product,
        created=at_time(plan.day, 8),
        compose_id=plan.compose_id,
        number=1,
        action="waive" if plan.waive else "fail",
        test=plan.waive,
        suite=SUITE if plan.waive else None,
        reason="known false negative" if plan.waive else "breaks upgrades",
        operator="relman",
    )


def manifests_in(plan: ProductPlan, first: date, last: date) -> Iterator[Manifest]:
    """Every manifest of ``plan`` created on a day in [first, last]."""
    for day in plan.days:
        if not first <= day.day <= last:
            continue
        compose = _compose(plan.name, plan.short, day)
        yield compose
        for run in day.runs:
            yield _result(plan.name, compose, run)
        if day.waive or day.manual_fail:
            yield _verdict(plan.name, day)
    for rel in plan.releases:
        if first <= rel.at.date() <= last:
            yield _release(plan.name, rel)
    for rev in plan.revocations:
        if first <= rev.at.date() <= last:
            yield RevocationManifest(
                product=plan.name,
                created=rev.at,
                release_id=rev.release_id,
                compose_id=rev.compose_id,
                reason="the image does not boot on some hardware",
                operator="relman",
            )
    for event in plan.events:
        if first <= event.at.date() <= last:
            yield _event(plan.name, event)


# --- generation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One unit of generation work: one product's manifests of one year."""

    root: str
    product: str
    short: str
    years: int
    first: date
    last: date
    keys: dict[RoleName, bytes]  # private PEM per role (throwaway keys)


def _generate_chunk(chunk: Chunk) -> Counter[str]:
    signers = {
        role: CryptoSigner(load_pem_private_key(pem, password=None))
        for role, pem in chunk.keys.items()
    }
    plan = plan_product(chunk.product, chunk.short, chunk.years)
    root = Path(chunk.root)
    counts: Counter[str] = Counter()
    made: set[Path] = set()
    for manifest in manifests_in(plan, chunk.first, chunk.last):
        path = root / manifest.relpath()
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(sign_manifest(manifest, [signers[manifest.ROLE]]))
        counts[manifest.KIND] += 1
    return counts


def product_toml(name: str, display: str, anchor: date) -> bytes:
    """atomic-host's product.toml, renamed, with the release anchor at the history's start."""
    text = (REPO / MANIFESTS / "atomic-host" / "product.toml").read_text()
    text = re.sub(r'(?m)^name = "atomic-host"', f'name = "{name}"', text, count=1)
    text = re.sub(r"(?m)^display_name = .*$", f'display_name = "{display}"', text, count=1)
    text = re.sub(r"(?m)^anchor = \S+", f"anchor = {anchor.isoformat()}", text, count=1)
    return text.encode()


def products(count: int) -> list[tuple[str, str, str]]:
    """``count`` product names: the four of :data:`PRODUCTS`, then numbered copies."""
    extra = [(f"product-{i}", f"Product {i}", f"Product{i}") for i in range(5, count + 1)]
    return [*PRODUCTS, *extra][:count]


def _fingerprint(years: int, nproducts: int) -> dict[str, Any]:
    """What a cached history must match to be reused."""
    return {
        "generator": GENERATOR_VERSION,
        "years": years,
        "products": nproducts,
        "models": hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted((REPO / "pipeline/core/models").glob("*.py")))
        ).hexdigest(),
    }


def ensure_history(base: Path, years: int, nproducts: int, workers: int) -> Path:
    """The log of a ``years`` x ``nproducts`` history under ``base``, generated if needed."""
    where = base / f"history-{years}y-{nproducts}p"
    marker = where / "complete.json"
    expected = _fingerprint(years, nproducts)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker.read_text()) == expected:
            print(f"  reusing {where}")
            return where / "log"
    shutil.rmtree(where, ignore_errors=True)
    repo = where / "log"
    start = time.perf_counter()
    names = products(nproducts)
    anchor = anchor_for(years)
    trust = empty_trust()
    keys: dict[RoleName, bytes] = {}
    root_signer = CryptoSigner.generate_ed25519()
    for role in ROLES:
        signer = root_signer if role == "root" else CryptoSigner.generate_ed25519()
        trust = add_key_to_trust(trust, role, signer.public_key)
        keys[role] = signer.private_bytes
    init_log(
        repo,
        {name: product_toml(name, display, anchor) for name, display, _ in names},
        first_version(trust, [root_signer]),
    )
    log = ManifestLog(repo)
    chunks = [
        Chunk(
            str(log.root),
            name,
            short,
            years,
            max(history_start(years), date(y, 1, 1)),
            min(END, date(y, 12, 31)),
            keys,
        )
        for name, _, short in names
        for y in range(history_start(years).year, END.year + 1)
    ]
    counts: Counter[str] = Counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for done in pool.imap_unordered(_generate_chunk, chunks):
            counts.update(done)
    signed = time.perf_counter() - start
    git = ["git", "-C", str(repo)]
    subprocess.run([*git, "add", "-A", "--", MANIFESTS], check=True)
    subprocess.run(
        [*git, "commit", "--quiet", "--no-verify", "-m", f"history: {years} years"], check=True
    )
    # The log index and checkpoint 1 over it, as 'invoke checkpoint.upgrade' writes them.
    upgrade(log.writer, [root_signer], datetime.combine(END, datetime.min.time(), UTC))
    # The throwaway keys, beside the log (never in it), for benchmarks that sign more.
    (where / "keys.json").write_text(json.dumps({r: pem.decode() for r, pem in keys.items()}))
    total = sum(counts.values())
    print(
        f"  generated {total:,} manifests in {signed:.1f} s "
        f"({', '.join(f'{n:,} {k}' for k, n in sorted(counts.items()))}), "
        f"committed in {time.perf_counter() - start - signed:.1f} s"
    )
    marker.write_text(json.dumps(expected))
    return repo


# --- measuring ---------------------------------------------------------------------------------


def manifest_paths(root: Path) -> list[Path]:
    """Every manifest file under ``root`` (``manifests/``): ``*.json`` in product folders."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == root:
            skip = ("schema", TRUST_DIR, CHECKPOINT_DIR)
            dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(here / f for f in files if f.endswith(".json") and not f.startswith("."))
    return found


def floor(root: Path, keys: dict[str, SSlibKey]) -> int:
    """Read, parse and signature-check every manifest file: no pydantic, no models."""
    checked = 0
    for path in manifest_paths(root):
        doc = json.loads(path.read_bytes())
        data = signed_bytes(doc["signed"])
        for sig in doc["signatures"]:
            keys[sig["keyid"]].verify_signature(SslibSignature(sig["keyid"], sig["sig"]), data)
        checked += 1
    return checked


def timed(fn: Callable[[], object], repeats: int = 1) -> tuple[float, object]:
    """The best wall time of ``repeats`` calls, and the last result."""
    best = float("inf")
    result: object = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


@dataclass(frozen=True)
class Figures:
    """What one history size measured (seconds, best of runs)."""

    years: int
    files: int
    floor: float
    cold: float
    cold_load: float
    product: float  # warm load_state of the slowest product
    product_load: float  # its load_verified alone
    product_name: str
    whole: float  # warm load of every product + derive of each
    whole_load: float
    decision: float  # warm load_state + decide
    decide_only: float
    decision_what: str


def measure(repo: Path, years: int, repeats: int) -> Figures:
    """Time the floor, cold and warm derivation, and one decision, on one history."""
    log = ManifestLog(repo)
    trust = log.load_trust()
    configs = [load_product(log.root, name) for name in log.product_names()]
    now = at_time(END, 0)
    keys = {
        keyid: SSlibKey.from_dict(keyid, key.model_dump(mode="json"))
        for keyid, key in trust.keys.items()
    }
    git_dir = Path(
        subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--absolute-git-dir"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    for path in manifest_paths(log.root):  # warm the page cache: every figure reads from RAM
        path.read_bytes()

    floor_s, files = timed(lambda: floor(log.root, keys), repeats)
    assert isinstance(files, int)

    def derive_all() -> tuple[float, list[State]]:
        start = time.perf_counter()
        manifests = [v.manifest for v in log.load_verified(trust)]
        loaded = time.perf_counter() - start
        return loaded, [derive(manifests, config, now) for config in configs]

    cold_s, cold_load_s = float("inf"), 0.0
    for _ in range(repeats):
        verifycache.remove(git_dir)
        start = time.perf_counter()
        loaded, cold_states = derive_all()
        elapsed = time.perf_counter() - start
        if elapsed < cold_s:
            cold_s, cold_load_s = elapsed, loaded
    whole_s, whole_load_s = float("inf"), 0.0
    whole_states: list[State] = []
    for _ in range(WARM_REPEATS):
        start = time.perf_counter()
        loaded, whole_states = derive_all()
        elapsed = time.perf_counter() - start
        if elapsed < whole_s:
            whole_s, whole_load_s = elapsed, loaded
    if [s.composes for s in whole_states] != [s.composes for s in cold_states]:
        raise SystemExit("error: the warm state differs from the cold one")
    expected = {s.product.name: s.composes for s in whole_states}
    del cold_states, whole_states

    product_s, product_load_s, product_name = _measure_products(log, trust, configs, now, expected)
    decision_s, decide_s, what = _measure_decision(log, configs[0], now)
    return Figures(
        years=years,
        files=files,
        floor=floor_s,
        cold=cold_s,
        cold_load=cold_load_s,
        product=product_s,
        product_load=product_load_s,
        product_name=product_name,
        whole=whole_s,
        whole_load=whole_load_s,
        decision=decision_s,
        decide_only=decide_s,
        decision_what=what,
    )


def _measure_products(
    log: ManifestLog,
    trust: Trust,
    configs: Sequence[ProductConfig],
    now: datetime,
    expected: dict[str, list[ComposeView]],
) -> tuple[float, float, str]:
    """Warm ``load_state`` of each product, as every task that works on one product loads
    it: the slowest product's best time, its ``load_verified`` alone, and its name."""
    product_s, product_load_s, product_name = 0.0, 0.0, ""
    for config in configs:

        def one(config: ProductConfig = config) -> tuple[State, Trust]:
            return load_state(log, config, now)

        def load(config: ProductConfig = config) -> object:
            return log.load_verified(trust, [config.name])

        best, state = timed(one, WARM_REPEATS)
        assert isinstance(state, tuple)
        if state[0].composes != expected[config.name]:
            raise SystemExit(f"error: the one-product state of {config.name} differs")
        del state
        load_s, _ = timed(load, WARM_REPEATS)
        if best > product_s:
            product_s, product_load_s, product_name = best, load_s, config.name
    return product_s, product_load_s, product_name


def _measure_decision(
    log: ManifestLog, config: ProductConfig, now: datetime
) -> tuple[float, float, str]:
    """Warm ``load_state`` + ``decide`` for one product: best time, decide alone, what."""
    decide = _decide_function()
    # The next release day after the history, at noon: a cycle with no decision yet, so
    # ``decide`` really chooses (the history's own last cycle is already decided).
    at = at_time(next_release_day(config.release, now), 12)
    outcome: list[str] = []

    def one_decision() -> float:
        state, _ = load_state(log, config, at)
        loaded = time.perf_counter()
        if decide is not None:
            made = decide(state, at)
            outcome[:] = [
                f"{made.decision} {made.release_id} {made.compose_id or ''}".strip()
                if made is not None
                else "nothing to do"
            ]
        return time.perf_counter() - loaded  # decide alone

    decision_s, only = timed(one_decision, WARM_REPEATS)
    assert isinstance(only, float)
    what = (
        f"load_state + decide for {config.name} (decide: {outcome[0]})"
        if decide is not None
        else f"load_state for {config.name}; pipeline.core.release.decide is missing"
    )
    return decision_s, only, what


def _decide_function() -> Callable[[State, datetime], Any] | None:
    try:
        module = importlib.import_module("pipeline.core.release")
    except ImportError:
        return None
    decide = getattr(module, "decide", None)
    return decide if callable(decide) else None


# --- report ------------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(figures: Sequence[Figures], nproducts: int) -> None:
    """Print the table, the per-1,000-file costs and the targets."""
    print()
    print(
        f"{nproducts} products; cold and whole derive every product, 1 product = "
        "load_state of the slowest product; best of runs shown"
    )
    header = (
        f"{'years':>5} {'files':>7} {'floor s':>8} {'cold s':>8} {'x floor':>8} "
        f"{'(load s)':>9} {'1 product s':>12} {'(load s)':>9} {'whole s':>8} {'(load s)':>9} "
        f"{'decision s':>11} {'(decide s)':>11}"
    )
    print(header)
    print("-" * len(header))
    for f in figures:
        print(
            f"{f.years:>5} {f.files:>7,} {f.floor:>8.2f} {f.cold:>8.2f} {f.cold / f.floor:>8.2f} "
            f"{f.cold_load:>9.2f} {f.product:>12.2f} {f.product_load:>9.2f} {f.whole:>8.2f} "
            f"{f.whole_load:>9.2f} {f.decision:>11.2f} {f.decide_only:>11.3f}"
        )
    print()
    print("seconds per 1,000 files of the log (flat across sizes = linear):")
    print(
        f"{'years':>5} {'floor':>8} {'cold':>8} {'1 product':>10} {'whole':>8} "
        f"{'whole load':>11} {'whole derive':>13} {'decision':>9}"
    )
    for f in figures:
        k = f.files / 1000
        print(
            f"{f.years:>5} {f.floor / k:>8.3f} {f.cold / k:>8.3f} {f.product / k:>10.3f} "
            f"{f.whole / k:>8.3f} {f.whole_load / k:>11.3f} {(f.whole - f.whole_load) / k:>13.3f} "
            f"{f.decision / k:>9.3f}"
        )
    if len(figures) > 1:
        first, last = figures[0], figures[-1]

        def growth(cost: Callable[[Figures], float]) -> float:
            return (cost(last) / last.files) / (cost(first) / first.files)

        growths = {
            "cold": growth(lambda f: f.cold),
            "1 product": growth(lambda f: f.product),
            "whole": growth(lambda f: f.whole),
            "decision": growth(lambda f: f.decision),
        }
        print(
            f"per-file cost, {last.years} vs {first.years} years: "
            + ", ".join(f"{name} x{g:.2f}" for name, g in growths.items())
            + f" ({'linear' if max(growths.values()) < 1.3 else 'NOT linear'} within 30%)"
        )
    big = figures[-1]
    print()
    print(f"decision: {big.decision_what}")
    print(f"targets at {big.years} years:")
    print(
        f"  cold <= {COLD_TARGET}x floor: {big.cold / big.floor:.2f}x "
        f"{_met(big.cold <= COLD_TARGET * big.floor)}"
    )
    print(
        f"  warm, one product <= {WARM_TARGET_S} s: {big.product:.2f} s ({big.product_name}) "
        f"{_met(big.product <= WARM_TARGET_S)}"
    )
    print(
        f"  one decision <= {DECISION_TARGET_S} s: {big.decision:.2f} s "
        f"{_met(big.decision <= DECISION_TARGET_S)}"
    )
    print(f"  (warm, whole log, all {nproducts} products derived: {big.whole:.2f} s; no target)")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, generate or reuse each history, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--years", default="1,5,10", help="history sizes, comma-separated")
    parser.add_argument("--products", type=int, default=4, help="products per history")
    parser.add_argument("--dir", help="work dir; histories there are reused (default: temp)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="generators")
    parser.add_argument("--repeats", type=int, default=1, help="runs of the floor and cold")
    args = parser.parse_args(argv)
    sizes = [int(y) for y in args.years.split(",") if y.strip()]
    if not sizes or min(sizes) < 1 or args.products < 1:
        parser.error("--years needs positive integers and --products at least 1")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
        f"{parallel.cpu_count()} cores, load average {load:.2f} at start"
    )
    with contextlib.ExitStack() as stack:
        base = (
            Path(args.dir)
            if args.dir
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fortnight-hist-")))
        )
        base.mkdir(parents=True, exist_ok=True)
        figures = []
        for years in sizes:
            print(f"{years} year(s) x {args.products} products:")
            repo = ensure_history(base, years, args.products, max(1, args.workers))
            figures.append(measure(repo, years, max(1, args.repeats)))
        report(figures, args.products)
    return 0


if __name__ == "__main__":
    sys.exit(main())
