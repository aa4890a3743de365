"""``[ostree]`` in product.toml, and the pure rules: which trees may be released."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.config import load_product
from pipeline.core.models.manifests import OstreeCommit
from pipeline.core.ostree import tree_problem
from pipeline.errors import ConfigError
from tests.conftest import ROOT, make_compose

SHIPPED = (ROOT / "manifests/atomic-host/product.toml").read_text()


def _product(tmp_path: Path, table: str) -> object:
    folder = tmp_path / "manifests" / "atomic-host"
    folder.mkdir(parents=True)
    (folder / "product.toml").write_text(SHIPPED + "\n[ostree]\n" + table)
    return load_product(tmp_path / "manifests", "atomic-host")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('ref = "fedora/{release}/{arch}/atomic-host"', "only {version} and {arch} may be used"),
        ('ref = "fedora/{version}/atomic-host"', "ref: needs {arch}"),
        ('compose_ref = "x/{oops"', "only {version} and {arch} may be used"),
        ('site_path = "../up"', "site_path"),
        ("deltas = 1", "deltas"),
        ('remote = "a b"', "remote"),
        ('colour = "blue"', "colour"),
    ],
)
def test_bad_ostree_tables_are_one_line_config_errors(
    tmp_path: Path, table: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        _product(tmp_path, table)
    assert "product.toml" in e.value.message and message in e.value.message
    assert "\n" not in e.value.diagnostics()


def _tree(arch: str, version: str) -> OstreeCommit:
    return OstreeCommit(
        arch=arch, ref=f"fedora/28/{arch}/updates/atomic-host", commit="a" * 64, version=version
    )


def test_tree_problem_names_the_missing_arch_and_mixed_versions(tmp_path: Path) -> None:
    product = load_product(_write(tmp_path, 'arches = ["x86_64", "aarch64"]'), "atomic-host")
    assert product.ostree_arches() == ["x86_64", "aarch64"]
    both = make_compose(ostree=[_tree("x86_64", "28.1"), _tree("aarch64", "28.1")])
    assert tree_problem(both, product) is None
    one = make_compose(ostree=[_tree("x86_64", "28.1")])
    assert tree_problem(one, product) == "ostree: no commit recorded for aarch64"
    mixed = make_compose(ostree=[_tree("x86_64", "28.1"), _tree("aarch64", "28.2")])
    assert tree_problem(mixed, product) == (
        "ostree: arches carry different versions (x86_64 28.1, aarch64 28.2)"
    )
    plain = load_product(ROOT / "manifests", "atomic-host")
    assert tree_problem(one, plain) is None  # no [ostree]: trees do not matter


def _write(tmp_path: Path, table: str) -> Path:
    folder = tmp_path / "m" / "atomic-host"
    folder.mkdir(parents=True)
    (folder / "product.toml").write_text(SHIPPED + "\n[ostree]\n" + table)
    return tmp_path / "m"


def test_old_manifests_sign_the_same_bytes_without_ostree() -> None:
    """A compose or release without trees signs no ``ostree`` key, as before the field."""
    assert "ostree" not in make_compose().signed_dict()
    with_trees = make_compose(ostree=[_tree("x86_64", "28.1")]).signed_dict()
    assert with_trees["ostree"][0]["version"] == "28.1"
    with pytest.raises(ValueError, match="share an arch"):
        make_compose(ostree=[_tree("x86_64", "28.1"), _tree("x86_64", "28.1")])
