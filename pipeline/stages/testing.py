"""Stage: run a compose's test battery, or import JUnit results, into test-result manifests.

Each test is a shell command run once per matching image, in its own process
group, killed at its timeout. Images are tested in parallel (bounded by cores),
the tests of one image in order. Output goes to a log store outside git; the
manifest keeps each log's path and sha256, and for failures the last few KiB.
Commands see an allowlisted environment, and their output is redacted before it is stored
(``pipeline/stages/isolation.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import requests

import pipeline
from pipeline.adapters.hashing import CHUNK, stream_url
from pipeline.adapters.ingest import ComposeLocation, check_image_path, is_url
from pipeline.core.config import TestSpec
from pipeline.core.models.manifests import (
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
from pipeline.errors import InputError, TestRunError
from pipeline.stages.battery import PlannedSuite
from pipeline.stages.isolation import Sandbox, allowed_env

TAIL_BYTES = 4096
KILL_GRACE_SECONDS = 5.0
Clock = Callable[[], datetime]


def new_run_id(now: datetime) -> str:
    """A run id: the start time and a random suffix, so concurrent runners never collide."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LogStore:
    """Where test logs live, outside git: ``<root>/<product>/<compose>/<suite>/<run>/…``.

    Everything a test printed enters the store, and from it a manifest, through :meth:`put`,
    which redacts it first: the one place output is recorded.
    """

    root: Path
    redactor: Redactor

    def put(self, rel: PurePosixPath, src: Path, *, keep_tail: bool) -> LogRef:
        """Copy ``src`` into the store at ``rel``, redacted, and describe it."""
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with src.open("rb") as raw, tmp.open("wb") as out:
                lines = (line.decode("utf-8", errors="surrogateescape") for line in raw)
                for line in self.redactor.lines(lines):
                    out.write(line.encode("utf-8", errors="surrogateescape"))
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)
        return describe_log(dest, rel, keep_tail=keep_tail)


def describe_log(path: Path, rel: PurePosixPath, *, keep_tail: bool) -> LogRef:
    """A log's reference: its path in the store, size, sha256, and optionally its tail."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
        size = f.tell()
        tail = None
        if keep_tail:
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace")
    return LogRef(path=rel.as_posix(), sha256=digest.hexdigest(), size=size, tail=tail)


def first_line(path: Path, limit: int = 200) -> str | None:
    """The first non-blank line of a (redacted) log, cut to ``limit`` characters: a failed
    command's own words for why, rather than its exit code."""
    with path.open("rb") as f:
        head = f.read(4 * limit).decode("utf-8", errors="replace")
    for line in head.splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return None


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe short form of a test name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned[:limit] or "test"


# --- image files -----------------------------------------------------------------------


def image_files(
    compose: ComposeManifest,
    images: Sequence[Image],
    cache: Path,
    session: requests.Session,
) -> dict[tuple[str, str, str, str, int], Path]:
    """A local file for each image: in the compose folder, or downloaded into ``cache``.

    Downloads are not verified here: the battery's checksum test judges them.

    Raises:
        InputError: a local image file is missing.
        FetchError: a remote image could not be downloaded.
    """
    files = {}
    for img in images:
        check_image_path_of(compose, img)
        if is_url(compose.source):
            dest = cache / img.path
            if not dest.exists():
                _download(compose.source + img.path, dest, session)
            files[img.key()] = dest
        else:
            path = Path(compose.source) / img.path
            if not path.is_file():
                raise InputError(
                    f"{compose.compose_id}: image file {path} is missing",
                    hint="test.run needs the compose where it was recorded from",
                )
            files[img.key()] = path
    return files


def check_image_path_of(compose: ComposeManifest, img: Image) -> None:
    """The path safety rules of ingestion, applied again before any file is opened."""
    local = None if is_url(compose.source) else Path(compose.source).resolve()
    base = compose.source if is_url(compose.source) else None
    check_image_path(ComposeLocation(compose.source, local, base), img.path)


def _download(url: str, dest: Path, session: requests.Session) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with tmp.open("wb") as f:
            for block in stream_url(url, session):
                f.write(block)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dest)


# --- running ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """What every test of a run shares."""

    compose: ComposeManifest
    logs: LogStore
    scratch: Path
    base_env: Mapping[str, str]
    clock: Clock
    runner: str
    workers: int
    #: Variables of ``base_env`` passed on besides the allowlist (``battery.pass_env``).
    pass_env: tuple[str, ...] = ()
    sandbox: Sandbox | None = None
    #: The compose's OSTree repository (a local path; "" when not configured or remote).
    ostree_repo: str = ""


def ostree_env(settings: RunSettings, arch: str) -> dict[str, str]:
    """``FORTNIGHT_OSTREE_*``: the repository, this arch's commit and version, and every
    arch's version (``arch=version,…``), for ``python -m pipeline.checks ostree``; none
    when the compose has no trees and no repository is configured."""
    trees = settings.compose.ostree
    if not trees and not settings.ostree_repo:
        return {}  # no OSTree: the environment is as before
    mine = next((t for t in trees if t.arch == arch), None)
    return {
        "FORTNIGHT_OSTREE_REPO": settings.ostree_repo,
        "FORTNIGHT_OSTREE_COMMIT": mine.commit if mine else "",
        "FORTNIGHT_OSTREE_VERSION": mine.version if mine else "",
        "FORTNIGHT_OSTREE_VERSIONS": ",".join(f"{t.arch}={t.version}" for t in trees),
    }


def command_env(settings: RunSettings, img: Image, path: Path, scratch: Path) -> dict[str, str]:
    """The environment a battery command runs with (documented in the README)."""
    # Test commands run code from elsewhere: they see an allowlist of the runner's variables.
    env = allowed_env(settings.base_env, settings.pass_env)
    # `python` in a command is the interpreter running Fortnight, and `pipeline` imports.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", os.defpath)
    package_root = str(Path(pipeline.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    if settings.sandbox is not None:
        env["TMPDIR"] = "/tmp"  # a fresh tmpfs in the sandbox; the rest of / is read-only
    env.update(
        FORTNIGHT_IMAGE=str(path),
        FORTNIGHT_IMAGE_URL=img.url,
        FORTNIGHT_IMAGE_FORMAT=img.format,
        FORTNIGHT_IMAGE_TYPE=img.type,
        FORTNIGHT_IMAGE_ARCH=img.arch,
        FORTNIGHT_IMAGE_SUBVARIANT=img.subvariant,
        FORTNIGHT_IMAGE_SIZE=str(img.size),
        FORTNIGHT_IMAGE_SHA256=img.checksums.sha256,
        FORTNIGHT_IMAGE_VOLUME_ID=img.volume_id or "",
        FORTNIGHT_COMPOSE_ID=settings.compose.compose_id,
        FORTNIGHT_SCRATCH=str(scratch),
    )
    env.update(ostree_env(settings, img.arch))
    return env


@dataclass(frozen=True)
class Executed:
    """How a command ended."""

    exit_code: int | None  # None: killed at its timeout
    duration_ms: int


def execute(
    command: str,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    timeout: int,
    wrap: Sequence[str] = (),
) -> Executed:
    """Run ``command`` with bash in its own process group, output to ``log``, killed at ``timeout``.

    ``wrap`` is a command line that runs bash (a sandbox). Whatever the command leaves
    running in its group is killed when it ends.
    """
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*wrap, "bash", "-c", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=KILL_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            code = None
        finally:
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers left in the background
    return Executed(code, int((time.monotonic() - start) * 1000))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def judge(test: TestSpec, run: Executed) -> tuple[Outcome, str | None]:
    """The outcome of a test and, for a failure, why."""
    if run.exit_code is None:
        return "FAILED", f"timed out after {test.timeout} s (killed)"
    if test.expect_fail:
        if run.exit_code == 0:
            return "FAILED", "expected to fail, but exited 0"
        return "PASSED", None
    if run.exit_code != 0:
        return "FAILED", f"exit code {run.exit_code}"
    return "PASSED", None


def _run_image(
    suite: PlannedSuite,
    run_id: str,
    img: Image,
    path: Path,
    settings: RunSettings,
    on_test: Callable[[], None],
) -> list[CaseResult]:
    compose = settings.compose
    results = []
    folder = PurePosixPath(
        compose.product,
        compose.compose_id,
        suite.name,
        run_id,
        f"{img.arch}-{img.type}-{img.disc_number}",
    )
    for index, step in enumerate(suite.steps):
        if not isinstance(step, TestSpec):
            time.sleep(step)
            continue
        if not step.applies_to(img.type, img.arch):
            continue
        scratch = Path(tempfile.mkdtemp(prefix="test-", dir=settings.scratch))
        tmp_log = scratch.with_suffix(".log")
        try:
            sandbox = settings.sandbox
            executed = execute(
                step.command,
                command_env(settings, img, path, scratch),
                scratch,
                tmp_log,
                step.timeout,
                sandbox.argv(scratch, path.parent) if sandbox else (),
            )
            outcome, reason = judge(step, executed)
            log = settings.logs.put(
                folder / f"{index:02d}-{slug(step.name)}.log",
                tmp_log,
                keep_tail=outcome == "FAILED",
            )
            if outcome == "FAILED" and executed.exit_code and not step.expect_fail:
                reason = first_line(settings.logs.root / log.path) or reason
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            tmp_log.unlink(missing_ok=True)
        results.append(
            CaseResult(
                name=step.name,
                blocking=step.blocking,
                expect_fail=step.expect_fail,
                outcome=outcome,
                reason=reason,
                duration_ms=executed.duration_ms,
                image=ImageRef.of(img),
                log=log,
            )
        )
        on_test()
    return results


def run_suite(
    suite: PlannedSuite,
    images: Sequence[Image],
    files: Mapping[tuple[str, str, str, str, int], Path],
    settings: RunSettings,
    *,
    arches: Sequence[str] = (),
    on_test: Callable[[], None] = lambda: None,
) -> ResultManifest:
    """Run one suite on ``images`` (in parallel) and build its test-result manifest.

    Raises:
        TestRunError: no image of the compose matches the suite.
    """
    if not images:
        raise TestRunError(
            f"{settings.compose.compose_id}: no image matches suite {suite.name}"
            + (f" on {', '.join(arches)}" if arches else ""),
            hint="check --arch and the suite's types and arches",
        )
    started = settings.clock()
    run_id = new_run_id(started)
    settings.scratch.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, min(settings.workers, len(images)))) as pool:
        per_image = list(
            pool.map(
                lambda img: _run_image(suite, run_id, img, files[img.key()], settings, on_test),
                images,
            )
        )
    tests = [case for cases in per_image for case in cases]
    return ResultManifest(
        product=settings.compose.product,
        created=settings.clock(),
        compose_id=settings.compose.compose_id,
        suite=suite.name,
        run=run_id,
        origin="battery",
        runner=settings.runner,
        started=started,
        finished=settings.clock(),
        arches=sorted(arches),
        artifacts=[ImageRef.of(img) for img in images],
        tests=tests,
        result=suite_verdict(tests),
    )


def count_tests(suite: PlannedSuite, images: Sequence[Image]) -> int:
    """How many (test, image) pairs a suite will run: for progress."""
    return sum(1 for img in images for t in suite.tests if t.applies_to(img.type, img.arch))
