"""Throttling of password checks, after OWASP's authentication guidance: counted before the
hash, per source address, and slowed (never locked) per account, except for a browser the
account has signed in from before.

* **Per address** (IPv6 addresses by their /64, which one household holds): at most
  ``per_address`` attempts that failed or are still being checked in ``window_s``; beyond
  that the answer is 429 before any hashing. Counting in-flight attempts means a burst of
  parallel requests cannot all reach Argon2 before the first failure is recorded.
* **Per account and address**: at most ``per_pair`` failures for one account from one
  address in the window, so one address cannot keep guessing one account.
* **Per account, from anywhere**: past ``free`` failures in the window, the account's
  checks are spaced out, one after another, ``2^(n - free)`` seconds apart (at most
  ``max_delay_s``), and at most ``max_waiting`` may wait for their turn (429 beyond): many
  addresses together get a few guesses a minute, not a few a second.
* **A known browser** (OWASP's "device cookie"): a browser that has signed in to the
  account before carries a cookie for it, and its attempts skip the per-account spacing:
  a stranger's guessing slows everyone else down, never the owner at their own phone. The
  cookie itself allows ``per_pair`` failures, then it is forgotten.
* **Argon2 itself**: at most ``concurrent`` checks at once (each takes 64 MiB and a core), and
  at most ``max_queued`` waiting for one (429 "busy" beyond).

A success clears the account's failures and that address's for that account. State is in
memory: a restart forgets it, which costs an attacker a restart of the hub they cannot cause.
Behind a reverse proxy every visitor has the proxy's address: the hub is meant to be
reached directly (it serves TLS itself).
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections import deque
from dataclasses import dataclass, field

MAX_KEYS = 10_000
"""Failure records kept at most; past that, expired ones are swept."""


@dataclass
class Attempt:
    """A reserved password check: run it after ``delay_s``, then :meth:`Throttle.finish`."""

    account: str
    address: str
    delay_s: float
    spaced: bool
    """It took a turn among the account's spaced-out checks."""
    finished: bool = field(default=False, repr=False)


class Throttled(Exception):
    """Refused before the check; ``retry_after_s`` says when to try again."""

    def __init__(self, retry_after_s: float, reason: str = "too many failed attempts"):
        super().__init__(f"{reason}: try again in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


def address_key(address: str) -> str:
    """The throttled unit: an IPv4 address, or an IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(ip)


class Throttle:
    def __init__(
        self,
        per_address: int = 10,
        per_pair: int = 5,
        free: int = 5,
        window_s: float = 900,
        max_delay_s: float = 15,
        max_waiting: int = 4,
        concurrent: int = 2,
        max_queued: int = 16,
    ):
        self.per_address, self.per_pair, self.free = per_address, per_pair, free
        self.window_s, self.max_delay_s, self.max_waiting = window_s, max_delay_s, max_waiting
        self.concurrent, self.max_queued = concurrent, max_queued
        self.checks = asyncio.Semaphore(concurrent)
        """Held around each Argon2 check (created unbound; asyncio binds it on first use)."""
        self._failures: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}
        self._next_turn: dict[str, float] = {}
        self._waiting: dict[str, int] = {}
        self._queued = 0
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] < now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def begin(self, account: str, address: str, known: bool = False) -> Attempt:
        """Reserve a check of ``account``'s password from ``address`` (``known``: from a
        browser that signed in to it before), or raise :class:`Throttled`; nothing is
        hashed then."""
        now = time.monotonic()
        address = address_key(address)
        with self._lock:
            by_address = self._recent(f"addr:{address}", now)
            by_pair = self._recent(f"pair:{account}:{address}", now)
            busy = self._in_flight.get(address, 0)
            if len(by_address) + busy >= self.per_address or len(by_pair) >= self.per_pair:
                firsts = [failures[0] for failures in (by_address, by_pair) if failures]
                raise Throttled(max(1.0, min(firsts, default=now) + self.window_s - now))
            if self._queued >= self.max_queued:
                raise Throttled(5, "the hub is busy checking passwords")
            delay = 0.0
            excess = len(self._recent(f"account:{account}", now)) - self.free
            if excess >= 0 and not known:
                step = min(self.max_delay_s, 2.0**excess)
                if self._waiting.get(account, 0) >= self.max_waiting:
                    raise Throttled(step * self.max_waiting, "this account is being guessed at")
                turn = max(now, self._next_turn.get(account, now))
                self._next_turn[account] = turn + step
                self._waiting[account] = self._waiting.get(account, 0) + 1
                delay = turn - now
            self._in_flight[address] = busy + 1
            self._queued += 1
        return Attempt(account, address, delay, spaced=excess >= 0 and not known)

    def finish(self, attempt: Attempt, succeeded: bool) -> None:
        if attempt.finished:
            return
        attempt.finished = True
        now = time.monotonic()
        with self._lock:
            self._queued -= 1
            left = self._in_flight.get(attempt.address, 1) - 1
            if left:
                self._in_flight[attempt.address] = left
            else:
                self._in_flight.pop(attempt.address, None)
            if attempt.spaced:
                waiting = self._waiting.get(attempt.account, 1) - 1
                if waiting:
                    self._waiting[attempt.account] = waiting
                else:
                    self._waiting.pop(attempt.account, None)
            pair, account = (
                f"pair:{attempt.account}:{attempt.address}",
                f"account:{attempt.account}",
            )
            if succeeded:
                for key in (pair, account):
                    self._failures.pop(key, None)
                self._next_turn.pop(attempt.account, None)
                return
            for key in (f"addr:{attempt.address}", pair, account):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > MAX_KEYS:
                for key in list(self._failures):
                    self._recent(key, now)
