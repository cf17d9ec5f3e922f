"""Area requests at scale: how fast a request reaches every hub whose home lies in its area,
on one Mosquitto relay, and what the relay holds and sends as hubs and cells grow.

    .venv/bin/python bench/area_fanout.py [--hubs 1000] [--requests 20]

Each simulated hub is a real MQTT client of its own (anonymous, subscribed to its home's
cell, as the hub's listener is) driven by one epoll loop, which notes when each message
arrives; then, for each hub, what a hub does before filing is done and timed on its own
(check the agency's signature, parse the document, match the polygon to its home): a hub's
latency is its message's arrival plus its own check (real hubs check in parallel, each on
its own machine; here one process would queue a thousand checks behind each other). Homes
are spread at random over about 6 × 6 km around the corner where four geohash-4 cells meet,
so each request (a 1 km circle at that corner) is published in four cells. Latency per hub:
from the agency starting to publish to that hub having matched. Baseline in the same run:
one plain message (no signature, no geometry) from a publisher to one subscriber on the
same relay.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import selectors
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from porch.agency.desk import Desk, Relay
from porch.agency.identity import Agency
from porch.agency.relay import add_agency, listener_lines
from porch.core.area import (
    EARTH_RADIUS_M,
    AreaRequest,
    cell,
    cell_subscription,
    circle,
    open_envelope,
)
from porch.localbroker import LocalBroker, free_port

CORNER = (51.50390625, 0.0)  # where geohash cells gcpv, gcpu, u10h and u10j meet (London)


class Hubs:
    """Many MQTT clients on one epoll loop (paho's external-loop callbacks), each a hub."""

    def __init__(self, port: int, homes: list[tuple[float, float]]):
        self.selector = selectors.DefaultSelector()
        self.clients: list[mqtt.Client] = []
        self.homes = homes
        self.arrived: dict[int, tuple[float, bytes]] = {}
        self.outside_matches = 0
        self.subscribed = 0
        self._lock = threading.Lock()
        self._stop = False
        for index, home in enumerate(homes):
            client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            client.on_socket_open = self._opened
            client.on_socket_close = self._closed
            client.on_socket_register_write = self._want_write
            client.on_socket_unregister_write = self._done_write
            client.on_connect = lambda c, u, f, rc, p, h=home: c.subscribe(
                cell_subscription(cell(*h)), qos=1)  # fmt: skip
            client.on_subscribe = self._on_subscribe
            client.on_message = lambda c, u, m, i=index: self._on_message(i, m)
            client.connect("127.0.0.1", port, keepalive=120)
            self.clients.append(client)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _opened(self, client, userdata, sock) -> None:
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _closed(self, client, userdata, sock) -> None:
        self.selector.unregister(sock)

    def _want_write(self, client, userdata, sock) -> None:
        self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    def _done_write(self, client, userdata, sock) -> None:
        self.selector.modify(sock, selectors.EVENT_READ, client)

    def _on_subscribe(self, client, userdata, mid, codes, properties) -> None:
        with self._lock:
            self.subscribed += 1

    def _on_message(self, index: int, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        with self._lock:
            self.arrived[index] = (now, message.payload)

    def check(self, index: int, payload: bytes) -> tuple[bool, float]:
        """What the hub does with a message: whether it matches, and how long that took."""
        start = time.perf_counter()
        document, _ = open_envelope(payload)
        lat, lon = self.homes[index]
        inside = isinstance(document, AreaRequest) and document.area.shape().contains(lat, lon)
        return inside, time.perf_counter() - start

    def _loop(self) -> None:
        last_misc = time.monotonic()
        while not self._stop:
            for key, events in self.selector.select(timeout=0.5):
                client = key.data
                if events & selectors.EVENT_READ:
                    client.loop_read()
                if events & selectors.EVENT_WRITE:
                    client.loop_write()
            if time.monotonic() - last_misc > 1:
                for client in self.clients:
                    client.loop_misc()
                last_misc = time.monotonic()

    def kick(self) -> None:
        """Flush what the clients queued before the loop ran (their CONNECT packets)."""
        for client in self.clients:
            if client.want_write():
                client.loop_write()

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=10)
        for client in self.clients:
            client.disconnect()


def relay_rss_kb(broker: LocalBroker) -> int:
    status = Path(f"/proc/{broker.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def random_homes(count: int, rng: random.Random) -> list[tuple[float, float]]:
    """Homes within about 3 km of the corner, spread over its four cells."""
    homes = []
    for _ in range(count):
        north, east = rng.uniform(-3000, 3000), rng.uniform(-3000, 3000)
        lat = CORNER[0] + math.degrees(north / EARTH_RADIUS_M)
        lon = CORNER[1] + math.degrees(east / EARTH_RADIUS_M / math.cos(math.radians(lat)))
        homes.append((lat, lon))
    return homes


def baseline_ms(port: int, account: str, password: str, rounds: int = 50) -> list[float]:
    """Publish (as the agency) -> one anonymous subscriber, plain bytes, same relay."""
    got = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda c, u, m: got.set()
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", port)
    sub.subscribe("porch-area/v1/zzzz/#", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.username_pw_set(account, password)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    subscribed.wait(10)
    times = []
    for _ in range(rounds):
        got.clear()
        start = time.perf_counter()
        pub.publish(f"porch-area/v1/zzzz/{account}/" + "0" * 32, b"x" * 2000, qos=1)
        got.wait(10)
        times.append((time.perf_counter() - start) * 1000)
    for client in (sub, pub):
        client.disconnect()
        client.loop_stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hubs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket a hub (and Mosquitto's)
    work = Path(tempfile.mkdtemp(prefix="porch-area-bench-"))
    work.chmod(0o755)
    port = free_port()
    relay = LocalBroker(work / "relay", port, listener_lines(work / "relay", port, "127.0.0.1"))
    relay.start()
    password = add_agency(work / "relay", "bench")
    relay.reload()
    agency = Agency(work / "agency")
    agency.init("Bench Constabulary", "bench", "https://dropbox.example")
    desk = Desk(agency)
    link = Relay("127.0.0.1", port, "bench", password)
    rng = random.Random(7)
    try:
        idle_kb = relay_rss_kb(relay)
        base = baseline_ms(port, "bench", password)
        print(f"baseline publish -> one subscriber: p50 {statistics.median(base):.2f} ms,"
              f" p99 {sorted(base)[int(0.99 * len(base)) - 1]:.2f} ms")  # fmt: skip
        for hubs_count in sorted({min(100, args.hubs), args.hubs}):
            run(hubs_count, args.requests, port, desk, link, relay, idle_kb, rng)
    finally:
        desk.close()
        relay.stop()


def run(count: int, requests: int, port: int, desk, link, relay, idle_kb, rng) -> None:
    homes = random_homes(count, rng)
    # The agency's publisher is a paho client on select(), which fails on descriptors past
    # 1024: keep low ones free for it while the hubs take theirs.
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(32)]
    hubs = Hubs(port, homes)
    for fd in spare:
        os.close(fd)
    hubs.kick()
    deadline = time.monotonic() + 120
    while hubs.subscribed < count and time.monotonic() < deadline:
        time.sleep(0.05)
    connected_kb = relay_rss_kb(relay)
    latencies, checks, cells_per_request, missing = [], [], set(), 0
    for _ in range(requests):
        end = time.time() - 1
        request = desk.draft(circle(*CORNER, 1000), end - 3600, end, "B-1", "voluntary",
                             "Bench.", "Bench", "bench@x")  # fmt: skip
        inside = {i for i, h in enumerate(homes) if request.area.shape().contains(*h)}
        with hubs._lock:
            hubs.arrived.clear()
        start = time.perf_counter()
        cells = desk.publish(request, link)
        cells_per_request.add(len(cells))
        wait_until = time.monotonic() + 30
        while len(hubs.arrived) < count and time.monotonic() < wait_until:
            time.sleep(0.005)
        with hubs._lock:
            arrived = dict(hubs.arrived)
        matched = set()
        for index, (when, payload) in arrived.items():
            inside_here, took = hubs.check(index, payload)
            checks.append(took * 1000)
            if inside_here:
                matched.add(index)
                latencies.append((when - start + took) * 1000)
        hubs.outside_matches += len(matched - inside)
        missing += len(inside - matched)
    after_kb = relay_rss_kb(relay)
    latencies.sort()
    p = lambda q: latencies[max(0, int(q * len(latencies)) - 1)]  # noqa: E731
    print(f"{count} hubs in 4 cells, {requests} requests (a 1 km circle, {len(latencies)}"
          f" matches in all): publish -> hub matched p50 {p(0.5):.1f} ms,"
          f" p99 {p(0.99):.1f} ms, max {latencies[-1]:.1f} ms; missed {missing},"
          f" matched outside the area {hubs.outside_matches};"
          f" a hub's own check p50 {statistics.median(checks):.2f} ms")  # fmt: skip
    print(f"  relay: messages per request {sorted(cells_per_request)} (one per cell), each"
          f" delivered to every hub of its cell ({count} deliveries a request);"
          f" RSS idle {idle_kb / 1024:.1f} MB, with {count} hubs {connected_kb / 1024:.1f} MB,"
          f" after {requests} retained requests {after_kb / 1024:.1f} MB")  # fmt: skip
    hubs.close()


if __name__ == "__main__":
    sys.exit(main())
