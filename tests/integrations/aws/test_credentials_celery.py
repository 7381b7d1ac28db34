"""The refresh through a real Celery worker and beat (not eager mode), Redis as the broker.

Each test starts its own worker and beat (subprocesses on ``tests.celery_app``, a queue of their
own) and always stops them: SIGTERM, then SIGKILL after a bounded wait.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from resilience.integrations.aws.credentials import credentials
from tests.integrations.aws.test_credentials import ACCOUNT, assumed, copy_of, credentials_settings

ROOT = Path(__file__).resolve().parents[3]
BROKER = os.environ.get("CELERY_TEST_BROKER", "redis://127.0.0.1:6379/13")


class CeleryProcesses:
    """``celery worker`` and ``celery beat`` for one test, with their output kept for failures."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dir = tempfile.TemporaryDirectory(prefix="celery-test-")
        self.logs: list[Path] = []

    def start(self, *args: str) -> None:
        log = Path(self.dir.name) / f"{args[0]}.log"
        self.logs.append(log)
        command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", *args, "--loglevel=INFO"]
        with log.open("wb") as out:
            self.procs.append(subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT))

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs if log.exists())

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs = []
        self.dir.cleanup()


@pytest.fixture
def celery(settings: Any, key_prefix: str, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``celery(role_arn)``: worker and beat running the refresh every second for that role."""
    started: list[CeleryProcesses] = []
    for name, value in {"AWS_ACCESS_KEY_ID": "base-key", "AWS_SECRET_ACCESS_KEY": "base-secret"}.items():
        monkeypatch.setenv(name, value)

    def start(role_arn: str) -> CeleryProcesses:
        settings.RESILIENCE = {
            "HISTORY": False,
            "REDIS": django_settings.TEST_REDIS_URL,
            "KEY_PREFIX": key_prefix,
            "AWS": {"CREDENTIALS": credentials_settings(moto_url, role_arn, schedule=1)},
        }
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings_live",
            "LIVE_OVERRIDES": json.dumps({"RESILIENCE": settings.RESILIENCE}),
            "CELERY_TEST_BROKER": BROKER,
            "CELERY_TEST_QUEUE": f"resilience-test-{uuid.uuid4().hex[:12]}",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }
        processes = CeleryProcesses(env)
        started.append(processes)
        processes.start("worker", "--pool=solo", "--without-gossip", "--without-mingle", "--without-heartbeat")
        processes.start("beat", "-s", str(Path(processes.dir.name) / "schedule"), "--max-interval=1")
        return processes

    yield start
    for processes in started:
        processes.stop()


def wait_for(condition: Any, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_beat_and_a_worker_keep_the_shared_copy_and_web_workers_never_call_sts(celery: Any) -> None:
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/celery-{uuid.uuid4().hex[:8]}"
    processes = celery(role_arn)
    assert wait_for(lambda: copy_of(role_arn).read() is not None, 30), processes.output()
    (role,) = assumed(role_arn)
    assert credentials().get_frozen_credentials().access_key == role.access_key_id  # the web side: the copy
    time.sleep(2.5)  # more runs: the copy is fresh, none of them assumes the role again
    assert len(assumed(role_arn)) == 1
    output = processes.output()
    assert "refresh_aws_credentials" in output and "succeeded" in output
    for secret in (role.access_key_id, role.secret_access_key, role.session_token):
        assert secret not in output
    processes.stop()
    assert all(proc.poll() is not None for proc in processes.procs)


def test_the_task_takes_nothing_returns_nothing_and_its_message_expires_after_one_interval() -> None:
    from resilience.tasks import REFRESH_TASK, beat_entry, refresh_aws_credentials

    assert refresh_aws_credentials.name == REFRESH_TASK == "resilience.tasks.refresh_aws_credentials"
    assert refresh_aws_credentials.ignore_result is True
    assert beat_entry(120) == {"task": REFRESH_TASK, "schedule": 120.0, "options": {"expires": 120.0}}


def test_importing_the_tasks_without_celery_names_the_extra() -> None:
    script = (
        "import sys; sys.modules['celery'] = None\n"
        "try:\n    import resilience.tasks\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("MissingDependency") and "django-resilience[celery]" in out
