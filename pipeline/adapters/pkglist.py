"""An rpm-ostree commit's package list, from the GVariant text ``ostree show`` prints.

rpm-ostree composes store the commit's rpms in the metadata key ``rpmostree.rpmdb.pkglist``,
a GVariant of type ``a(stsss)``: name, epoch, version, release, arch per rpm. ``ostree show
--print-metadata-key=rpmostree.rpmdb.pkglist COMMIT`` prints it as GVariant text::

    [('bash', uint64 0, '4.4.19', '1.fc28', 'x86_64'), ('kernel', 0, '4.16.3', ...)]

:func:`parse_pkglist` reads exactly that shape and nothing else (type annotations such as
``@a(stsss)`` and ``uint64`` are allowed and ignored), with bounds on the text's size and the
number of rpms, and returns each rpm as productmd's NEVRA, ``name-epoch:version-release.arch``.
Pure: text in, NEVRAs out; the caller names the commit in its error. :func:`format_pkglist`
writes the same text (``ostree commit --add-metadata=rpmostree.rpmdb.pkglist=TEXT``).

``ostree show`` prints a commit's metadata byte-swapped on a little-endian machine (OSTree's
objects are big-endian; metadata added in host order reads back swapped), so an epoch
printed above 2**32 - 1 (rpm's epochs are 32-bit) is read as its 64-bit byte swap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: The most text a package list may print (a Fedora Atomic Host commit's ~450 rpms print
#: about 30 KB); also the cap on the commit object's size before it is shown.
MAX_PKGLIST_CHARS = 4 * 1024 * 1024
#: The most rpms one commit may list.
MAX_PKGLIST_RPMS = 50_000
#: The metadata key rpm-ostree stores the package list under.
PKGLIST_KEY = "rpmostree.rpmdb.pkglist"

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<annot>@[a-z(){}*?&^]+|(?:u?int(?:16|32|64)|byte)(?=\s))
      | (?P<punct>[\[\](),])
      | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<num>[0-9]{1,20})(?![0-9A-Za-z])
    )""",
    re.X | re.S,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_UNICODE_ESCAPE = re.compile(r"u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}")
#: What each field of an rpm may hold (rpm's own names, versions and arches).
_FIELD = {
    "name": re.compile(r"^[A-Za-z0-9_.+-]{1,200}$"),
    "version": re.compile(r"^[A-Za-z0-9_.+~^]{1,100}$"),
    "release": re.compile(r"^[A-Za-z0-9_.+~^]{1,100}$"),
    "arch": re.compile(r"^[A-Za-z0-9_]{1,32}$"),
}
_EPOCH_MAX = 2**32 - 1
#: The tokens of one rpm: ``(name, epoch, version, release, arch)``.
_SHAPE = ("(", "str", ",", "num", ",", "str", ",", "str", ",", "str", ")")

Token = tuple[str, str, int]  # (kind, text, position)


class PkglistError(ValueError):
    """The text is not an ``a(stsss)`` package list; the message says where and why."""


def _unquote(text: str, pos: int) -> str:
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif m := _UNICODE_ESCAPE.match(body, i + 1):
            out.append(chr(int(m.group()[1:], 16)))
            i += 1 + len(m.group())
        else:
            raise PkglistError(f"unknown escape \\{nxt} in a string at character {pos}")
    return "".join(out)


def _tokens(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            snippet = text[pos : pos + 20].strip()
            raise PkglistError(f"unexpected {snippet!r} at character {pos}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


def _epoch(text: str, pos: int) -> int:
    value = int(text)
    if value <= _EPOCH_MAX:
        return value
    swapped = int.from_bytes(value.to_bytes(8, "little"), "big") if value < 2**64 else value
    if swapped > _EPOCH_MAX:
        raise PkglistError(f"epoch {text} at character {pos} is not a 32-bit number")
    return swapped


def _rpm(tokens: list[Token], i: int, first: bool) -> tuple[str, int]:
    """The NEVRA of the tuple starting at ``tokens[i]``, and the index after it.

    GVariant text types the first tuple's epoch (``uint64 0``); without it the list would
    be of another type (numbers default to ``int32``), so it must be there.
    """
    epoch = tokens[i + 3] if len(tokens) > i + 3 else None
    skip = int(epoch is not None and epoch[:2] == ("annot", "uint64"))
    if first and not skip and epoch is not None:
        raise PkglistError(
            f"the list is not of type a(stsss) (no 'uint64' epoch at character {epoch[2]})"
        )
    shape = _SHAPE
    got = tokens[i : i + 3] + tokens[i + 3 + skip : i + len(shape) + skip]
    for want, (kind, text, pos) in zip(shape, got, strict=False):
        if want != (text if kind == "punct" else kind):
            raise PkglistError(
                f"expected an rpm (name, epoch, version, release, arch) at character {pos}"
            )
    if len(got) < len(shape):
        raise PkglistError("the list ends inside an rpm")
    name, version, release, arch = (_unquote(t, p) for _, t, p in (got[1], got[5], got[7], got[9]))
    number = _epoch(got[3][1], got[3][2])
    fields = {"name": name, "version": version, "release": release, "arch": arch}
    for field, value in fields.items():
        if not _FIELD[field].match(value):
            raise PkglistError(f"rpm {name[:60]!r}: {field} {value[:60]!r} is not an rpm {field}")
    return f"{name}-{number}:{version}-{release}.{arch}", i + len(shape) + skip


def parse_pkglist(text: str) -> list[str]:
    """The NEVRAs of ``text``, the GVariant text of an ``a(stsss)`` package list, sorted.

    Raises:
        PkglistError: the text is too large, lists too many rpms, is not of that shape,
            or an rpm's field is not what rpm allows (the message says where).
    """
    if len(text) > MAX_PKGLIST_CHARS:
        raise PkglistError(f"larger than the {MAX_PKGLIST_CHARS} character limit")
    tokens = _tokens(text)
    if tokens and tokens[0][0] == "annot":
        if tokens[0][1] != "@a(stsss)":
            raise PkglistError(f"the list is of type {tokens[0][1][1:]}, not a(stsss)")
        tokens = tokens[1:]
    if not tokens or tokens[0][1] != "[":
        raise PkglistError("not a list of rpms (expected '[' at character 0)")
    out: list[str] = []
    i = 1
    while i < len(tokens) and tokens[i][1] != "]":
        if out:
            if tokens[i][1] != ",":
                raise PkglistError(f"expected ',' or ']' at character {tokens[i][2]}")
            i += 1
        nevra, i = _rpm(tokens, i, first=not out)
        out.append(nevra)
        if len(out) > MAX_PKGLIST_RPMS:
            raise PkglistError(f"more than {MAX_PKGLIST_RPMS} rpms")
    if i != len(tokens) - 1:
        raise PkglistError("the list is not closed, or text follows it")
    if len(set(out)) != len(out):
        raise PkglistError("an rpm is listed twice")
    return sorted(out)


def format_pkglist(rpms: Sequence[tuple[str, int, str, str, str]]) -> str:
    """GVariant text of type ``a(stsss)`` for ``rpms`` (name, epoch, version, release,
    arch), as ``ostree show`` prints it and ``ostree commit --add-metadata`` reads it."""

    def quote(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    items = [
        f"({quote(n)}, {'uint64 ' if i == 0 else ''}{e}, {quote(v)}, {quote(r)}, {quote(a)})"
        for i, (n, e, v, r, a) in enumerate(rpms)
    ]
    return f"[{', '.join(items)}]" if items else "@a(stsss) []"
