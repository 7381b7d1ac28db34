"""The demo project answers hostile input with a 400, never a 500."""

import pytest
from django.test import Client


@pytest.fixture
def demo(settings):
    settings.ROOT_URLCONF = "project.urls"
    settings.RESILIENCE = {"HISTORY": False}


@pytest.mark.parametrize("body", ["[1]", '"x"', "null", "true", '{"failure_rate": "0.5"}', '{"failure_rate": NaN}',
                                  '{"failure_rate": 2}', '{"failure_rate": -1}', '{"failure_rate": true}',
                                  "[" * 100_000 + "]" * 100_000, "{" * 3, "not json"])  # fmt: skip
def test_chaos_refuses_anything_but_a_rate_from_0_to_1(demo, body):
    response = Client().post("/api/chaos/", body, content_type="application/json")
    assert response.status_code == 400


def test_chaos_sets_a_valid_rate(demo):
    from project.demo import upstream

    response = Client().post("/api/chaos/", '{"failure_rate": 0.25}', content_type="application/json")
    assert response.status_code == 200 and response.json()["failure_rate"] == 0.25 == upstream.failure_rate
    upstream.set_failure_rate(0.0)


def test_the_aws_demo_shows_a_failover_a_failback_and_a_refresh_and_no_credential():
    """``bash scripts/demo aws`` (``manage.py aws_demo``): moto and a fault proxy, in this process."""
    import os
    import re
    from io import StringIO

    from django.core.management import call_command
    from moto.sts.models import sts_backends

    from project.demo.management.commands.aws_demo import ACCOUNT, ROLE_ARN

    environment = dict(os.environ)
    out, err = StringIO(), StringIO()
    call_command("aws_demo", stdout=out, stderr=err)
    text = out.getvalue()
    served = dict(re.findall(r"^ +(read \d): '[^']*' served by ([a-z0-9-]+)", text, re.MULTILINE))
    assert served == {"read 1": "eu-west-1", "read 2": "eu-central-1", "read 3": "eu-central-1",
                      "read 4": "eu-central-1", "read 5": "eu-west-1", "read 6": "eu-west-1"}  # fmt: skip
    moved = "event: aws {} name=secretsmanager operation=get_secret_value from_region={} to_region={}"
    assert moved.format("failover", "eu-west-1", "eu-central-1") in text
    assert "breaker aws:secretsmanager:eu-west-1: closed -> open" in text
    assert "read 4 sent it nothing" in text  # its breaker was open: no connection reached the proxy
    assert moved.format("failback", "eu-central-1", "eu-west-1") in text
    refreshed = re.search(r"event: aws credentials_refreshed name=(\S+) expires_in=(\d+) by=celery", text)
    assert refreshed and refreshed[1] == f'"{ROLE_ARN}"' and 3500 < int(refreshed[2]) <= 3600
    assert "event: aws credentials_fresh" in text  # the second beat run asked STS nothing
    assert "the ones AssumeRole answered in beat run 1: yes" in text
    assert "STS AssumeRole calls: 1 (the worker took the refreshed credentials" in text
    assert "moto and the proxy are stopped" in text and err.getvalue() == ""
    assumed = [r for r in sts_backends[ACCOUNT]["aws"].assumed_roles if r.role_arn == ROLE_ARN]
    assert assumed
    for role in assumed:
        for secret in (role.access_key_id, role.secret_access_key, role.session_token):
            assert secret not in text
    assert dict(os.environ) == environment  # the demo's fake AWS variables are gone
