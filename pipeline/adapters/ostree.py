"""OSTree repositories, through the real ``ostree`` command (Debian's ``ostree`` package).

One runner (:meth:`OstreeRepo.run`) calls ``ostree <command> --repo=<path>`` and turns a
failure into an :class:`~pipeline.errors.OstreeError` naming the repository and what was
asked (a ref, a commit). The operations are the ones Fedora's two-week release script ran
by hand: ``pull-local``, ``static-delta generate``, ``gpg-sign``, ``reset`` / ``refs
--create``, and ``summary -u`` signed with GPG (``--gpg-sign``, ``--gpg-homedir``).

Every operation is safe to repeat: a commit already signed by the key is not signed
again, an existing delta is not regenerated, and moving a ref to where it is is a no-op.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.adapters.pkglist import MAX_PKGLIST_CHARS, PKGLIST_KEY, PkglistError, parse_pkglist
from pipeline.errors import OstreeError

#: An OSTree commit checksum.
CHECKSUM = re.compile(r"^[0-9a-f]{64}$")
#: Where to get the command when it is missing.
INSTALL_HINT = "install the ostree command (Debian: apt-get install ostree)"


@dataclass(frozen=True)
class GpgKey:
    """A GPG key that signs commits and the summary: its id (or fingerprint) and keyring."""

    key_id: str
    homedir: Path | None = None

    def homedir_args(self) -> list[str]:
        """``--gpg-homedir=DIR`` when a keyring folder is set."""
        return [f"--gpg-homedir={self.homedir}"] if self.homedir else []


def _gvariant_string(text: str) -> str:
    """The value of a GVariant string as ``ostree show --print-metadata-key`` prints it."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1].replace("\\'", "'").replace('\\"', '"')
    return text


@dataclass(frozen=True)
class OstreeRepo:
    """One OSTree repository on disk, driven by the ``ostree`` command."""

    path: Path
    binary: str = "ostree"
    env: Mapping[str, str] | None = None

    def run(self, *args: str, what: str) -> str:
        """Run ``ostree ARGS --repo=PATH`` and return its standard output.

        Raises:
            OstreeError: the command is missing or failed; the message names the repository
                and ``what`` was asked, with ostree's own last line of error.
        """
        cmd = [self.binary, *args, f"--repo={self.path}"]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, check=False, env=self.env, stdin=None
            )
        except FileNotFoundError:
            raise OstreeError(f"{self.binary}: command not found", hint=INSTALL_HINT) from None
        if proc.returncode != 0:
            lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("error:")]
            detail = (errors or lines or [f"exit status {proc.returncode}"])[0]
            raise OstreeError(f"{self.path}: {what}: {detail}")
        return proc.stdout

    def exists(self) -> bool:
        """Whether the folder holds an OSTree repository."""
        return (self.path / "config").is_file() and (self.path / "objects").is_dir()

    def init(self, mode: str = "archive") -> None:
        """Create the repository (``archive`` mode serves over plain HTTP) if it is missing."""
        if not self.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self.run("init", f"--mode={mode}", what=f"init --mode={mode}")

    def resolve(self, ref: str) -> str | None:
        """The commit ``ref`` points to, or None when the repository has no such ref.

        Read from ``refs/heads/<ref>`` (OSTree's on-disk format), as ``rev-parse`` does.
        """
        path = self.path / "refs" / "heads" / ref
        try:
            commit = path.read_text().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        if not CHECKSUM.match(commit):
            raise OstreeError(f"{self.path}: ref {ref}: not a commit checksum ({commit[:80]!r})")
        return commit

    def refs(self) -> dict[str, str]:
        """Every local ref and the commit it points to."""
        heads = self.path / "refs" / "heads"
        names = sorted(p.relative_to(heads).as_posix() for p in heads.rglob("*") if p.is_file())
        return {name: commit for name in names if (commit := self.resolve(name)) is not None}

    def version(self, commit: str) -> str:
        """The ``version`` metadata of ``commit``.

        Raises:
            OstreeError: the commit is not in the repository, or has no version.
        """
        try:
            out = self.run("show", "--print-metadata-key=version", commit, what=f"commit {commit}")
        except OstreeError as e:
            if self.has_commit(commit):
                raise OstreeError(
                    f"{self.path}: commit {commit} has no 'version' metadata",
                    hint="commit trees with --add-metadata-string=version=...",
                ) from e
            raise OstreeError(
                f"{self.path}: commit {commit} is not in the repository",
                hint="check the checksum, or pull the commit first",
            ) from e
        return _gvariant_string(out)

    def ref_bindings(self, commit: str) -> list[str]:
        """The refs ``commit`` is bound to (``ostree.ref-binding``); empty when unbound.

        A client pulling a ref refuses a commit bound to other refs only.
        """
        try:
            out = self.run(
                "show",
                "--print-metadata-key=ostree.ref-binding",
                commit,
                what=f"commit {commit}",
            )
        except OstreeError:
            if self.has_commit(commit):
                return []  # no binding metadata at all
            raise
        return re.findall(r"'((?:[^'\\]|\\.)*)'", out)

    def package_list(self, commit: str) -> list[str] | None:
        """The NEVRAs of ``commit``'s rpm-ostree package list (``rpmostree.rpmdb.pkglist``),
        sorted; None when the commit has no such metadata.

        The commit object is at most :data:`MAX_PKGLIST_CHARS` bytes before ``ostree show``
        prints it, and the text is parsed with the same bound.

        Raises:
            OstreeError: the commit is missing or too large, or its package list is not an
                ``a(stsss)`` list of rpms (the message names the commit and what is wrong).
        """
        what = f"commit {commit}"
        obj = self.path / "objects" / commit[:2] / f"{commit[2:]}.commit"
        if CHECKSUM.match(commit) and obj.is_file() and obj.stat().st_size > MAX_PKGLIST_CHARS:
            raise OstreeError(
                f"{self.path}: {what}: larger than the {MAX_PKGLIST_CHARS} byte limit for "
                "its package list"
            )
        try:
            out = self.run("show", f"--print-metadata-key={PKGLIST_KEY}", commit, what=what)
        except OstreeError as e:
            if self.has_commit(commit) and "No such metadata key" in e.message:
                return None
            raise
        try:
            return parse_pkglist(out)
        except PkglistError as e:
            raise OstreeError(
                f"{self.path}: {what}: {PKGLIST_KEY}: {e}",
                hint="the compose's rpm-ostree wrote a package list Fortnight cannot read",
            ) from None

    def has_commit(self, commit: str) -> bool:
        """Whether the commit object is in the repository (not whether it is complete)."""
        if not CHECKSUM.match(commit):
            return False
        return (self.path / "objects" / commit[:2] / f"{commit[2:]}.commit").is_file()

    def check_complete(self, commit: str) -> None:
        """Check that every object of ``commit`` is present and matches its checksum.

        ``ostree fsck`` checks a whole repository; this is its equivalent for one commit:
        the commit is pulled into a scratch repository with ``--untrusted``, which reads and
        checksums every object it reaches.

        Raises:
            OstreeError: the commit or one of its objects is missing or corrupt (ostree's
                message says which).
        """
        if not self.has_commit(commit):
            raise OstreeError(
                f"{self.path}: commit {commit} is not in the repository",
                hint="check the checksum, or pull the commit first",
            )
        with tempfile.TemporaryDirectory(prefix="fortnight-fsck-") as tmp:
            scratch = OstreeRepo(Path(tmp) / "repo", self.binary, self.env)
            scratch.init("bare-user-only")
            try:
                scratch.run(
                    "pull-local", "--untrusted", str(self.path), commit, what=f"check {commit}"
                )
            except OstreeError as e:
                raise OstreeError(
                    f"{self.path}: commit {commit} is incomplete or corrupt ({e.message})",
                    hint="re-run the compose's ostree step, or record another commit",
                ) from e

    def pull_local(self, source: OstreeRepo, commit: str) -> None:
        """Copy ``commit`` and every object it needs from ``source`` (``pull-local``)."""
        self.run("pull-local", str(source.path), commit, what=f"pull-local {commit}")

    def pull_url(self, url: str, ref: str) -> str:
        """Pull ``ref`` from the repository at ``url`` (no GPG check: the commit checksum
        recorded is what is trusted) and return its commit."""
        self.run("remote", "add", "--force", "--no-gpg-verify", "source", url, what="remote add")
        self.run("pull", "source", ref, what=f"pull {url} {ref}")
        if CHECKSUM.match(ref):
            return ref
        return self.run("rev-parse", f"source:{ref}", what=f"ref {ref}").strip()

    def has_delta(self, from_commit: str, to_commit: str) -> bool:
        """Whether the static delta ``from_commit-to_commit`` exists."""
        listed = self.run("static-delta", "list", what="list static deltas").split()
        return f"{from_commit}-{to_commit}" in listed

    def generate_delta(self, from_commit: str, to_commit: str) -> None:
        """``static-delta generate --from --to``, unless it exists already."""
        if self.has_delta(from_commit, to_commit):
            return
        self.run(
            "static-delta",
            "generate",
            f"--from={from_commit}",
            f"--to={to_commit}",
            what=f"static delta {from_commit[:12]}..{to_commit[:12]}",
        )

    def sign(self, commit: str, key: GpgKey) -> None:
        """GPG-sign ``commit`` with ``key``, unless the key has signed it already."""
        shown = self.run("show", commit, *key.homedir_args(), what=f"commit {commit}")
        short = key.key_id[-16:].upper()
        if f"key ID {short}" in shown or f"key ID {key.key_id.upper()}" in shown:
            return
        self.run(
            "gpg-sign", commit, key.key_id, *key.homedir_args(), what=f"gpg-sign {commit[:12]}"
        )

    def set_ref(self, ref: str, commit: str) -> bool:
        """Point ``ref`` at ``commit`` (``reset``, or ``refs --create`` for a new ref);
        return whether it moved."""
        current = self.resolve(ref)
        if current == commit:
            return False
        if current is None:
            self.run("refs", f"--create={ref}", commit, what=f"create ref {ref}")
        else:
            self.run("reset", ref, commit, what=f"reset ref {ref}")
        return True

    def commit(
        self,
        ref: str,
        tree: Path,
        version: str,
        subject: str,
        bind: Sequence[str] = (),
        timestamp: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Commit the folder ``tree`` on ``ref`` with ``version`` metadata, also bound to the
        refs in ``bind``, dated ``timestamp`` (default: now), with more ``metadata`` (key:
        GVariant text); return the commit checksum."""
        out = self.run(
            "commit",
            f"--branch={ref}",
            f"--tree=dir={tree}",
            f"--add-metadata-string=version={version}",
            f"--subject={subject}",
            *(f"--bind-ref={b}" for b in bind),
            *([f"--timestamp={timestamp.isoformat()}"] if timestamp else []),
            *(f"--add-metadata={k}={v}" for k, v in (metadata or {}).items()),
            what=f"commit {ref}",
        )
        return out.strip()

    def delete_ref(self, ref: str) -> None:
        """Remove ``ref`` (its commits stay in the repository)."""
        self.run("refs", "--delete", ref, what=f"delete ref {ref}")

    def update_summary(self, key: GpgKey | None) -> None:
        """Regenerate ``summary`` (and sign it into ``summary.sig`` with ``key``)."""
        args = ["summary", "-u"]
        if key is not None:
            args += [f"--gpg-sign={key.key_id}", *key.homedir_args()]
        self.run(*args, what="summary -u")

    def summary_refs(self) -> dict[str, str]:
        """The refs the signed ``summary`` file lists, and their commits."""
        if not (self.path / "summary").is_file():
            return {}
        out = self.run("summary", "--view", what="summary --view")
        found = re.findall(r"^\* (\S+)\n\s+Latest Commit \([^)]*\):\n\s+([0-9a-f]{64})", out, re.M)
        return dict(found)


#: gpg's batch parameters for a throwaway signing key (no passphrase).
_KEY_PARAMS = """%no-protection
Key-Type: RSA
Key-Length: 2048
Key-Usage: sign
Name-Real: {name}
Name-Email: {email}
Expire-Date: 0
%commit
"""


def generate_gpg_key(homedir: Path, name: str, email: str) -> tuple[str, bytes]:
    """Make a signing key without passphrase in a new keyring folder ``homedir`` (the demo's;
    production keys are made by people, see the README); return its fingerprint and its
    ASCII-armoured public half.

    Raises:
        OstreeError: gpg is missing or failed.
    """
    homedir.mkdir(mode=0o700, parents=True, exist_ok=True)
    gpg = ["gpg", "--batch", "--quiet", "--homedir", str(homedir)]
    params = _KEY_PARAMS.format(name=name, email=email)
    try:
        subprocess.run([*gpg, "--gen-key"], input=params.encode(), check=True, capture_output=True)
        listing = subprocess.run(
            [*gpg, "--list-keys", "--with-colons"], check=True, capture_output=True, text=True
        ).stdout
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
        public = subprocess.run(
            [*gpg, "--armor", "--export", fpr], check=True, capture_output=True
        ).stdout
    except FileNotFoundError:
        raise OstreeError("gpg: command not found", hint="install gnupg") from None
    except (subprocess.CalledProcessError, StopIteration) as e:
        raise OstreeError(f"{homedir}: gpg could not make a signing key ({e})") from e
    return fpr, public
