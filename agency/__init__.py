"""The agency's side of area requests (``porch agency …``) and the relay's configuration
(``porch relay …``): an agency signs a request for an area, publishes it on a relay broker,
and runs a drop box that receives the bundles owners approve. See docs/area-requests.md."""
