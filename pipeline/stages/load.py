"""What every stage starts with: the verified state of one product, and a compose in it."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath

from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models.common import Trust
from pipeline.core.state import ComposeView, State, derive
from pipeline.errors import InputError
from pipeline.log.store import ManifestLog


def load_state(log: ManifestLog, product: ProductConfig, now: datetime) -> tuple[State, Trust]:
    """Verify the product's manifests (fail closed) and derive its state at ``now``.

    Only ``manifests/<product>/`` is loaded: :func:`derive` reads nothing else, and a
    log with many products or a long history loads in a fraction of the time. Fail
    closed covers what is loaded; ``invoke verify`` (and ``invoke status``) check every
    product's manifests.

    Raises:
        VerificationError: a manifest of the product failed verification.
        ConfigError: ``trust.json`` is invalid.
    """
    trust = log.load_trust()
    verified = log.load_verified(trust, products=[product.name])
    return derive([v.manifest for v in verified], product, now), trust


def require_compose(state: State, compose_id: str) -> ComposeView:
    """The view of a recorded compose.

    Raises:
        InputError: the compose is not recorded for this product.
    """
    view = state.compose(compose_id)
    if view is None:
        raise InputError(
            f"--compose-id {compose_id}: not recorded for {state.product.name}",
            hint="record it first with 'invoke compose.record'",
        )
    return view


def load_states_apart(
    log: ManifestLog, product: str | None, now: datetime
) -> tuple[list[State], list[tuple[str, str]]]:
    """The state at ``now`` of ``product``, or of every product in the log, verifying every
    manifest of the log: the states of the products whose manifests all verified, and every
    rejected file with its reason. A product with a rejected manifest is left out (fail
    closed per product) without hiding the others.

    Raises:
        ConfigError: ``trust.json`` or a ``product.toml`` is invalid.
    """
    names = [product] if product else log.product_names()
    trust = log.load_trust()
    report = log.verify_all(trust)
    bad = {PurePosixPath(path).parts[1] for path, _ in report.failures}
    manifests = [v.manifest for v in report.verified]
    states = [
        derive(manifests, load_product(log.root, name), now) for name in names if name not in bad
    ]
    return states, report.failures
