"""A release history, day by day, through the real pipeline: the demo and the simulated year.

:class:`Simulation` owns a scratch release repository (a git manifest log with keys made
for the run, the local tracker, a log store) and plays a :class:`Script` against it, one
simulated day at a time, calling the same functions as the operator tasks:
``compose.record`` (a small, well-formed compose written by
:func:`pipeline.demo.samples.write_compose_tree`), ``test.run`` (the product's battery, real
processes), ``tracker.sync``, ``release.cut``, and on their days ``compose.fail``,
``release.revoke`` and a reviewed commit that switches the base release. Manifests carry
the simulated times, so the derived state on any simulated day is what it would have
been. Faults come from the script: nights that fail a blocking test (a damaged image),
fail only an advisory test (an odd file name) or produce no image (DOOMED), days when the
tracker is down, and release days when ``release.cut`` did not run.

The script is drawn from a seed, so a run reproduces.
"""

from __future__ import annotations

import random
import shutil
import time as clock
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal

import requests

from pipeline.adapters.ingest import load_compose
from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models.common import ROLES
from pipeline.core.models.manifests import TrackerBackendName
from pipeline.core.redact import Redactor
from pipeline.core.state import State
from pipeline.core.tracker import Bug, LocalTracker, TrackerBackend
from pipeline.demo.ostree import PUBLIC_KEY, DemoOstree
from pipeline.demo.packages import write_rpms_json
from pipeline.demo.samples import write_compose_tree
from pipeline.errors import TrackerError
from pipeline.log.signing import add_key_to_trust, generate_key, load_signer, load_signers
from pipeline.log.store import ManifestLog, init_log
from pipeline.log.trust import empty_trust, first_version
from pipeline.log.writer import WriteOptions
from pipeline.stages.compose import failed_compose_manifest, record_compose, record_failed_compose
from pipeline.stages.load import load_state
from pipeline.stages.ostree import OstreeSetup, ostree_setup
from pipeline.stages.release import cut_release, revoke_release
from pipeline.stages.results import run_battery
from pipeline.stages.testing import LogStore
from pipeline.stages.tracking import sync_tracker
from pipeline.stages.verdict import record_verdict

NightKind = Literal["good", "blocking", "advisory", "no-image"]
PRODUCT = "atomic-host"
OPTIONS = WriteOptions()
#: When each step runs on a simulated day (UTC).
COMPOSE_AT, TEST_AT, SYNC_AT, OPERATOR_AT, CUT_AT = (
    time(2),
    time(3),
    time(4),
    time(10),
    time(12),
)


#: A battery of cheap real commands for long runs (the simulated year): the default
#: battery's blocking ``format`` and advisory ``name`` tests as shell one-liners instead
#: of ``python -m pipeline.checks``, so a night costs a few milliseconds of process
#: start-up per test rather than an interpreter's. (The default battery's ``checksum``
#: test is left out: ``compose.record`` has checked every image's size and sha256
#: already.) ``format`` checks each format's magic bytes (a ``blocking`` night zeroes the
#: first 16 bytes of the x86_64 qcow2); ``name`` checks that the file name carries the
#: arch (an ``advisory`` night drops it from one raw-xz image's name).
FAST_BATTERY = r"""
[battery]
workers = 0

[battery.suites.images]
description = "Shell checks of every image file: magic bytes and file name"

[[battery.suites.images.tests]]
name = "format"
command = '''
case "$FORTNIGHT_IMAGE_FORMAT" in
  qcow2) magic='QFI\373' n=4 ;;
  raw.xz) magic='\3757zXZ\0' n=6 ;;
  *.box) magic='\037\213' n=2 ;;
  *) magic='' ;;
esac
if [ -n "$magic" ]; then printf "$magic" | cmp -s -n $n - "$FORTNIGHT_IMAGE"
else ! cmp -s -n 16 "$FORTNIGHT_IMAGE" /dev/zero; fi
'''
blocking = true
timeout = 60

[[battery.suites.images.tests]]
name = "name"
command = '[[ "${FORTNIGHT_IMAGE##*/}" =~ (^|[._-])"$FORTNIGHT_IMAGE_ARCH"([._-]|$) ]]'
blocking = false
timeout = 60
"""


def with_battery(product_toml: bytes, battery: str = FAST_BATTERY) -> bytes:
    """``product_toml`` with its ``[battery]`` tables replaced by ``battery``.

    Raises:
        ValueError: the result is not valid TOML (``tomllib.TOMLDecodeError``).
    """
    kept: list[str] = []
    in_battery = False
    for line in product_toml.decode().splitlines():
        if line.startswith("["):
            was, in_battery = in_battery, line.lstrip("[").startswith("battery")
            if in_battery and not was:
                kept.append(battery.strip() + "\n")
        if not in_battery:
            kept.append(line)
    text = "\n".join(kept) + "\n"
    tomllib.loads(text)
    return text.encode()


@dataclass(frozen=True)
class Script:
    """What happens on each simulated day."""

    start: date  # day 0
    days: int
    anchor: date  # the first release day
    nights: tuple[NightKind, ...]
    tracker_down: frozenset[int] = frozenset()
    missed_cut: frozenset[int] = frozenset()
    operator_fail: int | None = None
    withdraw: int | None = None
    base_switch: int | None = None

    def day(self, n: int) -> date:
        return self.start + timedelta(days=n)

    def release_days(self) -> list[int]:
        """Day numbers that are release days (anchor + k x 14)."""
        first = (self.anchor - self.start).days
        return list(range(first, self.days, 14))


def demo_script(weeks: int, seed: int, end: date) -> Script:
    """The demo's story over ``weeks`` weeks ending on ``end``: mostly good nights, some that
    fail a blocking test, one without an image, one that fails only an advisory test, one
    whole cycle that fails (stale, then a late release), an operator fail, a withdrawal and
    a switch to a Beta base."""
    rnd = random.Random(seed)
    days = weeks * 7
    start = end - timedelta(days=days - 1)
    anchor = start + timedelta(days=6)
    nights: list[NightKind] = ["blocking" if rnd.random() < 0.2 else "good" for _ in range(days)]
    release = list(range(6, days, 14))
    nights[rnd.randrange(0, min(5, days))] = "no-image"
    if days > 12:
        nights[rnd.randrange(7, 12)] = "advisory"
    operator_fail = withdraw = base_switch = None
    if len(release) >= 3:  # one whole cycle fails: its release day is stale
        for d in range(release[1] + 1, release[2] + 1):
            nights[d] = "blocking"
        if release[2] + 1 < days:  # ... and the next good night is released late
            nights[release[2] + 1] = "good"
    if len(release) >= 4:
        operator_fail = release[3] - 1  # the newest good compose is failed by hand
        nights[operator_fail] = nights[operator_fail - 1] = "good"
        withdraw = release[3] + 1  # the release of that day turns out bad
    if len(release) >= 5:
        base_switch = release[3] + 3  # the next cycle is built on Fedora 29 Beta
        nights[release[4] - 1] = "good"
    return Script(
        start=start,
        days=days,
        anchor=anchor,
        nights=tuple(nights),
        operator_fail=operator_fail,
        withdraw=_within(withdraw, days),
        base_switch=_within(base_switch, days),
    )


def _within(day: int | None, days: int) -> int | None:
    """``day`` when the run reaches it, else None (an event after the story's end)."""
    return day if day is not None and day < days else None


def year_script(seed: int, start: date, days: int = 365) -> Script:
    """A year with seeded faults: failing and imageless nights, tracker outages, a missed
    ``release.cut``, an operator fail, a withdrawal and a base switch."""
    rnd = random.Random(seed)
    nights: list[NightKind] = []
    for _ in range(days):
        x = rnd.random()
        kind: NightKind = "good"
        if x < 0.05:
            kind = "no-image"
        elif x < 0.30:
            kind = "blocking"
        elif x < 0.35:
            kind = "advisory"
        nights.append(kind)
    anchor = start + timedelta(days=7)
    release = list(range(7, days, 14))
    for d in range(release[5] + 1, release[6] + 1):  # at least one whole failing cycle
        nights[d] = "blocking"
    down = frozenset(d for d in range(days) if rnd.random() < 0.06)
    mid = len(release) // 2
    return Script(
        start=start,
        days=days,
        anchor=anchor,
        nights=tuple(nights),
        tracker_down=down,
        missed_cut=frozenset({release[3]}),
        operator_fail=release[8] - 1,
        withdraw=release[mid] + 2,
        base_switch=release[mid] + 5,
    )


@dataclass
class DayReport:
    """What one simulated day did."""

    day: date
    compose_id: str
    kind: NightKind
    status: str = ""
    decision: str = ""
    bug_events: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The derived state at the end of the day (23:00 UTC).
    state: State | None = field(default=None, repr=False)


@dataclass
class Totals:
    """The run's summary."""

    releases: int = 0
    stale_cycles: int = 0
    withdrawn: int = 0
    bugs_opened: int = 0
    bugs_closed: int = 0
    tracker_outages: int = 0
    composes: int = 0


class DownTracker:
    """The tracker on a day it is down: every call fails as Bugzilla's outage would."""

    name: TrackerBackendName = "local"

    def _down(self) -> TrackerError:
        return TrackerError(
            "the tracker is down (simulated outage)", hint="the next sync catches up"
        )

    def find_open(self, tag: str) -> list[Bug]:
        raise self._down()

    def get(self, bug_id: str) -> Bug:
        raise self._down()

    def create(self, tag: str, summary: str, description: str) -> Bug:
        raise self._down()

    def comment(self, bug_id: str, text: str) -> None:
        raise self._down()

    def close(self, bug_id: str, comment: str) -> None:
        raise self._down()


class Simulation:
    """A scratch release repository and the day-by-day pipeline run against it."""

    def __init__(
        self,
        workdir: Path,
        script: Script,
        *,
        product_toml: bytes,
        arches: tuple[str, ...] = ("x86_64", "aarch64"),
        workers: int = 2,
        download_url: str = "/composes/{compose_id}/compose/",
        ostree: bool = False,
    ) -> None:
        self.workdir = workdir
        self.script = script
        self.arches = arches
        self.workers = workers
        self.repo = workdir / "log"
        self.keys = workdir / "keys"
        self.www = workdir / "www"  # the site is built here; composes are served beside it
        self.composes = self.www / "composes"
        # The demo's tests are its own commands, and its environment holds no secret.
        self.logs = LogStore(workdir / "logs", Redactor.of({}))
        self.scratch = workdir / "scratch"
        self.totals = Totals()
        #: Wall time spent per phase of the day (compose, test, sync, operator, cut, state).
        self.timings: dict[str, float] = defaultdict(float)
        self.version = "28"
        if workdir.exists():
            shutil.rmtree(workdir)
        workdir.mkdir(parents=True)
        toml = _with_release_settings(product_toml, script.anchor, download_url)
        #: The OSTree part (a commit per arch each night, promoted on release), if asked.
        self.ostree = DemoOstree(workdir / "ostree") if ostree else None
        if self.ostree is not None:
            toml += self.ostree.toml_table(arches).encode()
        self.env: dict[str, str] = {}
        trust = empty_trust()
        for role in ROLES:
            key = generate_key(role, self.keys, self.repo)
            trust = add_key_to_trust(trust, role, key.public_key)
            self.env[f"FORTNIGHT_KEY_{role.upper()}"] = str(key.private_path)
        root = load_signers("root", self.env, trust)
        init_log(self.repo, {PRODUCT: toml}, first_version(trust, root))
        self.log = ManifestLog(self.repo)
        if self.ostree is not None:
            key_file = self.log.root / PRODUCT / PUBLIC_KEY
            key_file.write_bytes(self.ostree.public_key)
            self.log.commit_file(key_file, f"product: {PRODUCT}: the OSTree public key")
        self.signers = {role: load_signer(role, self.env, trust) for role in ROLES}
        self.session = requests.Session()

    @property
    def product(self) -> ProductConfig:
        return load_product(self.log.root, PRODUCT)

    def ostree_setup(self) -> OstreeSetup | None:
        """The product's ``[ostree]``, resolved (None without the OSTree part)."""
        return ostree_setup(self.product, self.repo, {}) if self.ostree is not None else None

    def at(self, n: int, when: time) -> datetime:
        """Day ``n`` at ``when`` (UTC)."""
        return datetime.combine(self.script.day(n), when, tzinfo=UTC)

    def state(self, now: datetime) -> State:
        """The derived state at ``now`` (loaded and verified, as every task does)."""
        return load_state(self.log, self.product, now)[0]

    def run(self, on_day: Callable[[int, DayReport], None] = lambda n, r: None) -> Totals:
        """Play every day of the script."""
        for n in range(self.script.days):
            on_day(n, self.step(n))
        return self.totals

    def step(self, n: int) -> DayReport:
        """One simulated day: compose, test, sync, operator events, release.cut."""
        s = self.script
        kind = s.nights[n]
        when = s.day(n)
        cid = f"Fedora-Atomic-{self.version}-{when:%Y%m%d}.0"
        report = DayReport(when, cid, kind)
        with self._phase("compose"):
            self._compose(n, cid, kind)
        self.totals.composes += 1
        if kind != "no-image":
            with self._phase("test"):
                self._test(n, cid)
        with self._phase("sync"):
            self._sync(n, report)
        with self._phase("operator"):
            if n == s.operator_fail:
                report.notes.append(self._operator_fail(n))
            if n == s.withdraw:
                report.notes.append(self._withdraw(n))
            if n == s.base_switch:
                report.notes.append(self._switch_base())
        if n in s.missed_cut:
            report.notes.append("release.cut did not run today")
        else:
            with self._phase("cut"):
                report.decision = self._cut(n)
        with self._phase("state"):
            report.state = self.state(self.at(n, time(23)))
        view = report.state.compose(cid)
        report.status = view.status if view else "?"
        return report

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        started = clock.perf_counter()
        try:
            yield
        finally:
            self.timings[name] += clock.perf_counter() - started

    def _compose(self, n: int, cid: str, kind: NightKind) -> None:
        product = self.product
        signer = [self.signers["compose"]]
        now = self.at(n, COMPOSE_AT)
        if kind == "no-image":
            manifest = failed_compose_manifest(
                product, cid, "Pungi status DOOMED: an image build failed", None, now
            )
            record_failed_compose(self.log, manifest, signer, OPTIONS)
            return
        broken = frozenset({("x86_64", "qcow2")}) if kind == "blocking" else frozenset()
        odd = frozenset({(self.arches[-1], "raw-xz")}) if kind == "advisory" else frozenset()
        compose_dir = write_compose_tree(
            self.composes / cid,
            cid,
            version=self.version,
            arches=self.arches,
            broken=broken,
            odd_name=odd,
        )
        write_rpms_json(compose_dir, cid, night=n, fedora=self.version, arches=self.arches)
        loaded = load_compose(str(compose_dir.parent))
        trees = (
            self.ostree.night(cid, self.version, now, self.arches, night=n)
            if self.ostree is not None
            else []
        )
        record_compose(
            self.log,
            product,
            loaded,
            signer,
            now,
            verify=True,
            options=OPTIONS,
            workers=1,
            ostree=trees,
        )

    def _test(self, n: int, cid: str) -> None:
        now = self.at(n, TEST_AT)
        run_battery(
            self.log,
            self.product,
            cid,
            suite=None,
            arches=[],
            logs=self.logs,
            scratch=self.scratch,
            signers=[self.signers["test"]],
            options=OPTIONS,
            base_env={"PATH": "/usr/bin:/bin"},
            clock=lambda: now,
            runner="demo",
            workers=self.workers,
            session=self.session,
        )
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _sync(self, n: int, report: DayReport) -> None:
        down = n in self.script.tracker_down

        def backend(state: State) -> TrackerBackend:
            return DownTracker() if down else LocalTracker(state)

        try:
            sync = sync_tracker(
                self.log,
                self.product,
                signers=[self.signers["release"]],
                options=OPTIONS,
                now=self.at(n, SYNC_AT),
                backend_for=backend,
            )
        except TrackerError as e:
            self.totals.tracker_outages += 1
            report.notes.append(f"tracker.sync failed: {e.message}")
            return
        for event in sync.events:
            report.bug_events.append(f"{event.action} {event.bug}")
            if event.action == "opened":
                self.totals.bugs_opened += 1
            elif event.action == "closed":
                self.totals.bugs_closed += 1

    def _cut(self, n: int) -> str:
        manifest, _, _ = cut_release(
            self.log,
            self.product,
            self.at(n, CUT_AT),
            signers=[self.signers["release"]],
            options=OPTIONS,
            ostree=self.ostree_setup(),
        )
        if manifest is None:
            return ""
        if manifest.decision == "release":
            self.totals.releases += 1
            return f"release {manifest.release_id}: {manifest.compose_id}"
        self.totals.stale_cycles += 1
        return f"stale {manifest.release_id}"

    def _operator_fail(self, n: int) -> str:
        now = self.at(n, OPERATOR_AT)
        state = self.state(now)
        passed = [c for c in state.composes if c.status == "passed"]
        if not passed:
            return "compose.fail: nothing passed to fail"
        target = passed[-1].compose_id
        record_verdict(
            self.log,
            self.product,
            target,
            action="fail",
            reason="rpm-ostree upgrade from the previous release fails (found by hand)",
            operator="operator",
            test=None,
            suite=None,
            reason_url=None,
            signers=[self.signers["release"]],
            options=OPTIONS,
            now=now,
        )
        return f"compose.fail {target}"

    def _withdraw(self, n: int) -> str:
        now = self.at(n, OPERATOR_AT)
        current = self.state(now).current
        if current is None:
            return "release.revoke: no release to withdraw"
        revoke_release(
            self.log,
            self.product,
            current.release_id,
            reason="the image does not boot on some hardware",
            reason_url=None,
            operator="operator",
            signers=[self.signers["release"]],
            options=OPTIONS,
            now=now,
            ostree=self.ostree_setup(),
        )
        self.totals.withdrawn += 1
        return f"release.revoke {current.release_id}"

    def _switch_base(self) -> str:
        """The reviewed commit that moves the product to the next release's Beta."""
        nxt = str(int(self.version) + 1)
        path = self.log.root / PRODUCT / "product.toml"
        text = path.read_text()
        base = tomllib.loads(text)["base"]
        text = text.replace(
            f'version = "{base["version"]}"', f'version = "{nxt}"\nprerelease = "Beta"', 1
        )
        path.write_text(text)
        self.log.commit_file(path, f"product: {PRODUCT}: base Fedora {nxt} Beta")
        self.version = nxt
        return f"base switched to Fedora {nxt} Beta"


def _with_release_settings(toml: bytes, anchor: date, download_url: str) -> bytes:
    """The product.toml with the script's first release day and the local download URL."""
    text = toml.decode()
    data = tomllib.loads(text)
    old_anchor = data["release"]["anchor"]
    text = text.replace(f"anchor = {old_anchor}", f"anchor = {anchor.isoformat()}", 1)
    old_url = data["images"]["download_url"]
    text = text.replace(f'download_url = "{old_url}"', f'download_url = "{download_url}"', 1)
    return text.encode()
