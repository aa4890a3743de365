"""The segment format: what it writes reads back, and a damaged segment reads as none."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from typing import Any

import pytest

from pipeline.log import segments
from pipeline.log.segments import FORMAT, MAGIC, Entries, decode_segment, encode_segment
from tests.conftest import compose_on

FINGERPRINT = "f" * 64


def with_header(body: bytes, fingerprint: str = FINGERPRINT) -> bytes:
    """A segment holding ``body`` under a header that vouches for it (length, digest)."""
    header = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + body


class WrongArguments:
    """Pickles as a call of the rebuild function with too few arguments."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (segments._rebuild, (1,))


def test_a_segment_reads_back_what_was_written() -> None:
    compose = compose_on(14)
    entries: Entries = {f"atomic-host/{compose.relpath()}": ("0" * 40, compose)}
    assert decode_segment(FINGERPRINT, encode_segment(FINGERPRINT, entries)) == entries
    assert decode_segment("0" * 64, encode_segment(FINGERPRINT, entries)) is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(pickle.dumps({"a/b.json": ("x", "y")})[:-3], id="truncated-UnpicklingError"),
        pytest.param(b"", id="empty-EOFError"),
        pytest.param(b"\x80\x05\x8c\x02\xff\xfe\x94.", id="bad-utf8-UnicodeDecodeError"),
        pytest.param(pickle.dumps(WrongArguments()), id="wrong-arguments-TypeError"),
        pytest.param(b"\x80\x05\x8e" + struct.pack("<Q", 2**62) + b"x", id="huge-MemoryError"),
        pytest.param(b"\x80\x05h\x07.", id="bad-memo-UnpicklingError"),
        pytest.param(pickle.dumps(["a/b.json"]), id="not-a-mapping"),
    ],
)
def test_a_damaged_body_under_a_sound_header_reads_as_no_segment(body: bytes) -> None:
    assert decode_segment(FINGERPRINT, with_header(body)) is None
