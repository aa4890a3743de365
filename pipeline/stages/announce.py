"""``invoke announce``: one bus message per manifest added to the log, exactly once per run.

:func:`announce` publishes one message per manifest added to the log since the last
announced commit, remembered outside the work tree (``.git/fortnight-announced``).
Publishing happens after the commit, is retried, and never undoes or blocks one; ``invoke
announce --since REV`` re-sends. With a :class:`~pipeline.stages.mailing.Mailer`, each
release, stale cycle and withdrawal is also mailed, under the same marker. The bodies are
the message classes of :mod:`pipeline.adapters.bus.messages` (see ``docs/bus.md``).
"""

from __future__ import annotations

import fcntl
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path, PurePosixPath
from typing import Any, TypedDict

from pipeline.adapters.bus import client
from pipeline.adapters.bus.messages import (
    AnnouncementBody,
    ComposeRecorded,
    ComposeRecordedBody,
    CycleStale,
    CycleStaleBody,
    FailedTest,
    FortnightMessage,
    OpenBug,
    RecordedImage,
    ReleasePublished,
    ReleasePublishedBody,
    ReleaseWithdrawn,
    ReleaseWithdrawnBody,
    TestsComplete,
    TestsCompleteBody,
    TrackerEvent,
    TrackerEventBody,
    register_message_classes,
)
from pipeline.adapters.bus.settings import BusSettings
from pipeline.core.config import load_product
from pipeline.core.models.common import Manifest, format_timestamp
from pipeline.core.models.manifests import (
    KIND_BY_DIRECTORY,
    ComposeManifest,
    ReleaseManifest,
    ResultManifest,
    RevocationManifest,
    TrackerEventManifest,
)
from pipeline.core.pages import stream
from pipeline.core.state import derive
from pipeline.errors import ConfigError
from pipeline.fsutil import atomic_write
from pipeline.log.signing import ManifestRejected, verify_manifest
from pipeline.log.store import ManifestLog
from pipeline.stages.mailing import Mailer

logger = logging.getLogger(__name__)

#: The file that remembers the last announced commit, in the repository's git dir.
MARKER_FILE = "fortnight-announced"


# --- from manifests to messages ---------------------------------------------------------------


@dataclass(frozen=True)
class Added:
    """A manifest file a commit added."""

    commit: str
    path: PurePosixPath  # relative to manifests/


class _Common(TypedDict):
    product: str
    manifest: str
    commit: str
    created: str


def _common(m: Manifest, added: Added) -> _Common:
    return {
        "product": m.product,
        "manifest": f"manifests/{added.path}",
        "commit": added.commit,
        "created": format_timestamp(m.created),
    }


def _compose_body(m: ComposeManifest, common: _Common) -> ComposeRecordedBody:
    images = [
        RecordedImage(
            arch=i.arch,
            type=i.type,
            format=i.format,
            subvariant=i.subvariant,
            url=i.url,
            size=i.size,
            sha256=i.checksums.sha256,
        )
        for i in m.images
    ]
    return ComposeRecordedBody(
        **common,
        compose_id=m.compose_id,
        outcome=m.outcome,
        reason=m.reason,
        source=m.source,
        images=images,
    )


def _result_body(m: ResultManifest, common: _Common) -> TestsCompleteBody:
    outcomes = [t.outcome for t in m.tests]
    failures = [
        FailedTest(
            name=t.name,
            blocking=t.blocking,
            image=t.image.path if t.image else None,
            reason=t.reason,
        )
        for t in m.tests
        if t.outcome == "FAILED"
    ]
    return TestsCompleteBody(
        **common,
        compose_id=m.compose_id,
        suite=m.suite,
        run=m.run,
        result=m.result,
        passed=outcomes.count("PASSED"),
        failed=outcomes.count("FAILED"),
        skipped=outcomes.count("SKIPPED"),
        failures=failures,
    )


def _tracker_body(m: TrackerEventManifest, common: _Common) -> TrackerEventBody:
    return TrackerEventBody(
        **common,
        action=m.action,
        bug=m.bug,
        url=m.url,
        compose_id=m.compose_id,
        compose_status=m.compose_status,
    )


def _stale_body(m: ReleaseManifest, common: _Common) -> CycleStaleBody:
    bug = m.open_bug
    return CycleStaleBody(
        **common,
        release_id=m.release_id,
        cycle=m.cycle,
        previous=m.previous,
        open_bug=OpenBug(bug=bug.bug, url=bug.url) if bug else None,
        explanation=m.explanation,
    )


def _withdrawn_body(m: RevocationManifest, common: _Common) -> ReleaseWithdrawnBody:
    return ReleaseWithdrawnBody(
        **common,
        release_id=m.release_id,
        compose_id=m.compose_id,
        reason=m.reason,
        reason_url=m.reason_url,
        operator=m.operator,
    )


class MessageBuilder:
    """Turns verified manifests into announcements (the stream needs the log's state)."""

    def __init__(self, log: ManifestLog, trust: Any, settings: BusSettings) -> None:
        register_message_classes()
        self.log = log
        self.trust = trust
        self.settings = settings
        self._manifests: dict[str, list[Manifest]] = {}

    def build(self, m: Manifest, added: Added) -> FortnightMessage | None:
        """The announcement of ``m``, or None for kinds that are not announced."""
        made = self._message(m, _common(m, added))
        if made is None:
            return None  # verdicts and cloud images are not announced
        cls, suffix, body = made
        msg = cls.of(f"{self.settings.topic_prefix}.{m.product}.{suffix}", body)
        # The same manifest always gets the same id: consumers can drop a re-sent copy.
        msg.id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fortnight:{body.manifest}"))
        return msg

    def _message(
        self, m: Manifest, common: _Common
    ) -> tuple[type[FortnightMessage], str, AnnouncementBody] | None:
        """The class, topic suffix and body of ``m``'s announcement."""
        if isinstance(m, ComposeManifest):
            return ComposeRecorded, ComposeRecorded.TOPIC, _compose_body(m, common)
        if isinstance(m, ResultManifest):
            return TestsComplete, TestsComplete.TOPIC, _result_body(m, common)
        if isinstance(m, TrackerEventManifest):
            return TrackerEvent, f"{TrackerEvent.TOPIC}.{m.action}", _tracker_body(m, common)
        if isinstance(m, ReleaseManifest) and m.decision == "release":
            return ReleasePublished, ReleasePublished.TOPIC, self._release_body(m, common)
        if isinstance(m, ReleaseManifest):
            return CycleStale, CycleStale.TOPIC, _stale_body(m, common)
        if isinstance(m, RevocationManifest):
            return ReleaseWithdrawn, ReleaseWithdrawn.TOPIC, _withdrawn_body(m, common)
        return None

    def _release_body(self, m: ReleaseManifest, common: _Common) -> ReleasePublishedBody:
        assert m.compose_id is not None  # the model's validator: a release names its compose
        return ReleasePublishedBody(
            **common,
            release_id=m.release_id,
            cycle=m.cycle,
            compose_id=m.compose_id,
            base=m.base.label(),
            explanation=m.explanation,
            stream=self._stream(m),
        )

    def _stream(self, release: ReleaseManifest) -> dict[str, Any]:
        """The stream document as of the release decision."""
        product = release.product
        if product not in self._manifests:
            verified = self.log.load_verified(self.trust, products=[product])
            self._manifests[product] = [v.manifest for v in verified]
        config = load_product(self.log.root, product)
        state = derive(self._manifests[product], config, release.created)
        return stream(state, self.settings.site_url)


# --- the marker: what was announced -----------------------------------------------------------


def marker_path(log: ManifestLog) -> Path:
    """Where the last announced commit is remembered (outside the work tree)."""
    return log.git.git_dir() / MARKER_FILE


def read_marker(log: ManifestLog) -> str | None:
    """The last announced commit, or None before the first announcement."""
    try:
        text = marker_path(log).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def write_marker(log: ManifestLog, commit: str) -> None:
    """Remember ``commit`` as announced."""
    atomic_write(marker_path(log), (commit + "\n").encode())


def start_marker(log: ManifestLog) -> str:
    """The marker; the first time, HEAD (history before it is not announced)."""
    current = read_marker(log)
    if current is None:
        current = log.git.head()
        write_marker(log, current)
        logger.info(
            "announcements start at %s (use 'invoke announce --since REV' for older)",
            current[:12],
        )
    return current


def added_since(log: ManifestLog, since: str, head: str) -> list[Added]:
    """Manifest files added by the commits in ``since..head``, oldest commit first.

    Raises:
        ConfigError: ``since`` is not a commit, or not an ancestor of HEAD.
    """
    resolved = log.git.run("rev-parse", "--verify", "--quiet", f"{since}^{{commit}}", check=False)
    if resolved.returncode != 0:
        raise ConfigError(f"--since {since}: not a commit of {log.repo}")
    start = resolved.stdout.strip()
    if log.git.run("merge-base", "--is-ancestor", start, head, check=False).returncode != 0:
        raise ConfigError(
            f"--since {since}: not an ancestor of HEAD",
            hint="pass a commit of the current branch's history",
        )
    out = log.git.run(
        "log",
        "--reverse",
        "--diff-filter=A",
        "--name-only",
        "--format=%x01%H",
        f"{start}..{head}",
        "--",
        "manifests/",
    ).stdout
    added = []
    commit = ""
    for line in out.splitlines():
        if line.startswith("\x01"):
            commit = line[1:]
        elif line.strip():
            rel = PurePosixPath(line.strip()).relative_to("manifests")
            if len(rel.parts) >= 3 and rel.suffix == ".json" and rel.parts[1] in KIND_BY_DIRECTORY:
                added.append(Added(commit, rel))
    return added


# --- announcing -----------------------------------------------------------------------------


@dataclass
class AnnounceReport:
    """What :func:`announce` did."""

    since: str | None
    head: str
    messages: list[FortnightMessage] = field(default_factory=list)
    mails: list[EmailMessage] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    dry_run: bool = False


@contextmanager
def _announce_lock(log: ManifestLog) -> Iterator[None]:
    with open(log.git.git_dir() / "fortnight-announce.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def announce(
    log: ManifestLog,
    settings: BusSettings,
    *,
    publish: client.Publisher,
    since: str | None = None,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    mailer: Mailer | None = None,
) -> AnnounceReport:
    """Publish one message per manifest added since ``since`` (default: the marker).

    Commits are announced in order and the marker advances after each one, so a failure
    resumes where it stopped (a commit is re-sent whole: at-least-once). With no marker and
    no ``since``, the marker is set to HEAD and nothing is sent. A manifest that fails
    verification is not announced; it is reported in ``rejected``.

    Raises:
        ConfigError: ``since`` is not a commit of HEAD's history.
        BusError: a message could not be published after ``settings.publish_attempts`` tries.
        MailError, ConfigError: a mail could not be sent (see :class:`Mailer`); the
            marker stays before its commit, so the next run resumes there.
    """
    log.require_repo()
    with _announce_lock(log):
        head = log.git.head()
        start = since or read_marker(log)
        report = AnnounceReport(since=start, head=head, dry_run=dry_run)
        if start is None:
            if not dry_run:
                start_marker(log)
            return report
        _announce_since(log, settings, start, report, publish=publish, sleep=sleep, mailer=mailer)
        if not dry_run:
            write_marker(log, head)
        return report


def _announce_since(
    log: ManifestLog,
    settings: BusSettings,
    start: str,
    report: AnnounceReport,
    *,
    publish: client.Publisher,
    sleep: Callable[[float], None],
    mailer: Mailer | None,
) -> None:
    """Announce what ``start..report.head`` added; advance the marker commit by commit."""
    trust = log.load_trust()
    builder = MessageBuilder(log, trust, settings)
    added = added_since(log, start, report.head)
    for i, item in enumerate(added):
        raw = log.git.run("show", f"{item.commit}:manifests/{item.path}").stdout.encode()
        try:
            manifest = verify_manifest(raw, item.path, trust)
        except ManifestRejected as e:
            logger.error("not announced: manifests/%s: %s", item.path, e.reason)
            report.rejected.append((f"manifests/{item.path}", e.reason))
            continue
        msg = builder.build(manifest, item)
        if msg is not None:
            if not report.dry_run:
                hint = f"the commits stand; 'invoke announce' resumes after {start[:12]}"
                client.publish(
                    msg, publish, attempts=settings.publish_attempts, hint=hint, sleep=sleep
                )
            report.messages.append(msg)
        mailed = mailer.handle(manifest, f"manifests/{item.path}") if mailer else None
        if mailed is not None:
            report.mails.append(mailed)
        last_of_commit = i + 1 == len(added) or added[i + 1].commit != item.commit
        if last_of_commit and not report.dry_run:
            write_marker(log, item.commit)
            start = item.commit
