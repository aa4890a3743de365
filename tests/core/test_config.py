"""Product configuration models (``pipeline.core.config``)."""

from __future__ import annotations

import pytest
from productmd.images import SUPPORTED_IMAGE_TYPES as PRODUCTMD_TYPES

from pipeline.core.config import SUPPORTED_IMAGE_TYPES, check_image_types


def test_the_image_types_are_productmds() -> None:
    """The copy (kept so a config load does not import productmd) is productmd's list."""
    assert list(SUPPORTED_IMAGE_TYPES) == list(PRODUCTMD_TYPES)


def test_an_unknown_image_type_is_named_with_the_known_ones() -> None:
    assert check_image_types(["qcow2", "raw-xz"]) == ["qcow2", "raw-xz"]
    with pytest.raises(ValueError, match=r"unknown image type\(s\) qcow3; known: appx, boot"):
        check_image_types(["qcow2", "qcow3"])
