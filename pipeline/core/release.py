"""Stage: the release decision of a cycle, and withdrawals.

:func:`decide` is pure: given the state derived at ``at``, it returns the
manifest to record for the cycle ``at`` falls in, or None when there is
nothing to do. Running it again after recording its result returns None, so
``release.cut`` is safe to run any time, any number of times.
"""

from __future__ import annotations

from datetime import datetime

from pipeline.core.models.manifests import (
    BaseRef,
    BugLink,
    Considered,
    ReleaseManifest,
    RevocationManifest,
)
from pipeline.core.ostree import promotions, tree_problem
from pipeline.core.state import ComposeView, ReleaseView, State, compose_order, cycle_day

#: How many rejected composes a decision lists (newest first); older ones are summarised.
MAX_CONSIDERED = 60


def _rejection(view: ComposeView, state: State, withdrawn: dict[str, ReleaseView]) -> str | None:
    """Why ``view`` cannot be released, or None if it can."""
    base = state.product.base
    release = withdrawn.get(view.compose_id)
    if release is not None:
        return f"withdrawn in release {release.release_id}"
    if view.status == "passed":
        version = view.compose.release.version if view.compose.release else "?"
        if version not in base.eligible_versions():
            return (
                f"wrong base: {base.name} {version}, eligible {', '.join(base.eligible_versions())}"
            )
        return tree_problem(view.compose, state.product)
    if view.status == "pending":
        return "pending: " + "; ".join(view.reasons)
    return "; ".join(view.reasons) or view.status


def candidates(state: State) -> tuple[ComposeView | None, list[Considered]]:
    """The newest eligible compose newer than the current release's, and what was considered."""
    current = state.current
    floor = None
    if current is not None and current.manifest.compose_id:
        floor_view = state.compose(current.manifest.compose_id)
        floor = compose_order(floor_view.compose) if floor_view else None
    withdrawn = {
        r.manifest.compose_id: r
        for r in state.releases
        if r.is_release and r.revocation is not None and r.manifest.compose_id
    }
    newer = [v for v in state.composes if floor is None or compose_order(v.compose) > floor]
    chosen: ComposeView | None = None
    considered: list[Considered] = []
    for view in reversed(newer):
        if chosen is not None:
            considered.append(
                Considered(
                    compose_id=view.compose_id,
                    status=view.status,
                    verdict="older",
                    reason="older than the chosen compose",
                )
            )
            continue
        reason = _rejection(view, state, withdrawn)
        if reason is None:
            chosen = view
            considered.append(
                Considered(
                    compose_id=view.compose_id,
                    status=view.status,
                    verdict="chosen",
                    reason="newest eligible compose",
                )
            )
        else:
            considered.append(
                Considered(
                    compose_id=view.compose_id,
                    status=view.status,
                    verdict="rejected",
                    reason=reason,
                )
            )
    return chosen, considered[:MAX_CONSIDERED]


def _after(in_cycle: list[ReleaseView]) -> str:
    """What an earlier decision of the cycle was, for a later release's explanation."""
    if not in_cycle:
        return ""
    last = max(in_cycle, key=lambda r: r.manifest.sequence)
    if last.is_release and last.revocation is not None:
        return f" (after the withdrawal of {last.release_id})"
    if last.is_release:  # its compose failed since
        return f" (after {last.release_id} stopped standing: {last.fallen})"
    return " (late, after a stale decision)"


def decide(state: State, at: datetime) -> ReleaseManifest | None:
    """The decision to record for the cycle ``at`` falls in, or None.

    Nothing happens before the first release day, or in a cycle that already
    has a standing release. A cycle without a decision gets one: the newest
    eligible compose, or a stale decision keeping the previous release. After a
    stale decision (or a withdrawn release) in the cycle, policy ``retry``
    releases the first eligible compose that appears; ``skip`` waits.
    """
    product = state.product
    policy = product.release
    cycle = cycle_day(policy, at)
    if cycle is None:
        return None
    in_cycle = [r for r in state.releases if r.manifest.cycle == cycle.isoformat()]
    if any(r.stands for r in in_cycle):
        return None
    if in_cycle and policy.policy == "skip":
        return None
    chosen, considered = candidates(state)
    if in_cycle and chosen is None:
        return None  # already decided stale; retry finds nothing new yet
    sequence = len(in_cycle) + 1
    current = state.current
    open_bug = state.open_bugs[-1] if state.open_bugs else None
    base = product.base
    release_id = cycle.isoformat() if sequence == 1 else f"{cycle.isoformat()}.{sequence}"
    if chosen is not None:
        late = _after(in_cycle)
        explanation = (
            f"Released {chosen.compose_id}{late}: the newest compose that passed "
            "every blocking test"
        )
        rejected = [c for c in considered if c.verdict == "rejected"]
        if rejected:
            explanation += f"; {len(rejected)} newer compose(s) rejected"
    else:
        kept = (
            f"keeping {current.release_id} ({current.manifest.compose_id})"
            if current
            else "no earlier image to keep"
        )
        explanation = f"No compose passed since the last release; {kept}"
        if open_bug is not None:
            explanation += f"; failure bug {open_bug.url}"
    return ReleaseManifest(
        product=product.name,
        created=at,
        release_id=release_id,
        cycle=cycle.isoformat(),
        sequence=sequence,
        decision="release" if chosen else "stale",
        compose_id=chosen.compose_id if chosen else None,
        previous=current.release_id if current else None,
        base=BaseRef(name=base.name, version=base.version, prerelease=base.prerelease),
        policy=policy.policy,
        open_bug=BugLink(bug=open_bug.bug, url=open_bug.url) if open_bug else None,
        considered=considered,
        explanation=explanation,
        ostree=promotions(state, chosen.compose) if chosen else [],
    )


def revocation(
    state: State, release_id: str, reason: str, reason_url: str | None, operator: str, now: datetime
) -> RevocationManifest | None:
    """The revocation of ``release_id``, or None when it is already withdrawn.

    Raises:
        LookupError: no release decision has that id.
        ValueError: it is a stale decision (nothing to withdraw), or the reason is empty.
    """
    view = state.release(release_id)
    if view is None:
        known = ", ".join(r.release_id for r in state.releases[-5:] if r.is_release)
        raise LookupError(f"no release {release_id} (latest: {known or 'none'})")
    if not view.is_release:
        raise ValueError(f"release {release_id} is a stale decision: nothing to withdraw")
    if view.revocation is not None:
        return None
    if not reason.strip():
        raise ValueError("the reason must not be empty")
    assert view.manifest.compose_id is not None
    return RevocationManifest(
        product=state.product.name,
        created=now,
        release_id=release_id,
        compose_id=view.manifest.compose_id,
        reason=reason.strip(),
        reason_url=reason_url or None,
        operator=operator,
    )
