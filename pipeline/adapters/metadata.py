"""productmd's ``images.json``, read strictly and in time linear in its size.

productmd's own loader (``Images.deserialize``) is quadratic: ``Images.add`` compares each
new image with every image added before it (4,000 images take 34 s), and each
``Image.deserialize`` coerces (``int("123")``, ``int(1.5)``) and validates through ``dir()``
(about 40 µs an image, ten times ``json.loads``). Here the images are checked by a strict
pydantic schema of productmd's image format (no coercion), unique identities are found with
one dictionary, and the result is productmd's own :class:`~productmd.images.Images` holding
productmd :class:`~productmd.images.Image` objects, so the rest of Fortnight reads them as
before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any, NotRequired

import productmd.common
import productmd.images
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from pipeline.errors import InputError
from pipeline.log.segments import gc_paused
from pipeline.log.strictjson import member_path

#: The default cap on one metadata file (``images.json``, ``composeinfo.json``).
DEFAULT_MAX_METADATA_BYTES = 64 * 1024 * 1024
#: The largest size or mtime accepted (a signed 64-bit integer).
MAX_INT = 2**63 - 1

_TYPES = frozenset(productmd.images.SUPPORTED_IMAGE_TYPES)
_FORMATS = frozenset(productmd.images.SUPPORTED_IMAGE_FORMATS)
_ARCHES = frozenset(productmd.common.RPM_ARCHES) - {"src", "nosrc"}
# Only an escape can make a lone surrogate in strictly decoded UTF-8 (see strictjson).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")

NonBlank = Annotated[str, Field(min_length=1)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]


class ImageFields(TypedDict):
    """One image of ``images.json`` (productmd 1.0-1.2), strictly typed: what
    ``productmd.images.Image`` validates, without its coercions."""

    __pydantic_config__ = ConfigDict(strict=True, extra="ignore")  # type: ignore[misc]

    path: NonBlank
    mtime: Count
    size: Annotated[int, Field(gt=0, le=MAX_INT)]
    volume_id: NonBlank | None
    type: str
    format: NotRequired[str]
    arch: NonBlank
    disc_number: Count
    disc_count: Count
    checksums: Annotated[dict[str, str], Field(min_length=1)]
    implant_md5: Annotated[str, Field(pattern=r"^[a-z0-9]{32}$")] | None
    bootable: bool
    subvariant: NotRequired[str]
    unified: NotRequired[bool]
    additional_variants: NotRequired[list[str]]


ImagesPayload = dict[str, dict[str, list[ImageFields]]]
_IMAGES: TypeAdapter[ImagesPayload] = TypeAdapter(ImagesPayload)


class _Payload(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="ignore")  # type: ignore[misc]

    compose: dict[str, Any]
    images: ImagesPayload


class _Document(TypedDict):
    __pydantic_config__ = ConfigDict(strict=True, extra="ignore")  # type: ignore[misc]

    header: dict[str, Any]
    payload: _Payload


_DOCUMENT: TypeAdapter[_Document] = TypeAdapter(_Document)

SUPPORTED_VERSIONS = {
    "productmd.images": ("1.0", "1.1", "1.2"),
    "productmd.composeinfo": ("1.0", "1.1", "1.2"),
    "productmd.rpms": ("1.0", "1.1", "1.2"),
}


def check_header(data: Any, name: str, expected_type: str) -> None:
    """The header says this is productmd metadata of ``expected_type`` in a version we read.

    Raises:
        InputError: no header, another type, or an unsupported version.
    """
    header = data.get("header") if isinstance(data, dict) else None
    if not isinstance(header, dict):
        raise InputError(
            f"{name}: no 'header' object", hint="is this productmd metadata written by Pungi?"
        )
    if header.get("type") != expected_type:
        raise InputError(
            f"{name}: header.type is {_show(header.get('type'))}, expected {expected_type!r}"
        )
    version = header.get("version")
    if version not in SUPPORTED_VERSIONS[expected_type]:
        raise InputError(
            f"{name}: header.version {_show(version)} is not supported "
            f"(supported: {', '.join(SUPPORTED_VERSIONS[expected_type])})",
            hint="upgrade Fortnight, or report the new format version",
        )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:56] + "...'"


def read_images(raw: bytes, name: str = "images.json") -> Any:
    """productmd ``Images`` from the bytes of ``images.json``, in about the time
    ``json.loads`` takes: parsed and type-checked in one pass (pydantic's JSON parser),
    then built in one more. Bad input is parsed again the slow way, to name the problem.

    Raises:
        InputError: see :func:`loads_metadata`, :func:`check_header` and
            :func:`deserialize_images`.
    """
    try:
        with gc_paused():  # many small objects: the cycle collector would rescan them all
            doc: Any = _DOCUMENT.validate_json(raw)
    except ValidationError:
        doc = loads_metadata(raw, name)
        check_header(doc, name, "productmd.images")
        return deserialize_images(doc, name)
    if _SURROGATE_ESCAPE.search(raw):  # the parser pairs what it can; name a lone one
        loads_metadata(raw, name)
    check_header(doc, name, "productmd.images")
    return _productmd_images(doc, doc["payload"]["images"], name)


def loads_metadata(raw: bytes, name: str) -> Any:
    """Parse a metadata file's bytes as JSON, in C (``json.loads``), as fast as it gets.

    Raises:
        InputError: not JSON, nested too deeply for the parser, or holding a lone
            surrogate (which no manifest could store), naming the file.
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        raise InputError(
            f"{name}: nested too deeply to be productmd metadata",
            hint="the metadata is malformed",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{name}: not valid JSON ({e})") from None
    except ValueError as e:  # an integer too long to convert
        raise InputError(f"{name}: not valid JSON ({str(e).split(';')[0]})") from None
    if _SURROGATE_ESCAPE.search(raw):  # rare: only then walk, to name the place
        place = _lone_surrogate(data)
        if place is not None:
            raise InputError(
                f"{name}: lone surrogate in the string at {place}",
                hint="the metadata is malformed (no manifest can store it)",
            )
    return data


def _quote(text: str) -> str:
    """``text`` as a short JSON string in ASCII: one printable line whatever it holds."""
    shown = json.dumps(text)
    return shown if len(shown) <= 80 else shown[:76] + '..."'


def _lone_surrogate(data: Any) -> str | None:
    """The JSON path of the first string or key that UTF-8 cannot encode, if any (an
    explicit stack: the document may be deeply nested)."""
    stack: list[tuple[Any, str]] = [(data, "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if not _encodable(node):
                return path
        elif isinstance(node, dict):
            for key, value in node.items():
                if not _encodable(key):
                    return path
                stack.append((value, member_path(path, key)))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def deserialize_images(data: dict[str, Any], name: str = "images.json") -> Any:
    """productmd ``Images`` from parsed ``images.json`` (its header already checked).

    Raises:
        InputError: a field has the wrong type or value (named by its path), an arch is
            unknown, or two images share productmd's unique attributes with different
            checksums.
    """
    try:
        payload = data["payload"]
        raw_images = payload["images"]
        with gc_paused():
            fields = _IMAGES.validate_python(raw_images)
    except (KeyError, TypeError) as e:
        detail = f"missing field {e}" if isinstance(e, KeyError) else "payload is not an object"
        raise InputError(f"{name}: {detail}", hint="the metadata is malformed") from None
    except ValidationError as e:
        raise InputError(f"{name}: {_describe(e)}", hint=_HINT) from None
    return _productmd_images(data, fields, name)


def _productmd_images(data: Any, fields: ImagesPayload, name: str) -> Any:
    """productmd's ``Images`` with the header, the compose and the checked ``fields``.

    Raises:
        InputError: the compose fields are malformed; see :func:`_build`.
    """
    images = productmd.images.Images()
    try:
        images.header.deserialize(data)
        images.compose.deserialize(data["payload"])
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        detail = f"missing field {e}" if isinstance(e, KeyError) else str(e).split("\n")[0]
        raise InputError(f"{name}: {detail[:300]}", hint="the metadata is malformed") from None
    legacy = images.header.version_tuple <= (1, 1)
    with gc_paused():
        images.images = _build(fields, images, name, unique=not legacy)
    images.header.set_current_version()
    return images


_HINT = "the metadata does not follow productmd's images.json format"


def _describe(e: ValidationError) -> str:
    """``payload.images.AtomicHost.x86_64[0].size: Input should be …``, one line."""
    err = e.errors()[0]
    place = "payload.images"
    for part in err["loc"]:
        place = f"{place}[{part}]" if isinstance(part, int) else member_path(place, str(part))
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{place}: {err['msg']}{more}"


def _build(
    fields: dict[str, dict[str, list[ImageFields]]], parent: Any, name: str, *, unique: bool
) -> dict[str, dict[str, set[Any]]]:
    """The variant -> arch -> set of productmd images, checked in one pass."""
    seen: Seen = {}
    out: dict[str, dict[str, set[Any]]] = {}
    new = object.__new__
    for variant, arches in fields.items():
        binary = [a for a in arches if a not in ("src", "nosrc")]
        for arch, entries in arches.items():
            where = member_path(member_path("payload.images", variant), arch)
            targets = _targets(arch, binary, f"{name}: {where}", legacy=not unique)
            for index, entry in enumerate(entries):
                d: dict[str, Any] = entry  # type: ignore[assignment]
                _complete(d, f"{name}: {where}[{index}]")
                if unique:
                    _check_unique(seen, d, name)
                d["parent"] = parent
                for target in targets:
                    img = new(productmd.images.Image)
                    img.__dict__ = d if len(targets) == 1 else dict(d)
                    out.setdefault(variant, {}).setdefault(target, set()).add(img)
    return out


def _targets(arch: str, binary: list[str], where: str, *, legacy: bool) -> list[str]:
    """Where images listed under ``arch`` go: productmd <= 1.1 lists source images under
    ``src`` and files them under every binary arch of the variant."""
    if arch in ("src", "nosrc") and legacy:
        return binary
    if arch not in _ARCHES:
        raise InputError(
            f"{where}: unknown arch",
            hint="arches are RPM arches (x86_64, aarch64, …); source images need productmd "
            "1.1 or older",
        )
    return [arch]


_DEFAULTS: tuple[tuple[str, Callable[[], Any]], ...] = (
    ("format", lambda: "iso"),
    ("subvariant", lambda: ""),
    ("unified", lambda: False),
    ("additional_variants", list),
)


def _complete(d: dict[str, Any], where: str) -> None:
    """Fill productmd's defaults and check the values its format enumerates."""
    for key, default in _DEFAULTS:
        if key not in d:
            d[key] = default()
    if d["type"] not in _TYPES:
        raise InputError(f"{where}.type: {_quote(d['type'])} is not a productmd image type")
    if d["format"] not in _FORMATS:
        raise InputError(f"{where}.format: {_quote(d['format'])} is not a productmd image format")
    if d["additional_variants"] and not d["unified"]:
        raise InputError(f"{where}: only unified images can list additional_variants")


Seen = dict[tuple[Any, ...], dict[str, Any]]


def _check_unique(seen: Seen, d: dict[str, Any], name: str) -> None:
    """productmd 1.1+: two images may share the unique attributes only as the same file."""
    key = (
        d["subvariant"],
        d["type"],
        d["format"],
        d["arch"],
        d["disc_number"],
        d["unified"],
        tuple(d["additional_variants"]),
    )
    other = seen.setdefault(key, d)
    if other is not d and other["checksums"] != d["checksums"]:
        raise InputError(
            f"{name}: images {_quote(other['path'])} and {_quote(d['path'])} share "
            "productmd's unique attributes (subvariant, type, format, arch, disc_number) "
            "with different checksums",
            hint="the metadata is malformed",
        )


__all__ = [
    "DEFAULT_MAX_METADATA_BYTES",
    "SUPPORTED_VERSIONS",
    "ImageFields",
    "check_header",
    "deserialize_images",
    "loads_metadata",
    "read_images",
]
