"""``manage.py aws_demo`` (``bash scripts/demo aws``): region failover and shared role credentials,
against moto on 127.0.0.1, step by step in plain text. No AWS account, Redis or Celery worker needed.

1. moto in server mode (Secrets Manager, STS) and a TCP proxy in front of the primary region's endpoint;
2. a secret in eu-west-1 replicated to eu-central-1, read through ``failover_client()``;
3. eu-west-1 goes down at the proxy: reads fail over to eu-central-1, its breaker opens, it comes back,
   the next read fails back;
4. ``resilience.tasks.refresh_aws_credentials`` run once, here: AssumeRole once, then a
   ``role_session()`` client signs with those credentials without asking STS again.

The demo's own ``RESILIENCE`` settings apply while it runs (in-process state, quick breakers); the
credentials it makes are never printed, only their lengths.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.test import override_settings

PRIMARY, REPLICA = "eu-west-1", "eu-central-1"
ACCOUNT = "123456789012"  # moto's default account
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/resilience-demo"
SECRET_NAME = "demo/db-password"
SECRET_VALUE = "correct-horse-battery-staple"  # made up by the demo
OPEN_FOR = 2.0  # seconds the primary's breaker stays open before a probe
# The base credentials the STS client signs with (moto accepts any); the role's come from AssumeRole.
BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "demo-base-key",
    "AWS_SECRET_ACCESS_KEY": "demo-base-secret",
    "AWS_CONFIG_FILE": os.devnull,  # never a profile of the user's
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
UNSET_ENV = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN",
             "AWS_WEB_IDENTITY_TOKEN_FILE")  # fmt: skip
SHOWN = {("aws", "failover"), ("aws", "failback"), ("aws", "last_known_good"), ("breaker", "transition")}


@contextlib.contextmanager
def demo_environment() -> Iterator[None]:
    """Fake base credentials for the run; the environment as it was afterwards."""
    saved = {name: os.environ.get(name) for name in (*BASE_ENV, *UNSET_ENV)}
    os.environ.update(BASE_ENV)
    for name in UNSET_ENV:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """The demo prints the events itself: the same lines from the loggers would say everything twice."""
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def demo_settings(moto_url: str, fernet_key: str) -> dict[str, Any]:
    return {
        "REDIS": None,  # in-process breakers and credentials: this one process is the whole demo
        "HISTORY": False,
        "RETRY": {"aws": {"attempts": 2, "base": 0.05, "cap": 0.2}},
        "BREAKERS": {
            f"aws:secretsmanager:{PRIMARY}": {
                "window_type": "count", "window": 10, "minimum_calls": 3, "failure_rate": 50,
                "open_for": OPEN_FOR, "half_open_calls": 1,
            },
            f"aws:secretsmanager:{REPLICA}": {"window_type": "count", "window": 10, "minimum_calls": 3},
        },
        "AWS": {
            "CREDENTIALS": {
                "role_arn": ROLE_ARN,
                "region": PRIMARY,
                "sts_endpoint_url": moto_url,  # in production: None, the regional endpoint
                "duration": 3600,
                "refresh_margin": 900,
                "schedule": 300,
                "encryption_key": fernet_key,  # made for this run; in production "env:RESILIENCE_AWS_KEY"
            }
        },
    }  # fmt: skip


def assume_role_calls() -> int:
    """AssumeRole calls moto has answered for the demo's role (moto runs in this process)."""
    from moto.sts.models import sts_backends

    return sum(1 for r in sts_backends[ACCOUNT]["aws"].assumed_roles if r.role_arn == ROLE_ARN)


def latest_access_key() -> str | None:
    """The access key id of moto's last AssumeRole answer for the demo's role (compared, never printed)."""
    from moto.sts.models import sts_backends

    found = [r for r in sts_backends[ACCOUNT]["aws"].assumed_roles if r.role_arn == ROLE_ARN]
    return found[-1].access_key_id if found else None


def remove_secret(moto: Any) -> None:
    """moto keeps its data in this process: a second run (in tests) must be able to create the secret again."""
    import boto3

    host, port = moto.get_host_and_port()
    client = boto3.client("secretsmanager", region_name=PRIMARY, endpoint_url=f"http://{host}:{port}")
    with contextlib.suppress(Exception):  # not created, or already gone
        client.remove_regions_from_replication(SecretId=SECRET_NAME, RemoveReplicaRegions=[REPLICA])
    with contextlib.suppress(Exception):
        client.delete_secret(SecretId=SECRET_NAME, ForceDeleteWithoutRecovery=True)


class Command(BaseCommand):
    help = "AWS demo against moto: a Secrets Manager read fails over to another region and back; role credentials refreshed once."

    def handle(self, *args: Any, **options: Any) -> None:
        from cryptography.fernet import Fernet
        from moto.server import ThreadedMotoServer

        from project.demo.outage import RegionProxy
        from resilience.observability import events
        from resilience.signals import event_emitted

        started = time.monotonic()
        self.pending: list[Any] = []
        self.say("AWS demo: region failover and role credentials refreshed by Celery, against moto (no AWS account)")
        with demo_environment(), quiet_loggers("resilience", "werkzeug", "botocore"):
            self.step(1, "Start moto and a fault proxy")
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto.start()
            proxy = None
            try:
                host, port = moto.get_host_and_port()
                moto_url = f"http://{host}:{port}"
                proxy = RegionProxy(host, port)
                self.say(f"moto (Secrets Manager, STS) at {moto_url}", 3)
                self.say(f"{PRIMARY} (primary) is reached through a TCP proxy at {proxy.url}, which the demo can cut", 3)
                self.say(f"{REPLICA} (replica) is reached directly at {moto_url}", 3)
                event_emitted.connect(self.on_event, weak=False, dispatch_uid="aws_demo")
                with override_settings(RESILIENCE=demo_settings(moto_url, Fernet.generate_key().decode())):
                    self.failover(moto_url, proxy)
                    self.credentials(moto_url)
            finally:
                event_emitted.disconnect(dispatch_uid="aws_demo")
                events.summary.flush()  # the folded log lines of the demo's events: printed above already
                if proxy is not None:
                    proxy.close()
                remove_secret(moto)
                moto.stop()
        self.say("")
        self.say(f"Done in {time.monotonic() - started:.1f} s: moto and the proxy are stopped.")

    # -- output -------------------------------------------------------------------------------
    def say(self, text: str = "", indent: int = 0) -> None:
        self.stdout.write(" " * indent + text if text else "")

    def step(self, number: int, title: str) -> None:
        self.say("")
        self.say(f"{number}. {title}")
        self.say("-" * (len(title) + 3))

    def on_event(self, sender: Any, event: Any, **kwargs: Any) -> None:
        """Kept until the step that caused it has printed its own line (``flush``)."""
        if (event.area, event.kind) in SHOWN or (event.area == "aws" and event.kind.startswith("credentials_")):
            self.pending.append(event)

    def flush(self) -> None:
        """The events since the last flush: AWS ones as the log line they make, breaker transitions in short."""
        from resilience.observability.events import format_line

        events, self.pending = self.pending, []
        for event in events:
            if event.area == "breaker":
                f = event.fields
                detail = f["reason"]
                if detail == "threshold":
                    detail += f": {f['failure_rate']:g} % of {f['calls']} calls failed"
                self.say(f"breaker {event.name}: {f['old_state']} -> {f['new_state']} ({detail})", 6)
            else:
                self.say(f"event: {format_line(event)}", 6)

    def breakers_table(self) -> None:
        out = StringIO()
        call_command("breakers", "list", stdout=out, stderr=StringIO())  # stderr: the in-process warning
        for line in out.getvalue().splitlines():
            self.say(line, 5)

    # -- 2 and 3: failover ----------------------------------------------------------------------
    def failover(self, moto_url: str, proxy: Any) -> None:
        import boto3
        from botocore.config import Config

        from resilience.integrations.aws import failover_client

        self.step(2, "A secret replicated to a second region")
        direct = boto3.client("secretsmanager", region_name=PRIMARY, endpoint_url=moto_url)
        created = direct.create_secret(Name=SECRET_NAME, SecretString=SECRET_VALUE, AddReplicaRegions=[{"Region": REPLICA}])
        replicas = ", ".join(f"{r['Region']} ({r['Status']})" for r in created.get("ReplicationStatus", []))
        self.say(f"created {SECRET_NAME!r} in {PRIMARY}, replicated to {replicas}", 3)
        secrets = failover_client(
            "secretsmanager",
            regions=[PRIMARY, REPLICA],
            operations={"get_secret_value"},
            endpoint_urls={PRIMARY: proxy.url, REPLICA: moto_url},
            config=Config(connect_timeout=1, read_timeout=2),
        )
        self.say(f'secrets = failover_client("secretsmanager", regions=["{PRIMARY}", "{REPLICA}"], '
                 'operations={"get_secret_value"})', 3)  # fmt: skip
        self.say(f"breaker aws:secretsmanager:{PRIMARY}: opens when half of 3 or more calls failed, "
                 f"probes after {OPEN_FOR:g} s; retry policy aws: 2 attempts per region", 3)  # fmt: skip

        self.step(3, f"{PRIMARY} goes down, then comes back")

        def read(label: str) -> int:
            before = proxy.refused
            answer = secrets.get_secret_value(SecretId=SECRET_NAME)
            region = answer["ARN"].split(":")[3]  # arn:aws:secretsmanager:<region>:<account>:secret:<name>
            failed = proxy.refused - before
            note = f" after {failed} failed attempt(s) in {PRIMARY}" if failed else ""
            self.say(f"{label}: {answer['SecretString']!r} served by {region}{note}", 3)
            self.flush()
            return failed

        read("read 1")
        self.say("")
        self.say(f">>> {PRIMARY} goes down (its proxy closes every connection)", 3)
        proxy.down()
        read("read 2")
        read("read 3")
        self.say(f"next call's order: {secrets.order()}", 3)
        sent = read("read 4")
        if sent == 0:
            self.say(f"(the breaker of {PRIMARY} is open: read 4 sent it nothing and did not wait)", 3)
        self.say("")
        self.say("manage.py breakers list:", 3)
        self.breakers_table()
        self.say("")
        self.say(f">>> {PRIMARY} comes back; its breaker lets a probe through once its {OPEN_FOR:g} s are over", 3)
        proxy.up()
        self.wait_for_probe(f"aws:secretsmanager:{PRIMARY}")
        self.say(f"next call's order: {secrets.order()}", 3)
        read("read 5")
        read("read 6")
        self.say("")
        self.say("manage.py breakers list:", 3)
        self.breakers_table()

    def wait_for_probe(self, name: str) -> None:
        from resilience import breakers

        until = time.monotonic() + OPEN_FOR + 5
        while time.monotonic() < until and not breakers.snapshot(name).probe_due:
            time.sleep(0.1)

    # -- 4: credentials -------------------------------------------------------------------------
    def credentials(self, moto_url: str) -> None:
        from resilience.integrations.aws import role_session
        from resilience.tasks import refresh_aws_credentials

        self.step(4, "Role credentials refreshed by Celery, used by a web worker")
        self.say('RESILIENCE["AWS"]["CREDENTIALS"]:', 3)
        self.say(f"role_arn {ROLE_ARN}, region {PRIMARY}, sts_endpoint_url {moto_url},", 6)
        self.say("duration 3600 s, refresh_margin 900 s, schedule 300 s, encryption_key a Fernet key made for this run", 6)
        self.say("(no RESILIENCE['REDIS'] here: the copy stays in this process; with Redis every worker shares it, encrypted)", 6)
        self.say("")
        calls = assume_role_calls()
        self.say("beat run 1: resilience.tasks.refresh_aws_credentials() (called here; a Celery worker runs it every 300 s)", 3)
        refresh_aws_credentials()
        self.flush()
        first = latest_access_key()
        self.say(f"STS AssumeRole calls: {assume_role_calls() - calls}", 6)
        self.say("beat run 2, at once: 3600 s left is more than refresh_margin + schedule (1200 s), nothing to do", 3)
        refresh_aws_credentials()
        self.flush()
        self.say(f"STS AssumeRole calls: {assume_role_calls() - calls}", 6)
        self.say("")
        self.say('a web worker: role_session(region_name="eu-central-1").client("secretsmanager").get_secret_value(...)', 3)
        session = role_session(region_name=REPLICA)
        answer = session.client("secretsmanager", endpoint_url=moto_url).get_secret_value(SecretId=SECRET_NAME)
        self.flush()
        frozen = session.get_credentials().get_frozen_credentials()
        self.say(f"answer: {answer['SecretString']!r}", 6)
        same = "yes" if frozen.access_key == first else "NO"
        self.say(
            f"signed with {session.get_credentials().method!r} credentials: access key id *** ({len(frozen.access_key)} "
            f"characters), secret key *** ({len(frozen.secret_key)}), session token *** ({len(frozen.token)})",
            6,
        )
        self.say(f"the ones AssumeRole answered in beat run 1: {same}", 6)
        self.say(f"STS AssumeRole calls: {assume_role_calls() - calls} (the worker took the refreshed credentials: "
                 "no request waited on STS)", 6)  # fmt: skip
