"""The installer's tools: home CA, device enrollment, broker configuration (to come)."""
