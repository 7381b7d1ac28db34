"""Issue 14, in-app alerts (``RESILIENCE["ALERTS"]``): rules, notifiers, deduplication across workers.

Everything is real: an SMTP server (aiosmtpd) behind Django's SMTP email backend, a webhook receiver
that verifies the signature, SNS in moto's server (read back through an SQS subscription), Redis,
and four spawned worker processes tripping one shared breaker.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.checks import run_checks

from resilience import breakers, circuit_breaker
from resilience.conf import resilience_settings
from resilience.core.event import Event
from resilience.exceptions import CircuitOpenError, ConfigurationError
from resilience.observability.alerts import dispatch, notice
from resilience.observability.alerts.incidents import LocalIncidents, RedisIncidents
from resilience.observability.alerts.notifiers import sign, verify
from resilience.observability.alerts.rules import DEFAULT_RULES, parse_rule
from resilience.observability.alerts.settings import parse_alerts
from tests.observability.alert_receivers import HungWebhook, SMTPServer, WebhookReceiver
from tests.waiting import wait_for

SECRET = "whsec-0123456789abcdef-not-for-notices"
TOKEN = "tok_live_4f9a8b7c6d5e4f3a2b1c"  # noqa: S105 - a token-like value a client sends
SPAWN = multiprocessing.get_context("spawn")
WORKERS = 4
EMAIL = {"type": "email", "to": ["ops@example.com"], "from": "resilience@example.com"}
OPENED_AND_CLOSED = [
    *DEFAULT_RULES,
    {"id": "rejecting", "event": "breaker rejected", "name": "shared", "cooldown": 600},  # every worker rejects
]


def webhook(url: str, secret: str = SECRET, timeout: float = 5.0) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret": secret, "timeout": timeout}


def shared_settings(prefix: str, notifiers: list[dict[str, Any]], rules: Any = None, **alerts: Any) -> dict[str, Any]:
    return {
        "HISTORY": False,
        "REDIS": django_settings.TEST_REDIS_URL,
        "KEY_PREFIX": prefix,
        "SYNC_INTERVAL": 0.1,
        "REDIS_TIMEOUT": 2.0,  # a busy 2-core machine must not push a decision to the local fallback
        "BREAKERS": {"default": {"minimum_calls": 4, "failure_rate": 50, "window_type": "count", "window": 20,
                                 "open_for": 1.0, "half_open_calls": 1}},
        "ALERTS": {"notifiers": notifiers, "rules": rules, **alerts},
    }  # fmt: skip


@pytest.fixture
def smtp(settings: Any) -> Iterator[SMTPServer]:
    server = SMTPServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 5
    yield server
    server.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET.encode())
    yield server
    server.close()


def subjects(smtp: SMTPServer) -> list[str]:
    return sorted(
        line.split(b": ", 1)[1].decode() for m in smtp.messages for line in m.splitlines() if line.startswith(b"Subject: ")
    )


def flush() -> None:
    current = dispatch.dispatcher()
    assert current is not None and current.flush(30)


# -- settings -----------------------------------------------------------------------------------
def test_alerts_are_off_until_there_are_notifiers(settings):
    assert not parse_alerts({}, "A").enabled
    assert dispatch.dispatcher() is None


def test_notifiers_without_rules_alert_on_breakers_opening_and_closing():
    parsed = parse_alerts({"notifiers": [EMAIL]}, "A")
    (rule,) = parsed.rules
    assert (rule.id, rule.match.area, rule.match.kind, dict(rule.match.when)) == (
        "breaker_open", "breaker", "transition", {"new_state": ("open", "forced_open")})  # fmt: skip
    assert rule.resolve is not None and dict(rule.resolve.when) == {"new_state": ("closed", "disabled")}
    assert (parsed.queue_size, parsed.celery) == (100, False)


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ([], 'RESILIENCE["ALERTS"] must be a dict'),
        ({"notifers": []}, "RESILIENCE[\"ALERTS\"] has unknown key(s) 'notifers'"),
        ({"rules": [{"event": "breaker transition", "threshold": 0}]},
         'RESILIENCE["ALERTS"]["rules"][0]["threshold"] must be a whole number from 1'),
        ({"rules": [{"event": "breaker"}]}, 'RESILIENCE["ALERTS"]["rules"][0]["event"] must be "<area> <kind>"'),
        ({"rules": [{"event": "breaker transition", "treshold": 2}]},
         "RESILIENCE[\"ALERTS\"][\"rules\"][0] has unknown key(s) 'treshold'"),
        ({"rules": [{"event": "breaker transition", "cooldown": -1}]}, 'RESILIENCE["ALERTS"]["rules"][0]["cooldown"] must be'),
        ({"rules": [{"event": "breaker transition", "resolve": {"event": "breaker transition", "when": {"new_state": []}}}]},
         'RESILIENCE["ALERTS"]["rules"][0]["resolve"]["when"][\'new_state\'] must be'),
        ({"rules": [{"id": "a", "event": "breaker transition"}, {"id": "a", "event": "breaker rejected"}]},
         'RESILIENCE["ALERTS"]["rules"][1]["id"] repeats'),
        ({"notifiers": [{"type": "slack"}]}, 'RESILIENCE["ALERTS"]["notifiers"][0]["type"] must be one of'),
        ({"notifiers": [{"type": "email", "to": ["ops"]}]}, 'RESILIENCE["ALERTS"]["notifiers"][0]["to"] must be'),
        ({"notifiers": [webhook("ftp://hooks.example.com")]}, 'RESILIENCE["ALERTS"]["notifiers"][0]["url"] must be'),
        ({"notifiers": [webhook("https://ops:hunter2@hooks.example.com/x")]},
         'RESILIENCE["ALERTS"]["notifiers"][0]["url"] must be an http(s):// URL without user:password@'),
        ({"notifiers": [webhook("https://hooks.example.com/x\n")]}, 'RESILIENCE["ALERTS"]["notifiers"][0]["url"] must be'),
        ({"rules": [{"event": "alerts notice_sent"}]},
         'RESILIENCE["ALERTS"]["rules"][0]["event"] names an event of the alerts area'),
        ({"notifiers": [webhook("https://hooks.example.com", timeout=60)]},
         'RESILIENCE["ALERTS"]["notifiers"][0]["timeout"] must be a number above 0 and at most 30'),
        ({"notifiers": [{"type": "sns", "topic_arn": "ops"}]}, 'RESILIENCE["ALERTS"]["notifiers"][0]["topic_arn"] must be'),
        ({"queue_size": 0}, 'RESILIENCE["ALERTS"]["queue_size"] must be a whole number from 1'),
        ({"celery": "yes"}, 'RESILIENCE["ALERTS"]["celery"] must be True or False'),
    ],
)  # fmt: skip
def test_a_malformed_alerts_setting_is_e001_naming_the_key(settings, alerts, message):
    settings.RESILIENCE = {"ALERTS": alerts}
    errors = [m.msg for m in run_checks() if m.id == "resilience.E001"]
    assert len(errors) == 1 and errors[0].startswith(message), errors
    with pytest.raises(ConfigurationError):
        resilience_settings.ALERTS  # noqa: B018


def test_a_short_webhook_secret_or_a_url_with_a_token_is_refused_without_being_shown(settings):
    short, url = "tooshort", f"ftp://hooks.example.com/{TOKEN}"
    settings.RESILIENCE = {"ALERTS": {"notifiers": [webhook("https://hooks.example.com", secret=short), webhook(url)]}}
    (error,) = [m.msg for m in run_checks() if m.id == "resilience.E001"]
    assert 'RESILIENCE["ALERTS"]["notifiers"][0]["secret"] must be "env:NAME" or a key of at least 16' in error
    assert short not in error
    settings.RESILIENCE = {"ALERTS": {"notifiers": [webhook(url)]}}
    (error,) = [m.msg for m in run_checks() if m.id == "resilience.E001"]
    assert TOKEN not in error


def test_a_webhook_secret_from_the_environment_is_read_when_sending(monkeypatch):
    from resilience.observability.alerts.settings import secret

    (config,) = parse_alerts({"notifiers": [webhook("https://h.example.com", secret="env:ALERTS_HOOK_KEY")]}, "A").notifiers
    with pytest.raises(ConfigurationError, match="'ALERTS_HOOK_KEY' is not set"):
        secret(config)  # type: ignore[arg-type]
    monkeypatch.setenv("ALERTS_HOOK_KEY", SECRET)
    assert secret(config) == SECRET.encode()  # type: ignore[arg-type]
    assert SECRET not in repr(config) and "h.example.com" not in repr(config)


# -- rules, incidents, notices, signatures --------------------------------------------------------
def test_a_rule_matches_area_kind_fields_and_a_name_glob():
    rule = parse_rule({"event": "breaker transition", "when": {"new_state": ["open", "forced_open"]}, "name": "pay*"}, "R", 0)
    assert rule.id == "rule0"
    assert rule.raises(Event("breaker", "transition", "payments", {"new_state": "open"}))
    assert not rule.raises(Event("breaker", "transition", "orders", {"new_state": "open"}))
    assert not rule.raises(Event("breaker", "transition", "payments", {"new_state": "half_open"}))
    assert not rule.raises(Event("breaker", "rejected", "payments", {"new_state": "open"}))


RESOLVING = {"id": "r", "event": "breaker transition", "when": {"new_state": "open"}, "cooldown": 60,
             "resolve": {"event": "breaker transition", "when": {"new_state": "closed"}}}  # fmt: skip


@pytest.fixture(params=["local", "redis"])
def incidents(request, key_prefix, test_redis):
    return LocalIncidents() if request.param == "local" else RedisIncidents(test_redis, key_prefix)


def test_one_incident_is_one_notice_and_one_resolution(incidents):
    rule = parse_rule(RESOLVING, "R", 0)
    assert incidents.open(rule, "payments", "first") == ("opened", "first")
    assert incidents.open(rule, "payments", "second") is None  # folded into the open incident
    assert incidents.open(rule, "orders", "third") == ("opened", "third")  # another name, another incident
    assert incidents.resolve(rule, "payments") == "first"
    assert incidents.resolve(rule, "payments") is None  # resolved once
    assert incidents.open(rule, "payments", "fourth") == ("opened", "fourth")


def test_an_incident_still_open_after_its_cooldown_sends_a_reminder_and_one_without_resolve_ends():
    now = [1000.0]
    incidents = LocalIncidents(clock=lambda: now[0])
    rule, once = parse_rule(RESOLVING, "R", 0), parse_rule({"event": "breaker rejected", "cooldown": 60}, "R", 1)
    assert incidents.open(rule, "p", "a") == ("opened", "a")
    assert incidents.open(once, "p", "b") == ("opened", "b")
    now[0] += 59
    assert incidents.open(rule, "p", "c") is None
    assert incidents.open(once, "p", "d") is None
    now[0] += 2
    assert incidents.open(rule, "p", "e") == ("reminder", "a")  # the same incident, announced again
    assert incidents.open(once, "p", "f") == ("opened", "f")  # no resolution: the incident was the cooldown


def test_a_threshold_counts_matches_within_its_window(incidents):
    rule = parse_rule({"event": "breaker rejected", "threshold": 3, "window": 60}, "R", 0)
    assert [incidents.count(rule, "p", 120.0) for _ in range(3)] == [1, 2, 3]
    assert incidents.count(rule, "p", 180.0) == 1  # the next window starts again


def test_incident_keys_hash_the_name_and_always_expire(test_redis, key_prefix):
    incidents = RedisIncidents(test_redis, key_prefix)
    rule = parse_rule({**RESOLVING, "threshold": 2}, "R", 0)
    incidents.count(rule, TOKEN, 0.0)
    incidents.open(rule, TOKEN, "x")
    keys = [k.decode() for k in test_redis.scan_iter(f"{key_prefix}:alerts:*")]
    assert len(keys) == 3 and not any(TOKEN in k for k in keys)
    assert all(0 < test_redis.pttl(k) for k in keys)


def test_a_notice_carries_only_states_reasons_and_numbers():
    event = Event("breaker", "transition", "payments\n", {
        "new_state": "open", "reason": "threshold", "calls": 40, "actor": "alice", "error": f"Bearer {TOKEN}",
        "value": TOKEN, "old_state": f"closed {TOKEN}?x=1",
    })  # fmt: skip
    built = notice.build("r", "opened", "abc", event, 1, 0.0)
    assert built["fields"] == {"new_state": "open", "reason": "threshold", "calls": 40}
    assert built["name"] == "payments\\n" and built["time"] == "1970-01-01T00:00:00+00:00"
    assert TOKEN not in json.dumps(built) and "alice" not in json.dumps(built)


def test_the_webhook_signature_verifies_and_refuses_tampering_and_replays():
    body, key = b'{"status":"opened"}', SECRET.encode()
    signature = sign(key, "1000", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(key, body, "1000", signature, now=1100)
    assert not verify(key, body + b" ", "1000", signature, now=1100)  # tampered body
    assert not verify(key, body, "1001", signature, now=1100)  # the timestamp is signed too
    assert not verify(key, body, "1000", signature, now=1000 + 301)  # replayed later
    assert not verify(b"another-key-0123456789", body, "1000", signature, now=1100)


# -- end to end -------------------------------------------------------------------------------
def trip(name: str, calls: int = 10) -> None:
    breaker = circuit_breaker(name)
    for _ in range(calls):
        try:
            breaker.call(lambda: (_ for _ in ()).throw(ConnectionError("down")))
        except (ConnectionError, CircuitOpenError):
            pass


def test_four_workers_tripping_one_breaker_send_exactly_one_notice_and_one_resolution(smtp, receiver, key_prefix, monkeypatch):
    monkeypatch.setenv("RESILIENCE_TEST_HOOK_KEY", SECRET)  # the spawned workers inherit it
    resilience = shared_settings(
        key_prefix, [EMAIL, webhook(receiver.url, secret="env:RESILIENCE_TEST_HOOK_KEY")], OPENED_AND_CLOSED
    )
    from tests.observability.alert_workers import tripping_worker

    barrier, results = SPAWN.Barrier(WORKERS), SPAWN.Queue()
    procs = [SPAWN.Process(target=tripping_worker, args=(resilience, smtp.port, barrier, results), daemon=True)
             for _ in range(WORKERS)]  # fmt: skip
    for p in procs:
        p.start()
    try:
        reports = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(10)
            p.kill()
    assert not [r for r in reports if "error" in r], reports
    assert all(r["state"] == "closed" and r["flushed"] and r["rejected"] == 5 for r in reports), reports
    print("breaker events per worker:", reports)
    # every worker rejected calls; the breaker opened and closed (once or more, per the workers)
    assert all(r.get("breaker:rejected:", 0) >= 5 for r in reports)  # each worker matched the "rejecting" rule
    assert sum(r.get("breaker:transition:closed", 0) for r in reports) >= 1
    assert sum(r.get("alerts:notice_sent:", 0) for r in reports) == 3 * 2  # three notices, two notifiers each
    expected = ["opened: breaker_open shared", "opened: rejecting shared", "resolved: breaker_open shared"]
    assert subjects(smtp) == [f"[resilience] {s}" for s in expected]
    hooks = receiver.received
    assert all(h["valid"] for h in hooks)
    assert sorted(f"{h['notice']['status']}: {h['notice']['rule']} {h['notice']['name']}" for h in hooks) == expected
    opened, resolved = (next(h["notice"] for h in hooks if h["notice"]["status"] == s and h["notice"]["rule"] == "breaker_open")
                        for s in ("opened", "resolved"))  # fmt: skip
    assert opened["incident"] == resolved["incident"]
    assert (opened["fields"]["new_state"], resolved["fields"]["new_state"]) == ("open", "closed")
    assert not any(SECRET.encode() in raw for raw in [*smtp.messages, *(h["raw"] for h in hooks)])


def test_a_hung_webhook_never_blocks_the_protected_call_and_a_full_queue_counts_drops(settings, key_prefix, events):
    hung = HungWebhook()
    rules = [{"id": "rejecting", "event": "breaker rejected", "cooldown": 1}]
    settings.RESILIENCE = shared_settings(key_prefix, [webhook(hung.url, timeout=5.0)], rules, queue_size=2)
    breaker = circuit_breaker("isolated")
    breakers.get("isolated").force_open()
    try:
        durations = []
        for _ in range(20):
            started = time.perf_counter()
            with pytest.raises(CircuitOpenError):
                breaker.call(lambda: None)
            durations.append(time.perf_counter() - started)
            if len(durations) == 1:
                assert hung.accepted.wait(5)  # the sending thread is stuck in the webhook
        print(f"slowest rejected call with a hung webhook: {max(durations) * 1000:.2f} ms (webhook timeout 5 s)")
        assert max(durations) < 0.5  # well under the webhook's 5 s
        dropped = [e for e in events if (e.area, e.kind) == ("alerts", "notice_dropped")]
        assert len(dropped) == 20 - 1 - 2  # one being sent, two queued, the rest dropped and counted
        assert dropped[-1].fields == {"total": 17, "queue": 2}
    finally:
        hung.close()  # the stuck send fails now
    assert wait_for(lambda: any((e.area, e.kind) == ("alerts", "send_failed") for e in events), 10)
    failed = next(e for e in events if (e.area, e.kind) == ("alerts", "send_failed"))
    assert failed.fields["notifier"] == "webhook" and hung.url not in str(failed.fields)


def test_notices_never_carry_the_webhook_secret_or_what_a_client_sent(settings, smtp, receiver, key_prefix):
    settings.ROOT_URLCONF = "tests.urls_alerts"
    settings.RESILIENCE = shared_settings(key_prefix, [EMAIL, webhook(receiver.url)])
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_X_API_KEY=TOKEN)
    statuses = [client.get(f"/charge/?card={TOKEN}").status_code for _ in range(6)]
    assert statuses[-1] == 503  # the breaker opened on the calls that carried the token
    breakers.get("payments").reset()
    flush()
    assert wait_for(lambda: len(smtp.messages) == 2 and len(receiver.received) == 2, 10)
    sent = [*smtp.messages, *(h["raw"] for h in receiver.received)]
    assert sum(raw.count(TOKEN.encode()) + raw.count(SECRET.encode()) for raw in sent) == 0
    assert [h["notice"]["status"] for h in receiver.received] == ["opened", "resolved"]


def test_a_webhook_that_refuses_the_signature_is_a_send_failed_event_and_email_still_goes(settings, smtp, receiver, events):
    wrong = webhook(receiver.url, secret="another-secret-0123456789")
    settings.RESILIENCE = {"HISTORY": False, "ALERTS": {"notifiers": [wrong, EMAIL]},
                           "BREAKERS": {"default": {"minimum_calls": 4, "window_type": "count", "window": 20}}}  # fmt: skip
    trip("payments")
    flush()
    alerts = [(e.kind, e.fields.get("notifier"), e.fields.get("error")) for e in events if e.area == "alerts"]
    assert alerts == [("send_failed", "webhook", "HTTPError"), ("notice_sent", "email", None)]
    assert [h["valid"] for h in receiver.received] == [False]  # the receiver refused it: 401
    assert subjects(smtp) == ["[resilience] opened: breaker_open payments"]


def test_the_sns_notifier_publishes_the_notice_to_the_topic(settings, key_prefix, monkeypatch):
    from tests.live import moto_server

    for var, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(var, value)
    with moto_server() as url:
        import boto3

        sns, sqs = (boto3.client(s, endpoint_url=url, region_name="eu-west-1") for s in ("sns", "sqs"))
        topic = sns.create_topic(Name="ops")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="ops-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        notifier = {"type": "sns", "topic_arn": topic, "endpoint_url": url}
        settings.RESILIENCE = shared_settings(key_prefix, [notifier])
        trip("payments")
        flush()
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        (published,) = [json.loads(m["Body"]) for m in messages]
        assert (published["status"], published["rule"], published["name"]) == ("opened", "breaker_open", "payments")
        assert published["fields"]["new_state"] == "open"


def test_with_celery_a_notice_is_sent_by_the_send_alert_task_with_plain_data_only(settings, smtp, key_prefix):
    from celery import current_app

    from resilience import tasks

    sent: list[Any] = []
    original = tasks.send_alert.apply_async

    def serialised(args: Any, **kwargs: Any) -> Any:
        sent.append(json.loads(json.dumps(args)))  # the message: JSON, or this raises
        return original(args=json.loads(json.dumps(args)), **kwargs)

    settings.RESILIENCE = shared_settings(key_prefix, [EMAIL, webhook("http://127.0.0.1:9/unused")], celery=True)
    current_app.conf.task_always_eager = True
    tasks.send_alert.apply_async = serialised  # type: ignore[method-assign]
    try:
        trip("payments")
        flush()
    finally:
        tasks.send_alert.apply_async = original  # type: ignore[method-assign]
        current_app.conf.task_always_eager = False
    ((notice_sent,),) = sent
    assert notice_sent["status"] == "opened" and SECRET not in json.dumps(sent)
    assert subjects(smtp) == ["[resilience] opened: breaker_open payments"]


def test_without_redis_a_worker_deduplicates_its_own_notices(settings, smtp):
    settings.RESILIENCE = {"HISTORY": False, "ALERTS": {"notifiers": [EMAIL], "rules": OPENED_AND_CLOSED},
                           "BREAKERS": {"default": {"minimum_calls": 4, "window_type": "count", "window": 20}}}  # fmt: skip
    trip("shared", 30)
    flush()
    assert subjects(smtp) == ["[resilience] opened: breaker_open shared", "[resilience] opened: rejecting shared"]


def test_when_redis_fails_each_worker_still_sends_its_notice(settings, smtp, redis_server, events):
    settings.RESILIENCE = {**shared_settings("alerts-down", [EMAIL]), "REDIS": redis_server.url, "REDIS_TIMEOUT": 0.2}
    threading.Thread(target=redis_server.kill).start()
    assert wait_for(lambda: redis_server.proc is None, 5)
    trip("payments")
    flush()
    assert any((e.area, e.kind) == ("alerts", "store_unavailable") for e in events)
    assert subjects(smtp) == ["[resilience] opened: breaker_open payments"]


def test_a_celery_worker_sends_the_notice_with_a_secret_only_the_worker_has(settings, smtp, receiver, key_prefix):
    """A real worker (``tests.celery_app``, Redis as the broker): the web side hands the notice over
    without the webhook secret; the worker reads it from its own environment and signs."""
    import os
    import uuid

    from celery import Celery, current_app

    from tests.integrations.aws.test_credentials_celery import BROKER, CeleryProcesses

    queue = f"resilience-alerts-{uuid.uuid4().hex[:12]}"
    notifiers = [EMAIL, webhook(receiver.url, secret="env:RESILIENCE_WORKER_HOOK_KEY")]
    settings.RESILIENCE = shared_settings(key_prefix, notifiers, celery=True)
    assert "RESILIENCE_WORKER_HOOK_KEY" not in os.environ  # the web side cannot sign
    overrides = {"RESILIENCE": settings.RESILIENCE, "EMAIL_BACKEND": settings.EMAIL_BACKEND, "EMAIL_HOST": "127.0.0.1",
                 "EMAIL_PORT": smtp.port, "EMAIL_TIMEOUT": 5}  # fmt: skip
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings_live", "LIVE_OVERRIDES": json.dumps(overrides),
           "CELERY_TEST_BROKER": BROKER, "CELERY_TEST_QUEUE": queue, "RESILIENCE_WORKER_HOOK_KEY": SECRET}  # fmt: skip
    worker = CeleryProcesses(env)
    previous = current_app._get_current_object()
    producer = Celery("alerts-producer", broker=BROKER)
    producer.conf.update(task_default_queue=queue, task_ignore_result=True)
    producer.set_default()
    try:
        worker.start("worker", "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat")
        trip("payments")
        flush()
        assert wait_for(lambda: len(smtp.messages) == 1 and len(receiver.received) == 1, 60), worker.output()
        wait_for(lambda: "succeeded" in worker.output(), 10)  # the task logs it after sending: not a race to lose
    finally:
        previous.set_default()
        producer.close()
        output = worker.output()
        worker.stop()
    assert "resilience.tasks.send_alert" in output and "succeeded" in output
    assert receiver.received[0]["valid"] and receiver.received[0]["notice"]["status"] == "opened"
    assert subjects(smtp) == ["[resilience] opened: breaker_open payments"]
    assert SECRET not in output
