"""Porch: a self-hosted video doorbell that answers to its owner and nobody else."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("porch")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
