"""Real OSTree repositories and a throwaway GPG key for the OSTree tests.

The key is made by Debian's gpg in batch mode (``%no-protection``) in a temporary
GNUPGHOME, once per session; only its public half is ever written next to a test's log.
Commits are made by the real ``ostree commit`` with ``version`` metadata, as Pungi does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.adapters.ingest import load_compose
from pipeline.adapters.ostree import GpgKey, OstreeRepo
from pipeline.adapters.pkglist import PKGLIST_KEY
from pipeline.core.models.manifests import ComposeManifest, OstreeCommit
from pipeline.core.state import State
from pipeline.log.writer import WriteOptions
from pipeline.stages.compose import build_compose_manifest
from pipeline.stages.load import load_state
from pipeline.stages.ostree import OstreeSetup, commit_packages, ostree_setup
from pipeline.stages.release import cut_release, revoke_release
from tests.conftest import make_result
from tests.sitekit import History, product_toml

ARCHES = ("aarch64", "x86_64")
#: An rpm as an OSTree commit's package list names it: name, epoch, version, release.
Rpm = tuple[str, int, str, str]
KEY_PARAMS = """%no-protection
Key-Type: RSA
Key-Length: 2048
Key-Usage: sign
Name-Real: Fortnight OSTree test key
Name-Email: ostree-test@example.invalid
Expire-Date: 0
%commit
"""


@dataclass(frozen=True)
class TestKey:
    """A throwaway GPG signing key: its keyring folder, fingerprint and public key file."""

    __test__ = False
    homedir: Path
    fingerprint: str
    public: Path

    @property
    def gpg(self) -> GpgKey:
        return GpgKey(self.fingerprint, self.homedir)


def make_gpg_key(folder: Path) -> TestKey:
    """Generate a key in ``folder/gnupg`` and export its public half to ``folder/key.asc``."""
    home = folder / "gnupg"
    home.mkdir(mode=0o700, parents=True)
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    gpg = ["gpg", "--batch", "--quiet"]
    subprocess.run([*gpg, "--gen-key"], input=KEY_PARAMS, text=True, env=env, check=True)
    listing = subprocess.run(
        [*gpg, "--list-keys", "--with-colons"], env=env, check=True, text=True, capture_output=True
    ).stdout
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
    public = folder / "key.asc"
    exported = subprocess.run(
        [*gpg, "--armor", "--export", fpr], env=env, check=True, capture_output=True
    ).stdout
    public.write_bytes(exported)
    return TestKey(home, fpr, public)


def commit_tree(
    repo: OstreeRepo,
    ref: str,
    files: dict[str, str],
    version: str,
    bind: str = "",
    metadata: dict[str, str] | None = None,
) -> str:
    """Commit a tree of ``files`` (name: text) on ``ref`` with ``version`` metadata, also
    bound to ``bind`` (the public ref a release moves), as the product's composes are, and
    with ``metadata`` (key: GVariant text, e.g. ``rpmostree.rpmdb.pkglist``)."""
    repo.init("archive")
    tree = repo.path.parent / f"tree-{ref.replace('/', '_')}-{version}"
    tree.mkdir(parents=True)
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    out = repo.run(
        "commit",
        f"--branch={ref}",
        f"--tree=dir={tree}",
        f"--add-metadata-string=version={version}",
        f"--subject=Fedora Atomic Host {version}",
        *([f"--bind-ref={bind}"] if bind else []),
        *(f"--add-metadata={k}={v}" for k, v in (metadata or {}).items()),
        what=f"commit {ref}",
    )
    return out.strip()


def pkglist_text(rpms: Sequence[Rpm], arch: str) -> str:
    """``rpms`` of ``arch`` as GVariant text of type ``a(stsss)``, as ``ostree show`` prints
    rpm-ostree's ``rpmostree.rpmdb.pkglist`` (the first epoch typed ``uint64``)."""
    items = [
        f"('{name}', {'uint64 ' if i == 0 else ''}{epoch}, '{version}', '{release}', '{arch}')"
        for i, (name, epoch, version, release) in enumerate(rpms)
    ]
    return f"[{', '.join(items)}]" if items else "@a(stsss) []"


def ostree_toml(download_url: str, public: Path, source: Path, key: TestKey | None) -> bytes:
    """The shipped product.toml plus an ``[ostree]`` table for two arches."""
    table = (
        f'\n[ostree]\nrepo = "{public}"\ncompose_repo = "{source}"\n'
        f"arches = {list(ARCHES)!r}\n".replace("'", '"')
    )
    if key is not None:
        table += f'gpg_key = "{key.fingerprint}"\ngpg_homedir = "{key.homedir}"\n'
        table += 'gpg_public_key = "ostree.gpg"\n'
    return product_toml(download_url) + table.encode()


@dataclass
class OstreeHistory:
    """A :class:`History` whose product has ``[ostree]``, and its compose repository."""

    history: History
    source: OstreeRepo
    public: OstreeRepo
    commits: dict[str, dict[str, str]] = field(default_factory=dict)  # compose id: arch: c

    def publish_key(self, key: TestKey) -> None:
        """Commit the key's public half as the product's ``ostree.gpg``."""
        log = self.history.log
        (log.repo / "manifests/atomic-host/ostree.gpg").write_bytes(key.public.read_bytes())
        log.git("add", "manifests/atomic-host/ostree.gpg")
        log.git("commit", "-q", "-m", "ostree: the public key")

    @property
    def setup(self) -> OstreeSetup:
        setup = ostree_setup(self.history.product, self.history.log.log.repo, {})
        assert setup is not None
        return setup

    def compose(
        self,
        day: datetime,
        version: str,
        *,
        arches: tuple[str, ...] = ARCHES,
        versions: dict[str, str] | None = None,
        fail: tuple[str, ...] = (),
        respin: int = 0,
        bound: bool = True,
        rpms: Sequence[Rpm] | None = None,
    ) -> ComposeManifest:
        """A tested compose on ``day`` with one commit per arch in the compose repository;
        with ``rpms``, each commit carries them as its package list, and the manifest's
        package list is read back from the commits (the compose has no rpms.json)."""
        h = self.history
        cid = f"Fedora-Atomic-28-{day:%Y%m%d}.{respin}"
        trees = []
        for arch in arches:
            v = (versions or {}).get(arch, version)
            ref = f"fedora/28/{arch}/updates/atomic-host"
            files = {"usr/lib/os-release": f"VERSION={v}\n", f"usr/share/{arch}": cid}
            bind = f"fedora/28/{arch}/atomic-host" if bound else ""
            metadata = {PKGLIST_KEY: pkglist_text(rpms, arch)} if rpms is not None else None
            commit = commit_tree(self.source, ref, files, v, bind, metadata)
            trees.append(OstreeCommit(arch=arch, ref=ref, commit=commit, version=v))
        self.commits[cid] = {t.arch: t.commit for t in trees}
        loaded = load_compose(str(h.make_tree(cid).root))
        manifest = build_compose_manifest(
            loaded,
            h.product,
            day,
            checksums_verified=True,
            ostree=trees,
            ostree_packages=commit_packages(self.source, trees) if rpms is not None else None,
        )
        h.record([manifest], f"compose: {cid}")
        h.record([make_result(manifest, fail=fail, started=day + timedelta(hours=1))], "test")
        return manifest

    def cut(self, at: datetime, **kwargs: object) -> object:
        h = self.history
        return cut_release(
            h.log.log,
            h.product,
            at,
            signers=[h.log.signers["release"]],
            options=WriteOptions(),
            ostree=self.setup,
            **kwargs,  # type: ignore[arg-type]
        )

    def revoke(self, release_id: str, at: datetime) -> object:
        h = self.history
        return revoke_release(
            h.log.log,
            h.product,
            release_id,
            reason="does not boot",
            reason_url=None,
            operator="dusty",
            signers=[h.log.signers["release"]],
            options=WriteOptions(),
            now=at,
            ostree=self.setup,
        )

    def state(self, at: datetime) -> State:
        return load_state(self.history.log.log, self.history.product, at)[0]
