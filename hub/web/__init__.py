"""The hub's web app: server-rendered pages with a little JavaScript, no build step."""
