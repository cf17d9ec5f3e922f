"""Throttling of password checks, after OWASP's authentication guidance: counted before the
hash, per source address, and slowed (never locked) per account.

* **Per address**: at most ``per_address`` attempts that failed or are still being checked in
  ``window_s``; beyond that the answer is 429 before any hashing. Counting in-flight
  attempts means a burst of parallel requests cannot all reach Argon2 before the first
  failure is recorded.
* **Per account and address**: at most ``per_pair`` failures for one account from one
  address in the window, so one address cannot keep guessing one account.
* **Per account, from anywhere**: past ``free`` failures in the window, each further check
  of that account waits ``2^(n - free)`` seconds, at most ``max_delay_s``: guessing from
  many addresses slows down, while the owner, from an address that has not failed, still
  gets in after that wait. A stranger can delay the owner; they cannot keep them out.
* **Argon2 itself**: at most ``concurrent`` checks at once (each takes 64 MiB and a core).

A success clears the account's and that address's failures. State is in memory: a restart
forgets it, which costs an attacker a restart of the hub they cannot cause.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Attempt:
    """A reserved password check: run it after ``delay_s``, then :meth:`Throttle.finish`."""

    account: str
    address: str
    delay_s: float
    finished: bool = field(default=False, repr=False)


class Throttled(Exception):
    """Refused before the check; ``retry_after_s`` says when the address may try again."""

    def __init__(self, retry_after_s: float):
        super().__init__(f"too many failed attempts: try again in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class Throttle:
    def __init__(
        self,
        per_address: int = 10,
        per_pair: int = 5,
        free: int = 5,
        window_s: float = 900,
        max_delay_s: float = 15,
        concurrent: int = 2,
    ):
        self.per_address, self.per_pair, self.free = per_address, per_pair, free
        self.window_s, self.max_delay_s = window_s, max_delay_s
        self.checks = asyncio.Semaphore(concurrent)
        """Held around each Argon2 check (created unbound; asyncio binds it on first use)."""
        self._failures: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] < now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return deque()
        return failures

    def begin(self, account: str, address: str) -> Attempt:
        """Reserve a check of ``account``'s password from ``address``, or raise
        :class:`Throttled` (nothing is hashed then)."""
        now = time.monotonic()
        with self._lock:
            by_address = self._recent(f"addr:{address}", now)
            by_pair = self._recent(f"pair:{account}:{address}", now)
            busy = self._in_flight.get(address, 0)
            if len(by_address) + busy >= self.per_address or len(by_pair) >= self.per_pair:
                firsts = [failures[0] for failures in (by_address, by_pair) if failures]
                oldest = min(firsts, default=now)
                raise Throttled(max(1.0, oldest + self.window_s - now))
            self._in_flight[address] = busy + 1
            excess = len(self._recent(f"account:{account}", now)) - self.free
            delay = 0.0 if excess < 0 else min(self.max_delay_s, 2.0**excess)
        return Attempt(account, address, delay)

    def finish(self, attempt: Attempt, succeeded: bool) -> None:
        if attempt.finished:
            return
        attempt.finished = True
        now = time.monotonic()
        with self._lock:
            left = self._in_flight.get(attempt.address, 1) - 1
            if left:
                self._in_flight[attempt.address] = left
            else:
                self._in_flight.pop(attempt.address, None)
            keys = (f"addr:{attempt.address}", f"pair:{attempt.account}:{attempt.address}",
                    f"account:{attempt.account}")  # fmt: skip
            if succeeded:
                for key in keys:
                    self._failures.pop(key, None)
            else:
                for key in keys:
                    self._failures.setdefault(key, deque()).append(now)
