"""``manage.py breakers list | reset NAME | reset --all | open NAME``."""

from __future__ import annotations

import os
import pwd
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from resilience import history
from resilience.exceptions import ResilienceError, UnknownBreakerError
from resilience.registry import BreakerSnapshot, breakers


def _row(s: BreakerSnapshot) -> list[str]:
    probe = f"{s.next_probe:.1f}s" if s.next_probe is not None else ("on reset" if s.state == "forced_open" else "-")
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

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        actor = f"manage.py:{process_user()}"
        try:
            if action == "list":
                header = ["NAME", "STATE", "FAILURES", "SLOW", "CALLS", "NEXT PROBE"]
                self.stdout.write(table([_row(s) for s in breakers.all()], header))
            elif action == "reset" and options["all"]:
                names = breakers.reset_all(actor=actor)
                self.stdout.write(f"reset {len(names)} breaker(s)")
            elif action == "reset":
                if not options["name"]:
                    raise CommandError("give a breaker NAME or --all")
                breakers.get(options["name"]).reset(actor=actor)
                self.stdout.write(f"reset {options['name']}: closed")
            else:
                breakers.get(options["name"]).force_open(actor=actor)
                self.stdout.write(f"forced {options['name']} open until reset")
        except UnknownBreakerError as exc:
            raise CommandError(f"{exc}; see 'manage.py breakers list'") from None
        except ResilienceError as exc:
            raise CommandError(f"could not reach the breaker store: {type(exc).__name__}: {exc}") from None
        history.flush()
