"""Redaction of test output: secrets of the runner's environment and key material.

Test commands run code from elsewhere, and their output is recorded in signed manifests,
git, the log store and the published site. Before any of it is recorded, the values of
the runner's secret-looking variables, PEM private-key blocks and the bytes of the signing
key files are replaced by ``[redacted]``. Pure: the key files' bytes are read by the caller.

This is a safety net against a test that prints a token by accident; a hostile test is
stopped by the allowlisted environment and the sandbox, not by redaction.
"""

from __future__ import annotations

import base64
import re
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

REDACTED = "[redacted]"
#: A variable whose name matches this (any case) holds a secret.
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH|API|PRIVATE", re.I)
#: Values shorter than this are not redacted (``1``, ``true``, ``yes`` would hit everywhere).
MIN_SECRET = 6
#: Key material shorter than this (a PEM file's short last line) is not redacted alone.
MIN_KEY_PART = 12
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")


def secret_values(env: Mapping[str, str]) -> set[str]:
    """The values of ``env``'s secret-looking variables, each line of a multi-line one apart."""
    found = set()
    for name, value in env.items():
        if SECRET_NAME.search(name):
            found |= {p.strip() for p in value.splitlines() if len(p.strip()) >= MIN_SECRET}
    return found


def key_material(data: bytes) -> set[str]:
    """The strings by which a key file's bytes could show in a log: its lines (a PEM body),
    the body joined, and the whole file in base64 (plain and wrapped as ``base64`` does) and hex.
    """
    text = data.decode("utf-8", errors="surrogateescape")
    lines = [line.strip() for line in text.splitlines()]
    body = [line for line in lines if line and not line.startswith("-----")]
    b64 = base64.b64encode(data).decode("ascii")
    parts = {*body, "".join(body), b64, *textwrap.wrap(b64, 76), data.hex()}
    return {p for p in parts if len(p) >= MIN_KEY_PART}


@dataclass(frozen=True)
class Redactor:
    """Replaces secrets and private-key blocks in text by ``[redacted]``."""

    secrets: frozenset[str]

    @classmethod
    def of(cls, env: Mapping[str, str], key_files: Iterable[bytes] = ()) -> Redactor:
        """Redact ``env``'s secret-looking values and the material of ``key_files``' bytes."""
        found = secret_values(env)
        for data in key_files:
            found |= key_material(data)
        return cls(frozenset(found))

    def _pattern(self) -> re.Pattern[str] | None:
        if not self.secrets:
            return None
        ordered = sorted(self.secrets, key=lambda s: (-len(s), s))  # longest match wins
        return re.compile("|".join(re.escape(s) for s in ordered))

    def lines(self, lines: Iterable[str]) -> Iterator[str]:
        """Redact lines (kept with their line ends) as they stream by; a PEM private-key
        block is one ``[redacted]`` from its BEGIN to its END line (to the end if cut off)."""
        pattern = self._pattern()
        in_block = False
        for line in lines:
            out = ""
            rest = line
            while rest:
                if in_block:
                    end = _PEM_END.search(rest)
                    if end is None:  # inside the block: only its first line's end is kept
                        rest = "\n" if out and rest.endswith("\n") else ""
                        break
                    in_block, rest = False, rest[end.end() :]
                    if not out and not rest.strip("\r\n"):
                        rest = ""  # the END line: gone with the block
                    continue
                begin = _PEM_BEGIN.search(rest)
                if begin is None:
                    break
                out += _sub(pattern, rest[: begin.start()]) + REDACTED
                in_block, rest = True, rest[begin.end() :]
            if out or rest:
                yield out + _sub(pattern, rest)

    def apply(self, text: str) -> str:
        """``text`` with every secret and private-key block replaced by ``[redacted]``."""
        return "".join(self.lines(text.splitlines(keepends=True)))

    def apply_bytes(self, data: bytes) -> bytes:
        """:meth:`apply` on bytes; bytes that are not UTF-8 pass through unchanged."""
        text = data.decode("utf-8", errors="surrogateescape")
        return self.apply(text).encode("utf-8", errors="surrogateescape")


def _sub(pattern: re.Pattern[str] | None, text: str) -> str:
    return text if pattern is None or not text else pattern.sub(REDACTED, text)
