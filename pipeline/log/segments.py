"""The segment file format of the verification cache: magic, JSON header, pickled models.

A segment is a magic line, a JSON header (format, the fingerprint, the body's length and
sha256) and a pickle of ``{path: (blob id, model)}``. The pickler writes models compactly
(class, field values, set fields) and shares equal strings and hashable sub-models. The
unpickler only resolves model classes of :mod:`pipeline.core.models`,
:class:`datetime.datetime` and :func:`_rebuild`, so a corrupt file cannot run code through
pickle; a segment that is not sound in any way decodes to None (see :data:`DAMAGED`).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import pickle
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from pipeline.core.models import common, manifests
from pipeline.core.models.common import Manifest

#: Bump when the layout or the pickled form changes.
FORMAT = 2
MAGIC = b"fortnight-verify-cache\n"

Entries = dict[str, tuple[str, Manifest]]

#: What unpickling damaged bytes raises (the C unpickler, fed truncated and altered
#: segments): bad opcodes and memo references, a body cut short, undecodable strings,
#: wrong arguments to a class or to :func:`_rebuild`, a length field too large to
#: allocate. The header's digest makes these rare: a segment written by another build
#: or by hand. Such a segment is a missing segment.
DAMAGED = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,  # UnicodeDecodeError too
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    MemoryError,
)


_new = object.__new__
_setattr = object.__setattr__


def _rebuild(cls: type[BaseModel], values: dict[str, Any], fields_set: set[str]) -> BaseModel:
    """A validated model, restored from a cache written right after it was validated."""
    model = _new(cls)
    _setattr(model, "__dict__", values)
    _setattr(model, "__pydantic_fields_set__", fields_set)
    _setattr(model, "__pydantic_extra__", None)
    _setattr(model, "__pydantic_private__", None)
    return model


#: The modules whose model classes may be cached (pickled and unpickled), by name.
MODEL_MODULES = {m.__name__: m for m in (common, manifests)}


class _Pickler(pickle.Pickler):
    """Pickles models compactly: class, field values, set fields (no per-model state dict).

    Equal strings and equal hashable sub-models (an image reference repeated in every test
    case, the same base release in every compose) are written once and shared when read
    back: frozen models can be shared, and a load builds far fewer objects.
    """

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._fields_sets: dict[frozenset[str], set[str]] = {}
        self._shared: dict[Any, Any] = {}
        #: Per type: None (not a model), False (a model that cannot be hashed), True.
        self._kinds: dict[type, bool | None] = {}

    def _kind(self, cls: type) -> bool | None:
        kind = self._kinds.get(cls, ...)
        if kind is ...:
            if not issubclass(cls, BaseModel):
                kind = None
            elif cls.__module__ not in MODEL_MODULES:
                raise pickle.PicklingError(f"cannot cache {cls.__qualname__}")
            else:
                kind = True
            self._kinds[cls] = kind
        return kind

    def _share(self, value: Any) -> Any:
        cls = type(value)
        if cls is str:
            return self._shared.setdefault(value, value)
        if cls is list:
            return [self._share(v) for v in value]
        if self._kind(cls):
            try:
                return self._shared.setdefault(value, value)
            except TypeError:  # it holds a list: never hashable, stop trying for its class
                self._kinds[cls] = False
        return value

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if self._kind(cls) is None:
            return NotImplemented
        if obj.__pydantic_extra__:
            raise pickle.PicklingError(f"cannot cache {cls.__qualname__} with extra fields")
        key = frozenset(obj.model_fields_set)
        fields_set = self._fields_sets.setdefault(key, set(key))
        shared = self._shared
        values = {}
        for name, value in obj.__dict__.items():
            vcls = type(value)
            if vcls is str:
                values[name] = shared.setdefault(value, value)
            elif vcls is list or self._kinds.get(vcls) or vcls not in self._kinds:
                values[name] = self._share(value)
            else:
                values[name] = value
        return _rebuild, (cls, values, fields_set)


class _Unpickler(pickle.Unpickler):
    """Resolves only model classes, datetimes and :func:`_rebuild`: nothing else runs."""

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "_rebuild":
            return _rebuild
        if module == "datetime" and name in ("datetime", "timezone", "timedelta"):
            return super().find_class(module, name)
        if module in MODEL_MODULES:
            found = getattr(MODEL_MODULES[module], name, None)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def encode_segment(fingerprint: str, entries: Entries) -> bytes:
    """A segment file's bytes: magic, JSON header, pickled entries."""
    buf = io.BytesIO()
    _Pickler(buf).dump(entries)
    body = buf.getvalue()
    header = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + body


def decode_segment(fingerprint: str, data: bytes) -> Entries | None:
    """The entries of a segment, or None if it is not a sound segment of ``fingerprint``."""
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        header = json.loads(data[len(MAGIC) : end])
    except ValueError:
        return None
    body = memoryview(data)[end + 1 :]
    if (
        not isinstance(header, dict)
        or header.get("format") != FORMAT
        or header.get("fingerprint") != fingerprint
        or header.get("length") != len(body)
        or header.get("sha256") != hashlib.sha256(body).hexdigest()
    ):
        return None
    try:
        with gc_paused():
            entries = _Unpickler(io.BytesIO(body)).load()
    except DAMAGED:  # a corrupt segment is a missing segment
        return None
    return entries if isinstance(entries, dict) else None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cycle collector: building many long-lived objects (a log's worth of
    models) is several times faster when it does not rescan them at every threshold."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


__all__ = [
    "DAMAGED",
    "FORMAT",
    "MAGIC",
    "Entries",
    "decode_segment",
    "encode_segment",
    "gc_paused",
]
