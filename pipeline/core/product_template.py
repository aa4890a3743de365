"""A new product's ``product.toml``: every key written out and explained (``product.new``).

Pure text: :func:`render_product` fills the template from a :class:`NewProduct`; the
caller validates the result with :func:`pipeline.core.config.parse_product` before
writing it anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Like = Literal["cloud-base", "atomic-host"]
LIKES: tuple[Like, ...] = ("cloud-base", "atomic-host")

#: What each kind of product selects from a Fedora compose, by default.
PRESETS: dict[Like, tuple[list[str], list[str]]] = {
    "cloud-base": (["Cloud_Base"], ["qcow2", "raw-xz", "vagrant-libvirt", "vagrant-virtualbox"]),
    "atomic-host": (
        ["AtomicHost", "Atomic"],
        ["qcow2", "raw-xz", "vagrant-libvirt", "vagrant-virtualbox", "dvd-ostree"],
    ),
}


@dataclass(frozen=True)
class NewProduct:
    """What ``product.new`` was told about the product."""

    name: str
    display_name: str
    base: str
    anchor: date
    like: Like = "cloud-base"
    variants: list[str] = field(default_factory=list)
    subvariants: list[str] = field(default_factory=list)
    download_url: str = ""
    arches: list[str] = field(default_factory=lambda: ["x86_64", "aarch64"])


def toml_str(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def toml_list(values: list[str]) -> str:
    """A TOML array of strings."""
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def render_product(p: NewProduct) -> str:
    """The commented product.toml of a new product."""
    preset_subvariants, types = PRESETS[p.like]
    subvariants = p.subvariants or ([] if p.variants else preset_subvariants)
    return TEMPLATE.format(
        name=toml_str(p.name),
        display_name=toml_str(p.display_name),
        like=p.like,
        base=toml_str(p.base),
        anchor=p.anchor.isoformat(),
        variants=toml_list(p.variants),
        subvariants=toml_list(subvariants),
        types=toml_list(types),
        arches=toml_list(p.arches),
        download_url=toml_str(p.download_url),
        tag=toml_str(f"fortnight-{p.name}"),
    )


TEMPLATE = """\
# {display_name}: written by 'product.new' (like {like}). Every key is explained below;
# the README's "product.toml reference" has the details. Check it with 'product.check'.

# The product's id: its folder under manifests/, in URLs and in every manifest.
name = {name}
# The name people read on the site.
display_name = {display_name}

[base]
# The distribution release the images are based on; switched by a reviewed commit,
# independently of the distribution's own dates.
name = "Fedora"
version = {base}
# prerelease = "Beta"        # a prerelease base: the page shows a disclaimer
# eligible = []              # compose base versions that may be released (default: version)

[release]
anchor = {anchor}          # the first release day (UTC); then one every cadence_days
cadence_days = 14            # days between release days
grace_days = 2               # days past a missed release day before the page says "stale"
policy = "retry"             # no candidate on release day: "retry" later in the cycle, or "skip"

[images]
# An image of a compose belongs to the product when its variant or its subvariant is
# listed here, and its type (productmd's image types) and arch are listed too.
variants = {variants}
subvariants = {subvariants}
types = {types}
arches = {arches}
# Where users download an image: <download_url><image path>, {{compose_id}} replaced.
# An absolute https:// URL, or a path from the site's root ("/composes/{{compose_id}}/")
# when the site's host serves the images. Empty: the compose's own http(s) location
# (a compose recorded from a local folder then needs this set).
download_url = {download_url}

# The test battery: every suite runs on every matching image of each compose. Commands
# get the image and its metadata in FORTNIGHT_* environment variables (README, "Test battery").
[battery]
workers = 0                  # images tested at once; 0 = one per core
pass_env = []                # extra environment variables test commands may read
sandbox = "none"             # "bwrap": test commands run in bubblewrap, without the keys

[battery.suites.images]
description = "Built-in checks of every image file"

[[battery.suites.images.tests]]
name = "checksum"            # size and sha256 against the compose metadata
command = "python -m pipeline.checks checksum"
blocking = true              # a failure stops the compose from being released
timeout = 900                # seconds

[[battery.suites.images.tests]]
name = "format"              # the file is the format its type says (qcow2, xz, ...)
command = "python -m pipeline.checks format"
blocking = true
timeout = 900

[[battery.suites.images.tests]]
name = "name"                # the file name follows the distribution's pattern
command = "python -m pipeline.checks name"
blocking = false             # advisory: warns, never blocks
timeout = 60

[tracker]
# Where a failing compose's bug is filed: "local" (pages in the log and on the site)
# or "bugzilla" (with a [tracker.bugzilla] table: url, product, component, version).
backend = "local"
tag = {tag}     # finds the product's open bug

# Public cloud images ('cloud.discover'); credentials come from boto3's standard chain.
# [clouds.aws]
# regions = ["us-east-1"]
# owner = "self"             # the account that uploads the images
"""
