"""Small, well-formed image files for demos and tests, written without external tools.

Each writer produces a real file of its format (a qcow2 that ``qemu-img check`` accepts, an
xz stream that ``xz -t`` accepts, an ISO 9660 volume that ``xorriso`` lists, a Vagrant box
that ``tar`` lists), tens or hundreds of KiB in size, and byte-for-byte the same for the
same arguments (tar and gzip headers carry a fixed time), so tests and demos reproduce.
Every writer returns the size of the file it wrote.

``write_image`` picks the writer by productmd image type.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import struct
import tarfile
from pathlib import Path
from typing import Any

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

SECTOR = 512
FIXED_MTIME = 1524614400  # 2018-04-25T00:00:00Z, the Fedora 28 GA compose date

QCOW2_MAGIC = b"QFI\xfb"
XZ_MAGIC = b"\xfd7zXZ\x00"
ISO_BLOCK = 2048
VMDK_MAGIC = b"KDMV"


def _noise(seed: str, n: int) -> bytes:
    """``n`` pseudo-random bytes, the same for the same seed on every platform."""
    return hashlib.shake_256(seed.encode()).digest(n) if n else b""


# --- qcow2 -------------------------------------------------------------------------------

_QCOW2_HEADER = struct.Struct(">4sIQIIQIIQQIIQQQQII")  # the 104-byte version 3 header


def write_qcow2(path: Path, virtual_size: int = 64 * MiB, *, cluster_bits: int = 16) -> int:
    """Write ``qcow2_bytes(virtual_size, cluster_bits=cluster_bits)`` to ``path``.

    Raises:
        ValueError: see ``qcow2_bytes``.
    """
    data = qcow2_bytes(virtual_size, cluster_bits=cluster_bits)
    path.write_bytes(data)
    return len(data)


def qcow2_bytes(virtual_size: int = 64 * MiB, *, cluster_bits: int = 16) -> bytes:
    """An empty qcow2 version 3 disk of ``virtual_size`` bytes.

    Layout, one cluster each: the header, the refcount table, one refcount block (16-bit
    refcounts) counting the file's own clusters, then the L1 table (all entries
    unallocated, so every guest sector reads as zero). With the default 64 KiB clusters
    the file is 256 KiB; ``cluster_bits=12`` makes it 16 KiB.

    Raises:
        ValueError: ``virtual_size`` is not a positive multiple of 512, or ``cluster_bits``
            is outside 9..21.
    """
    if virtual_size <= 0 or virtual_size % SECTOR:
        raise ValueError(f"virtual_size must be a positive multiple of 512, not {virtual_size}")
    if not 9 <= cluster_bits <= 21:
        raise ValueError(f"cluster_bits must be within 9..21, not {cluster_bits}")
    cluster = 1 << cluster_bits
    l2_entries = cluster // 8
    l1_size = -(-virtual_size // (cluster * l2_entries))
    l1_clusters = -(-(l1_size * 8) // cluster)
    n_clusters = 3 + l1_clusters
    refcount_table, refcount_block, l1_table = cluster, 2 * cluster, 3 * cluster
    if n_clusters > cluster // 2:  # one refcount block of 16-bit entries must cover the file
        raise ValueError(
            f"virtual_size {virtual_size} is too large for cluster_bits {cluster_bits}"
        )

    out = bytearray(n_clusters * cluster)
    out[: _QCOW2_HEADER.size] = _QCOW2_HEADER.pack(
        QCOW2_MAGIC,
        3,  # version
        0,  # backing_file_offset
        0,  # backing_file_size
        cluster_bits,
        virtual_size,
        0,  # crypt_method
        l1_size,
        l1_table,
        refcount_table,
        1,  # refcount_table_clusters
        0,  # nb_snapshots
        0,  # snapshots_offset
        0,  # incompatible_features
        0,  # compatible_features
        0,  # autoclear_features
        4,  # refcount_order: 16-bit refcounts
        _QCOW2_HEADER.size,  # header_length; zeros after it end the header extensions
    )
    struct.pack_into(">Q", out, refcount_table, refcount_block)
    for n in range(n_clusters):
        struct.pack_into(">H", out, refcount_block + 2 * n, 1)
    return bytes(out)


# --- raw disk, xz-compressed -------------------------------------------------------------


def _mbr(disk_sectors: int, start: int, seed: str) -> bytes:
    """A master boot record: pseudo-random boot code, one Linux partition, 0x55AA."""
    mbr = bytearray(_noise(seed + ":boot", 440))
    mbr += struct.pack("<I", int.from_bytes(_noise(seed + ":id", 4), "little"))  # disk id
    mbr += b"\0\0"
    count = disk_sectors - start
    # status, CHS first (unused: 0xFFFFFE), type 0x83 Linux, CHS last, LBA first, count
    mbr += struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", start, count)
    mbr += bytes(16 * 3)
    mbr += b"\x55\xaa"
    assert len(mbr) == SECTOR
    return bytes(mbr)


def write_raw_xz(
    path: Path, size: int = 4 * MiB, *, noise: int = 32 * KiB, seed: str = "fortnight"
) -> int:
    """A raw disk of ``size`` bytes, compressed as one xz stream (CRC64 check, preset 1).

    The disk holds an MBR (one Linux partition, signature 0x55AA at offset 510), then
    ``noise`` pseudo-random bytes at the partition start (so the stream is a realistic
    tens of KiB rather than a few hundred bytes), then zeros. Written in 1 MiB pieces, so
    a large ``size`` costs no memory.

    Raises:
        ValueError: ``size`` is not a multiple of 512 large enough for the MBR and noise.
    """
    sectors, rest = divmod(size, SECTOR)
    start = 2048 if sectors > 4096 else 1  # 1 MiB aligned, as parted does, when it fits
    if rest or size < (start * SECTOR) + noise or sectors <= start:
        raise ValueError(f"size must be a multiple of 512 with room for the MBR and noise: {size}")
    comp = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=1)
    written = 0
    with path.open("wb") as f:

        def put(data: bytes) -> None:
            nonlocal written
            out = comp.compress(data)
            f.write(out)
            written += len(out)

        put(_mbr(sectors, start, seed))
        put(bytes(start * SECTOR - SECTOR))
        put(_noise(seed + ":data", noise))
        remaining = size - start * SECTOR - noise
        zeros = bytes(MiB)
        while remaining:
            n = min(remaining, MiB)
            put(zeros[:n])
            remaining -= n
        tail = comp.flush()
        f.write(tail)
        written += len(tail)
    return written


# --- ISO 9660 ----------------------------------------------------------------------------


def _both16(n: int) -> bytes:
    return struct.pack("<H", n) + struct.pack(">H", n)


def _both32(n: int) -> bytes:
    return struct.pack("<I", n) + struct.pack(">I", n)


def _dir_record(extent: int, size: int, ident: bytes) -> bytes:
    """An ISO 9660 directory record for a directory (``ident`` is b"\\0" or b"\\1")."""
    # recording time: years since 1900, month, day, hour, minute, second, GMT offset
    when = bytes([118, 4, 25, 0, 0, 0, 0])
    body = (
        bytes([0])  # extended attribute record length
        + _both32(extent)
        + _both32(size)
        + when
        + bytes([0x02, 0, 0])  # flags: directory; no interleaving
        + _both16(1)  # volume sequence number
        + bytes([len(ident)])
        + ident
    )
    record = bytes([1 + len(body)]) + body
    return record + b"\0" * (len(record) % 2)


def _dec_datetime(stamp: str) -> bytes:
    """The 17-byte volume descriptor date: 16 digits and a GMT offset."""
    return stamp.encode("ascii") + b"\0"


def _pad(text: str, n: int) -> bytes:
    data = text.encode("ascii")
    if len(data) > n:
        raise ValueError(f"{text!r} is longer than {n} characters")
    return data.ljust(n, b" ")


def write_iso(path: Path, volume_id: str = "FORTNIGHT", *, system_id: str = "LINUX") -> int:
    """An ISO 9660 volume holding an empty root directory: 21 sectors, 42 KiB.

    Sectors 0-15 are the (zero) system area, 16 the primary volume descriptor, 17 the
    volume descriptor set terminator, 18 and 19 the little- and big-endian path tables,
    20 the root directory (its "." and ".." records).

    Raises:
        ValueError: ``volume_id`` is longer than 32 characters or not ASCII.
    """
    pvd_sector, term_sector, l_path, m_path, root = 16, 17, 18, 19, 20
    total = root + 1
    stamp = "2018042500000000"

    path_table_le = struct.pack("<BBIH", 1, 0, root, 1) + b"\0\0"  # root entry, padded
    path_table_be = struct.pack(">BBIH", 1, 0, root, 1) + b"\0\0"
    root_record = _dir_record(root, ISO_BLOCK, b"\0")

    pvd = bytearray(ISO_BLOCK)
    pvd[0:7] = b"\x01CD001\x01"
    pvd[8:40] = _pad(system_id, 32)
    pvd[40:72] = _pad(volume_id, 32)
    pvd[80:88] = _both32(total)
    pvd[120:124] = _both16(1)  # volume set size
    pvd[124:128] = _both16(1)  # volume sequence number
    pvd[128:132] = _both16(ISO_BLOCK)
    pvd[132:140] = _both32(len(path_table_le))
    pvd[140:144] = struct.pack("<I", l_path)
    pvd[148:152] = struct.pack(">I", m_path)
    pvd[156:190] = root_record
    pvd[190:813] = b" " * (813 - 190)  # set, publisher, preparer, application, file ids
    pvd[813:830] = _dec_datetime(stamp)  # creation
    pvd[830:847] = _dec_datetime(stamp)  # modification
    pvd[847:864] = _dec_datetime("0" * 16)  # expiration: none
    pvd[864:881] = _dec_datetime(stamp)  # effective
    pvd[881] = 1  # file structure version

    term = bytearray(ISO_BLOCK)
    term[0:7] = b"\xffCD001\x01"

    root_dir = bytearray(ISO_BLOCK)
    dot = _dir_record(root, ISO_BLOCK, b"\0")
    dotdot = _dir_record(root, ISO_BLOCK, b"\1")
    root_dir[: len(dot) + len(dotdot)] = dot + dotdot

    image = bytearray(total * ISO_BLOCK)
    for sector, block in (
        (pvd_sector, pvd),
        (term_sector, term),
        (l_path, path_table_le),
        (m_path, path_table_be),
        (root, root_dir),
    ):
        image[sector * ISO_BLOCK : sector * ISO_BLOCK + len(block)] = block
    path.write_bytes(image)
    return len(image)


# --- Vagrant boxes -----------------------------------------------------------------------

_VMDK_HEADER = struct.Struct("<4sIIQQQQIQQQBccccH433s")  # the 512-byte sparse extent header


def _vmdk_descriptor(name: str, sectors: int) -> bytes:
    """The embedded text descriptor of a monolithicSparse VMDK of ``sectors`` sectors."""
    cylinders = min(sectors // (16 * 63), 16383)
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        "CID=fffffffe\n"
        "parentCID=ffffffff\n"
        'createType="monolithicSparse"\n'
        "\n"
        "# Extent description\n"
        f'RW {sectors} SPARSE "{name}"\n'
        "\n"
        "# The Disk Data Base\n"
        "#DDB\n"
        "\n"
        'ddb.virtualHWVersion = "4"\n'
        f'ddb.geometry.cylinders = "{cylinders}"\n'
        'ddb.geometry.heads = "16"\n'
        'ddb.geometry.sectors = "63"\n'
        'ddb.adapterType = "ide"\n'
    ).encode("ascii")


def vmdk_sparse(name: str, capacity: int = 64 * MiB) -> bytes:
    """An empty monolithicSparse VMDK (``KDMV`` header, embedded descriptor, grain tables).

    Raises:
        ValueError: ``capacity`` is not a positive multiple of 64 KiB.
    """
    grain = 128  # sectors (64 KiB)
    per_gt = 512  # grain table entries
    if capacity <= 0 or capacity % (grain * SECTOR):
        raise ValueError(f"capacity must be a positive multiple of 64 KiB, not {capacity}")
    sectors = capacity // SECTOR
    n_gt = -(-sectors // (grain * per_gt))
    gt_sectors = per_gt * 4 // SECTOR
    gd_sectors = -(-(n_gt * 4) // SECTOR)
    desc_offset, desc_size = 1, 20
    rgd = desc_offset + desc_size
    rgt = rgd + gd_sectors
    gd = rgt + n_gt * gt_sectors
    gt = gd + gd_sectors
    overhead = -(-(gt + n_gt * gt_sectors) // grain) * grain

    descriptor = _vmdk_descriptor(name, sectors)
    out = bytearray(overhead * SECTOR)
    out[:SECTOR] = _VMDK_HEADER.pack(
        VMDK_MAGIC,
        1,  # version
        0x3,  # flags: valid newline detection, redundant grain table
        sectors,  # capacity
        grain,
        desc_offset,
        desc_size,
        per_gt,
        rgd,
        gd,
        overhead,
        0,  # unclean shutdown
        b"\n",
        b" ",
        b"\r",
        b"\n",
        0,  # no compression
        b"",
    )
    out[desc_offset * SECTOR : desc_offset * SECTOR + len(descriptor)] = descriptor
    for dir_start, tables in ((rgd, rgt), (gd, gt)):
        for n in range(n_gt):
            struct.pack_into("<I", out, dir_start * SECTOR + 4 * n, tables + n * gt_sectors)
    return bytes(out)


_OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
    xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:id="file1" ovf:href="{disk}"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="{capacity}" ovf:diskId="vmdisk1" ovf:fileRef="file1"
        ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#sparse"/>
  </DiskSection>
  <VirtualSystem ovf:id="fortnight-sample">
    <Info>A virtual machine</Info>
    <OperatingSystemSection ovf:id="80">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <Item>
        <rasd:Caption>cpu</rasd:Caption>
        <rasd:ElementName>1 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
        <rasd:Caption>1024 MB of memory</rasd:Caption>
        <rasd:ElementName>Memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>1024</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""

_VAGRANTFILE = {
    "libvirt": """Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "kvm"
  end
end
""",
    "virtualbox": """Vagrant.configure("2") do |config|
  config.vm.base_mac = "525400FE0001"
end
""",
}


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def write_vagrant_box(
    path: Path, provider: str = "libvirt", *, virtual_size: int = 64 * MiB
) -> int:
    """A gzip-compressed tar Vagrant box for ``provider`` ``libvirt`` or ``virtualbox``.

    libvirt: ``metadata.json`` (provider, format qcow2, virtual_size in GiB), ``Vagrantfile``
    and ``box.img`` (from ``write_qcow2``). virtualbox: ``metadata.json`` (provider),
    ``Vagrantfile``, ``box.ovf`` and ``box-disk1.vmdk`` (from ``vmdk_sparse``).

    Raises:
        ValueError: an unknown provider, or a ``virtual_size`` the disk writers refuse.
    """
    members: list[tuple[str, bytes]]
    if provider == "libvirt":
        img = qcow2_bytes(virtual_size)
        meta = {"provider": "libvirt", "format": "qcow2", "virtual_size": -(-virtual_size // GiB)}
        members = [("box.img", img)]
    elif provider == "virtualbox":
        meta = {"provider": "virtualbox"}
        vmdk = "box-disk1.vmdk"
        ovf = _OVF.format(disk=vmdk, capacity=virtual_size)
        members = [("box.ovf", ovf.encode()), (vmdk, vmdk_sparse(vmdk, virtual_size))]
    else:
        raise ValueError(f"unknown Vagrant provider {provider!r} (known: libvirt, virtualbox)")
    members = [
        ("metadata.json", (json.dumps(meta, sort_keys=True) + "\n").encode()),
        ("Vagrantfile", _VAGRANTFILE[provider].encode()),
        *members,
    ]
    with (
        path.open("wb") as f,
        gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=FIXED_MTIME) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, data in members:
            _tar_member(tar, name, data)
    return path.stat().st_size


# --- by productmd type -------------------------------------------------------------------

ISO_TYPES = frozenset({"dvd-ostree", "boot", "cd", "dvd", "live", "netinst"})


def write_image(path: Path, image_type: str, **kw: Any) -> int:
    """Write a sample image for productmd ``image_type``; ``kw`` goes to the writer.

    ``qcow2`` → ``write_qcow2``; ``raw-xz`` → ``write_raw_xz``; ``vagrant-libvirt`` and
    ``vagrant-virtualbox`` → ``write_vagrant_box``; ``dvd-ostree``, ``boot``, ``dvd``,
    ``cd``, ``live``, ``netinst`` → ``write_iso``.

    Raises:
        ValueError: no writer for ``image_type``, or the writer refused ``kw``.
    """
    if image_type == "qcow2":
        return write_qcow2(path, **kw)
    if image_type == "raw-xz":
        return write_raw_xz(path, **kw)
    if image_type in ("vagrant-libvirt", "vagrant-virtualbox"):
        return write_vagrant_box(path, image_type.removeprefix("vagrant-"), **kw)
    if image_type in ISO_TYPES:
        return write_iso(path, **kw)
    known = ", ".join(
        ["qcow2", "raw-xz", "vagrant-libvirt", "vagrant-virtualbox", *sorted(ISO_TYPES)]
    )
    raise ValueError(f"no sample writer for image type {image_type!r} (known: {known})")


# --- whole composes --------------------------------------------------------------------------

#: The bundled Fedora 28 GA metadata, as Pungi wrote it (the template of sample composes).
F28_METADATA = Path(__file__).parent / "data" / "fedora-28" / "compose" / "metadata"


def _write_sample(
    compose_dir: Path,
    img: dict[str, Any],
    arch: str,
    label: str,
    *,
    broken: frozenset[tuple[str, str]],
    odd_name: frozenset[tuple[str, str]],
) -> None:
    """Write one image of :func:`write_compose_tree` and set its path, size and sha256."""
    rel = Path(img["path"])
    name = rel.name.replace("28-1.1", label)
    if (arch, img["type"]) in odd_name:
        name = name.replace(f".{arch}", "")
    img["path"] = str(rel.with_name(name))
    path = compose_dir / img["path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, img["type"])
    if (arch, img["type"]) in broken:
        with path.open("r+b") as f:
            f.write(b"\0" * 16)  # no magic: not a file of its format any more
    data = path.read_bytes()
    img["size"] = len(data)
    img["checksums"] = {"sha256": hashlib.sha256(data).hexdigest()}


def write_compose_tree(
    root: Path,
    compose_id: str,
    *,
    version: str = "28",
    arches: tuple[str, ...] = ("x86_64", "aarch64"),
    variant: str = "AtomicHost",
    broken: frozenset[tuple[str, str]] = frozenset(),
    odd_name: frozenset[tuple[str, str]] = frozenset(),
) -> Path:
    """Write a Pungi compose at ``root`` (``root/compose/metadata/*.json`` and image files).

    The metadata is the real Fedora 28 GA ``composeinfo.json`` and ``images.json``, renamed
    to ``compose_id`` (``Fedora-Atomic-28-20180515.1``: date, type and respin follow) and
    release ``version``, keeping the ``variant`` images of ``arches``. Image files are
    named by the compose date (``Fedora-AtomicHost-28-20180515.1.x86_64.qcow2``) and
    written by :func:`write_image`, so they are small and well-formed; the metadata holds
    their real sizes and sha256. ``broken`` (arch, type) images get a damaged header (their
    checksums still match: a format check fails, the checksum check passes); ``odd_name``
    images lose the arch from their file name (the advisory name check fails).

    Returns the compose folder (``root/compose``).
    """
    from productmd.composeinfo import get_date_type_respin  # noqa: PLC0415 - heavy import

    info = json.loads((F28_METADATA / "composeinfo.json").read_text())
    images = json.loads((F28_METADATA / "images.json").read_text())
    date, compose_type, respin = get_date_type_respin(compose_id)
    for doc in (info, images):
        doc["payload"]["compose"].update(id=compose_id, date=date, type=compose_type, respin=respin)
    info["payload"]["compose"]["label"] = None
    info["payload"]["compose"]["final"] = False
    info["payload"]["release"]["version"] = version
    kept = {
        arch: imgs for arch, imgs in images["payload"]["images"][variant].items() if arch in arches
    }
    images["payload"]["images"] = {variant: kept}
    info["payload"]["variants"] = {
        variant: {**info["payload"]["variants"][variant], "arches": sorted(kept)}
    }
    compose_dir = root / "compose"
    label = f"{version}-{date}.{respin}"
    for arch, imgs in kept.items():
        for img in imgs:
            _write_sample(compose_dir, img, arch, label, broken=broken, odd_name=odd_name)
    meta = compose_dir / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "composeinfo.json").write_text(json.dumps(info, indent=4, sort_keys=True))
    (meta / "images.json").write_text(json.dumps(images, indent=4, sort_keys=True))
    return compose_dir
