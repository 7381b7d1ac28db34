"""``manage.py breakers list | reset NAME | reset --all | open [--create] NAME``."""

from __future__ import annotations

import os
import pwd
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from resilience.breakers.registry import BreakerSnapshot, breakers
from resilience.exceptions import ConfigurationError, ResilienceError, UnknownBreakerError
from resilience.observability import history

LOCAL_ONLY = (
    "warning: RESILIENCE['REDIS'] is not set, so breaker state lives in each process: "
    "this command sees and changes this process only (no running worker is affected)"
)
LOCAL_NOTE = "(in-process state: this process only; set RESILIENCE['REDIS'] to share it)"
PROBE = {"forced_open": "on reset", "half_open": "probing"}


def _row(s: BreakerSnapshot) -> list[str]:
    probe = "due" if s.probe_due else f"{s.next_probe:.1f}s" if s.next_probe is not None else PROBE.get(s.state, "-")
    return [s.name, s.state, f"{s.failure_rate:.1f}%", f"{s.slow_rate:.1f}%", str(s.calls), probe]


def process_user() -> str:
    """Who runs this process, from its effective uid: the passwd name, else the uid number. Never
    ``LOGNAME``/``USER`` (``getpass.getuser()`` reads those first, and anyone can set them)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (a container's arbitrary uid)
        return str(uid)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Plain aligned columns; names are shown with escapes so odd characters cannot garble the table."""
    rows = [[c.encode("unicode_escape").decode() if not c.isprintable() else c for c in r] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])


class Command(BaseCommand):
    help = "List circuit breakers, reset them, or force one open (acts in every worker when Redis is set)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="show every breaker with its state")
        reset = sub.add_parser("reset", help="close a breaker (or --all)")
        reset.add_argument("name", nargs="?")
        reset.add_argument("--all", action="store_true", help="reset every breaker")
        opener = sub.add_parser("open", help="force a breaker open until reset")
        opener.add_argument("name")
        opener.add_argument("--create", action="store_true", help="also a name no process has declared or used yet")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        actor = f"manage.py:{process_user()}"
        try:
            shared = breakers.store.remote
            if not shared:
                self.stderr.write(LOCAL_ONLY)
            if action == "list":
                header = ["NAME", "STATE", "FAILURES", "SLOW", "CALLS", "NEXT PROBE"]
                self.stdout.write(table([_row(s) for s in breakers.all()], header))
                if not shared:
                    self.stdout.write(LOCAL_NOTE)
            elif action == "reset" and options["all"]:
                names = breakers.reset_all(actor=actor)
                self.stdout.write(f"reset {len(names)} breaker(s)")
            elif action == "reset":
                if not options["name"]:
                    raise CommandError("give a breaker NAME or --all")
                breakers.get(options["name"]).reset(actor=actor)
                self.stdout.write(f"reset {options['name']}: closed")
            else:
                name = breakers.declare(options["name"]) if options["create"] else options["name"]
                breakers.get(name).force_open(actor=actor)
                self.stdout.write(f"forced {name} open until reset")
        except UnknownBreakerError as exc:
            hint = " (or 'open --create NAME' for a breaker nothing has declared yet)" if action == "open" else ""
            raise CommandError(f"{exc}; see 'manage.py breakers list'{hint}") from None
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from None
        except ResilienceError as exc:
            raise CommandError(f"could not reach the breaker store: {type(exc).__name__}: {exc}") from None
        history.flush()
