"""Fortnight's built-in image checks, run by a test battery as shell commands.

Run one check with ``python -m pipeline.checks NAME``; ``python -m pipeline.checks --list``
lists them. A test battery runs its commands once per image of a compose, with this
environment (the contract between the battery and every command it runs):

- ``FORTNIGHT_IMAGE``: local path of the image file
- ``FORTNIGHT_IMAGE_URL``: its download URL
- ``FORTNIGHT_IMAGE_FORMAT``: productmd format (``qcow2``, ``raw.xz``, ``iso``,
  ``vagrant-libvirt.box``, ``vagrant-virtualbox.box``, …)
- ``FORTNIGHT_IMAGE_TYPE``: productmd type (``qcow2``, ``raw-xz``, ``dvd-ostree``,
  ``vagrant-libvirt``, ``vagrant-virtualbox``, …)
- ``FORTNIGHT_IMAGE_ARCH``: productmd arch (``x86_64``, ``aarch64``, …)
- ``FORTNIGHT_IMAGE_SUBVARIANT``: productmd subvariant (``AtomicHost``, …)
- ``FORTNIGHT_IMAGE_SIZE``: size in bytes, from the compose manifest
- ``FORTNIGHT_IMAGE_SHA256``: sha256 (hex), from the compose manifest
- ``FORTNIGHT_IMAGE_VOLUME_ID``: ISO volume id, from the compose manifest (may be empty)
- ``FORTNIGHT_COMPOSE_ID``: the compose being tested
- ``FORTNIGHT_SCRATCH``: an empty scratch directory for this test

Which variables each check reads: ``checksum`` the image, size and sha256; ``qcow2``,
``xz`` the image; ``iso9660`` the image and volume id (compared only when non-empty);
``vagrant-box`` the image, and the type or format to know the provider; ``format`` the
image, format, type and volume id; ``name`` the image's file name, format and arch.

For manual use, options override the variables: ``--image PATH``, ``--url``, ``--format``,
``--type``, ``--arch``, ``--subvariant``, ``--size``, ``--sha256``, ``--volume-id``,
``--compose-id``, ``--scratch``.

Exit status and output:

- **0**, the check passed: one line on stdout saying what was verified.
- **1**, the image failed: one line on stdout saying why, naming the file and both values
  compared (``Fedora-AtomicHost-28.qcow2: qcow2 version is 7, expected 2 or 3``).
- **2**, the check could not run (unknown check, a variable it needs is unset or malformed,
  the image file is missing or unreadable): one line on stderr.

Checks read files in 1 MiB pieces, so memory stays constant whatever the image size.
Each check is a pure function (``check_qcow2(path)`` …) that returns the success line or
raises ``CheckFailed``; ``CHECKS`` maps command names to them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import os
import posixpath
import re
import struct
import sys
import tarfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn

PROG = "pipeline.checks"
CHUNK = 1 << 20  # read (and decompress) 1 MiB at a time, as pipeline.adapters.hashing does


class CheckFailed(Exception):
    """The image failed a check; the message is the one line to show, naming the file."""


class UsageError(Exception):
    """The check could not run: unknown check, missing or malformed input."""


# --- checksum ----------------------------------------------------------------------------


def check_checksum(path: Path, size: int, sha256: str) -> str:
    """Size and sha256 of ``path`` equal the compose manifest's.

    The size is compared first, so a wrong-sized file is rejected without reading it.

    Raises:
        CheckFailed: the size or the digest differs.
    """
    # Imported here: pipeline.adapters.hashing pulls in requests and rich, which would add a quarter
    # of a second to the start of every other check a battery runs.
    from pipeline.adapters.hashing import NullProgress, hash_file  # noqa: PLC0415

    name = path.name
    actual = path.stat().st_size
    if actual != size:
        raise CheckFailed(f"{name}: size is {actual} bytes, manifest says {size}")
    progress = NullProgress()
    actual, digest = hash_file(path, progress, progress.add_task(name))
    if actual != size:  # changed while we read it
        raise CheckFailed(f"{name}: size is {actual} bytes, manifest says {size}")
    if digest != sha256.lower():
        raise CheckFailed(f"{name}: sha256 is {digest}, manifest says {sha256.lower()}")
    return f"{name}: size {size} bytes and sha256 {digest} match the compose manifest"


# --- qcow2 -------------------------------------------------------------------------------

QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_V2 = struct.Struct(">4sIQIIQIIQQIIQ")  # 72 bytes
_QCOW2_V3 = struct.Struct(">QQQII")  # the 32 bytes version 3 adds
_QCOW2_CORRUPT = 1 << 1
_QCOW2_EXTENDED_L2 = 1 << 4
_QCOW2_KNOWN_INCOMPATIBLE = (1 << 5) - 1  # dirty, corrupt, external data, compression, ext L2


def qcow2_header(label: str, head: bytes, file_size: int) -> str:
    """Validate a qcow2 header (the first bytes of a file of ``file_size`` bytes).

    Returns a short description (version, virtual size, cluster size). ``label`` starts
    every failure message.

    Raises:
        CheckFailed: the header is missing, truncated or inconsistent.
    """
    version = _qcow2_version(label, head, file_size)
    fields = _QCOW2_V2.unpack_from(head)
    cluster_bits, virtual_size = fields[4], fields[5]
    incompatible = _qcow2_v3_features(label, head) if version == 3 else 0
    if not 9 <= cluster_bits <= 21:
        raise CheckFailed(f"{label}: cluster_bits is {cluster_bits}, expected 9..21")
    if virtual_size == 0:
        raise CheckFailed(f"{label}: virtual size is 0 bytes, expected more than 0")
    cluster = 1 << cluster_bits
    l1_size, l1_offset, refcount_offset, refcount_clusters = fields[7:11]
    l2_entries = cluster // (16 if incompatible & _QCOW2_EXTENDED_L2 else 8)
    covered = l1_size * l2_entries * cluster
    if covered < virtual_size:
        raise CheckFailed(
            f"{label}: L1 table has {l1_size} entries covering {covered} bytes, "
            f"virtual size is {virtual_size}"
        )
    for what, offset, length in (
        ("refcount table", refcount_offset, refcount_clusters * cluster),
        ("L1 table", l1_offset, l1_size * 8),
    ):
        if offset == 0 or offset % cluster:
            raise CheckFailed(
                f"{label}: {what} offset is {offset}, expected a non-zero multiple of {cluster}"
            )
        if offset + length > file_size:
            raise CheckFailed(
                f"{label}: {what} ends at byte {offset + length}, the file has {file_size} bytes"
            )
    return f"qcow2 version {version}, virtual size {virtual_size} bytes, {cluster}-byte clusters"


def _qcow2_version(label: str, head: bytes, file_size: int) -> int:
    """The version, once magic, version and header length are right."""
    if file_size == 0:
        raise CheckFailed(f"{label}: file is empty, expected a qcow2 image")
    if head[:4] != QCOW2_MAGIC:
        raise CheckFailed(f"{label}: magic is {head[:4]!r}, expected {QCOW2_MAGIC!r}")
    if len(head) < 8:
        raise CheckFailed(f"{label}: file is {file_size} bytes, too short for a qcow2 header")
    (version,) = struct.unpack_from(">I", head, 4)
    if version not in (2, 3):
        raise CheckFailed(f"{label}: qcow2 version is {version}, expected 2 or 3")
    need = _QCOW2_V2.size + (_QCOW2_V3.size if version == 3 else 0)
    if len(head) < need:
        raise CheckFailed(
            f"{label}: header is truncated: file has {len(head)} bytes, "
            f"a qcow2 version {version} header needs {need}"
        )
    return int(version)


def _qcow2_v3_features(label: str, head: bytes) -> int:
    """The incompatible feature bits of a version 3 header, once they and its length are sane."""
    incompatible, _compat, _autoclear, _order, length = _QCOW2_V3.unpack_from(head, _QCOW2_V2.size)
    need = _QCOW2_V2.size + _QCOW2_V3.size
    if length < need:
        raise CheckFailed(
            f"{label}: header_length is {length}, expected at least {need} for version 3"
        )
    if incompatible & _QCOW2_CORRUPT:
        raise CheckFailed(f"{label}: image is marked corrupt (incompatible feature bit 1 is set)")
    if incompatible & ~_QCOW2_KNOWN_INCOMPATIBLE:
        raise CheckFailed(
            f"{label}: incompatible features are {incompatible:#x}, "
            f"expected only known bits ({_QCOW2_KNOWN_INCOMPATIBLE:#x})"
        )
    return int(incompatible)


def check_qcow2(path: Path) -> str:
    """``path`` starts with a valid qcow2 version 2 or 3 header whose tables fit the file.

    Raises:
        CheckFailed: wrong magic or version, truncated header, cluster_bits outside 9..21,
            zero virtual size, marked corrupt, or tables outside the file.
    """
    with path.open("rb") as f:
        head = f.read(512)
    return f"{path.name}: {qcow2_header(path.name, head, path.stat().st_size)}"


# --- xz ----------------------------------------------------------------------------------

XZ_MAGIC = b"\xfd7zXZ\x00"


def check_xz(path: Path) -> str:
    """``path`` is one or more complete xz streams, each decompressing without error.

    Every byte is decompressed (output discarded, at most 1 MiB at a time) so that the
    block checks, the index and the stream footers are all verified. Between and after
    streams only stream padding is allowed: zero bytes, a multiple of four (as ``xz -t``).

    Raises:
        CheckFailed: empty file, wrong magic, corrupt data or check mismatch, a stream cut
            short, trailing bytes that are not another xz stream, or bad padding.
    """
    if path.stat().st_size == 0:
        raise CheckFailed(f"{path.name}: file is empty, expected an xz stream")
    scan = _XzScan(path.name)
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            scan.feed(chunk)
    return scan.finish()


class _XzScan:
    """Decompresses a file fed in pieces as xz streams separated by stream padding.

    ``LZMADecompressor`` stops at the end of the first stream (its ``unused_data`` holds
    the rest), so each further stream gets a new decompressor, after its magic is checked.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.streams = 0  # complete streams so far
        self.out = 0  # decompressed bytes
        self.dec: lzma.LZMADecompressor | None = None
        self.head = b""  # the first bytes of the next stream, until its magic is checked
        self.start = 0  # offset of the stream being read
        self.padding = 0  # zero bytes since the last stream ended
        self.end = 0  # offset just past the bytes fed so far

    def feed(self, data: bytes) -> None:
        """Take the next piece of the file."""
        self.end += len(data)
        while data:
            if self.dec is None:
                data = self._begin(data)
            if self.dec is None:
                return
            data = self._decompress(self.dec, data)

    def _begin(self, data: bytes) -> bytes:
        """Skip padding and gather the next stream's magic; start it once checked."""
        if self.streams and not self.head:
            stripped = data.lstrip(b"\0")
            self.padding += len(data) - len(stripped)
            data = stripped
        if not data:
            return b""
        if not self.head:
            self.start = self.end - len(data)
        take = len(XZ_MAGIC) - len(self.head)
        self.head += data[:take]
        if len(self.head) < len(XZ_MAGIC):
            return b""
        self._check_start()
        self.dec = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        self.head, self.padding = b"", 0
        return XZ_MAGIC + data[take:]

    def _decompress(self, dec: lzma.LZMADecompressor, data: bytes) -> bytes:
        """Decompress ``data``; what follows the stream's end, if it ended."""
        try:
            self.out += len(dec.decompress(data, CHUNK))
            while not dec.eof and not dec.needs_input:
                self.out += len(dec.decompress(b"", CHUNK))
        except lzma.LZMAError as e:
            raise CheckFailed(
                f"{self.name}: xz stream {self.streams + 1} (from offset {self.start}) is "
                f"corrupt before byte {self.end}: {e}"
            ) from e
        if not dec.eof:
            return b""
        self.streams += 1
        self.dec = None
        return dec.unused_data

    def _check_start(self) -> None:
        if not XZ_MAGIC.startswith(self.head):
            if self.streams == 0:
                raise CheckFailed(
                    f"{self.name}: xz magic is {self.head.hex()}, expected {XZ_MAGIC.hex()}"
                )
            raise CheckFailed(
                f"{self.name}: trailing garbage at offset {self.start} after xz stream "
                f"{self.streams}: starts with {self.head.hex()}, not the xz magic {XZ_MAGIC.hex()}"
            )
        if self.padding % 4:
            raise CheckFailed(
                f"{self.name}: {self.padding} zero bytes of padding before xz stream "
                f"{self.streams + 1} (offset {self.start}), expected a multiple of 4"
            )

    def finish(self) -> str:
        """The success line, once the file ended where it may."""
        if self.head:
            self._check_start()
        if self.dec is not None or self.head:
            raise CheckFailed(
                f"{self.name}: xz stream {self.streams + 1} (from offset {self.start}) is "
                f"truncated: the file ends at byte {self.end} before the stream's end"
            )
        if self.padding % 4:
            raise CheckFailed(
                f"{self.name}: {self.padding} zero bytes follow the last xz stream, "
                "expected a multiple of 4"
            )
        plural = "stream" if self.streams == 1 else "streams"
        return f"{self.name}: {self.streams} intact xz {plural}, {self.out} bytes decompressed"


# --- ISO 9660 ----------------------------------------------------------------------------

ISO_BLOCK = 2048
ISO_PVD_SECTOR = 16
ISO_ID = b"CD001"


def check_iso9660(path: Path, volume_id: str = "") -> str:
    """``path`` is an ISO 9660 volume: a primary volume descriptor at sector 16, a volume
    descriptor set terminator after it, 2048-byte blocks, a volume that fits the file and,
    when ``volume_id`` is given, that volume id.

    Raises:
        CheckFailed: any of these is missing or differs.
    """
    name = path.name
    file_size = path.stat().st_size
    if file_size == 0:
        raise CheckFailed(f"{name}: file is empty, expected an ISO 9660 image")
    minimum = (ISO_PVD_SECTOR + 2) * ISO_BLOCK
    with path.open("rb") as f:
        f.seek(ISO_PVD_SECTOR * ISO_BLOCK)
        pvd = f.read(ISO_BLOCK)
        if len(pvd) < ISO_BLOCK:
            raise CheckFailed(
                f"{name}: file is {file_size} bytes, an ISO 9660 image needs at least {minimum}"
            )
        if pvd[1:6] != ISO_ID:
            raise CheckFailed(
                f"{name}: standard identifier at offset {ISO_PVD_SECTOR * ISO_BLOCK + 1} is "
                f"{pvd[1:6]!r}, expected {ISO_ID!r} (no ISO 9660 volume descriptor)"
            )
        if pvd[0] != 1:
            raise CheckFailed(
                f"{name}: volume descriptor at sector 16 has type {pvd[0]}, expected 1 (primary)"
            )
        if pvd[6] != 1:
            raise CheckFailed(f"{name}: primary volume descriptor version is {pvd[6]}, expected 1")
        (block,) = struct.unpack_from("<H", pvd, 128)
        if block != ISO_BLOCK:
            raise CheckFailed(f"{name}: logical block size is {block}, expected {ISO_BLOCK}")
        (sectors_le,) = struct.unpack_from("<I", pvd, 80)
        (sectors_be,) = struct.unpack_from(">I", pvd, 84)
        if sectors_le != sectors_be:
            raise CheckFailed(
                f"{name}: volume space size is {sectors_le} sectors little-endian "
                f"but {sectors_be} big-endian"
            )
        if sectors_le * ISO_BLOCK > file_size:
            raise CheckFailed(
                f"{name}: volume space is {sectors_le} sectors ({sectors_le * ISO_BLOCK} bytes), "
                f"the file has {file_size} bytes"
            )
        terminator = _find_terminator(name, f)
    found = pvd[40:72].rstrip(b" ").decode("latin-1")
    if volume_id and found != volume_id:
        raise CheckFailed(f"{name}: volume id is {found!r}, expected {volume_id!r}")
    return (
        f"{name}: ISO 9660 volume {found!r} of {sectors_le} sectors, "
        f"descriptor set terminated at sector {terminator}"
    )


def _find_terminator(name: str, f: BinaryIO) -> int:
    """The sector of the volume descriptor set terminator, ``f`` just past the PVD."""
    sector = ISO_PVD_SECTOR + 1
    while True:
        desc = f.read(ISO_BLOCK)
        if len(desc) < ISO_BLOCK:
            raise CheckFailed(
                f"{name}: no volume descriptor set terminator: the file ends at sector {sector}"
            )
        if desc[1:6] != ISO_ID:
            raise CheckFailed(
                f"{name}: no volume descriptor set terminator: sector {sector} has identifier "
                f"{desc[1:6]!r}, expected {ISO_ID!r}"
            )
        if desc[0] == 255:
            return sector
        sector += 1


# --- Vagrant boxes -----------------------------------------------------------------------

GZIP_MAGIC = b"\x1f\x8b"
VMDK_MAGICS = (b"KDMV", b"# Disk DescriptorFile")
_METADATA_MAX = 1 << 20
_HEAD = 512


def expected_provider(image_type: str = "", image_format: str = "") -> str | None:
    """The Vagrant provider a productmd type (``vagrant-libvirt``) or format
    (``vagrant-libvirt.box``) names, or None."""
    if image_type.startswith("vagrant-"):
        return image_type.removeprefix("vagrant-")
    if image_format.startswith("vagrant-") and image_format.endswith(".box"):
        return image_format.removeprefix("vagrant-").removesuffix(".box")
    return None


@dataclass
class _BoxMember:
    size: int
    head: bytes  # the first bytes (all of metadata.json)


@dataclass
class _Box:
    members: dict[str, _BoxMember]  # metadata.json and the candidate disks only
    names: list[str]  # the first few member names, for messages
    count: int = 0

    def listing(self) -> str:
        more = ", …" if self.count > len(self.names) else ""
        return ", ".join(self.names) + more if self.names else "nothing"


def check_vagrant_box(path: Path, provider: str | None = None) -> str:
    """``path`` is a Vagrant box: a tar archive (plain or gzip) with ``metadata.json``
    naming ``provider`` (any provider when None) and that provider's disk, both non-empty.

    libvirt needs ``box.img`` with a qcow2 header; virtualbox needs a ``.vmdk`` starting with
    a VMDK sparse header or descriptor. The archive is read once, in stream mode, to its end
    (tarfile notices a member cut short; gzip checks its CRC and length).

    Raises:
        CheckFailed: not a readable tar archive, truncated, metadata.json missing, not JSON,
            without ``provider`` or naming another provider, or the disk missing or empty.
    """
    name = path.name
    if path.stat().st_size == 0:
        raise CheckFailed(f"{name}: file is empty, expected a Vagrant box (tar archive)")
    box = _read_box(path)
    meta = box.members.get("metadata.json")
    if meta is None:
        raise CheckFailed(f"{name}: no metadata.json in the box (it holds {box.listing()})")
    found = _box_provider(name, meta)
    if provider is not None and found != provider:
        raise CheckFailed(f"{name}: metadata.json provider is {found!r}, expected {provider!r}")
    disk_name, disk = _box_disk(name, found, box)
    if disk.size == 0:
        raise CheckFailed(f"{name}: {disk_name} is empty, expected a disk image")
    if found == "libvirt":
        qcow2_header(f"{name}: {disk_name}", disk.head, disk.size)
    elif not disk.head.startswith(VMDK_MAGICS):
        raise CheckFailed(
            f"{name}: {disk_name} starts with {disk.head[:4]!r}, expected a VMDK sparse header "
            f"{VMDK_MAGICS[0]!r} or a text descriptor"
        )
    return f"{name}: Vagrant box for {found} with metadata.json and {disk_name} ({disk.size} bytes)"


def _read_box(path: Path) -> _Box:
    """Stream the archive once, keeping the start of metadata.json and of candidate disks."""
    name = path.name
    box = _Box(members={}, names=[])
    with path.open("rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        # gzip is undone here rather than by tarfile's "r|*", which never reads the gzip
        # trailer: GzipFile checks its CRC and length, and raises EOFError when cut short.
        stream: BinaryIO | gzip.GzipFile = gzip.GzipFile(fileobj=raw) if gzipped else raw
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    member_name = posixpath.normpath(member.name)
                    box.count += 1
                    if len(box.names) < 8:
                        box.names.append(member_name)
                    wanted = member_name == "metadata.json" or _is_disk(member_name)
                    content = tar.extractfile(member) if wanted and member.isfile() else None
                    if content is not None:
                        want = _METADATA_MAX + 1 if member_name == "metadata.json" else _HEAD
                        box.members[member_name] = _BoxMember(member.size, content.read(want))
            while stream.read(CHUNK):  # to the end, so that gzip checks its CRC and length
                pass
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as e:
            kind = "gzip-compressed tar archive" if gzipped else "tar archive (plain or gzip)"
            raise CheckFailed(f"{name}: not a readable {kind}: {e}") from e
    return box


def _is_disk(member_name: str) -> bool:
    return member_name == "box.img" or member_name.endswith(".vmdk")


def _box_disk(name: str, provider: str, box: _Box) -> tuple[str, _BoxMember]:
    """The provider's disk: ``box.img`` for libvirt, the first ``.vmdk`` for virtualbox."""
    if provider == "libvirt":
        disk = box.members.get("box.img")
        if disk is None:
            raise CheckFailed(
                f"{name}: no box.img disk in the libvirt box (it holds {box.listing()})"
            )
        return "box.img", disk
    if provider == "virtualbox":
        vmdks = sorted(n for n in box.members if n.endswith(".vmdk"))
        if not vmdks:
            raise CheckFailed(
                f"{name}: no .vmdk disk in the virtualbox box (it holds {box.listing()})"
            )
        return vmdks[0], box.members[vmdks[0]]
    raise CheckFailed(
        f"{name}: metadata.json provider is {provider!r}, expected libvirt or virtualbox"
    )


def _box_provider(name: str, meta: _BoxMember) -> str:
    if meta.size == 0:
        raise CheckFailed(f"{name}: metadata.json is empty, expected a JSON object")
    if meta.size > _METADATA_MAX:
        raise CheckFailed(
            f"{name}: metadata.json is {meta.size} bytes, expected at most {_METADATA_MAX}"
        )
    try:
        doc = json.loads(meta.head)
    except ValueError as e:  # also a UnicodeDecodeError
        raise CheckFailed(f"{name}: metadata.json is not valid JSON: {e}") from e
    provider = doc.get("provider") if isinstance(doc, dict) else None
    if not isinstance(provider, str) or not provider:
        raise CheckFailed(f'{name}: metadata.json has no "provider" string: {doc!r:.80}')
    return provider


# --- by format, by name ------------------------------------------------------------------


def check_format(
    path: Path, image_format: str, *, image_type: str = "", volume_id: str = ""
) -> str:
    """Run the check for productmd ``image_format``: ``qcow2`` → qcow2, ``*.xz`` → xz,
    ``iso`` → iso9660, ``*.box`` → vagrant-box.

    Raises:
        CheckFailed: that check failed, or no check knows ``image_format``.
    """
    if image_format == "qcow2":
        return check_qcow2(path)
    if image_format.endswith(".xz"):
        return check_xz(path)
    if image_format == "iso":
        return check_iso9660(path, volume_id)
    if image_format.endswith(".box"):
        return check_vagrant_box(path, expected_provider(image_type, image_format))
    raise CheckFailed(
        f"{path.name}: no built-in check for format {image_format!r} "
        "(known: qcow2, *.xz, iso, *.box)"
    )


def check_name(name: str, image_format: str, arch: str) -> str:
    """File ``name`` ends with ``.`` + ``image_format`` and holds ``arch`` as a whole word
    (between ``.``, ``-`` or ``_``), as in ``Fedora-AtomicHost-28-1.1.x86_64.qcow2`` or
    ``Fedora-Server-dvd-x86_64-28-1.1.iso``.

    Raises:
        CheckFailed: the extension or the arch is missing.
    """
    extension = f".{image_format}"
    if not name.endswith(extension):
        raise CheckFailed(
            f"{name}: file name does not end with {extension!r}, expected for format {image_format}"
        )
    stem = name.removesuffix(extension)
    if not re.search(rf"(?<![A-Za-z0-9]){re.escape(arch)}(?![A-Za-z0-9])", stem):
        raise CheckFailed(f"{name}: file name does not name the arch, expected {arch!r} in it")
    return f"{name}: file name names the arch {arch} and ends with {extension}"


# --- the command -------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input of the contract: its environment variable and its option."""

    env: str
    option: str
    help: str


FIELDS: dict[str, Field] = {
    "image": Field("FORTNIGHT_IMAGE", "--image", "local path of the image file"),
    "url": Field("FORTNIGHT_IMAGE_URL", "--url", "its download URL"),
    "format": Field("FORTNIGHT_IMAGE_FORMAT", "--format", "productmd format (qcow2, raw.xz…)"),
    "type": Field("FORTNIGHT_IMAGE_TYPE", "--type", "productmd type (qcow2, raw-xz…)"),
    "arch": Field("FORTNIGHT_IMAGE_ARCH", "--arch", "productmd arch"),
    "subvariant": Field("FORTNIGHT_IMAGE_SUBVARIANT", "--subvariant", "productmd subvariant"),
    "size": Field("FORTNIGHT_IMAGE_SIZE", "--size", "size in bytes, from the manifest"),
    "sha256": Field("FORTNIGHT_IMAGE_SHA256", "--sha256", "sha256, from the manifest"),
    "volume_id": Field("FORTNIGHT_IMAGE_VOLUME_ID", "--volume-id", "ISO volume id, or empty"),
    "compose_id": Field("FORTNIGHT_COMPOSE_ID", "--compose-id", "the compose id"),
    "scratch": Field("FORTNIGHT_SCRATCH", "--scratch", "an empty scratch directory"),
}


@dataclass(frozen=True)
class Inputs:
    """The contract's values for one run, from options over environment variables."""

    values: Mapping[str, str]

    def get(self, key: str) -> str:
        """A value, or "" when unset."""
        return self.values.get(key, "")

    def require(self, key: str) -> str:
        """A value that must be set and non-empty.

        Raises:
            UsageError: it is unset or empty.
        """
        value = self.get(key)
        if not value:
            field = FIELDS[key]
            raise UsageError(f"{field.env} is not set (or pass {field.option})")
        return value

    def image(self) -> Path:
        """The image path, which must be an existing regular file.

        Raises:
            UsageError: unset, missing or not a regular file.
        """
        path = Path(self.require("image"))
        if not path.is_file():
            problem = "is not a regular file" if path.exists() else "does not exist"
            raise UsageError(f"image file {path} {problem}")
        return path

    def size(self) -> int:
        """The manifest size in bytes.

        Raises:
            UsageError: unset or not a non-negative integer.
        """
        value = self.require("size")
        if not value.isdigit():
            raise UsageError(f"FORTNIGHT_IMAGE_SIZE is {value!r}, expected a number of bytes")
        return int(value)

    def sha256(self) -> str:
        """The manifest sha256, lowercase hex.

        Raises:
            UsageError: unset or not 64 hex digits.
        """
        value = self.require("sha256")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise UsageError(f"FORTNIGHT_IMAGE_SHA256 is {value!r}, expected 64 hex digits")
        return value.lower()


@dataclass(frozen=True)
class Check:
    """A command: its one-line description and how it runs on the inputs."""

    description: str
    run: Callable[[Inputs], str]


CHECKS: dict[str, Check] = {
    "checksum": Check(
        "size and sha256 equal FORTNIGHT_IMAGE_SIZE and FORTNIGHT_IMAGE_SHA256",
        lambda i: check_checksum(i.image(), i.size(), i.sha256()),
    ),
    "qcow2": Check(
        "a qcow2 v2/v3 header: magic, version, cluster_bits 9..21, virtual size, tables",
        lambda i: check_qcow2(i.image()),
    ),
    "xz": Check(
        "complete xz stream(s) that decompress with every check verified, no trailing data",
        lambda i: check_xz(i.image()),
    ),
    "iso9660": Check(
        "an ISO 9660 primary volume descriptor, terminator and FORTNIGHT_IMAGE_VOLUME_ID",
        lambda i: check_iso9660(i.image(), i.get("volume_id")),
    ),
    "vagrant-box": Check(
        "a tar(.gz) with metadata.json for the type's provider and a non-empty disk",
        lambda i: check_vagrant_box(i.image(), expected_provider(i.get("type"), i.get("format"))),
    ),
    "format": Check(
        "the check for FORTNIGHT_IMAGE_FORMAT: qcow2, *.xz, iso or *.box",
        lambda i: check_format(
            i.image(),
            i.require("format"),
            image_type=i.get("type"),
            volume_id=i.get("volume_id"),
        ),
    ),
    "name": Check(
        "(advisory) the file name holds the arch and ends with the format's extension",
        lambda i: check_name(Path(i.require("image")).name, i.require("format"), i.require("arch")),
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse that raises a one-line UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"python -m {PROG}",
        description="Run one of Fortnight's built-in image checks (see --list).",
        epilog="Each option overrides the environment variable named in its help.",
    )
    parser.add_argument("check", nargs="?", help="the check to run")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    for key, field in FIELDS.items():
        parser.add_argument(
            field.option, dest=key, metavar=key.upper(), help=f"{field.help} ({field.env})"
        )
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the check named in ``argv`` and print its one line; return the exit status."""
    env = os.environ if environ is None else environ
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help, after printing it
            return int(e.code or 0)
        if args.list:
            width = max(map(len, CHECKS))
            for key, listed in CHECKS.items():
                print(f"{key:<{width}}  {listed.description}")
            return 0
        if not args.check:
            raise UsageError(f"name a check (one of {', '.join(CHECKS)}) or pass --list")
        check = CHECKS.get(args.check)
        if check is None:
            raise UsageError(f"unknown check {args.check!r} (known: {', '.join(CHECKS)})")
        values = {
            key: (opt if (opt := getattr(args, key)) is not None else env.get(field.env, ""))
            for key, field in FIELDS.items()
        }
        line = check.run(Inputs(values))
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except CheckFailed as e:
        print(e)
        return 1
    except OSError as e:  # the file vanished or could not be read: not the image's fault
        print(
            f"{PROG}: cannot read {e.filename or 'the image'}: {e.strerror or e}", file=sys.stderr
        )
        return 2
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
