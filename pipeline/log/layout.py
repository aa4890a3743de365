"""Where the manifest log keeps things: the folder names and the product-name rules.

Layout: ``<repo>/manifests/trust.json`` (the newest root version, kept with every version
under ``manifests/trust/``, see :mod:`pipeline.log.trust`), ``<repo>/manifests/log.idx`` and
``<repo>/manifests/checkpoints/`` (see :mod:`pipeline.log.checkpoints`) and
``<repo>/manifests/<product>/<kind dir>/…``.
Pure path logic: nothing here touches the disk.
"""

from __future__ import annotations

from collections.abc import Collection

MANIFESTS = "manifests"
TRUST_FILE = "trust.json"
#: Every root version, ``manifests/trust/<N>.json`` (see :mod:`pipeline.log.trust`).
TRUST_DIR = "trust"
#: The log index, ``manifests/log.idx`` (see :mod:`pipeline.log.checkpoints`).
INDEX_FILE = "log.idx"
#: Every checkpoint, ``manifests/checkpoints/<N>.json`` (see :mod:`pipeline.log.checkpoints`).
CHECKPOINT_DIR = "checkpoints"
#: Folders under ``manifests/`` that hold no manifests.
NON_MANIFEST_DIRS = frozenset({"schema", TRUST_DIR, CHECKPOINT_DIR})


def product_scope(products: Collection[str] | None) -> frozenset[str] | None:
    """``products`` as a set of product folder names, checked (None stays None).

    Raises:
        ValueError: a name is not one folder directly under ``manifests/`` that can hold
            manifests (empty, hidden, with a slash, ``schema`` or ``trust``), or ``products`` is a
            single string.
    """
    if products is None:
        return None
    if isinstance(products, str):
        raise ValueError(f"products must be a collection of names, not the string {products!r}")
    scope = frozenset(products)
    for name in scope:
        if (
            not isinstance(name, str)
            or not name
            or name.startswith(".")
            or "/" in name
            or "\0" in name
            or name in NON_MANIFEST_DIRS
        ):
            raise ValueError(f"not a product name: {name!r}")
    return scope
