"""Strict JSON: one reading of a signed file's bytes, or the reason there is none.

Python's :mod:`json` accepts more than RFC 8259 allows a signed document to mean: a
duplicate object key (the last one wins, while another reader may take the first),
``NaN`` and ``Infinity``, lone surrogate escapes (``"\\ud800"``, which no UTF-8 encoder
can write back), a byte order mark, and nesting as deep as the interpreter's stack. A
signed file read here has exactly one meaning, so the object whose signature is checked
is the object that is then validated and used.

The common case stays fast: the parse builds plain dicts in C and notices a duplicate by
size; the document is walked (to name the place of a problem) only when the text holds
a surrogate escape, enough brackets to nest too deeply, or a duplicate was found.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

#: The deepest nesting of objects and arrays accepted (a manifest needs about five).
MAX_DEPTH = 100

BOM = b"\xef\xbb\xbf"

# Where a lone surrogate can come from: strictly decoded UTF-8 holds none, so only an
# escape can make one. A match only means "walk to be sure" (it may be a paired one).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StrictJSONError(ValueError):
    """The bytes are not strict JSON; ``reason`` says what and where (one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Duplicate(Exception):
    pass


class _Pairs(list[tuple[str, Any]]):
    """An object as parsed, its members in order, duplicates kept (slow path only)."""


def loads_strict_json(raw: bytes) -> Any:
    """Parse ``raw`` as strict JSON (UTF-8, no BOM, unique keys, finite numbers, no lone
    surrogates, at most :data:`MAX_DEPTH` levels).

    Raises:
        StrictJSONError: the first problem found, e.g. ``duplicate key "signed" at $``.
    """
    if raw.startswith(BOM):
        raise StrictJSONError("starts with a UTF-8 byte order mark (BOM)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StrictJSONError(f"not UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start}") from None
    try:
        doc = _parse(text, _unique_object)
    except _Duplicate:
        _check_tree(_parse(text, _Pairs), surrogates=True)  # finds and names the duplicate
        raise AssertionError("a duplicate key that the check did not find") from None
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if surrogates or text.count("{") + text.count("[") > MAX_DEPTH:
        _check_tree(doc, surrogates=surrogates)
    return doc


def _parse(text: str, hook: Any) -> Any:
    try:
        return json.loads(
            text, object_pairs_hook=hook, parse_constant=_constant, parse_float=_finite
        )
    except StrictJSONError:
        raise
    except json.JSONDecodeError as e:
        raise StrictJSONError(f"{e.msg}: line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise StrictJSONError(f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:  # an integer too long to convert
        raise StrictJSONError(str(e).split(";")[0]) from None


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Duplicate
    return obj


def _constant(name: str) -> NoReturn:
    raise StrictJSONError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError(f"number {text[:40]} is out of range")
    return value


class _Problem(Exception):
    """What is wrong; ``path`` collects the members, innermost first, while unwinding."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.path: list[str | int] = []

    def reason(self) -> str:
        path = "$"
        for part in reversed(self.path):
            path = f"{path}[{part}]" if isinstance(part, int) else member_path(path, part)
        if len(path) > 80:  # as deep as it gets: the ends say where
            path = f"{path[:40]}...{path[-30:]}"
        return self.what.format(path=path)


def _check_tree(doc: Any, *, surrogates: bool) -> None:
    try:
        _check(doc, 1, surrogates)
    except _Problem as p:
        raise StrictJSONError(p.reason()) from None


def _check(node: Any, depth: int, surrogates: bool) -> None:
    """Check a tree of dicts, lists and :class:`_Pairs`; raise :class:`_Problem`."""
    kind = type(node)
    if kind is str:
        if surrogates and not _encodable(node):
            raise _Problem("lone surrogate in the string at {path}")
        return
    if kind is _Pairs:
        _check_members(node, depth, surrogates)
        return
    if kind is not dict and kind is not list:
        return
    if depth > MAX_DEPTH:
        raise _Problem(f"nested more than {MAX_DEPTH} levels deep at {{path}}")
    if kind is dict:
        _check_members(list(node.items()), depth, surrogates)
        return
    for index, value in enumerate(node):
        try:
            _check(value, depth + 1, surrogates)
        except _Problem as p:
            p.path.append(index)
            raise


def _check_members(pairs: list[tuple[str, Any]], depth: int, surrogates: bool) -> None:
    if depth > MAX_DEPTH:
        raise _Problem(f"nested more than {MAX_DEPTH} levels deep at {{path}}")
    seen: set[str] = set()
    for key, value in pairs:
        if surrogates and not _encodable(key):
            raise _Problem(f"lone surrogate in the key {_quote(key)} of the object at {{path}}")
        if key in seen:
            raise _Problem(f"duplicate key {_quote(key)} in the object at {{path}}")
        seen.add(key)
        try:
            _check(value, depth + 1, surrogates)
        except _Problem as p:
            p.path.append(key)
            raise


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _quote(text: str) -> str:
    """``text`` as a JSON string in ASCII: printable whatever it holds."""
    shown = json.dumps(text)
    return shown if len(shown) <= 60 else shown[:56] + '..."'


def member_path(path: str, key: str) -> str:
    """The JSONPath of member ``key`` of the object at ``path``: ``$.signed``, ``$["a b"]``."""
    return f"{path}.{key}" if _NAME.match(key) else f"{path}[{_quote(key)}]"


__all__ = ["BOM", "MAX_DEPTH", "StrictJSONError", "loads_strict_json", "member_path"]
