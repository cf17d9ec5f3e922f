"""The shared core's tests (the wire contract, configuration, GOP proofs): they need only
the ``porch`` package itself."""
