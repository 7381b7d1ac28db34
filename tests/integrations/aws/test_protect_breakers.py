"""A breaker per AWS service and region, shared through Redis; client errors are not the service's fault."""

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from django.conf import settings as django_settings

from resilience import CircuitOpenError, breakers
from resilience.breakers.registry import BreakerRegistry
from tests.integrations.aws.conftest import client
from tests.integrations.aws.fake_aws import Answer


@pytest.fixture
def shared(settings, key_prefix):
    """The breakers' state in the real Redis (own db index and key prefix)."""
    settings.RESILIENCE = {**settings.RESILIENCE, "REDIS": django_settings.TEST_REDIS_URL, "KEY_PREFIX": key_prefix}


def test_no_such_key_and_access_denied_do_not_open_the_breaker(moto_url, aws):
    s3 = client(moto_url)
    s3.create_bucket(Bucket="reports")
    for _ in range(4):
        with pytest.raises(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket="reports", Key="missing")
    aws.play(Answer(403, "AccessDenied"))
    denied = client(aws.url)
    for _ in range(4):
        with pytest.raises(ClientError):
            denied.list_buckets()
    breaker = breakers.get("aws:s3:us-east-1")
    assert breaker.state == "closed"
    assert (breaker.local_stats().calls, breaker.local_stats().failures) == (1 + 4 + 4, 0)


def test_503s_open_the_breaker_and_then_nothing_is_sent(shared, aws):
    aws.play(Answer(503, "ServiceUnavailable"))
    s3 = client(aws.url)
    for _ in range(3):  # minimum_calls
        with pytest.raises(ClientError):
            s3.list_buckets()
    assert aws.requests == 9
    assert breakers.get("aws:s3:us-east-1").state == "open"
    with pytest.raises(CircuitOpenError) as err:
        s3.list_buckets()
    assert err.value.name == "aws:s3:us-east-1"
    assert aws.requests == 9  # rejected in before-call: no request was sent
    other = BreakerRegistry()  # another worker's registry, on the same Redis
    try:
        assert other.get("aws:s3:us-east-1").state == "open"
    finally:
        other.reload()


def test_breakers_are_per_service_and_region(aws):
    aws.play(Answer(503, "ServiceUnavailable"))
    east, west = client(aws.url), client(aws.url, region="eu-west-1")
    for _ in range(3):
        with pytest.raises(ClientError):
            east.list_buckets()
    aws.play(Answer(200))
    west.list_buckets()
    assert breakers.get("aws:s3:us-east-1").state == "open"
    assert breakers.get("aws:s3:eu-west-1").state == "closed"
    with pytest.raises(CircuitOpenError):
        east.list_buckets()
    assert client(aws.url, service="sqs").meta.service_model.service_name == "sqs"


def test_a_retried_call_is_one_breaker_outcome(aws):
    aws.play(Answer(503, "ServiceUnavailable"), Answer(503, "ServiceUnavailable"), Answer(200))
    client(aws.url).list_buckets()
    stats = breakers.get("aws:s3:us-east-1").local_stats()
    assert (aws.requests, stats.calls, stats.failures) == (3, 1, 0)


def test_a_region_outage_opens_its_breaker(moto_url, outage):
    s3 = client(f"http://127.0.0.1:{outage.port}", region="eu-central-1")
    s3.create_bucket(Bucket="eu-reports", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    outage.refuse()
    for _ in range(2):  # with the bucket's creation: 3 calls (minimum_calls), 2 failed (67 % >= 50 %)
        with pytest.raises((EndpointConnectionError, ConnectionClosedError)):  # cut at connect
            s3.list_buckets()
    assert breakers.get("aws:s3:eu-central-1").state == "open"
    with pytest.raises(CircuitOpenError):
        s3.list_buckets()
