"""The install-media checks: ISO 9660 volume, Vagrant box."""

from __future__ import annotations

import gzip
import json
import posixpath
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pipeline.checks.common import CHUNK, CheckFailed
from pipeline.checks.disk import qcow2_header

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
