"""What keeps the runner's secrets away from test commands.

Three layers: test commands get an allowlisted environment (:func:`allowed_env`); their
output is redacted before it is recorded (:func:`redactor_for`, applied by the log store);
and, with ``sandbox = "bwrap"``, each command runs in bubblewrap with the signing keys'
folders and the home folder's credential folders hidden (:class:`Sandbox`).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pipeline
from pipeline.core.redact import Redactor
from pipeline.errors import ConfigError
from pipeline.log.signing import KEY_ENV_PREFIX, KEYID_ENV_PREFIX
from pipeline.log.sslib import CryptoSigner

#: What test commands get from the runner's environment, besides ``pass_env``.
ALLOWED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM")
#: Credential folders and files under ``$HOME`` that a sandboxed test never sees.
HOME_SECRETS = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".config/gcloud",
    ".config/gh",
    ".config/fortnight",
    ".netrc",
    ".git-credentials",
    ".pypirc",
)
_URI = re.compile(r"^([a-z][a-z0-9+.-]*):")


def allowed_env(base: Mapping[str, str], pass_env: Sequence[str]) -> dict[str, str]:
    """The runner's variables a test command may see: :data:`ALLOWED_ENV` and ``pass_env``."""
    names = (*ALLOWED_ENV, *pass_env)
    return {n: base[n] for n in names if n in base and not n.startswith(KEY_ENV_PREFIX)}


def signing_key_files(env: Mapping[str, str]) -> list[Path]:
    """The private key files ``FORTNIGHT_KEY_*`` name (a path, or a ``file2:`` URI);
    keys behind other URIs (KMS, GPG, HSM) have no file here."""
    files = []
    for name, raw in sorted(env.items()):
        value = raw.strip()
        if not name.startswith(KEY_ENV_PREFIX) or name.startswith(KEYID_ENV_PREFIX) or not value:
            continue
        match = _URI.match(value)
        if match is None:
            files.append(Path(value))
        elif match.group(1) == CryptoSigner.SCHEME:
            path = Path(value[len(match.group(0)) :])
            prefix = env.get(CryptoSigner.PREFIX_ENV_VAR)
            files.append(Path(prefix) / path if prefix else path)
    return [p.absolute() for p in files]


def redactor_for(env: Mapping[str, str]) -> Redactor:
    """The redactor of a run: ``env``'s secret-looking values and its signing key files'
    bytes (a file that cannot be read here is skipped: its owner is not this runner)."""
    keys = []
    for path in signing_key_files(env):
        try:
            keys.append(path.read_bytes())
        except OSError:
            continue
    return Redactor.of(env, keys)


@dataclass(frozen=True)
class Sandbox:
    """Each test command in bubblewrap: ``/`` read-only, a fresh ``/tmp``, the test's scratch
    folder writable, its image's folder readable, the signing keys' folders and ``$HOME``'s
    credential folders hidden, no capabilities, its own process and (by default) network space.
    """

    bwrap: Path
    hidden: tuple[Path, ...]  # folders replaced by an empty tmpfs
    masked: tuple[Path, ...]  # files replaced by /dev/null
    network: bool

    @classmethod
    def bubblewrap(cls, env: Mapping[str, str], *, network: bool) -> Sandbox:
        """A sandbox hiding the folders of ``env``'s signing keys and ``$HOME``'s credentials.

        Raises:
            ConfigError: ``bwrap`` is not installed.
        """
        found = shutil.which("bwrap", path=env.get("PATH", os.defpath))
        if found is None:
            raise ConfigError(
                "sandbox bwrap: bwrap is not installed",
                hint="install bubblewrap (apt-get install bubblewrap), or run without the sandbox",
            )
        hidden = {p.parent for p in signing_key_files(env)}
        masked = set()
        home = env.get("HOME")
        for rel in HOME_SECRETS if home else ():
            path = Path(home or "/") / rel
            if path.is_dir():
                hidden.add(path)
            elif path.exists():
                masked.add(path)
        return cls(Path(found), tuple(sorted(hidden)), tuple(sorted(masked)), network)

    def check(self, visible: Sequence[Path]) -> None:
        """Refuse a hidden folder that holds a folder the tests need.

        Raises:
            ConfigError: a signing key's folder holds an image, the scratch folder or Fortnight.
        """
        for folder in (h.resolve() for h in self.hidden):
            for path in (v.resolve() for v in visible):
                if path == folder or folder in path.parents:
                    raise ConfigError(
                        f"sandbox bwrap: {folder} holds a signing key and also {path}, "
                        "which the tests need",
                        hint="keep signing keys in a folder of their own",
                    )

    def visible(self) -> list[Path]:
        """Folders the tests need beside their image and scratch: Fortnight and its Python."""
        return [Path(pipeline.__file__).resolve().parent.parent, Path(sys.prefix).resolve()]

    def argv(self, scratch: Path, image_dir: Path) -> list[str]:
        """The ``bwrap`` command line that runs a command in this sandbox."""
        args = [str(self.bwrap), "--die-with-parent", "--unshare-all", "--cap-drop", "ALL"]
        if self.network:
            args.append("--share-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for path in (*self.visible(), image_dir):
            args += ["--ro-bind", str(path), str(path)]
        args += ["--bind", str(scratch), str(scratch)]
        for path in self.hidden:
            args += ["--tmpfs", str(path)]
        for path in self.masked:
            args += ["--ro-bind", "/dev/null", str(path)]
        return [*args, "--chdir", str(scratch), "--"]
