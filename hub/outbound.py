"""Where the hub may send: its few requests to other hosts (Web Push to a push service, an
approved bundle to an agency's drop box) go only to https:// addresses on the internet.

An address is parsed by the parser the HTTP client (requests, through urllib3) connects
with, and only what was parsed is sent: the URL is rebuilt from its parts, so that no
backslash, user info or other trick makes the check see one host and the connection go to
another. Before sending, the host's name is resolved and every address it has must be a
public one (not loopback, private, link-local or reserved): the home's own network (its
router, its printer, the hub itself) is never a target, whatever a page or a request hands
the hub.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

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
    if target.loopback:
        return
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise OutboundRefused(f"{what}'s name does not resolve ({exc})") from None
    for info in found:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise OutboundRefused(
                f"{what} is not on the internet ({address}): the hub sends only there"
            )


def _check_literal(host: str, what: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked when it is resolved
    if not address.is_global:
        raise OutboundRefused(
            f"{what} is not on the internet ({address}): the hub sends only there"
        )
