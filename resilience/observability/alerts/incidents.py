"""Incident state: which rule and name has an open incident, so that one incident is one notice.

``RedisIncidents`` deduplicates across every worker sharing ``RESILIENCE["REDIS"]``: the incident
is a key set with ``SET NX PX`` (the worker that sets it sends the notice; the others fold their
match into it) and removed with ``GET`` and ``DEL`` in one transaction by the resolving event (the
worker whose ``DEL`` removed it sends the resolution). A second key, ``notified``, with a TTL of the
rule's ``cooldown``, paces reminders of an incident still open. Names are hashed into keys; every
key has a TTL. The keys of one rule and name share a hash tag: on a Redis Cluster each MULTI is one
slot, sent to the node that serves it by that node's own client (redis-py's cluster pipeline takes
``transaction=True`` only from redis-py 6.1, and ``redis>=5.0`` is supported).
``LocalIncidents`` does the same in the process (no ``REDIS``: each worker deduplicates alone).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from resilience.observability.alerts.rules import Rule
from resilience.storage.redis.cluster import by_node, refresh_slots
from resilience.storage.redis.health import REDIS_ERRORS

Decision = tuple[str, str] | None  # ("opened" | "reminder", incident id), or None: folded into an open one


class Incidents(Protocol):
    def count(self, rule: Rule, name: str, now: float) -> int:
        """Add one match and return the matches of ``rule`` and ``name`` in the current window."""

    def open(self, rule: Rule, name: str, incident: str) -> Decision:
        """Open incident ``incident`` unless one is open: what to send, if anything."""

    def resolve(self, rule: Rule, name: str) -> str | None:
        """Close the open incident and return its id, to the one caller that closed it."""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisIncidents:
    """Incidents shared through Redis; every method is one round trip (a MULTI pipeline)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    def _key(self, rule: Rule, name: str, part: str) -> str:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return f"{self.prefix}:alerts:{{{rule.id}:{digest}}}:{part}"  # one hash slot per rule and name

    def _multi(self, key: str) -> Any:
        """A MULTI pipeline on the client that serves ``key``'s slot (a cluster node's own, or the server's)."""
        ((client, _),) = by_node(self.client, [key])
        return client.pipeline(transaction=True)

    def _execute(self, pipe: Any) -> list[Any]:
        try:
            return pipe.execute()  # type: ignore[no-any-return]
        except REDIS_ERRORS:
            refresh_slots(self.client)  # a slot moved (failover): the next decision goes where it is now
            raise

    def count(self, rule: Rule, name: str, now: float) -> int:
        if rule.threshold == 1:
            return 1  # no counter needed: one match opens the incident
        key = self._key(rule, name, f"count:{int(now // rule.window)}")
        pipe = self._multi(key)
        pipe.incr(key)
        pipe.pexpire(key, _ms(rule.window * 2))
        return int(self._execute(pipe)[0])

    def open(self, rule: Rule, name: str, incident: str) -> Decision:
        notified, key = self._key(rule, name, "notified"), self._key(rule, name, "incident")
        pipe = self._multi(key)
        pipe.set(notified, b"1", nx=True, px=_ms(rule.cooldown))
        pipe.set(key, incident.encode(), nx=True, px=_ms(rule.incident_ttl))
        pipe.get(key)
        paced, created, current = self._execute(pipe)
        if created:
            if not paced:  # a notified key left from a race: the new incident restarts the pacing
                self.client.set(notified, b"1", px=_ms(rule.cooldown))
            return ("opened", incident)
        if paced and rule.resolve is not None and current is not None:
            return ("reminder", current.decode("ascii", "replace"))
        return None

    def resolve(self, rule: Rule, name: str) -> str | None:
        key = self._key(rule, name, "incident")
        pipe = self._multi(key)  # GET and DEL in one MULTI: GETDEL before Redis 6.2
        pipe.get(key)
        pipe.delete(key, self._key(rule, name, "notified"))
        current, deleted = self._execute(pipe)
        return None if current is None or not deleted else current.decode("ascii", "replace")


class LocalIncidents:
    """The same decisions within one process (``clock``: seconds, injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], list[Any]] = {}  # -> [incident, expires_at, notified_until]
        self._counts: dict[tuple[str, str], list[float]] = {}  # -> [window index, count]

    def count(self, rule: Rule, name: str, now: float) -> int:
        if rule.threshold == 1:
            return 1
        bucket = now // rule.window
        with self._lock:
            entry = self._counts.get((rule.id, name))
            if entry is None or entry[0] != bucket:
                if len(self._counts) >= 10_000:
                    self._counts.clear()  # bounded: a flood of names loses counts, never memory
                entry = self._counts[(rule.id, name)] = [bucket, 0]
            entry[1] += 1
            return int(entry[1])

    def open(self, rule: Rule, name: str, incident: str) -> Decision:
        now = self.clock()
        with self._lock:
            entry = self._open.get((rule.id, name))
            if entry is None or entry[1] <= now:
                if len(self._open) >= 10_000:
                    self._open = {k: v for k, v in self._open.items() if v[1] > now}
                self._open[(rule.id, name)] = [incident, now + rule.incident_ttl, now + rule.cooldown]
                return ("opened", incident)
            if rule.resolve is not None and entry[2] <= now:
                entry[2] = now + rule.cooldown
                return ("reminder", str(entry[0]))
            return None

    def resolve(self, rule: Rule, name: str) -> str | None:
        now = self.clock()
        with self._lock:
            entry = self._open.pop((rule.id, name), None)
        return None if entry is None or entry[1] <= now else str(entry[0])
