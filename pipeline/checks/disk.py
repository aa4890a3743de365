"""The disk-image checks: checksum (size and sha256), qcow2 header, xz stream."""

from __future__ import annotations

import lzma
import struct
from pathlib import Path

from pipeline.checks.common import CHUNK, CheckFailed

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
