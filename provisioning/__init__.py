"""The installer's tools: the home CA, one-time enrollment, broker TLS and ACL, revocation."""
