"""securesystemslib's signer API, imported without the AWS SDK.

``securesystemslib.signer`` imports every signer it ships, and its AWS KMS signer imports
boto3 whenever boto3 is installed, which it is here (Fortnight's EC2 and S3 adapters use
it). That costs about 0.15 s and most of botocore on every task, including ``invoke --list``
and ``invoke verify``, which never touch AWS. So the package is imported here once, with
boto3 hidden for the duration of the import; every module of ours takes the signer API from
this module. A task that signs with an ``awskms:`` key URI calls :func:`signer_for_scheme`,
which imports the AWS signer again, with boto3, before the URI is loaded.
"""

from __future__ import annotations

import importlib
import sys

_HIDDEN = ("boto3", "botocore")


def _import_without_boto3() -> None:
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import boto3` fail
    try:
        importlib.import_module("securesystemslib.signer")
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


if "securesystemslib.signer" not in sys.modules:
    _import_without_boto3()

from securesystemslib.signer import (  # noqa: E402
    SIGNER_FOR_URI_SCHEME,
    CryptoSigner,
    Key,
    Signature,
    Signer,
    SSlibKey,
)

__all__ = [
    "SIGNER_FOR_URI_SCHEME",
    "CryptoSigner",
    "Key",
    "SSlibKey",
    "Signature",
    "Signer",
    "signer_for_scheme",
]


def signer_for_scheme(scheme: str) -> None:
    """Make the signer of key URI ``scheme`` usable: re-import the AWS signer with boto3.

    A no-op for every scheme but ``awskms``, and when boto3 was importable all along.
    """
    from securesystemslib.signer import _aws_signer  # noqa: PLC0415

    if scheme != _aws_signer.AWSSigner.SCHEME or _aws_signer.AWS_IMPORT_ERROR is None:
        return
    module = importlib.reload(_aws_signer)
    SIGNER_FOR_URI_SCHEME[module.AWSSigner.SCHEME] = module.AWSSigner
