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
