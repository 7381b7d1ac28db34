"""One retry layer for AWS: ours or botocore's, never both (a real boto3 client against a local endpoint)."""

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from resilience import retry
from resilience.integrations.aws import botocore_config
from tests.httpserver import LocalHTTPServer


@pytest.fixture
def unavailable():
    server = LocalHTTPServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fast(settings):
    settings.RESILIENCE = {"HISTORY": False, "RETRY": {"aws": {"base": 0.001, "cap": 0.002, "attempts": 3, "budget": None}}}


def s3(server, config):
    return boto3.client(
        "s3",
        endpoint_url=server.url("/503"),
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


def test_with_botocore_retries_off_the_aws_policy_is_the_only_layer(unavailable):
    client = s3(unavailable, botocore_config(Config(connect_timeout=1, read_timeout=1)))
    with pytest.raises(ClientError):
        retry("aws").call(client.list_buckets)
    assert len(unavailable.seen) == 3  # exactly the policy's three attempts


def test_a_default_client_would_multiply_attempts(unavailable):
    client = s3(unavailable, Config(retries={"mode": "standard", "total_max_attempts": 2}))  # small, to keep the test fast
    with pytest.raises(ClientError):
        retry("aws").call(client.list_buckets)
    assert len(unavailable.seen) == 6  # 3 x botocore's own 2 (its default legacy mode: 3 x 5 = 15): why botocore_config() exists


def test_botocore_config_keeps_the_callers_other_options():
    merged = botocore_config(Config(connect_timeout=3, region_name="eu-west-1"))
    assert (merged.connect_timeout, merged.region_name, merged.retries["total_max_attempts"]) == (3, "eu-west-1", 1)
