"""Where the hub may send: a name that answers with a public address when it is checked and
with this machine's a moment later (DNS rebinding) gets no connection, because each
connection is checked as it is made; a drop box or push service on this machine is only
ever reached where a test's settings allow it. Every address here is on loopback."""

from __future__ import annotations

import socket

import pytest
import requests

from porch.hub.outbound import OutboundRefused, check_addresses, parse_target, public_session
from tests.support.common import CountingListener

PUBLIC = "93.184.216.34"
"""What the name answers when it is checked (never connected to: the test counts on it)."""


@pytest.fixture
def rebinding(monkeypatch):
    """dropbox.example: public at the first look-up, this machine at every one after."""
    resolve, asked = socket.getaddrinfo, []

    def answer(host, port, *args, **kwargs):
        if host != "dropbox.example":
            return resolve(host, port, *args, **kwargs)
        asked.append(host)
        return resolve(PUBLIC if len(asked) == 1 else "127.0.0.1", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", answer)
    return asked


def test_a_name_rebound_to_this_machine_after_its_check_gets_no_connection(rebinding):
    box = CountingListener()
    target = parse_target(f"https://dropbox.example:{box.port}/v1/uploads", "the drop box")
    check_addresses(target, "the drop box")  # public, as the check sees it
    with public_session() as session, pytest.raises(OutboundRefused, match=r"127\.0\.0\.1"):
        session.post(target.url, json={}, timeout=10)
    assert box.connections == 0 and len(rebinding) == 2


def test_loopback_only_where_the_settings_allow_it():
    box = CountingListener()
    with public_session() as session, pytest.raises(OutboundRefused):
        session.get(f"http://127.0.0.1:{box.port}/", timeout=10)
    assert box.connections == 0
    with public_session(allow_loopback=True) as session, pytest.raises(requests.RequestException):
        session.get(f"http://127.0.0.1:{box.port}/", timeout=10)  # reached, then closed
    assert box.connections == 1
