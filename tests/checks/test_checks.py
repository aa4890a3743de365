"""Built-in image checks: each passes a generated sample and names each kind of damage."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.checks import disk, registry
from pipeline.checks.command import main
from pipeline.checks.common import CheckFailed
from pipeline.checks.disk import check_checksum, check_qcow2, check_xz
from pipeline.checks.media import check_iso9660, check_vagrant_box
from pipeline.checks.registry import check_format, check_name
from pipeline.demo import samples
from tests.conftest import F28_IMAGES, FIXTURES, ROOT

Mutation = Callable[[bytearray], None]


# --- helpers -----------------------------------------------------------------------------


def put(offset: int, fmt: str, *values: int) -> Mutation:
    """Overwrite a packed value at ``offset``."""

    def mutate(data: bytearray) -> None:
        struct.pack_into(fmt, data, offset, *values)

    return mutate


def replace(offset: int, new: bytes) -> Mutation:
    def mutate(data: bytearray) -> None:
        data[offset : offset + len(new)] = new

    return mutate


def flip(offset: int) -> Mutation:
    """Invert one byte; a negative offset counts from the end."""

    def mutate(data: bytearray) -> None:
        data[offset] ^= 0xFF

    return mutate


def cut(keep: int) -> Mutation:
    """Keep the first ``keep`` bytes (a negative number drops that many from the end)."""

    def mutate(data: bytearray) -> None:
        del data[keep:]

    return mutate


def unchanged(data: bytearray) -> None:
    """Leave the sample as it is."""


def append(extra: bytes) -> Mutation:
    def mutate(data: bytearray) -> None:
        data.extend(extra)

    return mutate


def damaged(sample: Path, mutation: Mutation, tmp_path: Path) -> Path:
    """A copy of ``sample`` (same name) with ``mutation`` applied."""
    data = bytearray(sample.read_bytes())
    mutation(data)
    out = tmp_path / "damaged" / sample.name
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(data)
    return out


def make_box(path: Path, members: dict[str, bytes], *, compress: bool = True) -> Path:
    """A Vagrant box (tar, gzip-compressed unless ``compress`` is false) with ``members``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0) if compress else buf.getvalue())
    return path


def meta(provider: str, **extra: object) -> bytes:
    return json.dumps({"provider": provider, **extra}).encode()


QCOW2_HEAD = samples.qcow2_bytes(64 * samples.MiB, cluster_bits=12)
VMDK = samples.vmdk_sparse("box-disk1.vmdk")


SMALL_RAW = 64 * samples.KiB  # for reading in tiny pieces: fewer pieces, same boundaries
XZ_READS = pytest.mark.parametrize(
    ("chunk", "xz_name", "raw_size"),
    [
        (1 << 20, "Fedora-AtomicHost-28-1.1.x86_64.raw.xz", 4 * samples.MiB),
        (7, "small.raw.xz", SMALL_RAW),
    ],
    ids=["1MiB pieces", "7-byte pieces"],
)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sample of each kind, written once for the module (tests copy before damaging)."""
    d = tmp_path_factory.mktemp("samples")
    samples.write_qcow2(d / "Fedora-AtomicHost-28-1.1.x86_64.qcow2")
    samples.write_raw_xz(d / "Fedora-AtomicHost-28-1.1.x86_64.raw.xz")
    samples.write_raw_xz(d / "small.raw.xz", size=SMALL_RAW, noise=4 * samples.KiB)
    samples.write_iso(d / "Fedora-AtomicHost-ostree-x86_64-28-1.1.iso", volume_id="Fedora-AH-28")
    samples.write_vagrant_box(d / "libvirt.box", "libvirt")
    samples.write_vagrant_box(d / "virtualbox.box", "virtualbox")
    return d


@pytest.fixture
def qcow2(sample_dir: Path) -> Path:
    return sample_dir / "Fedora-AtomicHost-28-1.1.x86_64.qcow2"


@pytest.fixture
def raw_xz(sample_dir: Path) -> Path:
    return sample_dir / "Fedora-AtomicHost-28-1.1.x86_64.raw.xz"


@pytest.fixture
def iso(sample_dir: Path) -> Path:
    return sample_dir / "Fedora-AtomicHost-ostree-x86_64-28-1.1.iso"


# --- samples -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image_type", ["qcow2", "raw-xz", "dvd-ostree", "vagrant-libvirt", "vagrant-virtualbox"]
)
def test_samples_are_small_and_reproducible(tmp_path: Path, image_type: str) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    size = samples.write_image(first, image_type)
    assert size == first.stat().st_size == samples.write_image(second, image_type)
    assert first.read_bytes() == second.read_bytes()
    assert size <= 256 * samples.KiB


def test_sample_writers_refuse_nonsense(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no sample writer for image type 'docker'"):
        samples.write_image(tmp_path / "x", "docker")
    with pytest.raises(ValueError, match="positive multiple of 512"):
        samples.write_qcow2(tmp_path / "x", 1000)
    with pytest.raises(ValueError, match="longer than 32"):
        samples.write_iso(tmp_path / "x", volume_id="V" * 33)
    with pytest.raises(ValueError, match="unknown Vagrant provider 'hyperv'"):
        samples.write_vagrant_box(tmp_path / "x", "hyperv")


def test_raw_xz_sample_is_a_disk_with_an_mbr(raw_xz: Path) -> None:
    disk = lzma.decompress(raw_xz.read_bytes())
    assert len(disk) == 4 * samples.MiB
    assert disk[510:512] == b"\x55\xaa"
    assert disk[446 + 4] == 0x83  # a Linux partition


# --- checksum ----------------------------------------------------------------------------


def test_checksum_passes(iso: Path) -> None:
    data = iso.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    line = check_checksum(iso, len(data), digest.upper())
    assert line == (
        f"{iso.name}: size {len(data)} bytes and sha256 {digest} match the compose manifest"
    )


@pytest.mark.parametrize(
    ("mutation", "manifest", "message"),
    [
        (cut(-1), {}, "size is 43007 bytes, manifest says 43008"),
        (append(b"x"), {}, "size is 43009 bytes, manifest says 43008"),
        (cut(0), {}, "size is 0 bytes, manifest says 43008"),
        (unchanged, {"size": 43009}, "size is 43008 bytes, manifest says 43009"),
        (flip(40000), {}, "sha256 is {actual}, manifest says {expected}"),
        (unchanged, {"sha256": "0" * 64}, "sha256 is {actual}, manifest says {zeros}"),
    ],
    ids=["truncated", "longer", "empty", "other size", "flipped byte", "other sha256"],
)
def test_checksum_fails(
    iso: Path, tmp_path: Path, mutation: Mutation, manifest: dict[str, Any], message: str
) -> None:
    original = iso.read_bytes()
    bad = damaged(iso, mutation, tmp_path)
    size = manifest.get("size", len(original))
    sha = manifest.get("sha256", hashlib.sha256(original).hexdigest())
    expected = message.format(
        actual=hashlib.sha256(bad.read_bytes()).hexdigest(),
        expected=hashlib.sha256(original).hexdigest(),
        zeros="0" * 64,
    )
    with pytest.raises(CheckFailed) as exc:
        check_checksum(bad, size, sha)
    assert str(exc.value) == f"{iso.name}: {expected}"


# --- qcow2 -------------------------------------------------------------------------------


def test_qcow2_passes(qcow2: Path) -> None:
    assert check_qcow2(qcow2) == (
        f"{qcow2.name}: qcow2 version 3, virtual size 67108864 bytes, 65536-byte clusters"
    )


def test_qcow2_version_2_header_passes(qcow2: Path, tmp_path: Path) -> None:
    v2 = damaged(qcow2, put(4, ">I", 2), tmp_path)
    assert "qcow2 version 2," in check_qcow2(v2)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (cut(0), "file is empty, expected a qcow2 image"),
        (replace(0, b"QFI\x00"), r"magic is b'QFI\\x00', expected b'QFI\\xfb'"),
        (replace(0, b"\xfd7zXZ\x00"), r"magic is b'\\xfd7zX', expected b'QFI\\xfb'"),
        (cut(3), r"magic is b'QFI', expected b'QFI\\xfb'"),
        (cut(6), "file is 6 bytes, too short for a qcow2 header"),
        (put(4, ">I", 7), "qcow2 version is 7, expected 2 or 3"),
        (put(4, ">I", 1), "qcow2 version is 1, expected 2 or 3"),
        (cut(50), "header is truncated: file has 50 bytes, a qcow2 version 3 header needs 104"),
        (put(100, ">I", 72), "header_length is 72, expected at least 104 for version 3"),
        (put(20, ">I", 30), "cluster_bits is 30, expected 9..21"),
        (put(20, ">I", 8), "cluster_bits is 8, expected 9..21"),
        (put(24, ">Q", 0), "virtual size is 0 bytes, expected more than 0"),
        (put(72, ">Q", 2), r"image is marked corrupt \(incompatible feature bit 1 is set\)"),
        (put(72, ">Q", 1 << 40), "incompatible features are 0x10000000000, expected only known"),
        (put(36, ">I", 0), "L1 table has 0 entries covering 0 bytes, virtual size is 67108864"),
        (put(48, ">Q", 12345), "refcount table offset is 12345, expected a non-zero multiple"),
        (put(48, ">Q", 0), "refcount table offset is 0, expected a non-zero multiple of 65536"),
        (cut(65536), "refcount table ends at byte 131072, the file has 65536 bytes"),
        (put(40, ">Q", 1 << 20), "L1 table ends at byte 1048584, the file has 262144 bytes"),
    ],
    ids=[
        "empty",
        "wrong magic",
        "xz magic",
        "3 bytes",
        "6 bytes",
        "version 7",
        "version 1",
        "truncated header",
        "short header_length",
        "cluster_bits 30",
        "cluster_bits 8",
        "zero virtual size",
        "corrupt bit",
        "unknown feature",
        "L1 too small",
        "unaligned refcount table",
        "no refcount table",
        "tables past the end",
        "L1 past the end",
    ],
)
def test_qcow2_fails(qcow2: Path, tmp_path: Path, mutation: Mutation, message: str) -> None:
    bad = damaged(qcow2, mutation, tmp_path)
    with pytest.raises(CheckFailed, match=f"^{re.escape(qcow2.name)}: {message}"):
        check_qcow2(bad)


# --- xz ----------------------------------------------------------------------------------


def test_xz_passes(raw_xz: Path) -> None:
    assert check_xz(raw_xz) == f"{raw_xz.name}: 1 intact xz stream, 4194304 bytes decompressed"


@pytest.mark.parametrize(
    ("mutation", "streams"),
    [
        (append(bytes(4)), 1),
        (append(bytes(12)), 1),
        (lambda d: d.extend(d), 2),
        (lambda d: d.extend(bytes(8) + d + bytes(4) + d + bytes(4)), 3),
    ],
    ids=["padding", "more padding", "two streams", "three streams with padding"],
)
@XZ_READS
def test_xz_concatenated_streams_and_padding_pass(
    sample_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mutation: Mutation,
    streams: int,
    chunk: int,
    xz_name: str,
    raw_size: int,
) -> None:
    monkeypatch.setattr(disk, "CHUNK", chunk)  # tiny pieces split magics and padding
    good = damaged(sample_dir / xz_name, mutation, tmp_path)
    plural = "stream" if streams == 1 else "streams"
    assert check_xz(good) == (
        f"{xz_name}: {streams} intact xz {plural}, {streams * raw_size} bytes decompressed"
    )


# Each expected message is a function of the sample's size n, since offsets are part of it.
XZ_BAD: dict[str, tuple[Mutation, Callable[[int], str]]] = {
    "empty": (cut(0), lambda n: "file is empty, expected an xz stream"),
    "wrong magic": (flip(0), lambda n: "xz magic is 02377a585a00, expected fd377a585a00"),
    "leading padding": (
        lambda d: d.__setitem__(slice(0, 0), bytes(4)),
        lambda n: "xz magic is 00000000fd37, expected fd377a585a00",
    ),
    "header only": (
        cut(3),
        lambda n: r"xz stream 1 \(from offset 0\) is truncated: the file ends at byte 3 before",
    ),
    "truncated": (
        cut(-100),
        lambda n: rf"xz stream 1 \(from offset 0\) is truncated: the file ends at byte {n - 100} ",
    ),
    "truncated by one byte": (cut(-1), lambda n: r"xz stream 1 \(from offset 0\) is truncated"),
    "flipped byte in data": (
        lambda d: d.__setitem__(len(d) // 2, d[len(d) // 2] ^ 0xFF),
        lambda n: r"xz stream 1 \(from offset 0\) is corrupt before byte \d+: Corrupt input data",
    ),
    "flipped byte in header": (flip(7), lambda n: r"xz stream 1 \(from offset 0\) is corrupt"),
    "flipped byte in footer": (flip(-5), lambda n: r"xz stream 1 \(from offset 0\) is corrupt"),
    "trailing garbage": (
        append(b"garbage!"),
        lambda n: (
            rf"trailing garbage at offset {n} after xz stream 1: starts with 676172626167, "
            "not the xz magic fd377a585a00"
        ),
    ),
    "short trailing garbage": (
        append(b"ab"),
        lambda n: rf"trailing garbage at offset {n} after xz stream 1: starts with 6162,",
    ),
    "garbage after padding": (
        append(bytes(4) + b"\x01"),
        lambda n: rf"trailing garbage at offset {n + 4} after xz stream 1: starts with 01,",
    ),
    "odd trailing zeros": (
        append(bytes(3)),
        lambda n: "3 zero bytes follow the last xz stream, expected a multiple of 4",
    ),
    "odd padding between streams": (
        lambda d: d.extend(bytes(2) + d),
        lambda n: (
            rf"2 zero bytes of padding before xz stream 2 \(offset {n + 2}\), expected a "
            "multiple of 4"
        ),
    ),
    "second stream truncated": (
        lambda d: d.extend(d[:-20]),
        lambda n: (
            rf"xz stream 2 \(from offset {n}\) is truncated: the file ends at byte "
            rf"{2 * n - 20} "
        ),
    ),
    "second stream corrupt": (
        lambda d: d.extend(d[:100] + bytes([d[100] ^ 0xFF]) + d[101:]),
        lambda n: rf"xz stream 2 \(from offset {n}\) is corrupt",
    ),
}


@pytest.mark.parametrize(("mutation", "message"), XZ_BAD.values(), ids=XZ_BAD.keys())
@XZ_READS
def test_xz_fails(
    sample_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mutation: Mutation,
    message: Callable[[int], str],
    chunk: int,
    xz_name: str,
    raw_size: int,
) -> None:
    monkeypatch.setattr(disk, "CHUNK", chunk)  # tiny pieces split magics and padding
    sample = sample_dir / xz_name
    bad = damaged(sample, mutation, tmp_path)
    expected = message(sample.stat().st_size)
    with pytest.raises(CheckFailed, match=f"^{re.escape(xz_name)}: {expected}"):
        check_xz(bad)


def test_xz_memory_stays_constant_for_a_highly_compressed_stream(tmp_path: Path) -> None:
    """32 MiB of zeros compress to a few KiB; checking must not hold the output."""
    bomb = tmp_path / "zeros.raw.xz"
    samples.write_raw_xz(bomb, size=32 * samples.MiB, noise=0)
    assert bomb.stat().st_size < 64 * samples.KiB
    tracemalloc.start()
    try:
        line = check_xz(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert line.endswith(f"{32 * samples.MiB} bytes decompressed")
    assert peak < 4 * samples.MiB


# --- ISO 9660 ----------------------------------------------------------------------------

PVD = 16 * 2048


def volume_space(sectors: int) -> Mutation:
    """Set the PVD's volume space size (both byte orders)."""
    return replace(PVD + 80, struct.pack("<I", sectors) + struct.pack(">I", sectors))


def ends_after_a_supplementary_descriptor(data: bytearray) -> None:
    data[17 * 2048] = 2  # the terminator becomes a supplementary descriptor...
    volume_space(18)(data)
    del data[18 * 2048 :]  # ...and the volume ends right after it


def test_iso9660_passes(iso: Path) -> None:
    assert check_iso9660(iso, "Fedora-AH-28") == (
        f"{iso.name}: ISO 9660 volume 'Fedora-AH-28' of 21 sectors, "
        "descriptor set terminated at sector 17"
    )
    assert check_iso9660(iso, "").startswith(f"{iso.name}: ISO 9660 volume 'Fedora-AH-28'")


def test_iso9660_terminator_after_other_descriptors(iso: Path, tmp_path: Path) -> None:
    """A boot record and a supplementary (Joliet) descriptor may precede the terminator."""

    def more_descriptors(data: bytearray) -> None:
        data[17 * 2048] = 0  # boot record
        data[19 * 2048 : 20 * 2048] = data[17 * 2048 : 18 * 2048]
        data[18 * 2048 : 19 * 2048] = b"\x02CD001\x01".ljust(2048, b"\0")  # supplementary
        data[19 * 2048] = 255

    good = damaged(iso, more_descriptors, tmp_path)
    assert check_iso9660(good, "Fedora-AH-28").endswith("terminated at sector 19")


@pytest.mark.parametrize(
    ("mutation", "volume_id", "message"),
    [
        (cut(0), "", "file is empty, expected an ISO 9660 image"),
        (cut(30000), "", "file is 30000 bytes, an ISO 9660 image needs at least 36864"),
        (
            replace(PVD + 1, bytes(5)),
            "",
            r"standard identifier at offset 32769 is b'\\x00\\x00\\x00\\x00\\x00', "
            r"expected b'CD001' \(no ISO 9660 volume descriptor\)",
        ),
        (
            replace(PVD + 1, b"CD002"),
            "",
            "standard identifier at offset 32769 is b'CD002', expected b'CD001'",
        ),
        (
            replace(PVD, b"\x02"),
            "",
            r"volume descriptor at sector 16 has type 2, expected 1 \(primary\)",
        ),
        (replace(PVD + 6, b"\x02"), "", "primary volume descriptor version is 2, expected 1"),
        (put(PVD + 128, "<H", 512), "", "logical block size is 512, expected 2048"),
        (
            put(PVD + 80, "<I", 99),
            "",
            "volume space size is 99 sectors little-endian but 21 big-endian",
        ),
        (
            volume_space(100),
            "",
            r"volume space is 100 sectors \(204800 bytes\), the file has 43008 bytes",
        ),
        (cut(40960), "", r"volume space is 21 sectors \(43008 bytes\), the file has 40960"),
        (
            replace(17 * 2048 + 1, bytes(5)),
            "",
            r"no volume descriptor set terminator: sector 17 has identifier b'\\x00",
        ),
        (
            replace(17 * 2048, b"\x02"),
            "",
            r"no volume descriptor set terminator: sector 18 has identifier b'\\x00",
        ),
        (
            ends_after_a_supplementary_descriptor,
            "",
            "no volume descriptor set terminator: the file ends at sector 18",
        ),
        (unchanged, "Fedora-WS-28", "volume id is 'Fedora-AH-28', expected 'Fedora-WS-28'"),
        (unchanged, "Fedora-AH-2", "volume id is 'Fedora-AH-28', expected 'Fedora-AH-2'"),
    ],
    ids=[
        "empty",
        "too small",
        "missing CD001",
        "CD002",
        "not primary",
        "version 2",
        "block size",
        "endian mismatch",
        "volume larger than file",
        "truncated",
        "no terminator",
        "supplementary then nothing",
        "file ends before terminator",
        "wrong volume id",
        "volume id prefix",
    ],
)
def test_iso9660_fails(
    iso: Path, tmp_path: Path, mutation: Mutation, volume_id: str, message: str
) -> None:
    bad = damaged(iso, mutation, tmp_path)
    with pytest.raises(CheckFailed, match=f"^{re.escape(iso.name)}: {message}"):
        check_iso9660(bad, volume_id)


# --- Vagrant boxes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "provider", "expected"),
    [
        ("libvirt.box", "libvirt", "Vagrant box for libvirt with metadata.json and box.img "),
        ("libvirt.box", None, "Vagrant box for libvirt with metadata.json and box.img "),
        ("virtualbox.box", "virtualbox", "Vagrant box for virtualbox with metadata.json and "),
    ],
)
def test_vagrant_box_passes(
    sample_dir: Path, box: str, provider: str | None, expected: str
) -> None:
    assert check_vagrant_box(sample_dir / box, provider).startswith(f"{box}: {expected}")


@pytest.mark.parametrize("compress", [True, False], ids=["tar.gz", "tar"])
def test_vagrant_box_plain_tar_and_dot_slash_names_pass(tmp_path: Path, compress: bool) -> None:
    box = make_box(
        tmp_path / "v.box",
        {
            "./metadata.json": meta("virtualbox"),
            "./box.ovf": b"<Envelope/>",
            "./Fedora-AtomicHost-Vagrant-28-1.1-disk1.vmdk": VMDK,
        },
        compress=compress,
    )
    assert check_vagrant_box(box, "virtualbox") == (
        f"v.box: Vagrant box for virtualbox with metadata.json and "
        f"Fedora-AtomicHost-Vagrant-28-1.1-disk1.vmdk ({len(VMDK)} bytes)"
    )


LIBVIRT_OK = {"metadata.json": meta("libvirt", format="qcow2"), "box.img": QCOW2_HEAD}
VBOX_OK = {"metadata.json": meta("virtualbox"), "box-disk1.vmdk": VMDK}

BOX_BAD: dict[str, tuple[dict[str, bytes], str | None, str]] = {
    "without metadata.json": (
        {"Vagrantfile": b"", "box.img": QCOW2_HEAD},
        "libvirt",
        r"no metadata.json in the box \(it holds Vagrantfile, box.img\)",
    ),
    "empty archive": ({}, None, r"no metadata.json in the box \(it holds nothing\)"),
    "empty metadata.json": (
        {**LIBVIRT_OK, "metadata.json": b""},
        "libvirt",
        "metadata.json is empty, expected a JSON object",
    ),
    "metadata.json not JSON": (
        {**LIBVIRT_OK, "metadata.json": b"provider: libvirt"},
        "libvirt",
        "metadata.json is not valid JSON: Expecting value",
    ),
    "metadata.json not UTF-8": (
        {**LIBVIRT_OK, "metadata.json": b'{"provider": "\xff"}'},
        "libvirt",
        "metadata.json is not valid JSON: ",
    ),
    "metadata.json without provider": (
        {**LIBVIRT_OK, "metadata.json": b'{"format": "qcow2"}'},
        "libvirt",
        r"metadata.json has no \"provider\" string: \{'format': 'qcow2'\}",
    ),
    "metadata.json a list": (
        {**LIBVIRT_OK, "metadata.json": b'["libvirt"]'},
        "libvirt",
        r"metadata.json has no \"provider\" string: \['libvirt'\]",
    ),
    "wrong provider": (
        VBOX_OK,
        "libvirt",
        "metadata.json provider is 'virtualbox', expected 'libvirt'",
    ),
    "unknown provider": (
        {"metadata.json": meta("hyperv"), "box.img": QCOW2_HEAD},
        None,
        "metadata.json provider is 'hyperv', expected libvirt or virtualbox",
    ),
    "libvirt without disk": (
        {"metadata.json": meta("libvirt"), "box-disk1.vmdk": VMDK},
        "libvirt",
        r"no box.img disk in the libvirt box \(it holds metadata.json, box-disk1.vmdk\)",
    ),
    "libvirt with empty disk": (
        {**LIBVIRT_OK, "box.img": b""},
        "libvirt",
        "box.img is empty, expected a disk image",
    ),
    "libvirt disk not qcow2": (
        {**LIBVIRT_OK, "box.img": VMDK},
        "libvirt",
        r"box.img: magic is b'KDMV', expected b'QFI\\xfb'",
    ),
    "libvirt disk bad qcow2 version": (
        {**LIBVIRT_OK, "box.img": QCOW2_HEAD[:4] + struct.pack(">I", 9) + QCOW2_HEAD[8:]},
        "libvirt",
        "box.img: qcow2 version is 9, expected 2 or 3",
    ),
    "virtualbox without disk": (
        {"metadata.json": meta("virtualbox"), "box.ovf": b"<Envelope/>"},
        "virtualbox",
        r"no .vmdk disk in the virtualbox box \(it holds metadata.json, box.ovf\)",
    ),
    "virtualbox with empty disk": (
        {**VBOX_OK, "box-disk1.vmdk": b""},
        "virtualbox",
        "box-disk1.vmdk is empty, expected a disk image",
    ),
    "virtualbox disk not vmdk": (
        {**VBOX_OK, "box-disk1.vmdk": QCOW2_HEAD},
        "virtualbox",
        r"box-disk1.vmdk starts with b'QFI\\xfb', expected a VMDK sparse header b'KDMV'",
    ),
}


@pytest.mark.parametrize(("members", "provider", "message"), BOX_BAD.values(), ids=BOX_BAD.keys())
def test_vagrant_box_fails(
    tmp_path: Path, members: dict[str, bytes], provider: str | None, message: str
) -> None:
    box = make_box(tmp_path / "Fedora-Vagrant.box", members)
    with pytest.raises(CheckFailed, match=f"^Fedora-Vagrant.box: {message}"):
        check_vagrant_box(box, provider)


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (cut(0), r"file is empty, expected a Vagrant box \(tar archive\)"),
        (
            cut(-4),
            "not a readable gzip-compressed tar archive: Compressed file ended before the "
            "end-of-stream marker was reached",
        ),
        (cut(100), "not a readable gzip-compressed tar archive: Compressed file ended"),
        (flip(-6), "not a readable gzip-compressed tar archive: CRC check failed"),
        (append(b"junk"), "not a readable gzip-compressed tar archive: Not a gzipped file"),
        (replace(0, b"\x00\x00"), r"not a readable tar archive \(plain or gzip\): "),
    ],
    ids=["empty", "gzip trailer cut", "gzip cut", "gzip CRC", "trailing junk", "not gzip"],
)
def test_vagrant_box_damaged_archive_fails(
    sample_dir: Path, tmp_path: Path, mutation: Mutation, message: str
) -> None:
    bad = damaged(sample_dir / "libvirt.box", mutation, tmp_path)
    with pytest.raises(CheckFailed, match=f"^libvirt.box: {message}"):
        check_vagrant_box(bad, "libvirt")


def test_vagrant_box_plain_tar_cut_short_fails(tmp_path: Path) -> None:
    box = make_box(tmp_path / "v.box", VBOX_OK, compress=False)
    data = box.read_bytes()
    box.write_bytes(data[: 512 * 4])  # inside the disk's data
    with pytest.raises(CheckFailed, match="^v.box: not a readable tar archive .*: unexpected end"):
        check_vagrant_box(box, "virtualbox")


# --- format, name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_type", "image_format", "expected"),
    [
        ("qcow2", "qcow2", "qcow2 version 3"),
        ("raw-xz", "raw.xz", "1 intact xz stream"),
        ("raw-xz", "tar.xz", "1 intact xz stream"),
        ("dvd-ostree", "iso", "ISO 9660 volume 'FORTNIGHT'"),
        ("boot", "iso", "ISO 9660 volume 'FORTNIGHT'"),
        ("vagrant-libvirt", "vagrant-libvirt.box", "Vagrant box for libvirt"),
        ("vagrant-virtualbox", "vagrant-virtualbox.box", "Vagrant box for virtualbox"),
    ],
)
def test_format_dispatches(
    tmp_path: Path, image_type: str, image_format: str, expected: str
) -> None:
    path = tmp_path / f"image.{image_format}"
    samples.write_image(path, image_type)
    assert check_format(path, image_format, image_type=image_type).startswith(
        f"{path.name}: {expected}"
    )


@pytest.mark.parametrize(
    ("sample", "image_format", "image_type", "message"),
    [
        ("libvirt.box", "qcow2", "qcow2", "magic is b'\\\\x1f\\\\x8b"),
        ("libvirt.box", "raw.xz", "raw-xz", "xz magic is 1f8b"),
        ("libvirt.box", "iso", "dvd", r"file is \d+ bytes, an ISO 9660 image needs at least"),
        (
            "libvirt.box",
            "vagrant-virtualbox.box",
            "",
            "metadata.json provider is 'libvirt', expected 'virtualbox'",
        ),
        (
            "virtualbox.box",
            "vagrant-virtualbox.box",
            "vagrant-libvirt",
            "metadata.json provider is 'virtualbox', expected 'libvirt'",
        ),
        (
            "libvirt.box",
            "vhd",
            "",
            r"no built-in check for format 'vhd' \(known: qcow2, \*.xz, iso, \*.box\)",
        ),
    ],
)
def test_format_fails(
    sample_dir: Path, sample: str, image_format: str, image_type: str, message: str
) -> None:
    with pytest.raises(CheckFailed, match=f"^{re.escape(sample)}: {message}"):
        check_format(sample_dir / sample, image_format, image_type=image_type)


@pytest.mark.parametrize(
    "damage",
    [cut(0), cut(1), cut(5), cut(100), cut(511), cut(2048), cut(32769), cut(-1), flip(3)],
    ids=["0", "1", "5", "100", "511", "2048", "32769", "-1", "flip"],
)
@pytest.mark.parametrize(
    ("sample", "image_format"),
    [
        ("Fedora-AtomicHost-28-1.1.x86_64.qcow2", "qcow2"),
        ("Fedora-AtomicHost-28-1.1.x86_64.raw.xz", "raw.xz"),
        ("Fedora-AtomicHost-ostree-x86_64-28-1.1.iso", "iso"),
        ("libvirt.box", "vagrant-libvirt.box"),
        ("virtualbox.box", "vagrant-virtualbox.box"),
    ],
)
def test_damage_fails_cleanly_never_with_a_traceback(
    sample_dir: Path, tmp_path: Path, sample: str, image_format: str, damage: Mutation
) -> None:
    bad = damaged(sample_dir / sample, damage, tmp_path)
    try:
        line = check_format(bad, image_format)
    except CheckFailed as e:
        line = str(e)
    # Some damage is harmless (a flipped byte in a tar header's padding, say); either way
    # the result is one line naming the file.
    assert line.startswith(f"{sample}: ") and "\n" not in line


def checksum_names() -> list[str]:
    text = (FIXTURES / "fedora-websites-Fedora-AtomicHost-28-1.1-x86_64-CHECKSUM").read_text()
    return re.findall(r"^SHA256 \((.+)\) = [0-9a-f]{64}$", text, flags=re.MULTILINE)


def f28_images() -> dict[str, tuple[str, str]]:
    """File name → (format, arch) for every image of the real Fedora 28 compose."""
    doc = json.loads(F28_IMAGES.read_text())
    return {
        Path(img["path"]).name: (img["format"], img["arch"])
        for arches in doc["payload"]["images"].values()
        for imgs in arches.values()
        for img in imgs
    }


def test_real_fedora_checksum_names_pass_the_name_check() -> None:
    names = checksum_names()
    assert len(names) == 4
    real = f28_images()
    for name in names:
        image_format, arch = real[name]  # the compose metadata says what each file is
        assert check_name(name, image_format, arch) == (
            f"{name}: file name names the arch {arch} and ends with .{image_format}"
        )


def test_every_real_fedora_28_image_name_passes() -> None:
    real = f28_images()
    assert len(real) > 90
    for name, (image_format, arch) in real.items():
        check_name(name, image_format, arch)


@pytest.mark.parametrize(
    ("name", "image_format", "arch", "message"),
    [
        (
            "Fedora-AtomicHost-28-1.1.x86_64.qcow2",
            "raw.xz",
            "x86_64",
            "file name does not end with '.raw.xz', expected for format raw.xz",
        ),
        (
            "Fedora-AtomicHost-28-1.1.x86_64.raw",
            "raw.xz",
            "x86_64",
            "file name does not end with '.raw.xz'",
        ),
        (
            "Fedora-AtomicHost-Vagrant-28-1.1.x86_64.vagrant-libvirt.box",
            "vagrant-virtualbox.box",
            "x86_64",
            "does not end with '.vagrant-virtualbox.box', expected for format "
            "vagrant-virtualbox.box",
        ),
        ("image", "iso", "x86_64", "file name does not end with '.iso'"),
        (
            "Fedora-AtomicHost-28-1.1.x86_64.qcow2",
            "qcow2",
            "aarch64",
            "file name does not name the arch, expected 'aarch64' in it",
        ),
        (
            "Fedora-Cloud-Base-28-1.1.ppc64le.qcow2",
            "qcow2",
            "ppc64",
            "file name does not name the arch, expected 'ppc64' in it",
        ),
        ("Fedora-28-1.1.x86_64x.qcow2", "qcow2", "x86_64", "does not name the arch"),
        ("Fedora-28-1.1.qcow2", "qcow2", "x86_64", "does not name the arch"),
    ],
)
def test_name_fails(name: str, image_format: str, arch: str, message: str) -> None:
    with pytest.raises(CheckFailed, match=f"^{re.escape(name)}: .*{re.escape(message)}"):
        check_name(name, image_format, arch)


# --- the command -------------------------------------------------------------------------


def contract_env(path: Path, image_format: str, image_type: str, **extra: str) -> dict[str, str]:
    """The variables a test battery sets for one image."""
    data = path.read_bytes()
    return {
        "FORTNIGHT_IMAGE": str(path),
        "FORTNIGHT_IMAGE_URL": f"https://example.invalid/{path.name}",
        "FORTNIGHT_IMAGE_FORMAT": image_format,
        "FORTNIGHT_IMAGE_TYPE": image_type,
        "FORTNIGHT_IMAGE_ARCH": "x86_64",
        "FORTNIGHT_IMAGE_SUBVARIANT": "AtomicHost",
        "FORTNIGHT_IMAGE_SIZE": str(len(data)),
        "FORTNIGHT_IMAGE_SHA256": hashlib.sha256(data).hexdigest(),
        "FORTNIGHT_IMAGE_VOLUME_ID": "",
        "FORTNIGHT_COMPOSE_ID": "Fedora-AtomicHost-28-20180425.0",
        "FORTNIGHT_SCRATCH": str(path.parent / "scratch"),
        **extra,
    }


def run_checks(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline.checks ARGS`` as a test battery runs it."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("FORTNIGHT_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.checks", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_command_passes_with_the_env_contract(qcow2: Path) -> None:
    proc = run_checks("format", env=contract_env(qcow2, "qcow2", "qcow2"))
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"{qcow2.name}: qcow2 version 3, virtual size 67108864 bytes, " + (
        "65536-byte clusters\n"
    )


def test_command_fails_with_one_line_and_no_traceback(raw_xz: Path, tmp_path: Path) -> None:
    bad = damaged(raw_xz, cut(-100), tmp_path)
    proc = run_checks("xz", env=contract_env(bad, "raw.xz", "raw-xz"))
    assert (proc.returncode, proc.stderr) == (1, "")
    assert proc.stdout == (
        f"{raw_xz.name}: xz stream 1 (from offset 0) is truncated: the file ends at byte "
        f"{raw_xz.stat().st_size - 100} before the stream's end\n"
    )


@pytest.mark.parametrize(
    ("args", "drop", "message"),
    [
        (
            ["checksum"],
            "FORTNIGHT_IMAGE_SHA256",
            "FORTNIGHT_IMAGE_SHA256 is not set (or pass --sha256)",
        ),
        (["qcow2"], "FORTNIGHT_IMAGE", "FORTNIGHT_IMAGE is not set (or pass --image)"),
        (["frobnicate"], "", "unknown check 'frobnicate' (known: checksum, qcow2, xz, iso9660,"),
        ([], "", "name a check (one of checksum, qcow2,"),
    ],
    ids=["missing sha256", "missing image", "unknown check", "no check"],
)
def test_command_usage_errors_exit_2(iso: Path, args: list[str], drop: str, message: str) -> None:
    env = contract_env(iso, "iso", "dvd-ostree")
    env.pop(drop, None)
    proc = run_checks(*args, env=env)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith(f"pipeline.checks: {message}")
    assert proc.stderr.count("\n") == 1


def test_command_lists_the_checks() -> None:
    proc = run_checks("--list", env={})
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(registry.CHECKS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


@pytest.mark.parametrize(
    ("sample", "image_format", "image_type", "volume_id"),
    [
        ("Fedora-AtomicHost-28-1.1.x86_64.qcow2", "qcow2", "qcow2", ""),
        ("Fedora-AtomicHost-28-1.1.x86_64.raw.xz", "raw.xz", "raw-xz", ""),
        ("Fedora-AtomicHost-ostree-x86_64-28-1.1.iso", "iso", "dvd-ostree", "Fedora-AH-28"),
    ],
)
def test_every_check_a_battery_would_run_passes(
    sample_dir: Path, sample: str, image_format: str, image_type: str, volume_id: str
) -> None:
    env = contract_env(
        sample_dir / sample, image_format, image_type, FORTNIGHT_IMAGE_VOLUME_ID=volume_id
    )
    for name in ("checksum", "format", "name"):
        assert main([name], env) == 0


def test_vagrant_boxes_through_main(
    sample_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for provider in ("libvirt", "virtualbox"):
        box = tmp_path / f"Fedora-AtomicHost-Vagrant-28-1.1.x86_64.vagrant-{provider}.box"
        shutil.copy(sample_dir / f"{provider}.box", box)
        env = contract_env(box, f"vagrant-{provider}.box", f"vagrant-{provider}")
        for name in ("checksum", "format", "vagrant-box", "name"):
            assert main([name], env) == 0
    libvirt_as_vbox = contract_env(
        tmp_path / "Fedora-AtomicHost-Vagrant-28-1.1.x86_64.vagrant-libvirt.box",
        "vagrant-libvirt.box",
        "vagrant-virtualbox",
    )
    capsys.readouterr()
    assert main(["vagrant-box"], libvirt_as_vbox) == 1
    assert capsys.readouterr().out.endswith(
        "metadata.json provider is 'libvirt', expected 'virtualbox'\n"
    )


def test_options_override_the_environment(
    iso: Path, qcow2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = contract_env(qcow2, "qcow2", "qcow2")
    assert main(["format", "--image", str(iso), "--format", "iso", "--volume-id", "X"], env) == 1
    assert capsys.readouterr().out == (f"{iso.name}: volume id is 'Fedora-AH-28', expected 'X'\n")
    data = iso.read_bytes()
    args = ["checksum", "--image", str(iso), "--size", str(len(data))]
    assert main([*args, "--sha256", hashlib.sha256(data).hexdigest()], {}) == 0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["checksum", "--size", "12k", "--sha256", "0" * 64], {}, "FORTNIGHT_IMAGE_SIZE is '12k'"),
        (["checksum", "--size", "1", "--sha256", "abc"], {}, "FORTNIGHT_IMAGE_SHA256 is 'abc', "),
        (["qcow2", "--image", "/nonexistent/x.qcow2"], {}, "image file /nonexistent/x.qcow2 "),
        (["qcow2", "--image", "/"], {}, "image file / is not a regular file"),
        (["format"], {"FORTNIGHT_IMAGE_FORMAT": ""}, "FORTNIGHT_IMAGE_FORMAT is not set"),
        (["name", "--format", "iso"], {}, "FORTNIGHT_IMAGE_ARCH is not set (or pass --arch)"),
        (["qcow2", "--frobnicate"], {}, "unrecognized arguments: --frobnicate"),
    ],
    ids=["size", "sha256", "missing file", "directory", "empty format", "no arch", "option"],
)
def test_main_usage_errors(
    iso: Path,
    args: list[str],
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = {"FORTNIGHT_IMAGE": str(iso), **env}
    assert main(args, base) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"pipeline.checks: {message}") and err.count("\n") == 1
