"""The OSTree part of the download page: per arch the ref, commit and version of the
current release, and how a host follows it."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.ostree import withdrawn_commits
from pipeline.core.pages.links import Urls
from pipeline.core.state import State


@dataclass(frozen=True)
class OstreeRow:
    """One arch's released tree."""

    arch: str
    ref: str
    commit: str
    version: str


@dataclass(frozen=True)
class WithdrawnCommit:
    """A commit of a withdrawn release that hosts may still run."""

    commit: str
    release_id: str


@dataclass(frozen=True)
class OstreeSection:
    """What the page says about the OSTree repository."""

    remote: str
    repo: str  # site-relative folder of the repository
    key: str | None  # site-relative path of the GPG public key
    rows: list[OstreeRow]
    withdrawn: list[WithdrawnCommit]


def ostree_repo_path(urls: Urls, site_path: str) -> str:
    """Where the public repository is on the site (``<product>/<site_path>/``)."""
    return f"{urls.product}/{site_path}/"


def ostree_key_path(urls: Urls, site_path: str) -> str:
    """Where the repository's GPG public key is on the site."""
    return f"{urls.product}/{site_path}.gpg"


def ostree_section(state: State, urls: Urls) -> OstreeSection | None:
    """The section, or None when the product has no ``[ostree]``."""
    config = state.product.ostree
    if config is None:
        return None
    current = state.current
    rows = [
        OstreeRow(p.arch, p.ref, p.commit, p.version)
        for p in (current.manifest.ostree if current else [])
    ]
    withdrawn = [WithdrawnCommit(c, r) for c, r in sorted(withdrawn_commits(state).items())]
    return OstreeSection(
        remote=config.remote,
        repo=ostree_repo_path(urls, config.site_path),
        key=ostree_key_path(urls, config.site_path) if config.gpg_public_key else None,
        rows=rows,
        withdrawn=withdrawn,
    )
