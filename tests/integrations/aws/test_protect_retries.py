"""The one retry layer of protected clients: the aws policy decides in botocore's needs-retry event."""

import time

import pytest
from botocore.exceptions import ClientError

from resilience import deadline
from tests.integrations.aws.conftest import client
from tests.integrations.aws.fake_aws import Answer


def delays(events):
    return [e.fields["delay"] for e in events if e.area == "retry" and e.kind == "retry"]


def test_a_503_then_success_is_retried_to_success(aws):
    from resilience.integrations.aws.protection import protection

    s3 = client(aws.url)
    before = protection.retries.retryings()[0].outcome_totals()
    aws.play(Answer(503, "ServiceUnavailable"), Answer(200))
    assert s3.list_buckets()["ResponseMetadata"]["RetryAttempts"] == 1
    assert aws.requests == 2
    s3.list_buckets()  # at once
    after = protection.retries.retryings()[0].outcome_totals()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 0, 0]  # without retry, with retry


def test_throttling_backs_off_longer_than_transient_errors(aws, events):
    aws.play(Answer(500, "InternalError"))
    with pytest.raises(ClientError):
        client(aws.url).list_buckets()
    transient = delays(events)
    events.clear()
    aws.play(Answer(503, "SlowDown"))
    with pytest.raises(ClientError):
        client(aws.url).list_buckets()
    throttled = delays(events)
    assert transient == [0.001, 0.002]  # the aws policy's base, doubling
    assert throttled == [0.05, 0.1]  # RESILIENCE["AWS"]["throttling_base"], doubling
    assert aws.requests == 3


def test_x_amz_retry_after_is_honoured(aws, events):
    aws.play(Answer(400, "ThrottlingException", {"x-amz-retry-after": "200"}), Answer(200))
    client(aws.url).list_buckets()
    assert delays(events) == [0.2]  # 200 ms asked: longer than the backoff's 0.05 s


def test_x_amz_retry_after_past_the_deadline_gives_up_at_once(aws, events):
    aws.play(Answer(400, "ThrottlingException", {"x-amz-retry-after": "5000"}))
    started = time.monotonic()
    with deadline(1.0), pytest.raises(ClientError) as err:
        client(aws.url).list_buckets()
    assert time.monotonic() - started < 1.0  # did not sleep towards the 5 s it asked for
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    assert aws.requests == 1
    assert [(e.kind, e.fields["reason"]) for e in events if e.area == "retry"] == [("give_up", "deadline")]


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchKey", "ValidationException"])
def test_client_errors_are_not_retried(aws, code):
    aws.play(Answer(403 if code == "AccessDenied" else 400, code))
    with pytest.raises(ClientError):
        client(aws.url).list_buckets()
    assert aws.requests == 1


def test_retry_budget_exhaustion_stops_retries(aws, settings, events):
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "RETRY": {"aws": {"backoff": "constant", "base": 0.001, "budget": {"ratio": 0, "floor_per_second": 0.1, "window": 10}}},
    }  # one retry in the window, whatever the number of calls
    aws.play(Answer(503, "ServiceUnavailable"))
    s3 = client(aws.url)
    for _ in range(2):
        with pytest.raises(ClientError):
            s3.list_buckets()
    assert aws.requests == 3  # 2 for the first call (one retry), 1 for the second: not 6
    assert [e.kind for e in events if e.area == "retry"] == ["retry", "budget_refused", "budget_refused"]
