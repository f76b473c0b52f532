"""Failed sign-ins slow down whoever repeats them, without letting anyone lock a worker out.

Three counts of failures, each with its own `Policy`:
- per user name *at* one client address (`user_at_address`): one address guessing one
  person's password waits after 5 failures;
- per client address (`address`): one address trying many names waits after 20;
- per user name across the addresses it has never signed in from (`user`): many addresses
  guessing one person's password wait after 5 failures between them. It counts and refuses
  only attempts from such addresses: an address the person signed in from (remembered for
  `REMEMBER_ADDRESS_FOR`) is not held up by failures anyone makes elsewhere, so an attacker
  who fails on purpose with a worker's name cannot lock out the worker at their usual desk.

After `free_failures` failures in a row, the next attempt waits: 30 s, then twice as long
after each further failure, at most 15 minutes. A successful sign-in clears what that name
failed there: its name-at-address count, and as many failures from the address count (the
other names' failures there stay, so someone with an account of their own cannot sign in
between guesses to start the address afresh), not the name's count of failures elsewhere
(the attacker's); a count nobody added to for `forget_after` is forgotten. Attempts under
one count take turns (`turn`), so guesses sent all at once are checked one after another
and each failure counts before the next guess is let through, while one person's (or one
integration's) sign-ins sent side by side simply queue. Plain Python, kept in the gateway
process's memory (docs/operations.md says why, and what that means with several gateways).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.users import normalise_username


@dataclass(frozen=True)
class Policy:
    free_failures: int
    first_wait: dt.timedelta = dt.timedelta(seconds=30)
    longest_wait: dt.timedelta = dt.timedelta(minutes=15)
    forget_after: dt.timedelta = dt.timedelta(hours=1)

    def wait_after(self, failures: int) -> dt.timedelta:
        """How long the next attempt waits after `failures` failures in a row."""
        over = failures - self.free_failures
        if over < 0:
            return dt.timedelta(0)
        # min() before multiplying: 2**over grows past any timedelta for a long attack.
        return min(self.first_wait * 2 ** min(over, 32), self.longest_wait)


# One person mistyping gets five tries, at one address and across new ones; an office
# behind one address (a NAT) gets more, since its people's failures add up there.
USER_AT_ADDRESS_POLICY = Policy(free_failures=5)
USER_POLICY = Policy(free_failures=5)
ADDRESS_POLICY = Policy(free_failures=20)
# An address a person signed in from stays theirs this long after their last success there.
REMEMBER_ADDRESS_FOR = dt.timedelta(days=30)
# Past this many counts (or remembered addresses), the stalest are dropped (memory stays
# bounded whatever an attacker sends).
MAX_TRACKED = 50_000
# How long an attempt waits for its turn before it is answered "try again shortly".
TURN_TIMEOUT_SECONDS = 10.0

_Key = tuple[str, ...]  # (kind, name), (kind, name, address) or (kind, address)


@dataclass
class _Failures:
    count: int
    last_at: dt.datetime


@dataclass(frozen=True)
class Refusal:
    """An attempt refused before its password is checked."""

    kind: str  # "user_at_address", "user" or "address": which count (logged; never a value)
    failures: int
    retry_after_seconds: int


class SignInLimits:
    """Failure counts by name at an address, by address and by name elsewhere, the addresses
    each name signed in from, in memory, and whose turn it is.

    Used from the gateway's green threads (`threading` is eventlet's there, so a wait for a
    turn yields to the other requests)."""

    def __init__(
        self,
        user_policy: Policy = USER_POLICY,
        address_policy: Policy = ADDRESS_POLICY,
        user_at_address_policy: Policy = USER_AT_ADDRESS_POLICY,
        turn_timeout: float = TURN_TIMEOUT_SECONDS,
    ):
        self._policies = {
            "user_at_address": user_at_address_policy,
            "address": address_policy,
            "user": user_policy,
        }
        self._failures: dict[_Key, _Failures] = {}
        # (name, address) -> the last successful sign-in there; oldest first.
        self._signed_in_from: dict[tuple[str, str], dt.datetime] = {}
        self._in_turn: set[_Key] = set()
        self._turns = threading.Condition()
        self._turn_timeout = turn_timeout

    @contextlib.contextmanager
    def turn(self, username: str, address: str, now: dt.datetime) -> Iterator[bool]:
        """Wait until no other attempt under the same counts is being checked, then hold
        them while this one is; False when the wait ran out (a flood)."""
        keys = set(self._keys(username, address, now))
        with self._turns:
            ours = self._turns.wait_for(
                lambda: not keys & self._in_turn, timeout=self._turn_timeout
            )
            if ours:
                self._in_turn |= keys
        try:
            yield ours
        finally:
            if ours:
                with self._turns:
                    self._in_turn -= keys
                    self._turns.notify_all()

    def check(self, username: str, address: str, now: dt.datetime) -> Refusal | None:
        """The refusal that applies to this attempt now, or None to go ahead."""
        refusals = []
        for key in self._keys(username, address, now):
            failures = self._failures.get(key)
            if failures is None:
                continue
            policy = self._policies[key[0]]
            if now - failures.last_at >= policy.forget_after:
                continue
            free_at = failures.last_at + policy.wait_after(failures.count)
            if free_at > now:
                seconds = math.ceil((free_at - now).total_seconds())
                refusals.append(Refusal(key[0], failures.count, seconds))
        return max(refusals, key=lambda r: r.retry_after_seconds, default=None)

    def failed(self, username: str, address: str, now: dt.datetime) -> None:
        for key in self._keys(username, address, now):
            failures = self._failures.pop(key, None)
            policy = self._policies[key[0]]
            if failures is None or now - failures.last_at >= policy.forget_after:
                failures = _Failures(0, now)
            failures.count += 1
            failures.last_at = now
            self._failures[key] = failures  # re-inserted: the dict stays oldest first
        self._bound(now)

    def succeeded(self, username: str, address: str, now: dt.datetime) -> None:
        """Clears this name's count at this address and takes its failures off the
        address's count, and remembers the address as this name's: the name's failures
        elsewhere no longer hold it up."""
        name = normalise_username(username)
        own = self._failures.pop(("user_at_address", name, address), None)
        address_failures = self._failures.get(("address", address))
        policy = self._policies["user_at_address"]
        # Each of this name's failures here added one to the address's count too. A
        # forgotten count is not taken off: the address's may have started again since,
        # with other names' failures only.
        if (
            own is not None
            and address_failures is not None
            and now - own.last_at < policy.forget_after
        ):
            address_failures.count -= min(own.count, address_failures.count)
            if address_failures.count == 0:
                del self._failures[("address", address)]
        self._signed_in_from.pop((name, address), None)
        self._signed_in_from[(name, address)] = now  # re-inserted: oldest first
        while len(self._signed_in_from) > MAX_TRACKED:
            del self._signed_in_from[next(iter(self._signed_in_from))]

    def signed_in_from(self, username: str, address: str, now: dt.datetime) -> bool:
        """Whether this name signed in successfully from this address lately."""
        last = self._signed_in_from.get((normalise_username(username), address))
        return last is not None and now - last < REMEMBER_ADDRESS_FOR

    def tracked(self) -> int:
        return len(self._failures)

    def _keys(self, username: str, address: str, now: dt.datetime) -> list[_Key]:
        name = normalise_username(username)
        keys: list[_Key] = [("user_at_address", name, address), ("address", address)]
        if not self.signed_in_from(name, address, now):
            keys.append(("user", name))
        return keys

    def _bound(self, now: dt.datetime) -> None:
        if len(self._failures) <= MAX_TRACKED:
            return
        longest = max(p.forget_after for p in self._policies.values())
        for key in [k for k, f in self._failures.items() if now - f.last_at >= longest]:
            del self._failures[key]
        while len(self._failures) > MAX_TRACKED:
            del self._failures[next(iter(self._failures))]
