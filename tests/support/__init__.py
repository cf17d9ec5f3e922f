"""What the tests share, by the part each needs installed: ``common`` needs only the
``porch`` package itself (and Debian's mosquitto), ``device`` a doorbell's install
(``porch[device]``), ``hub`` and ``browser`` the hub's (and Debian's chromium)."""
