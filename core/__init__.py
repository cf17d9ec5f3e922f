"""The shared core: what the doorbell and the hub both import.

The wire contract (:mod:`porch.core.wire`), every setting (:mod:`porch.core.config`), sealing
and signatures (:mod:`porch.core.seal`), the enrollment token and request
(:mod:`porch.core.enrollment`) and small helpers. It imports neither part (the contract in
``pyproject.toml`` checks it), so installing it brings nothing either part alone needs.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("porch")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"
