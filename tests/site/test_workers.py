"""Products built in forked worker processes (pipeline/site/workers.py): the same output,
fail closed across products, largest product written first.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import VerificationError
from pipeline.site.output import BuildReport, ProductRecord
from pipeline.site.workers import Workers
from tests.sitekit import (
    History,
    two_products,
)

MakeHistory = Callable[..., History]


def test_products_build_in_worker_processes_with_the_same_result(
    make_history: MakeHistory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_history()
    now = two_products(h)
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    assert threading.active_count() == 1  # else the build cannot fork and runs in-process
    forks = []
    real = Workers.start

    def spy(jobs: list[Any], workers: int) -> Workers | None:
        pool = real(jobs, workers)
        forks.append(pool is not None)
        return pool

    monkeypatch.setattr(Workers, "start", spy)
    report = h.build(parallel, now, overrides={"FORTNIGHT_WORKERS": 2})
    assert forks == [True]
    h.build(serial, now, overrides={"FORTNIGHT_WORKERS": 1})
    assert report.products_built == ["atomic-host", "cloud-base"]
    assert report.pages == 11 and report.written > 40  # 6 pages + release notes + 4 of cloud-base

    def tree(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and ".fortnight" not in p.parts
        }

    assert tree(parallel) == tree(serial)
    assert (parallel / "cloud-base/index.html").is_file()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_manifest_in_any_product_fails_the_whole_build(
    make_history: MakeHistory, tmp_path: Path, workers: int
) -> None:
    """Fail closed across products: nothing of the good product is written either."""
    h = make_history()
    now = two_products(h)
    bad = next((h.log.repo / "manifests/cloud-base/composes").glob("*.json"))
    bad.write_text(bad.read_text().replace('"respin": 0', '"respin": 3'))
    out = tmp_path / "out"
    with pytest.raises(VerificationError, match=bad.name):
        h.build(out, now, overrides={"FORTNIGHT_WORKERS": workers})
    assert not (out / "atomic-host").exists()
    assert not (out / "index.html").exists()


def _fake_writer(index: int, conn: Any, log: str) -> None:
    """A worker that waits for the go, notes it, works a little, and reports."""
    if conn.recv():
        with open(log, "a") as f:
            f.write(f"{index}\n")
        time.sleep(0.2)
        conn.send(("done", (ProductRecord(key=str(index)), BuildReport())))


class _Watched:
    """The parent's end of a worker's pipe, noting each go and each answer in ``events``.

    The parent hands out writes from one thread, so the notes are in the order it decided:
    what the test checks does not depend on which worker process the OS runs first.
    """

    def __init__(self, index: int, conn: Any, events: list[tuple[str, int]]) -> None:
        self.index, self.conn, self.events = index, conn, events

    def fileno(self) -> int:
        return int(self.conn.fileno())

    def send(self, go: bool) -> None:
        self.events.append(("go" if go else "stop", self.index))
        self.conn.send(go)

    def recv(self) -> Any:
        answer = self.conn.recv()
        self.events.append(("done", self.index))
        return answer


def test_workers_write_the_largest_products_first(tmp_path: Path) -> None:
    """Writes go out largest product first, two at a time, the next when one is done; the
    records come back in job order."""
    ctx = mp.get_context("fork")
    log = tmp_path / "order"
    events: list[tuple[str, int]] = []
    procs = []
    for i in range(4):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_fake_writer, args=(i, child, str(log)), daemon=True)
        proc.start()
        procs.append((proc, _Watched(i, parent, events)))
    results = Workers(procs, sizes=[1, 5, 3, 4], slots=2).finish()
    assert [record.key for record, _ in results] == ["0", "1", "2", "3"]
    assert [i for kind, i in events if kind == "go"] == [1, 3, 2, 0]
    busy = 0
    for kind, _ in events:  # never more than two writing; a go only once a slot is free
        busy += 1 if kind == "go" else -1
        assert 0 <= busy <= 2
    assert events[:2] == [("go", 1), ("go", 3)] and events[2][0] == "done"
    assert sorted(log.read_text().split()) == ["0", "1", "2", "3"]  # each wrote once
