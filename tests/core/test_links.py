"""No ``file://`` link reaches a page, the stream or a ``latest/`` redirect; download_url is
checked when product.toml is loaded."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.core import pages
from pipeline.core.config import parse_product
from pipeline.errors import ConfigError
from tests.conftest import ROOT, compose_on, make_compose, make_result
from tests.core.history import History

VAGRANT = "vagrant-libvirt"


def test_a_file_url_in_a_manifest_never_reaches_a_page() -> None:
    image = make_compose().images[0]
    local = [
        image.model_copy(update={"url": "file:///srv/compose/disk.qcow2"}),
        image.model_copy(
            update={"type": VAGRANT, "path": "v.box", "url": "file:///srv/compose/v.box"}
        ),
    ]
    compose = compose_on(14, images=local)
    h = History()
    h.log += [compose, make_result(compose, started=compose.created + timedelta(hours=1))]
    assert h.cut(h.at(14)) is not None
    state = h.state(h.at(15))
    [section] = pages.download_page(state).arches
    assert [(d.url, d.vagrant_hint) for d in section.downloads] == [("", None), ("", None)]
    assert "file:" not in json.dumps(pages.stream(state, "https://example.org/"))
    assert pages.latest_pointers(state) == []


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://dl.example.org/{compose_id}/compose/", True),
        ("http://127.0.0.1:8000/composes/{compose_id}/compose/", True),
        ("/composes/{compose_id}/compose/", True),
        ("", True),
        ("file:///srv/composes/", False),
        ("composes/{compose_id}/", False),
        ("//cdn.example.org/x/", False),
        ("javascript:alert(1)", False),
    ],
)
def test_download_url_is_checked_at_load(url: str, ok: bool) -> None:
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text()
    toml = toml.replace(
        'download_url = "https://kojipkgs.fedoraproject.org/compose/twoweek/{compose_id}/compose/"',
        f"download_url = {json.dumps(url)}",
    )
    path = Path("atomic-host/product.toml")
    if ok:
        assert parse_product(toml.encode(), path, "atomic-host").images.download_url == url
        return
    with pytest.raises(ConfigError, match=r"images\.download_url: Value error, must be an abs"):
        parse_product(toml.encode(), path, "atomic-host")


def test_an_unknown_image_type_is_rejected_at_load_with_the_known_list() -> None:
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text()
    toml = toml.replace('"dvd-ostree"]', '"dvd-ostre"]')
    with pytest.raises(ConfigError, match=r"unknown image type\(s\) dvd-ostre; known: appx,"):
        parse_product(toml.encode(), Path("atomic-host/product.toml"), "atomic-host")
