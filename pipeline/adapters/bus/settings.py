"""The fedora-messaging configuration file, and Fortnight's ``[consumer_config]`` in it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from fedora_messaging import config as fm_config
from fedora_messaging.exceptions import ConfigurationException
from pydantic import Field, ValidationError

from pipeline.core.models.common import ProductName, StrictModel
from pipeline.errors import ConfigError, describe_validation_error

#: The shipped example configuration, the last default of ``--config``.
EXAMPLE_CONFIG = "fedora-messaging.toml.example"


class ProductRoute(StrictModel):
    """``[consumer_config.products.<name>]``: which composes a product listens for."""

    #: fnmatch patterns of compose ids (``Fedora-Atomic-*``). A FINISHED compose that
    #: matches is then checked against the product's ``[images]`` selection; a DOOMED one
    #: (no metadata to check) is recorded only when a pattern is set and matches.
    compose_ids: list[str] | None = None


TopicPrefix = Annotated[str, Field(pattern=r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")]


class BusSettings(StrictModel):
    """``[consumer_config]`` of the fedora-messaging TOML file: Fortnight's own options."""

    repo: str | None = None
    topic_prefix: TopicPrefix = "fortnight"
    products: dict[ProductName, ProductRoute] = Field(default_factory=dict)
    verify_checksums: bool = False
    ec2_endpoint_url: str | None = None
    site_url: str = ""
    #: Requeue backoff: ``retry_delay * 2**(attempt-1)`` seconds, at most ``retry_max_delay``.
    retry_delay: Annotated[float, Field(ge=0)] = 5.0
    retry_max_delay: Annotated[float, Field(ge=0)] = 300.0
    #: Longest wait between two attempts to reconnect to the broker.
    reconnect_max_delay: Annotated[float, Field(gt=0)] = 60.0
    #: Another fedora-messaging file for publishing announcements (e.g. when consuming
    #: from Fedora's read-only public broker); default: this file.
    announce_config: str | None = None
    publish_attempts: Annotated[int, Field(ge=1)] = 3
    publish_timeout: Annotated[int, Field(ge=1)] = 10


def config_path(option: str | None, env: Mapping[str, str], root: Path) -> Path:
    """``--config``, else ``$FEDORA_MESSAGING_CONF``, else the shipped example."""
    return Path(option or env.get("FEDORA_MESSAGING_CONF") or root / EXAMPLE_CONFIG).resolve()


def load_settings(path: Path) -> BusSettings:
    """Load fedora-messaging's configuration from ``path`` (into its global ``conf``, as
    fedora-messaging works) and return Fortnight's ``[consumer_config]``.

    Raises:
        ConfigError: the file is missing, not valid TOML, or fedora-messaging or
            ``[consumer_config]`` rejects it.
    """
    if not path.is_file():
        raise ConfigError(
            f"{path}: not found",
            hint=f"pass --config or set FEDORA_MESSAGING_CONF; start from {EXAMPLE_CONFIG}",
        )
    try:
        fm_config.conf.load_config(str(path))
    except ConfigurationException as e:
        raise ConfigError(f"{path}: {e.message}") from e
    try:
        return BusSettings.model_validate(fm_config.conf["consumer_config"], strict=True)
    except ValidationError as e:
        raise ConfigError(
            f"{path}: [consumer_config]: {describe_validation_error(e)}",
            hint="see docs/bus.md",
        ) from e


def setup_logging() -> None:
    """fedora-messaging's ``[log_config]`` (loaded by :func:`load_settings`)."""
    fm_config.conf.setup_logging()
