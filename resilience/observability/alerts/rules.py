"""Alert rules: which events open an incident and which resolve it. Pure: no Django, no Redis.

A rule (one entry of ``RESILIENCE["ALERTS"]["rules"]``)::

    {
        "id": "payments_open",            # names the rule in notices and keys (default "rule<index>")
        "event": "breaker transition",    # "<area> <kind>" of the events that count
        "when": {"new_state": ["open", "forced_open"]},  # field -> value or list of values (all must match)
        "name": "payments*",              # glob on the event's name (a breaker); None: any name
        "threshold": 1,                   # matching events within `window` seconds that open an incident
        "window": 1,                      # seconds
        "cooldown": 3600,                 # seconds: reminder interval / incident length (below)
        "resolve": {"event": "breaker transition", "when": {"new_state": "closed"}},  # None: no resolution
    }

With ``resolve`` an incident lasts until a resolving event of the same name (at most
``INCIDENT_TTL``); a match more than ``cooldown`` seconds after the incident's last notice sends a
reminder. Without ``resolve`` the incident is the ``cooldown`` seconds after its notice.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from resilience.core.event import Event
from resilience.core.validation import check_number, over_defaults
from resilience.exceptions import ConfigurationError

INCIDENT_TTL = 7 * 86_400  # seconds an unresolved incident is remembered (every key has a TTL)
RULE_DEFAULTS: dict[str, Any] = {
    "id": None,
    "event": None,
    "when": {},
    "name": None,
    "threshold": 1,
    "window": 1,
    "cooldown": 3600,
    "resolve": None,
}
MATCH_DEFAULTS: dict[str, Any] = {"event": None, "when": {}}
# The rules used when ALERTS has notifiers and no "rules": a breaker opened (or was forced open) and
# closed again (or was disabled), for every breaker.
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "id": "breaker_open",
        "event": "breaker transition",
        "when": {"new_state": ["open", "forced_open"]},
        "resolve": {"event": "breaker transition", "when": {"new_state": ["closed", "disabled"]}},
    }
]
RULE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
EVENT = re.compile(r"[a-z0-9_]{1,40} [a-z0-9_]{1,40}")
FIELD = re.compile(r"[a-z0-9_]{1,40}")
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Match:
    """Events of one ``area`` and ``kind`` whose fields have the listed values."""

    area: str
    kind: str
    when: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)

    def __call__(self, event: Event) -> bool:
        if event.kind != self.kind or event.area != self.area:
            return False
        return all(event.fields.get(key) in values for key, values in self.when.items())


@dataclass(frozen=True)
class Rule:
    """One parsed rule (see the module's docstring)."""

    id: str
    match: Match
    name: str | None = None
    threshold: int = 1
    window: float = 1.0
    cooldown: float = 3600.0
    resolve: Match | None = None

    def names(self, event: Event) -> bool:
        return self.name is None or fnmatch.fnmatchcase(event.name, self.name)

    def raises(self, event: Event) -> bool:
        """``event`` counts towards opening an incident of this rule."""
        return self.match(event) and self.names(event)

    def resolves(self, event: Event) -> bool:
        """``event`` resolves this rule's open incident of the same name."""
        return self.resolve is not None and self.resolve(event) and self.names(event)

    @property
    def incident_ttl(self) -> float:
        """Seconds an incident's key lives: until resolved (bounded), or the cooldown."""
        return float(INCIDENT_TTL) if self.resolve is not None else self.cooldown


def _match(value: Any, path: str) -> Match:
    options = over_defaults(value, MATCH_DEFAULTS, path)
    event = options["event"]
    if not isinstance(event, str) or not EVENT.fullmatch(event):
        raise ConfigurationError(f'{path}["event"] must be "<area> <kind>", such as "breaker transition", got {event!r}')
    when = options["when"]
    if not isinstance(when, dict):
        raise ConfigurationError(f'{path}["when"] must be a dict of event field -> value or list of values')
    parsed: dict[str, tuple[Scalar, ...]] = {}
    for key, wanted in when.items():
        where = f'{path}["when"][{key!r}]'
        if not isinstance(key, str) or not FIELD.fullmatch(key):
            raise ConfigurationError(f'{path}["when"] keys must be event field names, got {key!r}')
        values = tuple(wanted) if isinstance(wanted, (list, tuple)) else (wanted,)
        if not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise ConfigurationError(f"{where} must be a string, number or boolean, or a non-empty list of them")
        parsed[key] = values
    area, kind = event.split(" ")
    if area == "alerts":  # the dispatcher skips its own events, so alerts cannot feed on themselves
        raise ConfigurationError(f'{path}["event"] names an event of the alerts area, which never matches a rule')
    return Match(area, kind, parsed)


def parse_rule(value: Any, path: str, index: int) -> Rule:
    """One rule, each key checked; the message names the key (``...["rules"][0]["threshold"]``)."""
    options = over_defaults(value, RULE_DEFAULTS, path)
    rule_id = options["id"] if options["id"] is not None else f"rule{index}"
    if not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id):
        raise ConfigurationError(f'{path}["id"] must be 1-64 of A-Z a-z 0-9 _ . -, got {rule_id!r}')
    match = _match({"event": options["event"], "when": options["when"]}, path)
    name = options["name"]
    if name is not None and (not isinstance(name, str) or not name or len(name) > 200):
        raise ConfigurationError(f'{path}["name"] must be None or a glob of 1-200 characters, got {name!r}')
    check_number(f'{path}["threshold"]', options["threshold"], 1, 1_000_000, integer=True)
    check_number(f'{path}["window"]', options["window"], 0, 86_400, low_open=True)
    check_number(f'{path}["cooldown"]', options["cooldown"], 0, INCIDENT_TTL, low_open=True)
    resolve = None if options["resolve"] is None else _match(options["resolve"], f'{path}["resolve"]')
    return Rule(rule_id, match, name, options["threshold"], float(options["window"]), float(options["cooldown"]), resolve)


def parse_rules(value: Any, path: str) -> tuple[Rule, ...]:
    """A list of rules with distinct ids."""
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError(f"{path} must be a list of rules, got {type(value).__name__}")
    rules = tuple(parse_rule(entry, f"{path}[{i}]", i) for i, entry in enumerate(value))
    ids = [rule.id for rule in rules]
    for i, rule_id in enumerate(ids):
        if rule_id in ids[:i]:
            raise ConfigurationError(f'{path}[{i}]["id"] repeats {rule_id!r}: rule ids must be distinct')
    return rules
