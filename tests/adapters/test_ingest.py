"""Reading Pungi metadata with productmd, from folders and over real HTTP."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import productmd.images
import productmd.rpms
import pytest

from pipeline.adapters.ingest import LoadedCompose, http_session, load_compose
from pipeline.adapters.metadata import deserialize_images, loads_metadata
from pipeline.core.config import load_product
from pipeline.core.models.manifests import ComposeManifest
from pipeline.errors import FetchError, InputError
from pipeline.stages.compose import build_compose_manifest, package_sets
from tests.conftest import FIXTURES, NOW, ROOT, ComposeTree, StaticServer, make_compose

PRODUCT = load_product(ROOT / "manifests", "atomic-host")


def test_f28_real_metadata_selects_atomic_host_images(f28_metadata_dir: Path) -> None:
    loaded = load_compose(str(f28_metadata_dir))
    manifest = build_compose_manifest(loaded, PRODUCT, NOW, checksums_verified=False)
    assert manifest.compose_id == "Fedora-28-20180425.0"
    assert (manifest.date, manifest.respin, manifest.compose_type, manifest.label) == (
        "20180425",
        0,
        "production",
        "RC-1.1",
    )
    assert manifest.release is not None and manifest.release.version == "28"
    keys = sorted((i.arch, i.type) for i in manifest.images)
    assert keys == [
        ("aarch64", "qcow2"),
        ("aarch64", "raw-xz"),
        ("ppc64le", "qcow2"),
        ("ppc64le", "raw-xz"),
        ("x86_64", "qcow2"),
        ("x86_64", "raw-xz"),
        ("x86_64", "vagrant-libvirt"),
        ("x86_64", "vagrant-virtualbox"),
    ]
    qcow = next(i for i in manifest.images if i.arch == "x86_64" and i.type == "qcow2")
    # The real CHECKSUM file Fedora published agrees with what we recorded.
    checksum_file = (
        FIXTURES / "fedora-websites-Fedora-AtomicHost-28-1.1-x86_64-CHECKSUM"
    ).read_text()
    assert f"SHA256 ({qcow.filename}) = {qcow.checksums.sha256}" in checksum_file
    assert f"# {qcow.filename}: {qcow.size} bytes" in checksum_file
    assert qcow.url == (
        "https://kojipkgs.fedoraproject.org/compose/twoweek/Fedora-28-20180425.0/"
        "compose/AtomicHost/x86_64/images/Fedora-AtomicHost-28-1.1.x86_64.qcow2"
    )
    assert all(i.subvariant == "AtomicHost" and i.variant == "AtomicHost" for i in manifest.images)


def test_compose_folder_itself_is_accepted(f28_metadata_dir: Path) -> None:
    loaded = load_compose(str(f28_metadata_dir / "compose"))
    assert loaded.info.compose.id == "Fedora-28-20180425.0"


def test_cloud_27_has_no_atomic_host_image(tmp_path: Path) -> None:
    meta = tmp_path / "c" / "compose" / "metadata"
    meta.mkdir(parents=True)
    shutil.copy(
        FIXTURES / "fedimg-vcr-Fedora-Cloud-27-20180317.0-composeinfo.json",
        meta / "composeinfo.json",
    )
    shutil.copy(
        FIXTURES / "fedimg-vcr-Fedora-Cloud-27-20180317.0-images.json", meta / "images.json"
    )
    loaded = load_compose(str(tmp_path / "c"))
    with pytest.raises(
        InputError, match="compose Fedora-Cloud-27-20180317.0 has no image for product atomic-host"
    ):
        build_compose_manifest(loaded, PRODUCT, NOW, checksums_verified=False)
    cloud = PRODUCT.model_copy(
        update={"images": PRODUCT.images.model_copy(update={"subvariants": ["Cloud_Base"]})}
    )
    manifest = build_compose_manifest(loaded, cloud, NOW, checksums_verified=False)
    assert {i.variant for i in manifest.images} == {"CloudImages"}
    assert manifest.release is not None and manifest.release.short == "Fedora-Cloud"


def f23_compose(tmp_path: Path) -> Path:
    """The productmd 1.1 sample with the composeinfo a compose of that id would carry."""
    meta = tmp_path / "f23" / "compose" / "metadata"
    meta.mkdir(parents=True)
    shutil.copy(FIXTURES / "productmd-tests-images-f23.json", meta / "images.json")
    info = json.loads((FIXTURES / "fedimg-vcr-Fedora-28-20180425.0-composeinfo.json").read_text())
    info["header"]["version"] = "1.1"
    info["payload"]["compose"].update(id="Fedora-23-20151030.0", date="20151030", label=None)
    info["payload"]["compose"].pop("label")
    info["payload"]["release"]["version"] = "23"
    (meta / "composeinfo.json").write_text(json.dumps(info))
    return tmp_path / "f23"


def test_productmd_1_1_images_keep_iso_fields(tmp_path: Path) -> None:
    loaded = load_compose(str(f23_compose(tmp_path)))
    server = PRODUCT.model_copy(
        update={
            "images": PRODUCT.images.model_copy(
                update={"variants": ["Server"], "types": ["dvd", "netinst"]}
            )
        }
    )
    manifest = build_compose_manifest(loaded, server, NOW, checksums_verified=False)
    dvd = next(i for i in manifest.images if i.type == "dvd")
    assert (dvd.bootable, dvd.volume_id, dvd.implant_md5, dvd.format) == (
        True,
        "Fedora-S-23-x86_64",
        "1cd120922a791d03e829392a2b6b2107",
        "iso",
    )
    assert manifest.label is None


def load_and_build(source: Path) -> ComposeManifest:
    loaded = load_compose(str(source))
    return build_compose_manifest(loaded, PRODUCT, NOW, checksums_verified=False)


def _edit(tree: ComposeTree, which: str, mutate: Callable[[dict[str, Any]], None]) -> None:
    mutate(tree.images if which == "images" else tree.info)
    tree.rewrite()


@pytest.mark.parametrize(
    ("which", "mutate", "message"),
    [
        (
            "images",
            lambda d: d["header"].__setitem__("type", "productmd.rpms"),
            "images.json: header.type is 'productmd.rpms', expected 'productmd.images'",
        ),
        (
            "images",
            lambda d: d["header"].__setitem__("version", "9.0"),
            "images.json: header.version '9.0' is not supported",
        ),
        (
            "composeinfo",
            lambda d: d["header"].__setitem__("version", "2.0"),
            "composeinfo.json: header.version '2.0' is not supported",
        ),
        ("images", lambda d: d.pop("header"), "images.json: no 'header' object"),
        ("images", lambda d: d["payload"].pop("compose"), "images.json: missing field 'compose'"),
        (
            "images",
            lambda d: d["payload"]["images"]["AtomicHost"]["x86_64"][0].__setitem__("size", "big"),
            "images.json: payload.images.AtomicHost.x86_64[0].size: Input should be a valid "
            "integer",
        ),
        (
            "images",
            lambda d: d["payload"]["images"]["AtomicHost"]["x86_64"][0].__setitem__(
                "type", "floppy"
            ),
            'images.json: payload.images.AtomicHost.x86_64[0].type: "floppy" is not a '
            "productmd image type",
        ),
        (
            "images",
            lambda d: d["payload"]["images"]["AtomicHost"]["x86_64"][0].__setitem__(
                "path", "../../../etc/passwd"
            ),
            "escapes the compose ('..')",
        ),
        (
            "images",
            lambda d: d["payload"]["images"]["AtomicHost"]["x86_64"][0].__setitem__(
                "path", "/etc/passwd"
            ),
            "image path '/etc/passwd' is absolute",
        ),
        (
            "images",
            lambda d: d["payload"]["images"]["AtomicHost"]["x86_64"][0].__setitem__(
                "checksums", {"md5": "0" * 32}
            ),
            "has no sha256 checksum",
        ),
        (
            "images",
            lambda d: d["payload"]["compose"].__setitem__("id", "Fedora-28-20180426.0"),
            "composeinfo.json is for Fedora-28-20180425.0 "
            "but images.json is for Fedora-28-20180426.0",
        ),
    ],
)
def test_bad_metadata_is_a_clear_error(
    make_compose_tree: Callable[..., ComposeTree],
    which: str,
    mutate: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    tree = make_compose_tree()
    _edit(tree, which, mutate)
    with pytest.raises(InputError) as exc:
        load_and_build(tree.root)
    assert message in exc.value.message
    assert "\n" not in exc.value.diagnostics()


def test_malformed_json_and_missing_files(
    make_compose_tree: Callable[..., ComposeTree], tmp_path: Path
) -> None:
    tree = make_compose_tree()
    (tree.compose_dir / "metadata" / "images.json").write_text('{"header": ')
    with pytest.raises(InputError, match=r"images.json: not valid JSON"):
        load_compose(str(tree.root))
    (tree.compose_dir / "metadata" / "images.json").unlink()
    with pytest.raises(InputError, match=r"images.json: missing"):
        load_compose(str(tree.root))
    with pytest.raises(
        InputError, match="no metadata/composeinfo.json in it or in its compose/ folder"
    ):
        load_compose(str(tmp_path))
    with pytest.raises(InputError, match="not a directory or an http"):
        load_compose(str(tmp_path / "nowhere"))


def test_symlink_escaping_the_compose_is_refused(
    make_compose_tree: Callable[..., ComposeTree], tmp_path: Path
) -> None:
    tree = make_compose_tree()
    img = tree.atomic_x86_64()[0]
    target = tree.compose_dir / img["path"]
    outside = tmp_path / "outside.qcow2"
    shutil.move(target, outside)
    target.symlink_to(outside)
    with pytest.raises(InputError, match="escapes the compose through a symlink"):
        build_compose_manifest(load_compose(str(tree.root)), PRODUCT, NOW, checksums_verified=False)


# --- over HTTP -------------------------------------------------------------------------


def test_url_source_root_and_compose_folder(
    make_compose_tree: Callable[..., ComposeTree],
    serve_dir: Callable[[Path], StaticServer],
) -> None:
    tree = make_compose_tree()
    server = serve_dir(tree.root.parent)
    for suffix in ("Fedora-28-20180425.0", "Fedora-28-20180425.0/compose/"):
        loaded = load_compose(server.url + suffix, http_session(backoff=0))
        assert loaded.images.compose.id == "Fedora-28-20180425.0"
        assert loaded.location.base_url == server.url + "Fedora-28-20180425.0/compose/"


def test_url_retries_server_errors(
    make_compose_tree: Callable[..., ComposeTree],
    serve_dir: Callable[[Path], StaticServer],
) -> None:
    tree = make_compose_tree()
    server = serve_dir(tree.root.parent)
    server.fail_next.extend([503, 502])
    loaded = load_compose(server.url + "Fedora-28-20180425.0", http_session(backoff=0))
    assert loaded.info.compose.id == "Fedora-28-20180425.0"
    assert server.requests.count("/Fedora-28-20180425.0/compose/metadata/composeinfo.json") == 3


def test_url_server_keeps_failing(
    make_compose_tree: Callable[..., ComposeTree],
    serve_dir: Callable[[Path], StaticServer],
) -> None:
    tree = make_compose_tree()
    server = serve_dir(tree.root.parent)
    server.fail_next.extend([503] * 10)
    with pytest.raises(
        FetchError, match=r"composeinfo.json: server error after retries \(HTTP 503\)"
    ):
        load_compose(server.url + "Fedora-28-20180425.0", http_session(retries=2, backoff=0))
    assert len(server.requests) == 3  # one try and two retries, on the first layout only


def test_url_not_a_compose(serve_dir: Callable[[Path], StaticServer], tmp_path: Path) -> None:
    server = serve_dir(tmp_path)
    with pytest.raises(InputError, match=r"no metadata/composeinfo.json under it \(HTTP 404\)"):
        load_compose(server.url + "nothing", http_session(backoff=0))


def test_unreachable_url_is_retried_then_a_clear_error() -> None:
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        FetchError,
        match=rf"{port}/x/compose/metadata/composeinfo.json: unreachable \(ConnectionError",
    ):
        load_compose(f"http://127.0.0.1:{port}/x", http_session(retries=2, backoff=0))


# --- hostile metadata (issue 17): strict types, depth, size caps, linear parsing -------


@pytest.mark.parametrize(
    "fixture",
    [
        "fedimg-vcr-Fedora-28-20180425.0-images.json",
        "fedimg-vcr-Fedora-Cloud-27-20180317.0-images.json",
        "productmd-tests-images-f23.json",
    ],
)
def test_linear_loader_reads_what_productmd_reads(fixture: str) -> None:
    """Our one-pass loader and productmd's own (quadratic) loader agree on the real files:
    productmd serializes both to the same document."""
    raw = (FIXTURES / fixture).read_bytes()
    theirs = productmd.images.Images()
    theirs.deserialize(json.loads(raw))
    ours = deserialize_images(loads_metadata(raw, "images.json"))
    assert isinstance(ours, productmd.images.Images)
    assert sum(len(s) for a in ours.images.values() for s in a.values()) > 0
    assert ours.serialize({}) == theirs.serialize({})


def _first_image(d: dict[str, Any]) -> dict[str, Any]:
    return d["payload"]["images"]["AtomicHost"]["x86_64"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("size", -1, "[0].size: Input should be greater than 0"),
        ("size", "123", "[0].size: Input should be a valid integer"),
        ("size", True, "[0].size: Input should be a valid integer"),
        ("size", 2**64, "[0].size: Input should be less than or equal to"),
        ("mtime", 1.5, "[0].mtime: Input should be a valid integer"),
        ("mtime", "1524680000", "[0].mtime: Input should be a valid integer"),
        ("disc_number", "1", "[0].disc_number: Input should be a valid integer"),
        ("bootable", 1, "[0].bootable: Input should be a valid boolean"),
        ("checksums", {"sha256": 5}, "[0].checksums.sha256: Input should be a valid string"),
        ("path", "", "[0].path: String should have at least 1 character"),
        ("implant_md5", "XYZ", "[0].implant_md5: String should match pattern"),
    ],
)
def test_image_fields_are_strictly_typed(
    make_compose_tree: Callable[..., ComposeTree], field: str, value: Any, message: str
) -> None:
    """productmd's format does not allow these; its loader coerced or crashed on them."""
    tree = make_compose_tree()
    _edit(tree, "images", lambda d: _first_image(d).__setitem__(field, value))
    with pytest.raises(InputError) as exc:
        load_compose(str(tree.root))
    assert exc.value.message.startswith("images.json: payload.images.AtomicHost.x86_64[0].")


# --- rpms.json: the package list ----------------------------------------------------------


def _write_rpms(tree: ComposeTree, compose_id: str = "Fedora-28-20180425.0") -> None:
    """An rpms.json written by productmd's own writer, for the tree's AtomicHost arches."""
    rpms = productmd.rpms.Rpms()
    rpms.header.version = "1.2"
    rpms.compose.id = compose_id
    rpms.compose.date, rpms.compose.type, rpms.compose.respin = "20180425", "production", 0
    for arch in ("x86_64", "aarch64"):
        for source, evr, binaries in (
            ("kernel", "0:4.16.3-301.fc28", ["kernel-core", "kernel"]),
            ("ostree", "0:2018.3-2.fc28", ["ostree", "ostree-libs"]),
        ):
            srpm = f"{source}-{evr}.src"
            rpms.add("AtomicHost", arch, srpm, f"AtomicHost/source/{srpm}.rpm", None, "source")
            for name in binaries:
                nevra = f"{name}-{evr}.{arch}"
                rpms.add("AtomicHost", arch, nevra, f"AtomicHost/{arch}/{nevra}.rpm", None,
                         "binary", srpm)  # fmt: skip
                rpms.add("AtomicHost", arch, f"{name}-debuginfo-{evr}.{arch}",
                         "debug/x.rpm", None, "debug", srpm)  # fmt: skip
    rpms.dump(str(tree.compose_dir / "metadata" / "rpms.json"))


def test_rpms_json_gives_the_package_list_of_the_products_arches(
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    tree = make_compose_tree()
    _write_rpms(tree)
    manifest = load_and_build(tree.root)
    assert manifest.packages is not None
    # only arches with product images (the tree also has ppc64le images: no rpms listed there)
    sets = {(s.variant, s.arch): s.sources for s in manifest.packages}
    assert sorted(sets) == [
        ("AtomicHost", "aarch64"),
        ("AtomicHost", "ppc64le"),
        ("AtomicHost", "x86_64"),
    ]
    assert sets[("AtomicHost", "ppc64le")] == {}
    # binaries only (no debuginfo, no source rpm), under their source rpm
    assert sets[("AtomicHost", "x86_64")]["kernel-0:4.16.3-301.fc28.src"] == [
        "kernel-0:4.16.3-301.fc28.x86_64",
        "kernel-core-0:4.16.3-301.fc28.x86_64",
    ]


def test_no_rpms_json_means_the_package_list_is_unknown(
    make_compose_tree: Callable[..., ComposeTree],
    serve_dir: Callable[[Path], StaticServer],
) -> None:
    tree = make_compose_tree()
    assert load_and_build(tree.root).packages is None
    server = serve_dir(tree.root.parent)
    loaded = load_compose(server.url + "Fedora-28-20180425.0", http_session(backoff=0))
    assert loaded.rpms is None
    assert "/Fedora-28-20180425.0/compose/metadata/rpms.json" in server.requests


def test_rpms_json_over_http(
    make_compose_tree: Callable[..., ComposeTree],
    serve_dir: Callable[[Path], StaticServer],
) -> None:
    tree = make_compose_tree()
    _write_rpms(tree)
    server = serve_dir(tree.root.parent)
    loaded = load_compose(server.url + "Fedora-28-20180425.0", http_session(backoff=0))
    manifest = build_compose_manifest(loaded, PRODUCT, NOW, checksums_verified=False)
    assert manifest.packages is not None and len(manifest.packages) == 3


def test_real_rpms_json_from_pungi(make_compose_tree: Callable[..., ComposeTree]) -> None:
    tree = make_compose_tree()
    real = FIXTURES / "odcs-tests-rpms-1.2.json"
    shutil.copy(real, tree.compose_dir / "metadata" / "rpms.json")
    # the real file is for its own compose: refused as mixing two composes
    with pytest.raises(InputError, match="rpms.json is for odcs-691-1-20181210.n.0"):
        load_compose(str(tree.root))
    _edit(
        tree, "info", lambda d: d["payload"]["compose"].__setitem__("id", "odcs-691-1-20181210.n.0")
    )
    _edit(
        tree,
        "images",
        lambda d: d["payload"]["compose"].__setitem__("id", "odcs-691-1-20181210.n.0"),
    )
    loaded = load_compose(str(tree.root))
    image = make_compose().images[0].model_copy(update={"variant": "Temporary"})
    sets = package_sets(
        LoadedCompose(loaded.location, loaded.info, loaded.images, loaded.rpms), [image]
    )
    assert sets is not None
    (package_set,) = sets
    assert package_set.sources == {
        "flatpak-rpm-macros-0:29-6.module+125+c4f5c7f2.src": [
            "flatpak-rpm-macros-0:29-6.module+125+c4f5c7f2.x86_64"
        ],
        "flatpak-runtime-config-0:29-4.module+125+c4f5c7f2.src": [
            "flatpak-runtime-config-0:29-4.module+125+c4f5c7f2.x86_64"
        ],
    }


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["header"].__setitem__("type", "productmd.images"), "rpms.json: header.type"),
        (lambda d: d["header"].__setitem__("version", "9.0"), "rpms.json: header.version '9.0'"),
        (lambda d: d["payload"].pop("rpms"), "rpms.json: missing field 'rpms'"),
        (
            lambda d: d["payload"]["rpms"]["AtomicHost"].__setitem__("x86_64", ["kernel"]),
            "rpms.json: payload.rpms.AtomicHost.x86_64 is not source rpm -> rpm -> details",
        ),
        (
            lambda d: d["payload"]["rpms"]["AtomicHost"]["x86_64"].__setitem__("k-0:1-1.src", 7),
            "rpms.json: payload.rpms.AtomicHost.x86_64 is not",
        ),
    ],
)
def test_bad_rpms_json_is_a_clear_error(
    make_compose_tree: Callable[..., ComposeTree],
    mutate: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    tree = make_compose_tree()
    _write_rpms(tree)
    path = tree.compose_dir / "metadata" / "rpms.json"
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        load_and_build(tree.root)
    assert message in exc.value.message
    assert "\n" not in exc.value.diagnostics()


def test_a_malformed_sha256_is_an_input_error_not_a_traceback(
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    tree = make_compose_tree()
    _edit(tree, "images", lambda d: _first_image(d)["checksums"].__setitem__("sha256", "xyz"))
    with pytest.raises(InputError, match=r'images.json: image "Atomic.*": checksums\.sha256: '):
        load_and_build(tree.root)


@pytest.mark.parametrize("which", ["images", "composeinfo"])
def test_deep_nesting_is_a_one_line_error(
    make_compose_tree: Callable[..., ComposeTree], which: str
) -> None:
    """200,000 nested arrays used to raise RecursionError out of json.loads."""
    tree = make_compose_tree()
    deep = b"[" * 200_000 + b"]" * 200_000
    path = tree.compose_dir / "metadata" / f"{which}.json"
    path.write_bytes(path.read_bytes().replace(b'"header"', b'"x": ' + deep + b', "header"', 1))
    with pytest.raises(InputError) as exc:
        load_compose(str(tree.root))
    assert exc.value.message == f"{which}.json: nested too deeply to be productmd metadata"


def test_lone_surrogate_in_metadata_is_named(make_compose_tree: Callable[..., ComposeTree]) -> None:
    tree = make_compose_tree()
    path = tree.compose_dir / "metadata" / "composeinfo.json"
    text = path.read_text()
    assert '"label": "RC-1.1"' in text
    path.write_text(text.replace('"label": "RC-1.1"', '"label": "RC-\\ud800"'))
    with pytest.raises(InputError) as exc:
        load_compose(str(tree.root))
    assert exc.value.message == (
        "composeinfo.json: lone surrogate in the string at $.payload.compose.label"
    )


def test_duplicate_identity_with_other_checksums_is_refused(
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    """productmd's rule (1.1+), checked with one dictionary instead of a scan per image."""
    tree = make_compose_tree()

    def twin(d: dict[str, Any]) -> None:
        first = _first_image(d)
        d["payload"]["images"]["AtomicHost"]["x86_64"].append(
            dict(first, path=first["path"] + ".copy", checksums={"sha256": "0" * 64})
        )

    _edit(tree, "images", twin)
    with pytest.raises(InputError, match=r"share productmd's unique attributes"):
        load_compose(str(tree.root))


def test_unknown_arch_is_refused(make_compose_tree: Callable[..., ComposeTree]) -> None:
    tree = make_compose_tree()

    def move(d: dict[str, Any]) -> None:
        arches = d["payload"]["images"]["AtomicHost"]
        arches["z80"] = arches.pop("x86_64")

    _edit(tree, "images", move)
    with pytest.raises(InputError, match=r"payload\.images\.AtomicHost\.z80: unknown arch"):
        load_compose(str(tree.root))


def test_metadata_larger_than_the_cap_is_refused(
    make_compose_tree: Callable[..., ComposeTree], serve_dir: Callable[[Path], StaticServer]
) -> None:
    tree = make_compose_tree()
    sizes = {p.name: p.stat().st_size for p in (tree.compose_dir / "metadata").iterdir()}
    largest, size = max(sizes.items(), key=lambda item: item[1])
    with pytest.raises(InputError) as exc:
        load_compose(str(tree.root), max_bytes=size - 1)
    assert exc.value.message.endswith(
        f"metadata/{largest}: larger than the {size - 1} byte limit for compose metadata"
    )
    assert "--max-metadata-bytes or FORTNIGHT_MAX_METADATA_BYTES" in exc.value.hint
    assert load_compose(str(tree.root), max_bytes=size).images.compose.id
    server = serve_dir(tree.root.parent)
    url = server.url + "Fedora-28-20180425.0"
    with pytest.raises(InputError, match=rf"metadata/{largest}: larger than the"):
        load_compose(url, http_session(backoff=0), max_bytes=size - 1)
    assert load_compose(url, http_session(backoff=0), max_bytes=size).images.compose.id


def test_a_bad_rpm_name_in_rpms_json_is_a_clear_error(
    make_compose_tree: Callable[..., ComposeTree],
) -> None:
    tree = make_compose_tree()
    _write_rpms(tree)
    path = tree.compose_dir / "metadata" / "rpms.json"
    data = json.loads(path.read_text())
    by_source = data["payload"]["rpms"]["AtomicHost"]["x86_64"]["kernel-0:4.16.3-301.fc28.src"]
    by_source["kernel 0:4.16.3-301.fc28.x86_64"] = {
        "category": "binary",
        "path": "k",
        "sigkey": None,
    }
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"rpms.json: AtomicHost/x86_64: .*kernel 0:4.16.3"):
        load_and_build(tree.root)
