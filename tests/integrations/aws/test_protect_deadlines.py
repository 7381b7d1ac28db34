"""The deadline in every attempt of a protected client: nothing starts past it, connects and reads are cut to it."""

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError
from botocore.httpsession import URLLib3Session

from resilience import DeadlineExceeded, breakers, deadline, remaining
from resilience.integrations.aws import botocore_config, protect
from resilience.integrations.aws.attempt_deadline import DeadlineBoundSession
from tests.integrations.aws.conftest import client, plain_session
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


@pytest.mark.parametrize("how", ["session", "protect(client)"])
def test_a_connect_that_hangs_is_cut_by_the_deadline_not_the_clients_connect_timeout(unanswered_connects, how):
    config = Config(connect_timeout=30)  # far beyond the deadline: only the deadline can end the connect
    if how == "session":
        s3 = client(unanswered_connects, config=config)
    else:
        s3 = protect(plain_session().client("s3", endpoint_url=unanswered_connects, region_name="us-east-1",
                                            config=botocore_config(config)))  # fmt: skip
    started = time.monotonic()
    with deadline(0.5), pytest.raises(DeadlineExceeded) as err:
        s3.list_buckets()
    elapsed = time.monotonic() - started
    assert elapsed < 0.7, elapsed
    assert isinstance(err.value.__cause__, ConnectTimeoutError)
    assert breakers.get("aws:s3:us-east-1").local_stats().failures == 0  # the caller's deadline, not the service
    print(f"deadline(0.5) against an endpoint whose connects hang ({how}): DeadlineExceeded after {elapsed:.3f} s")


def test_without_a_deadline_a_hanging_connect_takes_the_clients_connect_timeout(unanswered_connects):
    s3 = client(unanswered_connects, config=Config(connect_timeout=0.3))
    started = time.monotonic()
    with pytest.raises(ConnectTimeoutError):
        s3.list_buckets()
    assert 0.3 * 3 <= time.monotonic() - started < 5  # three attempts of the aws policy, each its connect timeout


def test_a_deadline_longer_than_the_connect_timeout_keeps_the_connect_timeout(unanswered_connects):
    s3 = client(unanswered_connects, config=Config(connect_timeout=0.2))
    with deadline(30.0), pytest.raises(ConnectTimeoutError):
        s3.list_buckets()  # each attempt ends at 0.2 s, and retries: the deadline only ever shortens a timeout
    assert remaining() is None


def test_protected_clients_keep_botocores_http_session_with_the_connect_bound(aws):
    s3 = client(aws.url)
    assert type(s3._endpoint.http_session) is DeadlineBoundSession
    assert isinstance(s3._endpoint.http_session, URLLib3Session)  # same pools, proxies and TLS settings
    bare = plain_session().client("s3", endpoint_url=aws.url, region_name="us-east-1")
    assert type(bare._endpoint.http_session) is URLLib3Session  # a session that is not protected is left alone
