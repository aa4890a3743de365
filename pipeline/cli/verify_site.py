"""``fortnight-verify SITE [--root FINGERPRINT] [--image FILE] [--state DIR] [--at T]``: check a
published site from its pinned root (see :mod:`pipeline.stages.siteverify`).

A console script installed with the package; it loads neither invoke, boto3 nor Pelican.
Exit 0 only when everything holds; otherwise one line naming the first failure, with the
exit code of its error (4: it does not verify; 3: it could not be read; 2: a bad option).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import ConfigError, FortnightError


def default_state() -> Path:
    """``$XDG_CACHE_HOME/fortnight-verify``, else ``~/.cache/fortnight-verify``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fortnight-verify"


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="fortnight-verify", description="Verify a Fortnight download site from its root."
    )
    p.add_argument("site", metavar="SITE", help="the site: a folder or an http(s) URL")
    p.add_argument("--root", help="the root fingerprint the project publishes (or a file)")
    p.add_argument("--image", type=Path, help="a downloaded image to check against the release")
    p.add_argument("--state", type=Path, help="where to remember what was seen")
    p.add_argument("--at", help="check freshness as of this UTC time, for audits (default: now)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the verifier; the exit status."""
    from pipeline.adapters.sitefetch import SiteSource  # noqa: PLC0415
    from pipeline.core.models.common import format_timestamp, parse_timestamp  # noqa: PLC0415
    from pipeline.log.trust import parse_pin  # noqa: PLC0415
    from pipeline.stages.siteverify import verify_site  # noqa: PLC0415

    args = parser().parse_args(argv)
    try:
        if args.image is not None and not args.image.is_file():
            raise ConfigError(f"--image {args.image}: not a file")
        pin = parse_pin(args.root, "--root").fingerprint if args.root else None
        now = datetime.now(UTC).replace(microsecond=0)
        if args.at:
            try:
                now = parse_timestamp(args.at)
            except ValueError as e:
                raise ConfigError(f"--at {args.at}: {e}") from None
        verdict = verify_site(
            SiteSource(args.site), pin, now, args.state or default_state(), args.image
        )
    except FortnightError as e:
        print(f"fortnight-verify: error: {e.diagnostics()}", file=sys.stderr)
        return e.exit_code
    print(
        f"OK: {args.site}: root {verdict.fingerprint[:16]}…, checkpoint {verdict.number} "
        f"({verdict.size} manifests), {verdict.files} files as signed, fresh until "
        f"{format_timestamp(verdict.expires)}"
        + (f"; {args.image} is in {verdict.image}" if verdict.image else "")
    )
    for stream, arch, ref, commit, version in verdict.commits:
        print(f"released OSTree tree ({stream}): {arch} {ref} {commit} (version {version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
