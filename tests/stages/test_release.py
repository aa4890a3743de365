"""release.cut and release.revoke on a real log: decide once, withdraw once, fail closed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipeline.errors import InputError
from pipeline.log.writer import WriteOptions
from pipeline.stages.load import load_state
from pipeline.stages.release import cut_release, revoke_release
from tests.sitekit import History, day


def _revoke(h: History, release_id: str, reason: str = "does not boot") -> Any:
    return revoke_release(
        h.log.log,
        h.product,
        release_id,
        reason=reason,
        reason_url=None,
        operator="dusty",
        signers=[h.log.signers["release"]],
        options=WriteOptions(),
        now=day(15),
    )


def test_cut_decides_a_cycle_once(make_history: Callable[..., History]) -> None:
    h = make_history()
    good = h.compose(day(-1))
    release = [h.log.signers["release"]]
    manifest, write, _ = cut_release(
        h.log.log, h.product, day(0, 12), signers=release, options=WriteOptions()
    )
    assert manifest is not None and write is not None
    assert (manifest.decision, manifest.compose_id) == ("release", good.compose_id)
    assert write.commit is not None
    again, no_write, state = cut_release(
        h.log.log, h.product, day(1, 12), signers=release, options=WriteOptions()
    )
    assert again is None and no_write is None
    assert state.current is not None and state.current.manifest.compose_id == good.compose_id


def test_cut_dry_run_records_nothing(make_history: Callable[..., History]) -> None:
    h = make_history()
    h.compose(day(-1))
    before = h.log.commits()
    manifest, write, _ = cut_release(
        h.log.log,
        h.product,
        day(0, 12),
        signers=[h.log.signers["release"]],
        options=WriteOptions(dry_run=True),
    )
    assert manifest is not None and write is not None and write.dry_run
    assert h.log.commits() == before


def test_revoke_falls_back_and_is_idempotent(make_history: Callable[..., History]) -> None:
    h = make_history()
    older = h.compose(day(-1))
    h.cut(day(0, 12))
    h.compose(day(13))
    h.cut(day(14, 12))
    manifest, write = _revoke(h, "2018-05-15")
    assert manifest is not None and write is not None
    state, _ = load_state(h.log.log, h.product, day(16))
    assert state.current is not None and state.current.manifest.compose_id == older.compose_id
    assert _revoke(h, "2018-05-15") == (None, None)


@pytest.mark.parametrize(
    ("release_id", "reason", "message"),
    [
        ("2018-06-12", "does not boot", "--release-id 2018-06-12"),
        ("2018-05-01", "  ", "reason"),
    ],
)
def test_revoke_rejects(
    make_history: Callable[..., History], release_id: str, reason: str, message: str
) -> None:
    h = make_history()
    h.compose(day(-1))
    h.cut(day(0, 12))
    with pytest.raises(InputError, match=message):
        _revoke(h, release_id, reason)
