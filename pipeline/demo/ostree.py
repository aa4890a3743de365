"""The demo's OSTree part: a compose repository with a small real commit per arch each
night, a public repository the releases promote to, and a throwaway GPG key.

Used only when the ``ostree`` and ``gpg`` commands are installed; otherwise the demo says
it skipped this part (:func:`available`).
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

from pipeline.adapters.ostree import OstreeRepo, generate_gpg_key
from pipeline.adapters.pkglist import PKGLIST_KEY, format_pkglist
from pipeline.core.models.manifests import OstreeCommit
from pipeline.demo.packages import commit_rpms

#: The public key's file name in the product folder.
PUBLIC_KEY = "ostree.gpg"


def available() -> bool:
    """Whether the demo can make OSTree commits and GPG keys here."""
    return shutil.which("ostree") is not None and shutil.which("gpg") is not None


class DemoOstree:
    """The compose repository, the public repository and the key, under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.compose = OstreeRepo(folder / "compose")
        self.public = OstreeRepo(folder / "public")
        self.gnupg = folder / "gnupg"
        self.fingerprint, self.public_key = generate_gpg_key(
            self.gnupg, "Fortnight demo OSTree key", "ostree-demo@example.invalid"
        )
        self.compose.init("archive")

    def toml_table(self, arches: tuple[str, ...]) -> str:
        """The product's ``[ostree]`` table for ``arches`` (absolute paths: the demo's
        scratch folder)."""
        listed = ", ".join(f'"{a}"' for a in arches)
        return (
            "\n[ostree]\n"
            f"arches = [{listed}]\n"
            f'repo = "{self.public.path}"\n'
            f'compose_repo = "{self.compose.path}"\n'
            f'gpg_key = "{self.fingerprint}"\n'
            f'gpg_homedir = "{self.gnupg}"\n'
            f'gpg_public_key = "{PUBLIC_KEY}"\n'
        )

    def night(
        self,
        compose_id: str,
        base: str,
        when: datetime,
        arches: tuple[str, ...],
        night: int | None = None,
    ) -> list[OstreeCommit]:
        """One commit per arch for the night's compose: a tree of a few files, with the
        version ``<base>.<YYYYMMDD>.0`` every arch shares and, given ``night``, that
        night's package list (``rpmostree.rpmdb.pkglist``) as rpm-ostree writes it."""
        version = f"{base}.{when:%Y%m%d}.0"
        trees = []
        for arch in arches:
            tree = self.folder / "trees" / compose_id / arch
            (tree / "usr/lib").mkdir(parents=True, exist_ok=True)
            (tree / "usr/lib/os-release").write_text(
                f'NAME="Fedora"\nVERSION="{version} (Atomic Host)"\nVARIANT_ID=atomic.host\n'
            )
            (tree / "usr/lib/fortnight-compose").write_text(f"{compose_id} {arch}\n")
            ref = f"fedora/{base}/{arch}/updates/atomic-host"
            commit = self.compose.commit(
                ref,
                tree,
                version,
                f"{compose_id} {arch}",
                bind=[f"fedora/{base}/{arch}/atomic-host"],
                timestamp=when,
                metadata=(
                    {PKGLIST_KEY: format_pkglist(commit_rpms(night, base, arch))}
                    if night is not None
                    else None
                ),
            )
            shutil.rmtree(tree)
            trees.append(OstreeCommit(arch=arch, ref=ref, commit=commit, version=version))
        return trees
