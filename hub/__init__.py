"""The hub daemon: ingest from the broker, the database and (later) the web app."""
