"""The Celery app of the tests: a real worker and beat against Redis, on the test settings.

Django runs ``tests.settings_live`` (``LIVE_OVERRIDES`` JSON replaces ``RESILIENCE``...). The broker
is ``CELERY_TEST_BROKER`` and the queue ``CELERY_TEST_QUEUE`` (one per test, so runs sharing a
Redis never take each other's messages); beat runs the credentials refresh every
``CELERY_TEST_INTERVAL`` seconds (1 by default) through ``resilience.tasks.beat_entry``.

    celery -A tests.celery_app worker --pool=solo
    celery -A tests.celery_app beat -s <file>
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_live")
django.setup()

from celery import Celery  # noqa: E402 - after Django is set up

from resilience.tasks import beat_entry  # noqa: E402

QUEUE = os.environ.get("CELERY_TEST_QUEUE", "resilience-tests")
INTERVAL = float(os.environ.get("CELERY_TEST_INTERVAL", "1"))

app = Celery("resilience_tests", broker=os.environ.get("CELERY_TEST_BROKER", "redis://127.0.0.1:6379/13"))
app.conf.update(
    imports=["resilience.tasks"],
    task_default_queue=QUEUE,
    task_ignore_result=True,
    beat_schedule={"resilience-aws-credentials": beat_entry(INTERVAL)},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
)
