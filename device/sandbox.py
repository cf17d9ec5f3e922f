"""What the doorbell's systemd unit lets it reach, and whether its name lookups get out.

``systemd/porch-device.service`` allows the agent only addresses in the home
(``IPAddressAllow=``, mirrored here as :data:`ALLOWED`; a test keeps the two equal). The
C library's resolver sends the agent's own DNS queries to the servers in
``/etc/resolv.conf``: when DHCP hands out a server outside the home (a public resolver, or
the router's global IPv6 address), every lookup of the hub's name times out inside the
service, though it works from a shell. ``porch device enroll`` warns about it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

ALLOWED = (
    "localhost",
    "link-local",
    "multicast",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)
"""The unit's IPAddressAllow= words, in its order."""

_NAMED = {
    "localhost": ("127.0.0.0/8", "::1/128"),
    "link-local": ("169.254.0.0/16", "fe80::/64"),
    "multicast": ("224.0.0.0/4", "ff00::/8"),
}
NETWORKS = [ipaddress.ip_network(net) for word in ALLOWED for net in _NAMED.get(word, (word,))]


def allowed(address: str) -> bool:
    """Whether the unit lets the agent reach this address (a zone such as ``%eth0`` is
    ignored)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip in net for net in NETWORKS)


def blocked_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The name servers in ``resolv_conf`` the unit would not let the agent reach."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return []
    servers = [
        parts[1] for parts in (line.split() for line in lines) if parts[:1] == ["nameserver"]
    ][:3]  # glibc uses the first three
    blocked = []
    for server in servers:
        try:
            if not allowed(server):
                blocked.append(server)
        except ValueError:
            continue  # not an address: glibc ignores it too
    return blocked


def lookup_warning(host: str, resolv_conf: Path = Path("/etc/resolv.conf")) -> str | None:
    """Why the service may not find ``host`` although this shell does, or None."""
    try:
        ipaddress.ip_address(host)
        return None  # an address needs no lookup
    except ValueError:
        pass
    if host.endswith(".local"):
        return None  # mDNS: avahi-daemon asks on the agent's behalf, on multicast anyway
    blocked = blocked_nameservers(resolv_conf)
    if not blocked:
        return None
    return (
        f"the hub is named {host!r}, and {resolv_conf} sends lookups to"
        f" {', '.join(blocked)}, outside the addresses porch-device.service may reach"
        " (IPAddressAllow=): the service will not find the hub. Give the hub's address"
        " instead (provisioning.public_host on the hub), have DHCP hand out the router as"
        " the DNS server, or allow that server: 'systemctl edit porch-device', then"
        f" [Service] IPAddressAllow={' '.join(blocked)}"
    )
