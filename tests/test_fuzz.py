"""Issue 17: hostile input, fuzzed. The real Fedora metadata, JUnit reports and the shipped
product.toml, mutated (hypothesis, derandomized: the same examples every run), go to the
real tasks as processes. Every run must end with a documented exit code and no traceback;
a failed run must leave the log as it found it; ``invoke verify`` must still pass."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, ComposeTree, Log, run_invoke

COMPOSE_ID = "Fedora-28-20180425.0"
#: The exit codes the README's task reference documents.
DOCUMENTED = {int(c) for c in re.findall(r"^\| (\d+) \|", (ROOT / "README.md").read_text(), re.M)}
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HOSTILE: list[Any] = [
    -1,
    0,
    "123",
    1.5,
    None,
    True,
    [],
    {},
    "",
    "\ud800",
    "../../../etc/passwd",
    10**30,
    "x" * 5000,
    "line\nbreak",
    [[[[[[[[]]]]]]]],
]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (the root excluded)."""
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _mutated(doc: Any, path: tuple[Any, ...], value: Any) -> bytes:
    """``doc`` with the value at ``path`` replaced (or removed, for the ``delete`` value)."""
    out = copy.deepcopy(doc)
    parent = out
    for part in path[:-1]:
        parent = parent[part]
    if value == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(out, indent=4).encode()  # ensure_ascii: a lone surrogate stays an escape


def json_mutations(doc: Any) -> st.SearchStrategy[bytes]:
    """A value replaced or removed somewhere, or the bytes truncated or deeply nested."""
    raw = json.dumps(doc, indent=4).encode()
    replaced = st.builds(
        _mutated,
        st.just(doc),
        st.sampled_from(_paths(doc)),
        st.sampled_from([*HOSTILE, "delete"]),
    )
    truncated = st.integers(0, len(raw) - 1).map(lambda n: raw[:n])
    deep = st.integers(1_000, 200_000).map(lambda n: b"[" * n + b"]" * n)
    return st.one_of(replaced, replaced, replaced, truncated, deep)


def _check(proc: Any, before: tuple[str, str], log: Log) -> None:
    assert proc.returncode in DOCUMENTED and proc.returncode != 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert (log.git("rev-parse", "HEAD"), log.git("status", "--porcelain")) == before


def _state(log: Log) -> tuple[str, str]:
    return log.git("rev-parse", "HEAD"), log.git("status", "--porcelain")


def _verify_passes(log: Log) -> None:
    proc = run_invoke("verify", "--repo", str(log.repo))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("name", "examples"), [("images.json", 6), ("composeinfo.json", 3)])
def test_fuzzed_compose_metadata(
    name: str,
    examples: int,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    log = make_log()
    tree = make_compose_tree()
    meta = tree.compose_dir / "metadata" / name
    doc = json.loads(meta.read_bytes())

    @settings(FUZZ, max_examples=examples)
    @given(json_mutations(doc))
    def record(data: bytes) -> None:
        meta.write_bytes(data)
        before = _state(log)
        proc = run_invoke(
            "compose.record", "--source", str(tree.root), "--repo", str(log.repo), env=log.env
        )
        _check(proc, before, log)

    record()
    _verify_passes(log)


JUNIT = (
    '<?xml version="1.0" encoding="{encoding}"?>\n<testsuites><testsuite name="s">\n'
    '<testcase classname="t" name="{name}" time="{time}"/>\n'
    '<testcase classname="t" name="b" time="0.5"><failure message="{message}">trace'
    '</failure></testcase>\n<testcase name="c"><skipped/></testcase>{extra}\n'
    "</testsuite></testsuites>\n"
)


@st.composite
def junit_reports(draw: st.DrawFn) -> bytes:
    text = JUNIT.format(
        encoding=draw(st.sampled_from(["utf-8", "x-klingon", "utf-16", "latin-1", "ascii"])),
        name=draw(st.sampled_from(["a", "", " ", "é" * 300, "&amp;", "&lt;x"])),
        time=draw(st.sampled_from(["1", "nan", "inf", "-1", "1e999", "abc", ""])),
        message=draw(st.sampled_from(["boom", "", "x" * 10_000, "&#0;", "a\nb"])),
        extra=draw(st.sampled_from(["", "<testcase/>", "<a>" * 300, "<!DOCTYPE x>", "</a>"])),
    )
    raw = text.encode("utf-8")
    cut = draw(st.sampled_from([None, 10, len(raw) // 2]))
    return raw if cut is None else raw[:cut]


def test_fuzzed_junit_reports(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree], tmp_path: Path
) -> None:
    log = make_log()
    tree = make_compose_tree()
    repo = ("--repo", str(log.repo))
    recorded = run_invoke(
        "compose.record", "--source", str(tree.root), "--skip-checksums", *repo, env=log.env
    )
    assert recorded.returncode == 0, recorded.stderr
    report = tmp_path / "junit.xml"

    @settings(FUZZ, max_examples=6)
    @given(junit_reports())
    def imported(data: bytes) -> None:
        report.write_bytes(data)
        before = _state(log)
        proc = run_invoke(
            "test.import",
            "--compose-id",
            COMPOSE_ID,
            "--suite",
            "openqa",
            "--junit",
            str(report),
            "--no-tracker",
            *repo,
            env=log.env,
        )
        _check(proc, before, log)

    imported()
    _verify_passes(log)


TOML_KEYS = {
    "cadence_days = 14": ["cadence_days = 9999999999", "cadence_days = -3", "cadence_days = 1.5"],
    "grace_days = 2": ["grace_days = 1e400", 'grace_days = "2"'],
    "anchor = 2018-05-01": ["anchor = 9999-12-31", "anchor = 0001-01-01", 'anchor = "soon"'],
    "/compose/twoweek/{compose_id}/compose/": ["/{0}/", "/{nope}/", "/{", "/}", "/{compose_id!r}"],
    "[tracker]": [
        '[battery.suites.smoke]\ntunir = "../../../../../../etc/hostname"\n\n[tracker]',
        '[battery.suites.smoke]\ntunir = "/etc/hostname"\n\n[tracker]',
        "[battery.suites.smoke]\n\n[tracker]",
    ],
    'name = "atomic-host"': ['name = "other"', "name = 5"],
    "workers = 0": ["workers = -1", "workers = 99999999999999999999999"],
}


def test_fuzzed_product_toml(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    log = make_log()
    tree = make_compose_tree()
    toml_path = log.repo / "manifests/atomic-host/product.toml"
    shipped = toml_path.read_text()
    assert all(key in shipped for key in TOML_KEYS)
    edits = st.sampled_from(sorted(TOML_KEYS)).flatmap(
        lambda key: st.tuples(st.just(key), st.sampled_from(TOML_KEYS[key]))
    )

    @settings(FUZZ, max_examples=6)
    @given(st.lists(edits, min_size=1, max_size=2), st.sampled_from([None, 40, 400]))
    def recorded(changes: list[tuple[str, str]], cut: int | None) -> None:
        text = shipped
        for key, value in changes:
            text = text.replace(key, value, 1)
        toml_path.write_text(text if cut is None else text[:cut])
        before = _state(log)
        proc = run_invoke(
            "compose.record",
            "--source",
            str(tree.root),
            "--skip-checksums",
            "--dry-run",
            "--repo",
            str(log.repo),
            env=log.env,
        )
        _check(proc, before, log)

    recorded()
    toml_path.write_text(shipped)
    _verify_passes(log)
