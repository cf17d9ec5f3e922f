"""The doorbell agent that runs on the Raspberry Pi (or, simulated, anywhere)."""
