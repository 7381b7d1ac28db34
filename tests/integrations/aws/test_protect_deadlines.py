"""The deadline in every attempt of a protected client: nothing starts past it, reads are cut to it."""

import time

import pytest
from botocore.config import Config

from resilience import DeadlineExceeded, breakers, deadline
from tests.integrations.aws.conftest import client
from tests.integrations.aws.fake_aws import Answer


def test_a_half_second_deadline_against_a_blackholed_endpoint_raises_deadline_exceeded_in_under_0_7_s(moto_url, outage):
    s3 = client(f"http://127.0.0.1:{outage.port}")
    s3.list_buckets()  # the endpoint answers
    outage.blackhole()  # accepts, never answers
    started = time.monotonic()
    with deadline(0.5), pytest.raises(DeadlineExceeded) as err:
        s3.list_buckets()
    elapsed = time.monotonic() - started
    assert elapsed < 0.7, elapsed  # the acceptance bound
    assert err.value.__cause__ is not None  # the read timeout botocore raised, cut to the deadline
    print(f"deadline(0.5) against a blackholed endpoint: DeadlineExceeded after {elapsed:.3f} s")


def test_a_call_cut_by_its_deadline_does_not_count_against_the_breaker(moto_url, outage):
    s3 = client(f"http://127.0.0.1:{outage.port}")
    s3.list_buckets()
    outage.blackhole()
    for _ in range(3):
        with deadline(0.1), pytest.raises(DeadlineExceeded):
            s3.list_buckets()
    breaker = breakers.get("aws:s3:us-east-1")
    assert breaker.state == "closed"
    assert breaker.local_stats().failures == 0  # a caller's short deadline never opens a shared breaker


def test_no_call_starts_after_the_deadline(aws):
    s3 = client(aws.url)
    with deadline(0.0), pytest.raises(DeadlineExceeded):
        s3.list_buckets()
    assert aws.requests == 0


def test_a_retry_gets_only_the_time_the_call_has_left(aws):
    aws.play(Answer(503, "ServiceUnavailable"), Answer(200, delay=3.0))  # then an answer that comes too late
    s3 = client(aws.url, config=Config(read_timeout=30))  # made first: building a client is slow on a busy machine
    started = time.monotonic()
    with deadline(0.5), pytest.raises(DeadlineExceeded):
        s3.list_buckets()
    assert time.monotonic() - started < 1.5  # the second attempt's read timeout was the 0.5 s left, not 30 s
    assert aws.requests == 2
