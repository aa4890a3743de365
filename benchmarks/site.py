"""Benchmark the download site: ``pipeline.site.build.build_site`` cold and warm, against Pelican.

Usage (from the repository root)::

    python benchmarks/site.py [--dir DIR] [--years 1,5,10] [--products 4] [--profile FILE]

For each size it generates (or reuses, from ``--dir``) the synthetic signed history of
``benchmarks/history.py``, then works on a scratch clone of it (``DIR/site-<N>y-<P>p/``):
the clone trusts one more throwaway key per role (kept beside it in ``keys.json``), so
the benchmark can sign and commit new manifests without touching the shared history.
Every build runs in a forked child (modules already imported, a fresh heap: nothing a
load freezes or caches in memory carries over) and describes the same moment, the next
release day after the history at 18:00 UTC. It times:

- cold: an empty output folder (no build record), the verification cache (with its blob
  store) warm; for the largest size, once more with the verification cache deleted as well;
- warm, nothing changed: building again into the same output;
- warm, after one new nightly compose (and its test results, one per arch) committed in
  the primary product, then after a release decision (``pipeline.core.release.decide``)
  committed too; each repeat starts again from the history (``git reset``), with a
  compose of another respin, so the new files always miss the verification cache;
- pages (``BuildReport.pages`` plus Pelican's content pages) and the output's size;
- Pelican's native route: a scratch project with one Markdown page per compose (a title
  and a table of test results; release pages and repeats fill it up to our page count),
  Pelican's default theme, ``DISPLAY_PAGES_ON_MENU = False``. With the menu on, every page
  lists every page (quadratic): that is timed for the smallest size only, stopped at 60 s;
- for the largest size, one more cold build with phase timers (load and verify, derive,
  page models, render, write, copy, Pelican's own work); ``--profile FILE`` also runs it
  under cProfile and saves the stats.

Cold runs are repeated three times when one takes under 20 s, warm runs always three
times; medians are shown. Target: ours >= 10x faster per page than Pelican's route, cold.
Targets are informational: the exit status is 0 whatever the figures, non-zero only on
an error. Progress goes to stderr, the figures to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import io
import json
import multiprocessing
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

# Run as a plain script, ``sys.path[0]`` is ``benchmarks/`` (so ``history`` imports) and
# the repository must be made importable, as ``history.py`` does.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import history  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: E402
from pelican import Pelican  # noqa: E402
from pelican.settings import read_settings  # noqa: E402

from pipeline.core.config import load_product  # noqa: E402
from pipeline.core.models.common import ROLES, Manifest, RoleName  # noqa: E402
from pipeline.core.models.manifests import ComposeManifest  # noqa: E402
from pipeline.core.release import decide  # noqa: E402
from pipeline.core.state import next_release_day  # noqa: E402
from pipeline.log import cache as verifycache  # noqa: E402
from pipeline.log import parallel  # noqa: E402
from pipeline.log.layout import TRUST_DIR  # noqa: E402
from pipeline.log.signing import add_key_to_trust, sign_manifest  # noqa: E402
from pipeline.log.sslib import CryptoSigner  # noqa: E402
from pipeline.log.store import ManifestLog  # noqa: E402
from pipeline.log.trust import empty_trust, first_version  # noqa: E402
from pipeline.log.writer import PendingManifest  # noqa: E402
from pipeline.site import build as sitebuild  # noqa: E402
from pipeline.site import incremental, output, render, workers  # noqa: E402
from pipeline.stages.load import load_state  # noqa: E402

CONF = REPO / "pelicanconf.py"
#: Bump when the scratch clone's setup changes: older clones are then made afresh.
SCRATCH_VERSION = 1
TARGET_RATIO = 10.0
WARM_RUNS = 3
COLD_RUNS = 3
#: A cold build (ours or Pelican's) slower than this is not repeated.
SLOW_S = 20.0
MENU_CAP_S = 60.0
#: Pelican's page sources (content/pages) count as pages of our site too.
PAGE_SOURCES = (".md", ".markdown", ".rst", ".html")

T = TypeVar("T")


class BenchError(Exception):
    """The benchmark could not run (a build failed, git failed, a child died)."""


def progress(message: str) -> None:
    """One line of progress, on stderr."""
    print(message, file=sys.stderr, flush=True)


# --- running in a forked child ------------------------------------------------------------


def in_child(fn: Callable[[], T], timeout: float | None = None) -> T | None:
    """``fn()`` in a forked child: its result, or None when it ran past ``timeout``.

    The child's stdout goes to /dev/null (Pelican prints a summary there); its stderr
    is ours.

    Raises:
        BenchError: ``fn`` raised (the child's traceback is in the message), or the child died.
    """
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)

    def target() -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - lives as long as the child
        try:
            outcome: tuple[bool, Any] = (True, fn())
        except BaseException as e:
            outcome = (False, "".join(traceback.format_exception(e)))
        sender.send(outcome)
        sender.close()

    proc = ctx.Process(target=target)
    proc.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            proc.kill()
            return None
        try:
            ok, value = receiver.recv()
        except EOFError as e:
            raise BenchError(f"a benchmark child died (exit status {proc.exitcode})") from e
    finally:
        proc.join()
        receiver.close()
    if not ok:
        raise BenchError(f"a benchmark child failed:\n{value}")
    result: T = value
    return result


def must(value: T | None) -> T:
    """A child's result when it had no timeout (so cannot be None)."""
    if value is None:
        raise BenchError("a benchmark child gave no result")
    return value


# --- the scratch clone --------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its stdout.

    Raises:
        BenchError: git failed.
    """
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"git {' '.join(args)} in {repo} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


@dataclass(frozen=True)
class Scratch:
    """A clone of one history that the benchmark may commit to, and where it builds."""

    years: int
    root: Path
    log: Path  # the clone
    base: str  # the commit every repeat starts from
    keys: dict[RoleName, bytes]  # throwaway private keys (PEM) trusted in the clone

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def git_dir(self) -> Path:
        return self.log / ".git"

    def reset(self) -> None:
        """Back to the history plus the benchmark's keys: drop what earlier steps committed."""
        git(self.log, "reset", "--quiet", "--hard", self.base)
        git(self.log, "clean", "--quiet", "-fd", "--", "manifests")

    def signers(self) -> dict[RoleName, CryptoSigner]:
        return {
            role: CryptoSigner(load_pem_private_key(pem, password=None))
            for role, pem in self.keys.items()
        }


def scratch_for(base: Path, history_log: Path, years: int, nproducts: int) -> Scratch:
    """The scratch clone of ``history_log``, made (or reused, then reset) under ``base``."""
    root = base / f"site-{years}y-{nproducts}p"
    marker = root / "scratch.json"
    head = git(history_log, "rev-parse", "HEAD")
    with contextlib.suppress(OSError, ValueError, KeyError):
        saved = json.loads(marker.read_text())
        if saved["version"] == SCRATCH_VERSION and saved["history"] == head:
            keys: dict[RoleName, bytes] = {
                role: pem.encode() for role, pem in saved["keys"].items()
            }
            scratch = Scratch(years, root, root / "log", saved["base"], keys)
            scratch.reset()
            progress(f"  reusing the scratch clone {scratch.log}")
            return scratch
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    start = time.perf_counter()
    clone = root / "log"
    subprocess.run(["git", "clone", "--quiet", "--local", str(history_log), str(clone)], check=True)
    git(clone, "config", "user.email", "bench@localhost")
    git(clone, "config", "user.name", "Fortnight benchmark")
    log = ManifestLog(clone)
    # Throwaway keys: a new root of trust for this scratch clone (a new version 1).
    trust = empty_trust()
    keys = {}
    for role in ROLES:
        signer = CryptoSigner.generate_ed25519()
        trust = add_key_to_trust(trust, role, signer.public_key)
        keys[role] = signer.private_bytes
    root_signer = CryptoSigner(load_pem_private_key(keys["root"], password=None))
    shutil.rmtree(log.root / TRUST_DIR)
    log.write_root(
        first_version(trust, [root_signer]), "trust: the site benchmark's throwaway keys"
    )
    base_commit = git(clone, "rev-parse", "HEAD")
    marker.write_text(
        json.dumps(
            {
                "version": SCRATCH_VERSION,
                "history": head,
                "base": base_commit,
                "keys": {role: pem.decode() for role, pem in keys.items()},
            }
        )
    )
    progress(f"  cloned the history to {clone} in {time.perf_counter() - start:.1f} s")
    return Scratch(years, root, clone, base_commit, keys)


# --- new manifests: a nightly compose with its results, then a release decision ----------


@dataclass(frozen=True)
class Moment:
    """When the benchmark's new manifests happen, and the moment every build describes."""

    day: date  # the next release day after the history
    product: str
    short: str

    @property
    def build_at(self) -> datetime:
        return history.at_time(self.day, 18)

    @property
    def release_at(self) -> datetime:
        return history.at_time(self.day, 12)


def moment_for(scratch: Scratch, nproducts: int) -> Moment:
    """The primary product's next release day after the history."""
    name, _, short = history.products(nproducts)[0]
    config = load_product(ManifestLog(scratch.log).root, name)
    day = next_release_day(config.release, history.at_time(history.END, 0))
    return Moment(day, name, short)


def commit_signed(scratch: Scratch, manifests: Sequence[Manifest], message: str) -> None:
    """Sign each manifest with its role's key (as history.py does) and commit them at once."""
    log = ManifestLog(scratch.log)
    signers = scratch.signers()
    pending = [
        PendingManifest(m.relpath(), sign_manifest(m, [signers[m.ROLE]]), m) for m in manifests
    ]
    roles = {m.ROLE for m in manifests}
    # The checkpoint is signed by each role whose manifests it adds.
    result = log.write(
        pending, log.load_trust(), message=message, signers=[signers[r] for r in sorted(roles)]
    )
    if result.commit is None:
        raise BenchError(f"nothing was committed for {message!r}")


def commit_compose(scratch: Scratch, moment: Moment, respin: int) -> str:
    """Commit one passing nightly compose of the primary product and one result per arch."""
    compose_id = f"Fedora-{moment.short}-{history.BASE_VERSION}-{moment.day:%Y%m%d}.n.{respin}"
    day = history.DayPlan(moment.day, compose_id, "images")
    day.runs = [
        history.RunPlan(arch, history.at_time(moment.day, 3, 30 * i), (), f"{respin:06x}")
        for i, (arch, *_) in enumerate(history.ARCHES)
    ]
    plan = history.ProductPlan(moment.product, moment.short, [day], [], [], [])
    manifests = [
        m.model_copy(update={"respin": respin}) if isinstance(m, ComposeManifest) else m
        for m in history.manifests_in(plan, moment.day, moment.day)
    ]
    commit_signed(scratch, manifests, f"{moment.product}: compose {compose_id} and its results")
    return compose_id


def commit_release(scratch: Scratch, moment: Moment) -> str:
    """Decide the primary product's release for the new cycle and commit the decision."""
    log = ManifestLog(scratch.log)
    config = load_product(log.root, moment.product)
    state, _ = load_state(log, config, moment.release_at)
    decision = decide(state, moment.release_at)
    if decision is None:
        raise BenchError(f"{moment.product}: no release decision to make at {moment.release_at}")
    commit_signed(scratch, [decision], f"{moment.product}: release {decision.release_id}")
    return f"{decision.decision} {decision.release_id} {decision.compose_id or ''}".strip()


# --- our builds ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Build:
    """One timed build of ours."""

    seconds: float
    pages: int
    written: int
    unchanged: int
    built: tuple[str, ...]


#: Folders set aside by :func:`set_aside`, deleted when the benchmark ends.
TRASH = ".trash"
#: How long the file system stays slow after a large delete (see :func:`set_aside`).
AFTER_DELETE_S = 30.0


def set_aside(folder: Path) -> None:
    """Move ``folder`` out of the way (into ``.trash`` beside it) instead of deleting it.

    Deleting tens of thousands of files makes creating files several times slower for
    the next half a minute on this kind of machine (ext4 mounted with ``discard``: the
    freed blocks are discarded in the journal's commits); a timed build right after a
    delete would pay for the build before it. A rename costs nothing; the trash is
    emptied when the benchmark ends (:func:`empty_trash`).
    """
    if not folder.exists():
        return
    trash = folder.parent / TRASH
    trash.mkdir(exist_ok=True)
    folder.rename(trash / f"{folder.name}-{time.time_ns()}")


def empty_trash(base: Path) -> bool:
    """Delete every folder :func:`set_aside` moved under ``base``; whether there were any."""
    found = [base / TRASH, *base.glob(f"*/{TRASH}"), *base.glob(f"*/*/{TRASH}")]
    found = [t for t in found if t.is_dir()]
    for trash in found:
        shutil.rmtree(trash, ignore_errors=True)
    return bool(found)


def settle() -> None:
    """Flush dirty pages (earlier builds' writes, a deleted output folder) before a timed
    build, so that it does not pay for what came before it."""
    os.sync()


def build(scratch: Scratch, at: datetime) -> Build:
    """Build the site of ``scratch`` into its output folder, in a forked child; timed."""
    settle()

    def run() -> Build:
        start = time.perf_counter()
        report = sitebuild.build_site(CONF, scratch.log, scratch.output, at=at)
        return Build(
            time.perf_counter() - start,
            report.pages,
            report.written,
            report.unchanged,
            tuple(report.products_built),
        )

    return must(in_child(run))


def cold_build(scratch: Scratch, at: datetime) -> Build:
    """A build into an empty output folder: no build record, nothing to skip."""
    set_aside(scratch.output)
    return build(scratch, at)


def warm_verification_cache(scratch: Scratch) -> None:
    """Load the whole log once, so that the verification cache (and its blob store, which
    the site's manifest mirror links) holds every file."""

    def load() -> int:
        log = ManifestLog(scratch.log)
        verified = log.load_verified(log.load_trust())
        store = log.blob_store()
        if store is not None:
            store.fill({v.name: v.blob for v in verified if v.blob}, log.root)
        return len(verified)

    must(in_child(load))


def content_page_count() -> int:
    """Pelican's content pages of our site (``content/`` + ``PAGE_PATHS``)."""
    settings = read_settings(str(CONF))
    root = Path(settings["PATH"])
    return sum(
        1
        for folder in settings["PAGE_PATHS"]
        for path in (root / folder).rglob("*")
        if path.suffix in PAGE_SOURCES
    )


@dataclass(frozen=True)
class Size:
    """Bytes and files under a folder, and the part under ``manifests/``."""

    files: int
    total: int
    manifests: int


def folder_size(root: Path) -> Size:
    files = total = manifests = 0
    for folder, _, names in os.walk(root):
        in_manifests = Path(folder).relative_to(root).parts[:1] == ("manifests",)
        for name in names:
            size = os.lstat(os.path.join(folder, name)).st_size
            files += 1
            total += size
            if in_manifests:
                manifests += size
    return Size(files, total, manifests)


# --- Pelican's native route ---------------------------------------------------------------

NATIVE_CONF = '''"""A plain Pelican project: one Markdown page per compose, the default theme."""

AUTHOR = "Fortnight"
SITENAME = "Fortnight downloads (native Pelican)"
SITEURL = ""
RELATIVE_URLS = True
PATH = "content"
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
ARTICLE_PATHS: list[str] = []
PAGE_PATHS = ["pages"]
STATIC_PATHS: list[str] = []
DISPLAY_PAGES_ON_MENU = False
FEED_ALL_ATOM = None
CATEGORY_FEED_ATOM = None
TRANSLATION_FEED_ATOM = None
AUTHOR_FEED_ATOM = None
AUTHOR_FEED_RSS = None
'''


def compose_markdown(product: str, display: str, day: history.DayPlan) -> tuple[str, str]:
    """A compose page: (slug, Markdown) with the compose's images and a table of results."""
    slug = f"{product}-{day.compose_id}".lower().replace(".", "-")
    lines = [
        f"Title: {day.compose_id}",
        f"Date: {day.day.isoformat()} 02:00",
        f"Slug: {slug}",
        f"Summary: {display} nightly compose {day.compose_id}: {day.status}",
        "",
        f"# {display}: {day.compose_id}",
        "",
        f"Status: **{day.status}**. Created {day.day.isoformat()} 02:00 UTC.",
        "",
    ]
    if day.outcome == "no-image":
        lines += ["The compose produced no image (DOOMED).", ""]
    else:
        lines += ["## Images", ""]
        lines += [
            f"- `{day.compose_id}.{arch}.{ext}` ({kind}, {fmt})"
            for arch, kind, fmt, ext in history.ARCHES
        ]
        lines += ["", "## Test results", ""]
        lines += [
            "| Arch | Test | Blocking | Outcome | Duration | Run |",
            "|---|---|---|---|---|---|",
        ]
        for run in day.runs:
            for name, blocking in history.BATTERY:
                outcome = "FAILED" if name in run.fail else "PASSED"
                lines.append(
                    f"| {run.arch} | {name} | {'yes' if blocking else 'no'} | {outcome} "
                    f"| {(1200 + len(name) * 37) / 1000:.1f} s | {run.started:%H:%M} {run.token} |"
                )
        if not day.runs:
            lines.append("| — | — | — | not tested | — | — |")
        if day.waive:
            lines += ["", f"Waived: `{day.waive}` (known false negative)."]
    return slug, "\n".join(lines) + "\n"


def release_markdown(product: str, display: str, rel: history.ReleasePlan) -> tuple[str, str]:
    """A release page: (slug, Markdown) with a table of the composes considered."""
    slug = f"{product}-release-{rel.release_id}".replace(".", "-")
    chosen = rel.compose.compose_id if rel.compose else "none (stale)"
    lines = [
        f"Title: {display} release {rel.release_id}",
        f"Date: {rel.at:%Y-%m-%d %H:%M}",
        f"Slug: {slug}",
        "",
        f"Released: **{chosen}**. Previous release: {rel.previous or 'none'}.",
        "",
        "| Compose | Status | Verdict | Reason |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c.compose_id} | {c.status} | {v} | {r} |" for c, v, r in rel.considered[:10]]
    return slug, "\n".join(lines) + "\n"


def native_pages(years: int, nproducts: int, count: int) -> Iterator[tuple[str, str]]:
    """``count`` Markdown pages: every compose of every product, then releases, then repeats."""
    made: list[tuple[str, str]] = []
    for name, display, short in history.products(nproducts):
        plan = history.plan_product(name, short, years)
        made += [compose_markdown(name, display, day) for day in plan.days]
    for name, display, short in history.products(nproducts):
        plan = history.plan_product(name, short, years)
        made += [release_markdown(name, display, rel) for rel in plan.releases]
    for i in range(count):
        slug, text = made[i % len(made)]
        if i >= len(made):
            slug = f"{slug}-{i // len(made)}"
            text = text.replace(f"Slug: {made[i % len(made)][0]}", f"Slug: {slug}", 1)
        yield slug, text


def make_native_project(root: Path, years: int, nproducts: int, count: int) -> Path:
    """A scratch Pelican project under ``root`` with ``count`` Markdown pages; its conf."""
    set_aside(root)
    pages_dir = root / "content" / "pages"
    pages_dir.mkdir(parents=True)
    for slug, text in native_pages(years, nproducts, count):
        (pages_dir / f"{slug}.md").write_text(text)
    conf = root / "pelicanconf.py"
    conf.write_text(NATIVE_CONF)
    return conf


def native_build(conf: Path, *, menu: bool, timeout: float | None = None) -> float | None:
    """Build the native project into an empty output, in a child; seconds (None: too slow)."""
    output = conf.parent / "output"
    set_aside(output)
    settle()

    def run() -> float:
        start = time.perf_counter()
        settings = read_settings(
            str(conf), override={"OUTPUT_PATH": str(output), "DISPLAY_PAGES_ON_MENU": menu}
        )
        Pelican(settings).run()
        return time.perf_counter() - start

    return in_child(run, timeout)


# --- where a cold build's time goes -------------------------------------------------------


class PhaseClock:
    """Wraps functions to time them; a call's nested timed calls are not counted twice."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[float]] = []  # [start, time in nested timed calls]

    def wrap(self, owner: object, attr: str, phase: str) -> None:
        """Time ``owner.attr`` as ``phase`` (skipped if the attribute is gone)."""
        fn = getattr(owner, attr, None)
        if not callable(fn):
            progress(f"  (phase timer: {owner!r}.{attr} not found; not timed)")
            return

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                elapsed = time.perf_counter() - frame[0]
                self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed - frame[1]
                self.calls[phase] = self.calls.get(phase, 0) + 1
                if self._stack:
                    self._stack[-1][1] += elapsed

        setattr(owner, attr, timed)


@dataclass
class Phases:
    """A cold build's time, split by phase (exclusive seconds, calls)."""

    total: float
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)


def phase_build(scratch: Scratch, at: datetime, profile: Path | None) -> Phases:
    """A cold build with phase timers (and cProfile, if asked), in a child, in one process
    (``--workers 1``: the timers cannot see into worker processes)."""
    set_aside(scratch.output)
    settle()

    def run() -> Phases:
        import pelican.generators  # noqa: PLC0415 - only the timed child needs it

        from pipeline.core import outputs, pages  # noqa: PLC0415 - only the timed child

        clock = PhaseClock()
        clock.wrap(ManifestLog, "load_verified", "load + verify (cache hits)")
        clock.wrap(workers, "derive", "derive")
        for name in dir(pages):
            if not name.startswith("_") and callable(getattr(pages, name)):
                value = getattr(pages, name)
                if getattr(value, "__module__", "").startswith(pages.__name__) and not isinstance(
                    value, type
                ):
                    clock.wrap(pages, name, "page models (pipeline.core.pages)")
        clock.wrap(render.Renderer, "render", "render (Jinja)")
        clock.wrap(output.Output, "write", "write (sha256, compare, atomic write)")
        clock.wrap(output.Output, "copy", "copy (manifests, logs)")
        clock.wrap(output.Output, "remove_stale", "remove stale files")
        clock.wrap(render, "atom_feed", "Atom feed")
        clock.wrap(outputs, "checksum_file", "CHECKSUM files")
        clock.wrap(outputs, "sha256sums", "CHECKSUM files")
        clock.wrap(incremental, "product_trees", "git ls-tree + status")
        clock.wrap(incremental, "code_key", "code key (hash code + theme)")
        clock.wrap(incremental, "save_record", "build record")
        clock.wrap(pelican.generators.PagesGenerator, "generate_context", "Pelican content pages")
        clock.wrap(pelican.generators.PagesGenerator, "generate_output", "Pelican content pages")
        clock.wrap(pelican.generators.StaticGenerator, "generate_output", "Pelican theme static")
        profiler = cProfile.Profile() if profile else None
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        # One process: phase timers and cProfile only see the process they run in.
        sitebuild.build_site(
            CONF, scratch.log, scratch.output, at=at, overrides={"FORTNIGHT_WORKERS": 1}
        )
        if profiler is not None:
            profiler.disable()
        total = time.perf_counter() - start
        if profiler is not None and profile is not None:
            profiler.dump_stats(str(profile))
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
            progress(text.getvalue())
        return Phases(total, clock.seconds, clock.calls)

    return must(in_child(run))


# --- one size -----------------------------------------------------------------------------


@dataclass
class Figures:
    """What one history size measured (seconds; medians of runs)."""

    years: int
    manifests: int
    pages: int
    output: Size
    cold: list[float]
    cold_nocache: float | None
    warm: list[float]
    warm_rebuilt: list[str]  # products a nothing-changed rebuild built (should be none)
    compose: list[float]
    compose_pages: int
    release: list[float]
    release_pages: int
    release_what: str
    native_pages: int
    native: list[float]
    native_menu: float | None = None  # None: not timed
    native_menu_capped: bool = False
    phases: Phases | None = None
    surprises: list[str] = field(default_factory=list)

    @property
    def cold_s(self) -> float:
        return statistics.median(self.cold)

    @property
    def native_s(self) -> float:
        return statistics.median(self.native)

    def ours_ms(self) -> float:
        return 1000 * self.cold_s / self.pages

    def native_ms(self) -> float:
        return 1000 * self.native_s / self.native_pages


def repeat_cold(fn: Callable[[], float], label: str) -> list[float]:
    """Cold runs: three, or one when the first is slow."""
    runs = [fn()]
    progress(f"    {label}: {runs[0]:.2f} s")
    while len(runs) < COLD_RUNS and runs[0] < SLOW_S:
        runs.append(fn())
        progress(f"    {label}: {runs[-1]:.2f} s")
    return runs


@dataclass
class Steps:
    """Warm rebuilds after one new compose, then after one release decision."""

    compose: list[float] = field(default_factory=list)
    compose_pages: int = 0
    release: list[float] = field(default_factory=list)
    release_pages: int = 0
    release_what: str = ""
    #: Builds that rebuilt more than the product that changed (the code or theme changed?).
    surprises: list[str] = field(default_factory=list)


def measure_steps(scratch: Scratch, moment: Moment) -> Steps:
    """Commit a compose (and results), rebuild, commit a release, rebuild; three times."""
    at = moment.build_at
    progress(f"  warm rebuilds after a new compose, then a release, in {moment.product}:")
    steps = Steps()
    for respin in range(WARM_RUNS):
        if respin:
            scratch.reset()
            build(scratch, at)  # back to the history's site (untimed)
        compose_id = commit_compose(scratch, moment, respin)
        done = build(scratch, at)
        steps.compose.append(done.seconds)
        if done.built != (moment.product,):
            steps.surprises.append(f"+compose {respin + 1} built {list(done.built)}")
        steps.compose_pages = done.pages
        progress(
            f"    + {compose_id}: {done.seconds:.2f} s ({done.pages} pages rendered, "
            f"{done.written} files written, built {list(done.built)})"
        )
        # decide() loads the product (and freezes the heap): in a child, not here.
        steps.release_what = must(in_child(lambda: commit_release(scratch, moment)))
        done = build(scratch, at)
        steps.release.append(done.seconds)
        if done.built != (moment.product,):
            steps.surprises.append(f"+release {respin + 1} built {list(done.built)}")
        steps.release_pages = done.pages
        progress(
            f"    + release ({steps.release_what}): {done.seconds:.2f} s ({done.pages} pages "
            f"rendered, {done.written} files written, built {list(done.built)})"
        )
    return steps


def measure(
    base: Path,
    years: int,
    nproducts: int,
    workers: int,
    *,
    largest: bool,
    smallest: bool,
    profile: Path | None,
) -> Figures:
    """Generate or reuse one history and time every build of it."""
    with contextlib.redirect_stdout(sys.stderr):  # history.py reports on stdout
        history_log = history.ensure_history(base, years, nproducts, workers)
    scratch = scratch_for(base, history_log, years, nproducts)
    moment = moment_for(scratch, nproducts)
    at = moment.build_at
    manifests = len(ManifestLog(scratch.log).manifest_files())
    progress(f"  {manifests:,} manifests; every build describes {at.isoformat()}")

    cold_nocache = None
    if largest:
        verifycache.remove(scratch.git_dir)
        progress("  cold build, verification cache deleted:")
        cold_nocache = cold_build(scratch, at).seconds
        progress(f"    {cold_nocache:.2f} s")
    else:
        warm_verification_cache(scratch)

    progress("  cold builds (empty output, verification cache warm):")
    builds: list[Build] = []

    def cold_once() -> float:
        builds.append(cold_build(scratch, at))
        return builds[-1].seconds

    cold = repeat_cold(cold_once, "cold")
    pages = builds[-1].pages + content_page_count()
    output = folder_size(scratch.output)

    progress("  warm rebuilds, nothing changed:")
    warm: list[float] = []
    rebuilt: set[str] = set()
    for _ in range(WARM_RUNS):
        done = build(scratch, at)
        warm.append(done.seconds)
        rebuilt.update(done.built)
        progress(f"    warm: {done.seconds:.2f} s (products rebuilt: {list(done.built)})")

    steps = measure_steps(scratch, moment)
    scratch.reset()

    progress(f"  Pelican's native route, {pages:,} Markdown pages, default theme, menu off:")
    native_conf = make_native_project(scratch.root / "native", years, nproducts, pages)
    native = repeat_cold(lambda: must(native_build(native_conf, menu=False)), "pelican")
    figures = Figures(
        years=years,
        manifests=manifests,
        pages=pages,
        output=output,
        cold=cold,
        cold_nocache=cold_nocache,
        warm=warm,
        warm_rebuilt=sorted(rebuilt),
        compose=steps.compose,
        compose_pages=steps.compose_pages,
        release=steps.release,
        release_pages=steps.release_pages,
        release_what=steps.release_what,
        native_pages=pages,
        native=native,
        surprises=steps.surprises,
    )
    if smallest:
        progress(f"  Pelican's native route, menu on (stopped at {MENU_CAP_S:.0f} s):")
        menu = native_build(native_conf, menu=True, timeout=MENU_CAP_S)
        figures.native_menu = MENU_CAP_S if menu is None else menu
        figures.native_menu_capped = menu is None
        progress(f"    pelican, menu on: {'stopped' if menu is None else f'{menu:.2f} s'}")
    set_aside(scratch.root / "native" / "output")
    if largest:
        progress("  one more cold build, with phase timers:")
        figures.phases = phase_build(scratch, at, profile)
        progress(f"    {figures.phases.total:.2f} s")
    return figures


# --- report -------------------------------------------------------------------------------


def med(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"


def report(figures: Sequence[Figures], nproducts: int, load_at_start: str) -> None:
    """Print the table, per-page costs, the comparison with Pelican and the phases."""
    print()
    print(
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, {os.cpu_count()} CPUs ({parallel.cpu_count()} usable), "
        f"load average {load_at_start} at start, {load_average()} at end; {nproducts} products"
    )
    print(
        "every build runs in a forked child (modules imported, fresh heap) after os.sync(), "
        "into a folder on the same disk as the log"
    )
    print(
        "cold = empty output folder, verification cache warm; warm = same output, "
        f"median of {WARM_RUNS}; +compose/+release = warm rebuild after committing one new "
        "nightly compose (and its results), then one release decision, in the primary product"
    )
    header = (
        f"{'years':>5} {'manifests':>9} {'pages':>7} {'out files':>9} {'out MB':>7} "
        f"{'(manif. MB)':>11} {'cold s':>7} {'runs':>4} {'warm s':>7} {'+compose s':>10} "
        f"{'+release s':>10} {'pelican s':>9} {'runs':>4}"
    )
    print(header)
    print("-" * len(header))
    for f in figures:
        print(
            f"{f.years:>5} {f.manifests:>9,} {f.pages:>7,} {f.output.files:>9,} "
            f"{f.output.total / 1e6:>7.1f} {f.output.manifests / 1e6:>11.1f} "
            f"{f.cold_s:>7.2f} {len(f.cold):>4} {med(f.warm):>7} {med(f.compose):>10} "
            f"{med(f.release):>10} {f.native_s:>9.2f} {len(f.native):>4}"
        )
    print()
    print("per page, cold (flat across sizes = linear):")
    print(
        f"{'years':>5} {'ours ms/page':>12} {'pelican ms/page':>15} {'pelican / ours':>14} "
        f"{'pages rebuilt +compose':>22} {'+release':>8}"
    )
    for f in figures:
        ratio = f.native_ms() / f.ours_ms()
        print(
            f"{f.years:>5} {f.ours_ms():>12.2f} {f.native_ms():>15.2f} {ratio:>13.1f}x "
            f"{f.compose_pages:>22,} {f.release_pages:>8,}"
        )
    if len(figures) > 1:
        first, last = figures[0], figures[-1]
        print(
            f"per-page cost, {last.years} vs {first.years} years: "
            f"ours x{last.ours_ms() / first.ours_ms():.2f}, "
            f"pelican x{last.native_ms() / first.native_ms():.2f}; warm rebuild after a "
            f"compose x{(statistics.median(last.compose) / last.pages) / (statistics.median(first.compose) / first.pages):.2f}"  # noqa: E501
        )
    print()
    big, small = figures[-1], figures[0]
    if big.cold_nocache is not None:
        print(
            f"cold at {big.years} years with the verification cache deleted too: "
            f"{big.cold_nocache:.2f} s ({1000 * big.cold_nocache / big.pages:.2f} ms/page)"
        )
    if small.native_menu is not None:
        shown = (
            f"> {small.native_menu:.0f} s (stopped)"
            if small.native_menu_capped
            else f"{small.native_menu:.2f} s ({1000 * small.native_menu / small.native_pages:.2f} ms/page)"  # noqa: E501
        )
        print(
            f"Pelican with DISPLAY_PAGES_ON_MENU = True at {small.years} year(s) "
            f"({small.native_pages:,} pages, every page lists every page): {shown}"
        )
    for f in figures:
        if f.warm_rebuilt:
            print(
                f"note: at {f.years} years a nothing-changed rebuild rebuilt {f.warm_rebuilt} "
                "(the code or theme changed during the run?)"
            )
        if f.surprises:
            print(
                f"note: at {f.years} years, steps that rebuilt more than the changed product "
                f"(the code or theme changed during the run? medians absorb one): "
                + "; ".join(f.surprises)
            )
    print(f"release step: {big.release_what} (at {big.years} years)")
    ratio = big.native_ms() / big.ours_ms()
    print(
        f"target at {big.years} years: ours >= {TARGET_RATIO:.0f}x faster per page than "
        f"Pelican's route, cold: {ratio:.1f}x {'met' if ratio >= TARGET_RATIO else 'MISSED'}"
    )
    if big.phases is not None:
        report_phases(big)


def report_phases(f: Figures) -> None:
    phases = f.phases
    assert phases is not None
    print()
    print(
        f"where a cold build's time goes at {f.years} years (one more cold build with "
        f"phase timers, {phases.total:.2f} s; exclusive times):"
    )
    rows = sorted(phases.seconds.items(), key=lambda kv: -kv[1])
    rest = phases.total - sum(phases.seconds.values())
    for name, seconds in [*rows, ("other (Pelican setup, sitegen loop glue)", rest)]:
        calls = phases.calls.get(name)
        print(
            f"  {name:<42} {seconds:>7.2f} s {100 * seconds / phases.total:>5.1f}%"
            + (f" {calls:>8,} calls" if calls else "")
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, measure each size, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--years", default="1,5,10", help="history sizes, comma-separated")
    parser.add_argument("--products", type=int, default=4, help="products per history")
    parser.add_argument("--dir", help="work dir; histories there are reused (default: temp)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="generators")
    parser.add_argument("--profile", type=Path, help="cProfile the phase build into this file")
    args = parser.parse_args(argv)
    sizes = sorted({int(y) for y in args.years.split(",") if y.strip()})
    if not sizes or min(sizes) < 1 or args.products < 1:
        parser.error("--years needs positive integers and --products at least 1")
    started = time.perf_counter()
    load_at_start = load_average()
    try:
        with contextlib.ExitStack() as stack:
            base = (
                Path(args.dir)
                if args.dir
                else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fortnight-")))
            )
            base.mkdir(parents=True, exist_ok=True)
            if empty_trash(base):  # left by an interrupted run: let the disk settle
                progress(f"emptied an earlier run's trash; waiting {AFTER_DELETE_S:.0f} s")
                time.sleep(AFTER_DELETE_S)
            stack.callback(empty_trash, base)
            figures = []
            for years in sizes:
                progress(f"{years} year(s) x {args.products} products:")
                figures.append(
                    measure(
                        base.resolve(),
                        years,
                        args.products,
                        max(1, args.workers),
                        largest=years == sizes[-1],
                        smallest=years == sizes[0],
                        profile=args.profile,
                    )
                )
            report(figures, args.products, load_at_start)
    except (BenchError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"(whole benchmark: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
