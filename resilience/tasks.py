"""Celery tasks of the app: ``resilience.tasks.refresh_aws_credentials``, run by a beat entry, and
``resilience.tasks.send_alert``, which sends an alert notice when ``RESILIENCE["ALERTS"]["celery"]``.

The task takes no arguments and returns nothing (``ignore_result=True``): no credential is ever in
a task message or a result backend. Its run refreshes the shared role credentials only when they
would fall under ``refresh_margin`` before the next run, one process at a time across every host
(``resilience.integrations.aws.credentials``). Add the beat entry with the task message expiring
after one interval, so runs queued while the workers were down are dropped instead of piling up
(``expires`` is applied when beat sends the message, so it belongs in the entry's ``options``)::

    CELERY_BEAT_SCHEDULE = {  # or app.conf.beat_schedule
        "resilience-aws-credentials": {
            "task": "resilience.tasks.refresh_aws_credentials",
            "schedule": 300.0,  # RESILIENCE["AWS"]["CREDENTIALS"]["schedule"]
            "options": {"expires": 300.0},
        },
    }
"""

from __future__ import annotations

from typing import Any

from resilience.exceptions import ConfigurationError

try:
    from celery import shared_task
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without celery
    from resilience.integrations.extras import missing

    raise missing("celery", "resilience.tasks") from exc

REFRESH_TASK = "resilience.tasks.refresh_aws_credentials"


def beat_entry(schedule: float = 300.0) -> dict[str, Any]:
    """The beat entry of the refresh, every ``schedule`` seconds, its message expiring as fast.

    ``schedule`` must be a number of seconds above 0: at 0 or below every message would expire
    before a worker took it, and the refresh would never run (a trial's ``beat_entry(0)``)."""
    if isinstance(schedule, bool) or not isinstance(schedule, int | float) or not 0 < schedule < float("inf"):
        raise ConfigurationError(f"resilience.tasks.beat_entry(schedule) takes a number of seconds above 0, got {schedule!r}")
    return {"task": REFRESH_TASK, "schedule": float(schedule), "options": {"expires": float(schedule)}}


@shared_task(name=REFRESH_TASK, ignore_result=True)
def refresh_aws_credentials() -> None:
    """Refresh ``RESILIENCE["AWS"]["CREDENTIALS"]``'s shared copy if it is due; events say what happened."""
    from resilience.integrations.aws.credentials import refresh

    refresh()


SEND_ALERT_TASK = "resilience.tasks.send_alert"


@shared_task(name=SEND_ALERT_TASK, ignore_result=True)
def send_alert(notice: dict[str, Any]) -> None:
    """Send one alert notice (``RESILIENCE["ALERTS"]`` with ``"celery": True``) to this worker's
    notifiers. The message holds only the notice's plain data: notifiers, and the webhook secret,
    come from the worker's own settings; failures are ``alerts send_failed`` events."""
    from resilience.observability.alerts.dispatch import dispatcher, send_now

    current = dispatcher()
    if current is not None:
        send_now(notice, current.notifiers)
