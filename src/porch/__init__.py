"""Porch: a self-hosted video doorbell that answers to its owner and nobody else.

The parts live beside each other: :mod:`porch.device` (the doorbell), :mod:`porch.hub` (the
hub), :mod:`porch.provisioning` (the home CA and enrollment) and :mod:`porch.core` (what both
sides import). This package itself holds only the ``porch`` command and the laptop demo.
"""
