"""What changed between two composes: packages in rpm order, image sizes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.core.changes import compose_changes, parse_nevra
from pipeline.core.models.manifests import ComposeManifest
from pipeline.core.rpmvercmp import Evr
from tests.conftest import make_compose


def _packages(sources: dict[str, list[str]], arch: str = "x86_64") -> list[dict[str, Any]]:
    on_arch = {s: [b.replace(".x86_64", f".{arch}") for b in bins] for s, bins in sources.items()}
    return [{"variant": "Cloud_Atomic", "arch": arch, "sources": on_arch}]


OLD = {
    "kernel-0:4.2.3-300.fc23.src": [
        "kernel-0:4.2.3-300.fc23.x86_64",
        "kernel-core-0:4.2.3-300.fc23.x86_64",
    ],
    "rpm-ostree-0:2015.9-1.fc23.src": ["rpm-ostree-0:2015.9-1.fc23.x86_64"],
    "docker-2:1.8.2-10.fc23.src": ["docker-2:1.8.2-10.fc23.x86_64"],
    "bash-0:4.3.42-1.fc23.src": ["bash-0:4.3.42-1.fc23.x86_64"],
    "nano-0:2.4.2-1.fc23.src": ["nano-0:2.4.2-1.fc23.x86_64"],
    "vim-2:7.4.827-1.fc23.src": ["vim-minimal-2:7.4.827-1.fc23.x86_64"],
}
NEW = {
    # 4.2.10 > 4.2.3 although "4.2.10" < "4.2.3" as strings
    "kernel-0:4.2.10-300.fc23.src": [
        "kernel-0:4.2.10-300.fc23.x86_64",
        "kernel-core-0:4.2.10-300.fc23.x86_64",
    ],
    # 2015.10~rc1 < 2015.10 but > 2015.9
    "rpm-ostree-0:2015.10~rc1-1.fc23.src": ["rpm-ostree-0:2015.10~rc1-1.fc23.x86_64"],
    # same version, lower epoch: a downgrade
    "docker-1:1.9.0-1.fc23.src": ["docker-1:1.9.0-1.fc23.x86_64"],
    "bash-0:4.3.42-1.fc23.src": ["bash-0:4.3.42-1.fc23.x86_64"],
    "vim-2:7.4.827-1.fc23.src": ["vim-minimal-2:7.4.827-1.fc23.x86_64"],
    "tmux-0:2.0-2.fc23.src": ["tmux-0:2.0-2.fc23.x86_64"],
}


def _pair(old: Any = OLD, new: Any = NEW) -> tuple[ComposeManifest, ComposeManifest]:
    previous = make_compose(packages=_packages(old) if old is not None else None)
    current = make_compose(
        compose_id="Fedora-Atomic-22-20150929.0",
        date="20150929",
        packages=_packages(new) if new is not None else None,
    )
    return previous, current


def test_added_removed_upgraded_downgraded_in_rpm_order() -> None:
    changes = compose_changes(*_pair())
    assert changes.packages_known
    table = [(p.name, p.kind, p.old, p.new) for p in changes.packages]
    assert table == [
        ("kernel", "upgraded", "4.2.3-300.fc23", "4.2.10-300.fc23"),
        ("kernel-core", "upgraded", "4.2.3-300.fc23", "4.2.10-300.fc23"),
        ("rpm-ostree", "upgraded", "2015.9-1.fc23", "2015.10~rc1-1.fc23"),
        ("docker", "downgraded", "2:1.8.2-10.fc23", "1:1.9.0-1.fc23"),
        ("nano", "removed", "2.4.2-1.fc23", None),
        ("tmux", "added", None, "2.0-2.fc23"),
    ]
    assert [p.name for p in changes.notable] == ["kernel", "kernel-core", "rpm-ostree", "docker"]
    assert [p.name for p in changes.others] == ["nano", "tmux"]
    counts = {k: changes.count(k) for k in ("added", "removed", "upgraded", "downgraded")}
    assert counts == {"added": 1, "removed": 1, "upgraded": 3, "downgraded": 1}
    assert next(p for p in changes.packages if p.name == "kernel-core").source == "kernel"


def test_a_change_on_several_arches_is_listed_once() -> None:
    old = make_compose(packages=_packages(OLD) + _packages(OLD, "aarch64"))
    new = make_compose(packages=_packages(NEW) + _packages(NEW, "aarch64"))
    kernel = next(p for p in compose_changes(old, new).packages if p.name == "kernel")
    assert kernel.arches == ["aarch64", "x86_64"]


def test_newest_of_several_versions_counts() -> None:
    both = {
        "kernel-0:4.2.3-300.fc23.src": ["kernel-0:4.2.3-300.fc23.x86_64"],
        "kernel-0:4.2.10-300.fc23.src": ["kernel-0:4.2.10-300.fc23.x86_64"],
    }
    newer = {"kernel-0:4.2.10-300.fc23.src": ["kernel-0:4.2.10-300.fc23.x86_64"]}
    assert compose_changes(*_pair(both, newer)).packages == []


@pytest.mark.parametrize(("old", "new"), [(None, NEW), (OLD, None), (None, None)])
def test_missing_package_list_means_unknown(old: Any, new: Any) -> None:
    changes = compose_changes(*_pair(old, new))
    assert not changes.packages_known
    assert changes.packages == []


def test_image_size_changes() -> None:
    previous = make_compose()
    image = copy.deepcopy(previous.model_dump(mode="json")["images"][0])
    image["size"] = previous.images[0].size + 4096
    current = make_compose(compose_id="Fedora-Atomic-22-20150929.0", images=[image])
    (size,) = compose_changes(previous, current).images
    assert (size.arch, size.type, size.old_size, size.new_size) == (
        "x86_64",
        "qcow2",
        593363456,
        593363456 + 4096,
    )
    assert compose_changes(previous, previous).images == []


def test_parse_nevra() -> None:
    assert parse_nevra("rpm-ostree-libs-0:2015.10~rc1-1.fc23.x86_64") == (
        "rpm-ostree-libs",
        Evr(0, "2015.10~rc1", "1.fc23"),
        "x86_64",
    )
    with pytest.raises(ValueError, match="not an rpm"):
        parse_nevra("kernel-4.2.3")


@pytest.mark.parametrize(
    "nevra",
    ["kernel-4.2.3-300.fc23.x86_64", "kernel-0:4.2.3.x86_64", "../etc-0:1-1.x86_64", ""],
)
def test_manifest_rejects_a_bad_nevra(nevra: str) -> None:
    with pytest.raises(ValidationError, match="sources"):
        make_compose(packages=_packages({nevra: [nevra]}))


def test_manifest_without_packages_serialises_as_before() -> None:
    plain = make_compose()
    assert "packages" not in plain.signed_dict()
    with_packages = make_compose(packages=_packages(OLD))
    data = with_packages.signed_dict()
    assert data["packages"][0]["sources"]["bash-0:4.3.42-1.fc23.src"] == [
        "bash-0:4.3.42-1.fc23.x86_64"
    ]
    # and reads back to the same model
    again = ComposeManifest.model_validate(json.loads(json.dumps(data)))
    assert again == with_packages


def _binaries(sources: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The same rpms as an OSTree commit's package list gives them: no source rpms."""
    rpms = sorted(b for bins in sources.values() for b in bins)
    return [{"variant": "Cloud_Atomic", "arch": "x86_64", "sources": {}, "binaries": rpms}]


def test_rpms_without_a_known_source_are_compared_as_their_own_source() -> None:
    """A commit's package list (binaries only) diffs against rpms.json's lists and itself:
    the same changes, each rpm its own source."""
    expected = [(p.name, p.kind, p.old, p.new) for p in compose_changes(*_pair()).packages]
    for old, new in [(_binaries(OLD), _binaries(NEW)), (_packages(OLD), _binaries(NEW))]:
        previous = make_compose(packages=old)
        current = make_compose(compose_id="Fedora-Atomic-22-20150929.0", packages=new)
        changes = compose_changes(previous, current)
        assert [(p.name, p.kind, p.old, p.new) for p in changes.packages] == expected
        core = next(p for p in changes.packages if p.name == "kernel-core")
        assert core.source == "kernel-core" and core.notable


def test_binaries_are_signed_only_when_present() -> None:
    """A package set from rpms.json signs the bytes it signed before ``binaries`` existed;
    one from a commit signs its binaries and reads back the same."""
    from_json = make_compose(packages=_packages(OLD)).signed_dict()
    assert set(from_json["packages"][0]) == {"variant", "arch", "sources"}
    from_commit = make_compose(packages=_binaries(OLD))
    data = from_commit.signed_dict()
    assert data["packages"][0]["sources"] == {}
    assert "kernel-core-0:4.2.3-300.fc23.x86_64" in data["packages"][0]["binaries"]
    assert ComposeManifest.model_validate(json.loads(json.dumps(data))) == from_commit
    with pytest.raises(ValidationError, match="binaries"):
        make_compose(packages=[{**_binaries(OLD)[0], "binaries": ["kernel-4.2.3"]}])
