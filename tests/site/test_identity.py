"""Site identity from the log: its name, primary product, base URL and human pages come
from site.toml and the log's content/, with generic defaults naming the log's products."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipeline.core.product_template import NewProduct
from pipeline.site.build import build_site
from pipeline.stages.products import new_product
from tests.conftest import ROOT, Log
from tests.sitekit import Page

AT = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.fixture
def myos_log(make_log: Callable[..., Log]) -> Log:
    """A log whose only product is MyOS Cloud (made with product.new's library call)."""
    log = make_log()
    log.git("rm", "-q", "-r", "manifests/atomic-host")
    log.git("commit", "-q", "-m", "only myos")
    new = NewProduct(
        "myos",
        "MyOS Cloud",
        "28",
        date(2026, 1, 6),
        download_url="https://dl.example.org/myos/{compose_id}/compose/",
    )
    new_product(log.log, new)
    return log


def build(log: Log, out: Path) -> None:
    build_site(ROOT / "pelicanconf.py", log.repo, out, at=AT)


def test_a_new_product_gets_a_front_page_and_generic_pages_naming_it(
    myos_log: Log, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    build(myos_log, out)
    index = (out / "index.html").read_text()
    assert "<title>MyOS Cloud, based on Fedora 28</title>" in index
    assert "MyOS Cloud downloads" in Page(out / "index.html").text  # the site's name
    about = (out / "about.html").read_text()
    assert "MyOS Cloud</a>, based on Fedora 28" in about
    for atomic in ("Atomic", "rpm-ostree"):
        assert atomic not in about
        assert atomic not in (out / "expectations.html").read_text()


def test_site_toml_and_the_logs_own_pages(myos_log: Log, tmp_path: Path) -> None:
    repo = myos_log.repo
    (repo / "site.toml").write_text(
        'name = "MyOS images"\nprimary = "myos"\nbase_url = "https://images.example.org/"\n'
    )
    pages = repo / "content/pages"
    pages.mkdir(parents=True)
    (pages / "about.md").write_text("Title: About\nSlug: about\n\nMyOS is our own OS.\n")
    products = repo / "content/products"
    products.mkdir()
    (products / "myos.md").write_text("MyOS Cloud is *small* and ours.\n")
    out = tmp_path / "out"
    build(myos_log, out)
    assert "MyOS images" in Page(out / "index.html").text
    about = (out / "about.html").read_text()
    assert "MyOS is our own OS." in about
    assert "MyOS Cloud is <em>small</em> and ours." in about  # the product's own folder
    assert not (out / "verify.html").exists()  # the log's pages replace the generic ones
    feed = (out / "feeds/myos.atom").read_text()
    assert "https://images.example.org/" in feed


def test_fedora_atomic_hosts_texts_are_its_example_content() -> None:
    content = ROOT / "examples/atomic-host/content"
    about = (content / "pages/about.md").read_text()
    assert "**Fedora Atomic Host**" in about and "rpm-ostree" in about
    assert "rpm-ostree" in (content / "products/atomic-host.md").read_text()
