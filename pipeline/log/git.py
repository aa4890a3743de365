"""The one way Fortnight runs git: a work tree, its commands, and pushing with retries."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.errors import StoreError
from pipeline.retry import Backoff, retry


@dataclass(frozen=True)
class PushConfig:
    """Where to push after committing, and how hard to try."""

    remote: str = "origin"
    attempts: int = 5


class _PushFailed(Exception):
    """One push that did not land; its message is git's reason."""


def _lost_race(stderr: str) -> bool:
    """Whether a push was refused because another push landed first: the remote moved
    (``[rejected] ... (fetch first)``, non-fast-forward), or another push held the ref's
    lock (``[remote rejected] ... cannot lock ref``)."""
    return (
        "[rejected]" in stderr
        or "non-fast-forward" in stderr
        or ("[remote rejected]" in stderr and "cannot lock ref" in stderr)
    )


def git_reason(output: str) -> str:
    """The telling line of git's output: its first ``fatal:``/``error:`` line, else the last."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("fatal:", "error:")):
            return line
    return lines[-1] if lines else ""


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob of ``data`` (SHA-1 of ``blob <size>\\0<data>``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class Git:
    """A thin wrapper over the ``git`` command in one work tree."""

    def __init__(self, worktree: Path, sleep: Callable[[float], None] = time.sleep) -> None:
        self.worktree = worktree
        self.sleep = sleep
        # What git said once and cannot change while a task runs (a task asks several
        # times; each answer costs a process). A "no" is not kept: ``init`` may follow.
        self._in_repo = False
        self._git_dir: Path | None = None

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``git ARGS`` in the work tree.

        Raises:
            StoreError: git failed and ``check`` is true.
        """
        try:
            proc = subprocess.run(
                ["git", *args], cwd=self.worktree, capture_output=True, text=True, check=False
            )
        except FileNotFoundError as e:
            raise StoreError("git is not installed", hint="install git and re-run") from e
        if check and proc.returncode != 0:
            detail = git_reason(proc.stderr or proc.stdout) or f"exit {proc.returncode}"
            raise StoreError(f"git {args[0]} failed in {self.worktree}: {detail}")
        return proc

    def is_repo(self) -> bool:
        """Whether the work tree is inside a git repository."""
        if not self._in_repo:
            self._in_repo = self.run("rev-parse", "--git-dir", check=False).returncode == 0
        return self._in_repo

    def git_dir(self) -> Path:
        """The repository's private folder (``.git``)."""
        if self._git_dir is None:
            self._git_dir = Path(self.run("rev-parse", "--absolute-git-dir").stdout.strip())
        return self._git_dir

    def head(self) -> str:
        """The commit id of HEAD."""
        return self.run("rev-parse", "HEAD").stdout.strip()

    def branch(self) -> str:
        """The current branch name.

        Raises:
            StoreError: HEAD is detached.
        """
        name = self.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).stdout.strip()
        if not name:
            raise StoreError(
                f"{self.worktree}: HEAD is detached", hint="check out a branch before recording"
            )
        return name

    def commit_paths(self, paths: Sequence[PurePosixPath | str], message: str) -> str:
        """Stage ``paths`` and commit exactly them; return the new commit id."""
        names = [str(p) for p in paths]
        self.run("add", "--", *names)
        self.run("commit", "--quiet", "--no-verify", "-m", message, "--", *names)
        return self.head()

    def push_with_retry(
        self, push: PushConfig, rebuild: Callable[[str], None] | None = None
    ) -> None:
        """Push the current branch. When another push landed first (a non-fast-forward, or
        a lost lock on the remote's ref), put this commit on the remote's and push again at
        once; when a push fails otherwise (the remote is down or busy), back off and retry.

        Manifests are append-only and one file each, so two runners recording
        different manifests never conflict and both land. ``rebuild``, when given, replaces
        the rebase: it is called with the fetched remote commit and must put this
        checkout's last commit on top of it (the log index and checkpoint are rebuilt,
        not merged).

        Raises:
            StoreError: the push still fails after ``push.attempts`` tries, or a
                rebase conflicts (two runners wrote the same file).
        """
        branch = self.branch()

        def attempt() -> None:
            proc = self._push(push.remote, branch)
            if proc.returncode != 0 and _lost_race(proc.stderr):
                # Someone pushed first: put this commit on theirs and push again at once.
                # The window before the next runner pushes is now; backing off first would
                # hand it to them, and with three runners one could lose every try.
                self._catch_up(push.remote, branch, rebuild)
                proc = self._push(push.remote, branch)
            if proc.returncode != 0:
                raise _PushFailed(git_reason(proc.stderr))

        # Back off with jitter between tries: the remote may be busy, or other runners
        # may be pushing in step with this one.
        policy = Backoff(attempts=push.attempts, first=0.1, cap=2.0, jitter=True)
        try:
            retry(attempt, policy, retryable=_PushFailed, sleep=self.sleep)
        except _PushFailed as e:
            raise StoreError(
                f"push to {push.remote} failed after {push.attempts} tries: {e}",
                hint="the commit is kept locally; re-run with --push when the remote is back",
            ) from None

    def _push(self, remote: str, branch: str) -> subprocess.CompletedProcess[str]:
        return self.run("push", "--quiet", remote, f"HEAD:refs/heads/{branch}", check=False)

    def _catch_up(self, remote: str, branch: str, rebuild: Callable[[str], None] | None) -> None:
        """Put this checkout's last commit on the remote's newest (see :meth:`push_with_retry`).

        Raises:
            StoreError: the fetch failed, or a rebase conflicts (two runners wrote the
                same file); the commit is kept locally.
        """
        if rebuild is None:
            rebase = self.run("pull", "--quiet", "--rebase", remote, branch, check=False)
            if rebase.returncode != 0:
                self.run("rebase", "--abort", check=False)
                raise StoreError(
                    f"cannot rebase on {remote}/{branch}: {git_reason(rebase.stderr)}",
                    hint="the commit is kept locally; resolve by hand, then push",
                )
            return
        self.run("fetch", "--quiet", remote, branch)
        theirs = self.run("rev-parse", "FETCH_HEAD").stdout.strip()
        # A push that lost only the ref lock to one that then failed finds the remote
        # where it was: this commit is already on top of it.
        behind = self.run("merge-base", "--is-ancestor", theirs, "HEAD", check=False)
        if behind.returncode != 0:
            rebuild(theirs)

    def output(self, *args: str) -> bytes | None:
        """``git ARGS``' standard output as bytes, or None when git fails or is missing.

        For callers that only take a shortcut when git answers (the caches), and fall
        back to the slow path otherwise.
        """
        try:
            proc = subprocess.run(
                ["git", *args], cwd=self.worktree, capture_output=True, check=False, timeout=600
            )
        except (OSError, subprocess.SubprocessError):  # missing, or hung for ten minutes
            return None
        return proc.stdout if proc.returncode == 0 else None
