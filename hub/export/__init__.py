"""Export bundles: building, verifying, redacting."""
