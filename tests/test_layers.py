"""The package's layers, read from its docstring, hold for every import (ast, lazy ones too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pipeline
from tests.conftest import ROOT


def layer_order(doc: str) -> list[list[str]]:
    """The layers, lowest first, from the ``Layers, lowest first:`` block of a docstring."""
    match = re.search(r"^Layers, lowest first:\n((?:[ \t]+\S.*\n)+)", doc, flags=re.M)
    assert match, "the package docstring must list 'Layers, lowest first:'"
    return [line.split() for line in match.group(1).splitlines()]


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """Every ``package.*`` module a file imports, with its line, at any depth of the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == package:
            found += [(node.lineno, f"{package}.{a.name}") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] == package]


def layer_violations(root: Path, package: str, layers: list[list[str]]) -> list[str]:
    """``file:line: a imports b`` for each import of a higher layer, or of an unlisted part."""
    rank = {name: i for i, names in enumerate(layers) for name in names}
    problems = []
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root / package).with_suffix("").parts
        if parts == ("__init__",):
            continue
        own = parts[0]
        if own not in rank:
            problems.append(f"{path.relative_to(root)}: '{own}' is in no layer")
            continue
        for line, name in imported_modules(path, package):
            target = name.split(".")[1] if "." in name else None
            if target is None or target not in rank:
                continue  # `import pipeline`, or `from pipeline.x import name` listed above
            if rank[target] > rank[own]:
                problems.append(
                    f"{path.relative_to(root)}:{line}: {own} (layer {rank[own]}) imports "
                    f"{name} (layer {rank[target]})"
                )
    return problems


def test_every_module_imports_only_its_layer_or_lower() -> None:
    assert pipeline.__doc__
    layers = layer_order(pipeline.__doc__)
    assert layer_violations(ROOT, "pipeline", layers) == []


def test_every_part_of_the_package_is_in_a_layer() -> None:
    assert pipeline.__doc__
    listed = {name for names in layer_order(pipeline.__doc__) for name in names}
    present = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "pipeline").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert present == listed


def make_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


LAYERS = [["errors"], ["core"], ["log"], ["site"]]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"core/a.py": "from pkg.errors import E\n", "errors.py": ""}, []),
        ({"log/a.py": "from pkg.core.models import M\n"}, []),
        (
            {"core/a.py": "from pkg.log.store import ManifestLog\n"},
            ["pkg/core/a.py:1: core (layer 1) imports pkg.log.store (layer 2)"],
        ),
        (
            {"core/a.py": "def f():\n    from pkg.site import plugin\n"},
            ["pkg/core/a.py:2: core (layer 1) imports pkg.site (layer 3)"],
        ),
        (
            {"log/a.py": "import pkg.site.plugin\n"},
            ["pkg/log/a.py:1: log (layer 2) imports pkg.site.plugin (layer 3)"],
        ),
        (
            {"core/a.py": "from pkg import site\n"},
            ["pkg/core/a.py:1: core (layer 1) imports pkg.site (layer 3)"],
        ),
        ({"extra/a.py": ""}, ["pkg/extra/a.py: 'extra' is in no layer"]),
    ],
)
def test_an_upward_import_is_reported(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    root = make_package(tmp_path, files)
    assert layer_violations(root, "pkg", LAYERS) == expected


def test_the_layer_list_is_read_from_the_docstring() -> None:
    doc = "Intro.\n\nLayers, lowest first:\n    a b\n    c\n\nMore.\n"
    assert layer_order(doc) == [["a", "b"], ["c"]]
