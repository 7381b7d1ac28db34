"""``manage.py resilience_alarms [--dry-run | --apply] [--prefix P] [--sns-topic ARN] [--critical NAME ...]
[--delete-stale] [--region R] [--endpoint-url URL] | --print-dashboard {cloudwatch,grafana}``."""

from __future__ import annotations

import os
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from resilience.exceptions import ResilienceError
from resilience.integrations.extras import missing
from resilience.observability import alarm_sync, dashboards
from resilience.observability.alarms import PREFIX, plan_from_settings, published_scope, wanted

SNS_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]{1,32}:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


class Command(BaseCommand):
    help = (
        "Show (--dry-run, the default) or put (--apply) the CloudWatch alarms on the library's metrics: "
        "one per breaker opening, retry give-ups and budget refusals, store and Entra outages, AWS failovers, "
        "credentials lifetime, and a composite 'any critical dependency down'. Or print a shipped dashboard."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--dry-run", action="store_true", help="show the difference as a unified diff; change nothing (default)"
        )
        mode.add_argument("--apply", action="store_true", help="put the alarms that differ; a second run changes nothing")
        mode.add_argument("--print-dashboard", choices=dashboards.KINDS, help="print a shipped dashboard body and exit")
        parser.add_argument("--prefix", default="resilience", help="alarm name prefix (default: resilience)")
        parser.add_argument("--sns-topic", metavar="ARN", help="SNS topic of AlarmActions and OKActions")
        parser.add_argument(
            "--critical",
            action="append",
            metavar="NAME",
            help="a breaker of the composite alarm (repeat; default: every breaker)",
        )
        parser.add_argument(
            "--delete-stale", action="store_true", help="also delete alarms under the prefix that are no longer wanted"
        )
        parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
        parser.add_argument("--endpoint-url", help="CloudWatch endpoint (tests, VPC endpoints)")

    def handle(self, *args: Any, **options: Any) -> None:
        region = options["region"] or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region is not None and not REGION.fullmatch(region):
            raise CommandError(f"--region must be an AWS region name such as 'eu-west-1', got {region[:40]!r}")
        try:
            if options["print_dashboard"]:
                namespace, _ = published_scope()
                self.stdout.write(dashboards.body(options["print_dashboard"], namespace, region))
                return
            if region is None:
                raise CommandError("no AWS region: give --region or set AWS_REGION")
            alarms = self._wanted(options, region)
        except (ResilienceError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self._sync(alarms, options, region)

    def _wanted(self, options: dict[str, Any], region: str) -> list[dict[str, Any]]:
        prefix, topic = options["prefix"], options["sns_topic"]
        if not PREFIX.fullmatch(prefix):
            raise CommandError(f"--prefix must be 1-64 of A-Z a-z 0-9 . _ -, got {prefix[:80]!r}")
        if topic is not None and not SNS_TOPIC.fullmatch(topic):
            raise CommandError(
                f"--sns-topic must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>), got {topic[:300]!r}"
            )
        from resilience.breakers.registry import breakers

        # The breaker of this command's own client (and of a CloudWatch metrics sink) is in the set from
        # the first run, so the run after an --apply (which has used it) wants the same alarms.
        plan = plan_from_settings([*breakers.names(), f"aws:cloudwatch:{region}"], options["critical"])
        return wanted(plan, prefix, [topic] if topic else [])

    def _sync(self, alarms: list[dict[str, Any]], options: dict[str, Any], region: str) -> None:
        try:
            from botocore.exceptions import BotoCoreError, ClientError

            from resilience.integrations.aws import session
        except ImportError as exc:  # one line naming the extra, not a traceback
            raise CommandError(str(missing((exc.name or "boto3").split(".")[0], "manage.py resilience_alarms"))) from None

        delete = options["delete_stale"]
        done: list[str] = []
        try:
            client = session().client("cloudwatch", region_name=region, endpoint_url=options["endpoint_url"])
            existing = alarm_sync.current(client, options["prefix"])
            changes = alarm_sync.compare(existing, alarms)
            self.stdout.write(alarm_sync.diff(existing, changes, delete), ending="")
            if options["apply"]:
                alarm_sync.apply(client, changes, delete, done)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            message = _one_line(f"{error.get('Code')}: {error.get('Message')}")
            raise CommandError(f"CloudWatch refused {exc.operation_name}: {message}{_partial(done)}") from None
        except (BotoCoreError, ResilienceError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {_one_line(str(exc))}"
            raise CommandError(f"CloudWatch could not be reached: {reason}{_partial(done)}") from None
        self._summary(changes, options["apply"], delete)

    def _summary(self, changes: alarm_sync.Changes, applied: bool, delete: bool) -> None:
        deleted = len(changes.stale) if delete else 0
        if not (changes.create or changes.update or deleted):
            self.stdout.write(f"no changes: {changes.unchanged} alarm(s) up to date")
        else:
            verbs = ("created", "updated", "deleted") if applied else ("would create", "would update", "would delete")
            counts = (len(changes.create), len(changes.update), deleted)
            self.stdout.write(
                ", ".join(f"{verb} {n}" for verb, n in zip(verbs, counts, strict=True)) + f"; {changes.unchanged} unchanged"
            )
        if changes.stale and not delete:
            self.stdout.write(
                f"kept {len(changes.stale)} alarm(s) under the prefix that are no longer wanted "
                f"(--delete-stale removes them): {', '.join(changes.stale)}"
            )


def _one_line(text: str) -> str:
    """An error's text as one line of at most 300 characters (an endpoint may answer with a page of HTML)."""
    return " ".join(text.split())[:300]


def _partial(done: list[str]) -> str:
    """What an --apply had changed before it failed."""
    if not done:
        return ""
    return f" (put {len(done)} alarm(s) before the error: {', '.join(done[:5])}{', ...' if len(done) > 5 else ''})"
