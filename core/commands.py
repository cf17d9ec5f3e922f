"""What every part's commands share: loading a configuration file, refusing with exit 2,
stopping on SIGINT/SIGTERM, and the ``--config hub.toml`` option."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import click
from pydantic import BaseModel

from porch.core.config import ConfigError, load

Model = TypeVar("Model", bound=BaseModel)


def load_or_exit(model: type[Model], path: Path | None) -> Model:
    """The file at ``path`` (defaults when None); a bad file ends the command with exit 2."""
    if path is None:
        return model()
    try:
        return load(model, path)
    except ConfigError as exc:
        click.echo(f"porch: bad configuration: {exc}", err=True)
        sys.exit(2)


@contextlib.contextmanager
def refused(*errors: type[Exception], prefix: str = "porch: ") -> Iterator[None]:
    """Any of ``errors`` ends the command with its message and exit code 2."""
    try:
        yield
    except errors as exc:
        click.echo(f"{prefix}{exc}", err=True)
        sys.exit(2)


def stop_on_signals(stop: Callable[[], object]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop())


def require(path: Path, what: str, hint: str) -> Path:
    """``path`` if it exists; else the command ends with exit 2 naming the path it looked
    for. Commands that read state check first, so none creates it as a side effect."""
    if not path.exists():
        click.echo(f"porch: no {what} at {path}: {hint}", err=True)
        sys.exit(2)
    return path


CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="hub.toml"
)
