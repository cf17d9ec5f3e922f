"""Where the hub may send: its few requests to other hosts (Web Push to a push service, an
approved bundle to an agency's drop box) go only to https:// addresses on the internet.

An address is parsed by the parser the HTTP client (requests, through urllib3) connects
with, and only what was parsed is sent: the URL is rebuilt from its parts, so that no
backslash, user info or other trick makes the check see one host and the connection go to
another. Before sending, the host's name is resolved and every address it has must be a
public one (not loopback, private, link-local or reserved): the home's own network (its
router, its printer, the hub itself) is never a target, whatever a page or a request hands
the hub. The requests themselves go through :func:`public_session`, which checks the
address again as each connection is made and connects to exactly that address: a name
that answers with a public address first and a private one a moment later (DNS
rebinding) gets no connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


class OutboundRefused(ValueError):
    """An address the hub will not send to; ``str()`` says why."""


@dataclass(frozen=True)
class Target:
    """An address as the hub will use it: ``url`` is rebuilt from the parsed parts."""

    url: str
    host: str
    port: int
    loopback: bool = False
    """A test's own server on this machine (only where the settings allow it)."""


def parse_target(
    url: str,
    what: str,
    hosts: Sequence[str] = (),
    any_port: bool = True,
    allow_loopback_http: bool = False,
) -> Target:
    """``url`` as a :class:`Target`, or :class:`OutboundRefused` naming ``what`` it was meant to be.

    ``hosts``: only these names and their subdomains; ``any_port``: False refuses any port
    but 443; ``allow_loopback_http``: http:// or https:// to 127.0.0.1, ::1 or localhost."""
    if any(ch == "\\" or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise OutboundRefused(f"{what} holds a backslash, a space or a control character")
    try:
        parts = parse_url(url)
    except LocationParseError:
        raise OutboundRefused(f"{what} is not an address") from None
    host = (parts.host or "").lower().rstrip(".").strip("[]")
    loopback = allow_loopback_http and host in LOOPBACK_NAMES
    if parts.scheme != "https" and not (loopback and parts.scheme == "http"):
        raise OutboundRefused(f"{what} is not a plain https:// address")
    if not host or parts.auth is not None:
        raise OutboundRefused(f"{what} is not a plain https:// address (no user name or password)")
    if not host.isascii():
        raise OutboundRefused(f"{what}'s host name must be written in ASCII (punycode)")
    if hosts and not loopback and not any(host == h or host.endswith("." + h) for h in hosts):
        raise OutboundRefused(f"{host} is not one of the hosts this hub sends {what} to")
    if parts.port not in (None, 443) and not (any_port or loopback):
        raise OutboundRefused(f"{what} may not name a port")
    if not loopback:
        _check_literal(host, what)
    port = parts.port or (80 if parts.scheme == "http" else 443)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    rebuilt = f"{parts.scheme}://{netloc}{parts.path or '/'}"
    if parts.query:
        rebuilt += f"?{parts.query}"
    return Target(rebuilt, host, port, loopback)


def check_addresses(target: Target, what: str) -> None:
    """Resolve the target's host now (as the connection is about to): every address must
    be public. :class:`OutboundRefused` otherwise, or when the name does not resolve."""
    if not target.loopback:
        public_address(target.host, target.port, what=what)


def public_address(
    host: str, port: int, allow_loopback: bool = False, what: str | None = None
) -> str:
    """The address to connect to for ``host``, resolved now: every address it has must be
    public (or, where allowed, all loopback). :class:`OutboundRefused` otherwise, naming
    ``what`` (the host, unless given)."""
    what = what or host
    try:
        found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OutboundRefused(f"{what}'s name does not resolve ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not (allow_loopback and addresses and all(a.is_loopback for a in addresses)):
        for address in addresses:
            _public(address, what)
    return str(addresses[0])


def public_session(allow_loopback: bool = False) -> requests.Session:
    """A requests session whose every connection goes to an address checked by
    :func:`public_address` as it is made (TLS still checks the host's own name)."""

    class Checked(HTTPConnection):
        def _new_conn(self):  # urllib3's own hook
            self._dns_host = public_address(self._dns_host, self.port, allow_loopback)
            return super()._new_conn()

    class CheckedTLS(HTTPSConnection):
        def _new_conn(self):
            self._dns_host = public_address(self._dns_host, self.port, allow_loopback)
            return super()._new_conn()

    class Plain(HTTPConnectionPool):
        ConnectionCls = Checked

    class Secure(HTTPSConnectionPool):
        ConnectionCls = CheckedTLS

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Plain, "https": Secure}

    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the address is ours to check
    for scheme in ("http://", "https://"):
        session.mount(scheme, Adapter())
    return session


def _check_literal(host: str, what: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked when it is resolved
    _public(address, what)


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address, what: str) -> None:
    if not address.is_global:
        raise OutboundRefused(
            f"{what} is not on the internet ({address}): the hub sends only there"
        )
