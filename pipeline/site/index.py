"""The site's signed index: every published file that makes a claim, by sha256 and size.

``site-index.json`` at the top of the output is an envelope like a manifest's over a
:class:`~pipeline.core.models.common.SiteIndex`, signed by the ``site`` role
(``FORTNIGHT_KEY_SITE``): the checkpoint the site was built from (number, size, root), its
expiry, and every file except the signed log itself (``manifests/``: it verifies on its
own from the pinned root), copied test logs (``logs/``), the build's own records (dot
folders) and the index. ``fortnight-verify`` checks it (:mod:`pipeline.stages.siteverify`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pipeline.core.models.common import Checkpoint, FileClaim, SiteIndex, TreeHead
from pipeline.fsutil import atomic_write
from pipeline.log.signing import dump_envelope, signed_bytes
from pipeline.log.sslib import Signer

INDEX_NAME = "site-index.json"
#: Top-level folders whose files are not claims of the page (see the module's docstring).
UNCLAIMED = frozenset({"manifests", "logs"})


def claimed_files(output: Path) -> dict[str, FileClaim]:
    """Every claimed file under ``output`` (``/``-separated relative names) and its digest."""
    files: dict[str, FileClaim] = {}
    for folder, dirs, names in os.walk(output):
        rel = Path(folder).relative_to(output).as_posix()
        top = rel == "."
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (top and d in UNCLAIMED)]
        for name in names:
            if name.startswith(".") or (top and name == INDEX_NAME):
                continue
            data = (Path(folder) / name).read_bytes()
            key = name if top else f"{rel}/{name}"
            files[key] = FileClaim(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    return dict(sorted(files.items()))


def write_index(
    output: Path, head: Checkpoint, signers: Sequence[Signer], at: datetime
) -> SiteIndex:
    """Sign the index of ``output`` built at ``at`` from checkpoint ``head`` and write it
    (atomically, last, so a reader never sees an index of a half-written site)."""
    index = SiteIndex(
        time=max(at, head.time),
        expires=head.expires,
        checkpoint=TreeHead(number=head.number, size=head.size, root=head.root),
        files=claimed_files(output),
    )
    payload = index.model_dump(mode="json", by_alias=True)
    raw = dump_envelope(payload, [s.sign(signed_bytes(payload)) for s in signers])
    path = output / INDEX_NAME
    if not path.is_file() or path.read_bytes() != raw:  # same site, same bytes: leave it
        atomic_write(path, raw)
    return index
