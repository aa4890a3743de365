"""OSTree refs as derived state (pure): what a release promotes, and where refs belong.

The public refs are never a source of truth: :func:`desired_refs` derives them from the
verified log (the newest standing release that names each ref), so ``ostree.sync`` and
``verify`` compare the repository with it, and a withdrawal moves a ref back by itself.
"""

from __future__ import annotations

from pipeline.core.config import ProductConfig
from pipeline.core.models.manifests import ComposeManifest, OstreePromotion
from pipeline.core.state import State


def tree_problem(compose: ComposeManifest, product: ProductConfig) -> str | None:
    """Why ``compose``'s OSTree trees cannot be released, or None when they can.

    Every arch of ``[ostree]`` needs a commit, and all commits the same ``version``.
    """
    if product.ostree is None:
        return None
    by_arch = {t.arch: t for t in compose.ostree}
    missing = [a for a in product.ostree_arches() if a not in by_arch]
    if missing:
        return f"ostree: no commit recorded for {', '.join(missing)}"
    versions = sorted({t.version for t in compose.ostree})
    if len(versions) > 1:
        detail = ", ".join(f"{t.arch} {t.version}" for t in compose.ostree)
        return f"ostree: arches carry different versions ({detail})"
    return None


def desired_refs(state: State) -> dict[str, OstreePromotion]:
    """Each public ref the log names, and the promotion it must point to now: that of
    the newest release that still stands. A ref only withdrawn releases named is absent
    (it must not exist)."""
    wanted: dict[str, OstreePromotion] = {}
    for view in state.releases:
        if view.stands:
            for promotion in view.manifest.ostree:
                wanted[promotion.ref] = promotion
    return wanted


def named_refs(state: State) -> set[str]:
    """Every public ref any release decision of the log names."""
    return {p.ref for view in state.releases for p in view.manifest.ostree}


def promotions(state: State, compose: ComposeManifest) -> list[OstreePromotion]:
    """What releasing ``compose`` does to each public ref: point it at the compose's
    commit, recording the commit it points to now (None for a new ref)."""
    product = state.product
    if product.ostree is None or compose.release is None:
        return []
    current = desired_refs(state)
    out = []
    for tree in sorted(compose.ostree, key=lambda t: t.arch):
        if tree.arch not in product.ostree_arches():
            continue
        ref = product.ostree.public_ref(compose.release.version, tree.arch)
        before = current.get(ref)
        out.append(
            OstreePromotion(
                arch=tree.arch,
                ref=ref,
                commit=tree.commit,
                version=tree.version,
                previous=before.commit if before and before.commit != tree.commit else None,
            )
        )
    return out


def withdrawn_commits(state: State) -> dict[str, str]:
    """Commits of withdrawn (or fallen) releases that no standing release names, each with
    the release id that shipped it: hosts on them should roll back."""
    standing = {p.commit for v in state.releases if v.stands for p in v.manifest.ostree}
    out: dict[str, str] = {}
    for view in state.releases:
        if view.is_release and not view.stands:
            for p in view.manifest.ostree:
                if p.commit not in standing:
                    out[p.commit] = view.release_id
    return out
