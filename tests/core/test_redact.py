"""The redactor: secrets of the environment and key material never reach a recorded log."""

from __future__ import annotations

import base64

import pytest

from pipeline.core.redact import REDACTED, Redactor, key_material, secret_values
from pipeline.log.sslib import CryptoSigner

ENV = {
    "GITHUB_TOKEN": "ghp_0123456789abcdef",
    "GH_TOKEN": "gho_fedcba9876543210",
    "VAULT_TOKEN": "hvs.CAESIJ1",
    "AZURE_CLIENT_SECRET": "az~secret.value",
    "db_password": "hunter2hunter2",
    "MY_API_URL": "https://api.example.com/v1",
    "SHORT_TOKEN": "abc",  # below the minimum: not redacted
    "PATH": "/usr/bin:/bin",  # not secret-looking
    "HOME": "/home/tester",
    "SSH_PRIVATE_KEY": "line-one-of-key\nline-two-of-key\n",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token=ghp_0123456789abcdef\n", f"token={REDACTED}\n"),
        ("ghp_0123456789abcdef gho_fedcba9876543210", f"{REDACTED} {REDACTED}"),
        ("vault hvs.CAESIJ1, azure az~secret.value.", f"vault {REDACTED}, azure {REDACTED}."),
        ("lower-case name: hunter2hunter2", f"lower-case name: {REDACTED}"),
        ("GET https://api.example.com/v1/x", f"GET {REDACTED}/x"),
        ("abc and /usr/bin:/bin stay", "abc and /usr/bin:/bin stay"),
        ("home is /home/tester", "home is /home/tester"),
        ("multi line-one-of-key; line-two-of-key", f"multi {REDACTED}; {REDACTED}"),
        ("no secret here\n", "no secret here\n"),
        ("", ""),
    ],
    ids=[
        "github",
        "two-on-a-line",
        "vault-azure",
        "case-insensitive-name",
        "api-url",
        "short-and-plain-kept",
        "home-kept",
        "multi-line-value",
        "clean",
        "empty",
    ],
)
def test_environment_secrets(text: str, expected: str) -> None:
    assert Redactor.of(ENV).apply(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "before\n-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIE\n"
            "-----END PRIVATE KEY-----\nafter\n",
            f"before\n{REDACTED}\nafter\n",
        ),
        (
            "x -----BEGIN RSA PRIVATE KEY-----\nAAAA\nBBBB\n-----END RSA PRIVATE KEY----- y\n",
            f"x {REDACTED}\n y\n",
        ),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n(cut off)",
            f"{REDACTED}\n",
        ),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQVYBF\n"
            "-----END PGP PRIVATE KEY BLOCK-----\n",
            f"{REDACTED}\n",
        ),
        (
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
        ),
        (
            "a -----BEGIN EC PRIVATE KEY-----x-----END EC PRIVATE KEY----- b\n",
            f"a {REDACTED} b\n",
        ),
    ],
    ids=["pkcs8", "rsa-with-text-around", "cut-off", "pgp", "public-key-kept", "one-line"],
)
def test_pem_private_key_blocks(text: str, expected: str) -> None:
    assert Redactor.of({}).apply(text) == expected


def test_signing_key_bytes_in_any_common_form() -> None:
    pem = CryptoSigner.generate_ed25519().private_bytes
    redactor = Redactor.of({}, [pem])
    lines = pem.decode().splitlines()
    body = "".join(line for line in lines if not line.startswith("-----"))
    b64 = base64.b64encode(pem).decode()
    for shown in (
        body,  # `grep -v -- -----`
        lines[1],  # one body line
        b64,  # `base64 -w0`
        "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)),  # `base64`
        pem.hex(),  # `xxd -p -c0`
    ):
        out = redactor.apply(f"leak: {shown}\n")
        assert body not in out and lines[1] not in out and b64[:40] not in out, out
        assert REDACTED in out


def test_bytes_that_are_not_utf8_pass_through() -> None:
    redactor = Redactor.of(ENV)
    data = b"\xff\xfe binary ghp_0123456789abcdef \x00\x80\n"
    assert redactor.apply_bytes(data) == b"\xff\xfe binary [redacted] \x00\x80\n"
    assert Redactor.of({}).apply_bytes(data) == data


def test_what_counts_as_secret() -> None:
    env = {"API_KEY": "  spaced-value  ", "Token": "abcdef", "PATH": "abcdefgh"}
    assert secret_values(env) == {"spaced-value", "abcdef"}
    assert all(len(part) >= 12 for part in key_material(b"-----BEGIN X-----\nab\n-----END X-----"))
