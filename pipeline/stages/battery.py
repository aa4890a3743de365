"""Test batteries: which tests run on which images, from product.toml or a tunir job file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.config import PRODUCT_FILE, ProductConfig, SuiteSpec, TestSpec
from pipeline.core.models.manifests import ComposeManifest, Image
from pipeline.errors import ConfigError


@dataclass(frozen=True)
class PlannedSuite:
    """A suite ready to run: its name and its tests (tunir pauses resolved)."""

    name: str
    steps: tuple[TestSpec | float, ...]  # a float is a pause in seconds (tunir's SLEEP)

    @property
    def tests(self) -> list[TestSpec]:
        """The tests, without the pauses."""
        return [s for s in self.steps if isinstance(s, TestSpec)]

    def images(self, compose: ComposeManifest, arches: list[str]) -> list[Image]:
        """The compose's images at least one test applies to (within ``arches``, if any)."""
        return [
            img
            for img in compose.images
            if (not arches or img.arch in arches)
            and any(t.applies_to(img.type, img.arch) for t in self.tests)
        ]


def parse_tunir(text: str, source: str, suite: SuiteSpec) -> tuple[TestSpec | float, ...]:
    """Parse a tunir job file: one shell command a line.

    A plain line is a blocking test; ``## `` marks an advisory (non-gating) test;
    ``@@ `` a command that is expected to fail; ``SLEEP N`` pauses N seconds.
    Blank lines are skipped. A test is named by its command.

    Raises:
        ConfigError: a malformed ``SLEEP`` line, or no command at all.
    """
    steps: list[TestSpec | float] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("SLEEP"):
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise ConfigError(
                    f"{source}:{number}: SLEEP needs a number of seconds, got {line!r}"
                )
            steps.append(float(parts[1]))
            continue
        blocking, expect_fail, command = True, False, line
        prefix = line[:2]
        if prefix in ("##", "@@") and line[2:3] in ("", " "):
            command = line[2:].strip()
            blocking = prefix != "##"
            expect_fail = prefix == "@@"
        if not command:
            raise ConfigError(f"{source}:{number}: empty command")
        steps.append(
            TestSpec(
                name=command,
                command=command,
                blocking=blocking,
                expect_fail=expect_fail,
                timeout=suite.timeout,
                types=list(suite.types),
                arches=list(suite.arches),
            )
        )
    if not any(isinstance(s, TestSpec) for s in steps):
        raise ConfigError(f"{source}: no command in the tunir job file")
    return tuple(steps)


def _battery_file(product_dir: Path, suite: str, name: str) -> Path:
    """A battery file of the product folder, resolved (symlinks too) and still inside it.

    Raises:
        ConfigError: it resolves outside the product folder.
    """
    folder = product_dir.resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise ConfigError(
            f"{product_dir / PRODUCT_FILE}: battery.suites.{suite}.tunir: {name} resolves to "
            f"{path}, outside the product folder",
            hint="keep battery files inside the product folder (a symlink may not lead out)",
        )
    return path


def plan_suites(product: ProductConfig, product_dir: Path, only: str | None) -> list[PlannedSuite]:
    """The suites of the battery to run by command (external suites are imported, not run).

    Raises:
        ConfigError: ``only`` names no runnable suite, or a tunir file is missing or bad.
    """
    suites = product.battery.suites
    if only is not None:
        if only not in suites:
            raise ConfigError(
                f"--suite {only}: not in the battery of {product.name}",
                hint=f"suites: {', '.join(sorted(suites)) or 'none'}",
            )
        if suites[only].external:
            raise ConfigError(
                f"--suite {only}: is external; import its results with 'invoke test.import'"
            )
    planned = []
    for name, spec in sorted(suites.items()):
        if spec.external or (only is not None and name != only):
            continue
        if spec.tunir is not None:
            path = _battery_file(product_dir, name, spec.tunir)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(f"{path}: cannot read tunir job file ({e.strerror})") from e
            planned.append(PlannedSuite(name, parse_tunir(text, str(path), spec)))
        else:
            planned.append(PlannedSuite(name, tuple(spec.tests)))
    if not planned:
        raise ConfigError(
            f"the battery of {product.name} has no suite to run",
            hint="add [battery.suites.NAME] to product.toml",
        )
    return planned
