"""Your own product: product.new / list / check, init for any product, the default product,
the code checkout left alone, the ``fortnight`` command from any folder, compose.sample."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from pipeline.core.config import parse_product
from pipeline.core.product_template import NewProduct, render_product
from pipeline.core.siteconfig import SiteConfig, default_product, load_site_config
from pipeline.errors import ConfigError
from tests.cli.conftest import Ran
from tests.conftest import ROOT, Log
from tests.test_tasks import assert_one_line_error

MYOS = ("--display-name", "MyOS Cloud", "--base", "28")
DL = ("--download-url", "https://dl.example.org/myos/{compose_id}/compose/")


def fortnight(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``fortnight`` console script's code (pyproject's [project.scripts]), from ``cwd``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FORTNIGHT_")}
    full_env.update(env or {}, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-c", "from pipeline.cli.main import main; main()", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture
def empty_log(make_log: Callable[..., Log]) -> Log:
    """A log with no product (its bundled atomic-host removed, as a newcomer's would be)."""
    log = make_log()
    log.git("rm", "-q", "-r", "manifests/atomic-host")
    log.git("commit", "-q", "-m", "no product")
    return log


def test_product_new_writes_a_commented_valid_product_and_commits_it(
    cli: Callable[..., Ran], empty_log: Log
) -> None:
    repo = str(empty_log.repo)
    new = cli("product.new", "myos", *MYOS, *DL, "--repo", repo)
    assert new.returncode == 0, new.stderr
    path = empty_log.repo / "manifests/myos/product.toml"
    text = path.read_text()
    config = parse_product(text.encode(), path, "myos")
    assert config.display_name == "MyOS Cloud" and config.base.version == "28"
    assert config.images.subvariants == ["Cloud_Base"]  # --like cloud-base, the default
    # Every key is explained: each key line of the tables carries or follows a comment.
    assert text.count("#") > 30
    assert empty_log.commits()[0] == "product: add myos"
    again = cli("product.new", "myos", *MYOS, "--repo", repo)
    assert again.returncode == 5
    assert_one_line_error(again.stderr, "product 'myos' already exists")
    listed = cli("product.list", "--repo", repo)
    assert listed.returncode == 0 and "MyOS Cloud" in listed.stdout and "yes" in listed.stdout
    check = cli("product.check", "--repo", repo)
    assert check.returncode == 0, check.stderr
    assert "ok: myos (MyOS Cloud) is valid" in check.stdout
    assert "subvariant Cloud_Base" in check.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("Bad_Name", *MYOS), "name: String should match pattern"),
        (("myos", *MYOS, "--like", "server"), "--like server: unknown kind"),
        (("myos", *MYOS, "--download-url", "file:///srv/images/"), "images.download_url"),
        (("myos", *MYOS, "--anchor", "tomorrow"), "--anchor tomorrow: not a date"),
    ],
)
def test_product_new_refuses_bad_options_and_writes_nothing(
    cli: Callable[..., Ran], empty_log: Log, args: tuple[str, ...], fragment: str
) -> None:
    before = empty_log.commits()
    bad = cli("product.new", *args, "--repo", str(empty_log.repo))
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, fragment)
    assert empty_log.commits() == before
    assert not list((empty_log.repo / "manifests").glob("*/product.toml"))


def test_product_new_variant_and_atomic_like() -> None:
    text = render_product(
        NewProduct("myos", "MyOS", "29", date(2026, 1, 6), like="atomic-host", variants=["X"])
    )
    config = parse_product(text.encode(), Path("myos/product.toml"), "myos")
    assert config.images.variants == ["X"] and config.images.subvariants == []
    assert "dvd-ostree" in config.images.types
    assert tomllib.loads(text)["release"]["anchor"] == date(2026, 1, 6)


def test_product_check_rejects_an_unknown_image_type_with_the_known_list(
    cli: Callable[..., Ran], tmp_path: Path
) -> None:
    folder = tmp_path / "myos"
    folder.mkdir()
    text = render_product(NewProduct("myos", "MyOS", "28", date(2026, 1, 6)))
    (folder / "product.toml").write_text(text.replace('"raw-xz"', '"raw-zx"'))
    bad = cli("product.check", "--file", str(folder))
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "images.types: Value error, unknown image type(s) raw-zx")
    assert "known: appx" in bad.stderr and "qcow2" in bad.stderr


def test_init_starts_an_empty_log_and_refuses_an_unknown_bundled_product(
    cli: Callable[..., Ran], tmp_path: Path, empty_log: Log
) -> None:
    env = {"FORTNIGHT_KEY_ROOT": empty_log.env["FORTNIGHT_KEY_ROOT"]}
    unknown = cli("init", "--repo", str(tmp_path / "a"), "--product", "myos", env=env)
    assert unknown.returncode == 2
    assert_one_line_error(unknown.stderr, "--product myos: not a bundled example product")
    assert not (tmp_path / "a").exists()
    made = cli("init", "--repo", str(tmp_path / "b"), env=env)
    assert made.returncode == 0, made.stderr
    assert not list((tmp_path / "b/manifests").glob("*/product.toml"))
    ignored = (tmp_path / "b/.gitignore").read_text().split()
    assert "/output/" in ignored and "/logs/" in ignored


def test_default_product_order() -> None:
    site = SiteConfig(default_product="b")
    where = Path("log")
    assert default_product("x", {"FORTNIGHT_PRODUCT": "y"}, site, ["a", "b"], where) == "x"
    assert default_product(None, {"FORTNIGHT_PRODUCT": "y"}, site, ["a", "b"], where) == "y"
    assert default_product(None, {}, site, ["a", "b"], where) == "b"
    assert default_product(None, {}, SiteConfig(), ["only"], where) == "only"
    with pytest.raises(ConfigError, match=r"several products \(a, b\) and no --product"):
        default_product(None, {}, SiteConfig(), ["a", "b"], where)
    with pytest.raises(ConfigError, match="no product in this log"):
        default_product(None, {}, SiteConfig(), [], where)


def test_site_toml_is_validated(tmp_path: Path) -> None:
    assert load_site_config(tmp_path) == SiteConfig()
    (tmp_path / "site.toml").write_text('default_product = "myos"\nbase_url = "file:///x"\n')
    with pytest.raises(ConfigError, match="base_url: Value error, must be an absolute http"):
        load_site_config(tmp_path)


def test_tasks_use_the_logs_only_product_and_its_site_toml_default(
    cli: Callable[..., Ran],
    make_log: Callable[..., Log],
) -> None:
    log = make_log()
    repo = str(log.repo)
    only = cli("release.cut", "--repo", repo, "--dry-run", "--at", "2018-05-01", env=log.env)
    assert only.returncode == 0 and "manifests/atomic-host/" in only.stdout, only.stderr
    added = cli("product.new", "myos", *MYOS, *DL, "--anchor", "2018-05-01", "--repo", repo)
    assert added.returncode == 0, added.stderr
    several = cli("release.cut", "--repo", repo, "--dry-run", env=log.env)
    assert several.returncode == 2
    assert_one_line_error(several.stderr, "several products (atomic-host, myos) and no --product")
    (log.repo / "site.toml").write_text('default_product = "myos"\n')
    mine = cli("release.cut", "--repo", repo, "--dry-run", "--at", "2018-05-01", env=log.env)
    assert mine.returncode == 0 and "manifests/myos/" in mine.stdout, mine.stderr
    env = {**log.env, "FORTNIGHT_PRODUCT": "atomic-host"}
    theirs = cli("release.cut", "--repo", repo, "--dry-run", "--at", "2018-05-01", env=env)
    assert theirs.returncode == 0 and "manifests/atomic-host/" in theirs.stdout, theirs.stderr


def test_writes_in_the_code_checkout_are_refused_without_repo(
    cli: Callable[..., Ran], tmp_path: Path, make_log: Callable[..., Log]
) -> None:
    log = make_log()
    before = sorted((ROOT / "manifests").rglob("*"))
    for args in (
        ("keys.generate", "--role", "compose", "--out", str(tmp_path / "k")),
        ("product.new", "myos", *MYOS),
        ("release.cut", "--product", "atomic-host"),
    ):
        refused = cli(*args, env=log.env, cwd=ROOT)
        assert refused.returncode == 2, refused.stderr
        assert_one_line_error(refused.stderr, "this is the code checkout, not your manifest log")
    assert sorted((ROOT / "manifests").rglob("*")) == before
    assert not (tmp_path / "k").exists()


def test_fortnight_runs_the_same_tasks_from_the_log_folder(make_log: Callable[..., Log]) -> None:
    log = make_log()
    listed = fortnight("--list", cwd=log.repo)
    assert listed.returncode == 0, listed.stderr
    for name in ("product.new", "compose.sample", "release.cut", "site.build", "status"):
        assert name in listed.stdout
    status = fortnight("status", "--json", cwd=log.repo)
    assert status.returncode == 0 and '"atomic-host"' in status.stdout, status.stderr
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["fortnight"] == "pipeline.cli.main:main"


def test_compose_sample_writes_a_compose_the_battery_can_test(
    cli: Callable[..., Ran], tmp_path: Path, empty_log: Log
) -> None:
    repo = str(empty_log.repo)
    assert cli("product.new", "myos", *MYOS, *DL, "--repo", repo).returncode == 0
    out = tmp_path / "sample"
    made = cli("compose.sample", "--out", str(out), "--broken", "format", "--repo", repo)
    assert made.returncode == 0, made.stderr
    assert "broken (format): x86_64 qcow2" in made.stdout
    assert (out / "compose/metadata/images.json").is_file()
    cid = made.stdout.split()[2]
    env = empty_log.env
    rec = cli("compose.record", "--source", str(out), "--repo", repo, env=env)
    assert rec.returncode == 0, rec.stderr
    ran = cli("test.run", "--compose-id", cid, "--repo", repo, "--no-tracker", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "images: FAILED" in ran.stdout
    bad = cli("compose.sample", "--out", str(out), "--broken", "disk", "--repo", repo)
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "--broken disk: unknown kind")


def test_a_local_compose_needs_a_download_url(
    cli: Callable[..., Ran], tmp_path: Path, empty_log: Log
) -> None:
    repo = str(empty_log.repo)
    assert cli("product.new", "myos", *MYOS, "--repo", repo).returncode == 0
    out = tmp_path / "sample"
    assert cli("compose.sample", "--out", str(out), "--repo", repo).returncode == 0
    rec = cli("compose.record", "--source", str(out), "--repo", repo, env=empty_log.env)
    assert rec.returncode == 2
    assert_one_line_error(rec.stderr, "download_url is empty and the compose is a local folder")
    assert not (empty_log.repo / "manifests/myos/composes").exists()


def test_site_serve_and_publish_name_the_real_cause(
    cli: Callable[..., Ran], empty_log: Log, tmp_path: Path
) -> None:
    repo = ("--repo", str(empty_log.repo))
    missing = cli("site.serve", "--output", str(tmp_path / "nowhere"), *repo)
    assert missing.returncode == 2
    assert_one_line_error(missing.stderr, "nowhere: no such folder: the site was not built here")
    partial = tmp_path / "partial"
    (partial / "myos").mkdir(parents=True)
    target = ("--target", "s3://bucket/site")
    half = cli("site.publish", "--output", str(partial), *target, *repo)
    assert half.returncode == 2
    assert_one_line_error(half.stderr, "has no index.html (the front page): not a complete")
