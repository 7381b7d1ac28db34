"""Optional integrations: a missing package is an ImproperlyConfigured that names the pip extra,
and never hides the caller's own error (run in a subprocess in which the package cannot be imported)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_without(module, code):
    """Run ``code`` in a fresh interpreter where ``import <module>`` fails, as if it were not installed."""
    script = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import django; from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['django.contrib.contenttypes', 'django.contrib.auth', 'resilience'],"
        " RESILIENCE={'HISTORY': False}, ROOT_URLCONF='tests.urls_empty', DEBUG=True)\n"
        "django.setup()\n" + code
    )
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("module", "import_line", "extra"), [
    ("requests", "import resilience.integrations.http.session", "http"),
    ("rest_framework", "import resilience.throttling", "drf"),
    ("django_redis", "import resilience.integrations.redis.client", "redis"),
    ("botocore", "from resilience.integrations.aws import botocore_config", "aws"),
    ("django_auth_adfs", "import resilience.integrations.entra.backend", "entra"),
])  # fmt: skip
def test_a_missing_optional_package_names_its_extra(module, import_line, extra):
    result = run_without(module, import_line)
    assert result.returncode != 0
    assert "resilience.exceptions.MissingDependency" in result.stderr  # an ImproperlyConfigured
    assert f"pip install 'django-resilience[{extra}]'" in result.stderr


def test_resilience_alarms_without_botocore_is_one_line_naming_the_extra():
    code = (
        "from django.core.management import call_command\n"
        "call_command('resilience_alarms', '--region', 'eu-west-1')\n"
    )
    result = run_without("botocore", code)
    assert result.returncode != 0
    assert "CommandError: manage.py resilience_alarms needs the 'botocore' package" in result.stderr
    assert "pip install 'django-resilience[aws]'" in result.stderr


def test_retry_without_requests_raises_the_callers_own_error():
    """Once ``@retry("http")`` raised ModuleNotFoundError: requests from the classifier, hiding the real error."""
    code = (
        "from resilience import retry\n"
        "def broken(): raise ValueError('the real error')\n"
        "try:\n    retry('http')(broken)()\nexcept ValueError as exc:\n    print('raised', exc)\n"
    )
    result = run_without("requests", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "raised the real error"


@pytest.mark.parametrize("module", ["rest_framework", "requests", "django_redis", "botocore", "django_auth_adfs", "re2"])
def test_the_app_loads_and_checks_pass_without_each_optional_package(module):
    result = run_without(module, "from django.core.management import call_command\ncall_command('check')")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "System check identified no issues" in result.stderr + result.stdout


@pytest.mark.parametrize(("module", "classifier"), [
    ("psycopg", "resilience.integrations.postgres.classifiers.postgres_connection_lost"),
    ("requests", "resilience.integrations.http.classifiers.http_transient"),
    ("botocore", "resilience.integrations.aws.classifiers.aws_transient"),
    ("django_redis", "resilience.retries.classifiers.classifier_for"),
])  # fmt: skip
def test_a_classifier_imports_and_answers_no_without_its_optional_package(module, classifier):
    code = (
        "from django.utils.module_loading import import_string\n"
        f"fn = import_string({classifier!r})\n"
        "print(fn('redis') is not None if fn.__name__ == 'classifier_for' else fn(ValueError()))\n"
    )
    result = run_without(module, code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ("True" if classifier.endswith("classifier_for") else "False")


def test_the_public_short_paths_are_the_same_objects():
    import resilience.aws
    import resilience.integrations.aws
    import resilience.metrics
    from resilience.observability.emf import CloudWatchEMFSink
    from resilience.observability.prometheus import PrometheusSink

    assert resilience.aws.session is resilience.integrations.aws.session
    assert resilience.aws.failover_client is resilience.integrations.aws.failover_client
    assert resilience.metrics.PrometheusSink is PrometheusSink and resilience.metrics.CloudWatchEMFSink is CloudWatchEMFSink
    with pytest.raises(AttributeError):
        resilience.metrics.NoSuchSink  # noqa: B018


def test_the_short_sink_paths_pass_the_checks(settings):
    from django.core.checks import run_checks

    sinks = ["resilience.metrics.PrometheusSink", "resilience.metrics.CloudWatchEMFSink", "resilience.metrics.CloudWatchSink"]
    settings.RESILIENCE = {"HISTORY": False, "METRICS": {"SINKS": sinks}}
    assert [m for m in run_checks() if m.id == "resilience.E001"] == []


@pytest.mark.parametrize("module", ["boto3", "botocore", "prometheus_client"])
def test_importing_the_short_paths_imports_no_optional_package(module):
    result = run_without(module, "import resilience.aws, resilience.metrics; print('ok')")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
