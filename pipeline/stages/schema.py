"""Export the JSON Schema of every manifest kind (and the envelope, root, trust, checkpoint
and site index)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from pipeline.core.models.common import Checkpoint, Envelope, RootMetadata, SiteIndex, Trust
from pipeline.core.models.manifests import KINDS
from pipeline.fsutil import atomic_write


def schemas() -> dict[str, dict[str, object]]:
    """File name to JSON Schema, for every model users may need to validate."""
    models: dict[str, type[BaseModel]] = {
        "envelope": Envelope,
        "root": RootMetadata,
        "trust": Trust,
        "checkpoint": Checkpoint,
        "site-index": SiteIndex,
    }
    models.update({kind: model for kind, model in KINDS.items()})
    out: dict[str, dict[str, object]] = {}
    for name, model in sorted(models.items()):
        schema = model.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://fortnight.invalid/schema/{name}.schema.json"
        out[f"{name}.schema.json"] = schema
    return out


def render(schema: dict[str, object]) -> bytes:
    """A schema file's bytes (stable: sorted keys, two-space indent)."""
    return (json.dumps(schema, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_schemas(folder: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) the schema files; return the names that changed."""
    changed = []
    for name, schema in schemas().items():
        path = folder / name
        data = render(schema)
        if path.exists() and path.read_bytes() == data:
            continue
        changed.append(name)
        if not check:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
    return changed
