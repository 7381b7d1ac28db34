"""protect() and session(): installed once on botocore's events, botocore's own retries off."""

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from resilience import breakers
from resilience.exceptions import ConfigurationError
from resilience.integrations.aws import botocore_config, protect, session
from tests.integrations.aws.conftest import CREDENTIALS, client, plain_session
from tests.integrations.aws.fake_aws import Answer

UNAVAILABLE = Answer(503, "ServiceUnavailable")


def test_a_protected_default_client_makes_exactly_the_policys_three_requests_on_503(aws):
    aws.play(UNAVAILABLE)
    with pytest.raises(ClientError):
        client(aws.url).list_buckets()
    assert aws.requests == 3


def test_protect_on_a_session_applies_to_clients_made_afterwards(aws):
    made = plain_session()
    before = made.client("s3", endpoint_url=aws.url, region_name="us-east-1")  # its emitter was copied already
    protect(made)
    after = made.client("s3", endpoint_url=aws.url, region_name="us-east-1")
    before.list_buckets()
    assert "aws:s3:us-east-1" not in breakers.names()  # not protected: no breaker of ours saw the call
    assert before.meta.config.retries.get("total_max_attempts") != 1  # and botocore still retries on its own
    aws.play(UNAVAILABLE)
    with pytest.raises(ClientError):
        after.list_buckets()
    assert aws.requests == 3
    assert breakers.get("aws:s3:us-east-1").local_stats().calls == 1


def test_protecting_twice_registers_the_handlers_once(aws, events):
    aws.play(UNAVAILABLE)
    made = protect(protect(session(**CREDENTIALS)))
    twice = protect(made.client("s3", endpoint_url=aws.url, region_name="us-east-1"))
    with pytest.raises(ClientError):
        twice.list_buckets()
    assert aws.requests == 3
    assert [e.kind for e in events if e.area == "retry"] == ["retry", "retry", "give_up"]
    assert breakers.get("aws:s3:us-east-1").local_stats().calls == 1  # one outcome for the call


def test_protect_refuses_a_client_that_retries_on_its_own(aws):
    own = boto3.client("s3", endpoint_url=aws.url, region_name="us-east-1", **CREDENTIALS)
    with pytest.raises(ConfigurationError, match="makes its own retries"):
        protect(own)
    quiet = boto3.client("s3", endpoint_url=aws.url, region_name="us-east-1", config=botocore_config(), **CREDENTIALS)
    assert protect(quiet) is quiet
    aws.play(UNAVAILABLE)
    with pytest.raises(ClientError):
        quiet.list_buckets()
    assert aws.requests == 3


def test_a_client_of_a_protected_session_that_turns_retries_back_on_fails_before_sending(aws):
    loud = client(aws.url, config=Config(retries={"mode": "standard", "total_max_attempts": 4}))
    with pytest.raises(ConfigurationError, match="makes its own retries"):
        loud.list_buckets()
    assert aws.requests == 0


def test_session_keeps_the_callers_default_config_options(aws):
    made = session(**CREDENTIALS)
    made._session.set_default_client_config(botocore_config(Config(connect_timeout=3)))  # the caller's own default
    protect(made)  # merged, not replaced
    s3 = made.client("s3", endpoint_url=aws.url, region_name="us-east-1")
    assert (s3.meta.config.connect_timeout, s3.meta.config.retries["total_max_attempts"]) == (3, 1)


def test_a_protected_session_connects_within_two_seconds_unless_told_otherwise(aws):
    made = session(**CREDENTIALS)
    s3 = made.client("s3", endpoint_url=aws.url, region_name="us-east-1")
    assert s3.meta.config.connect_timeout == 2.0  # botocore's own default is 60 s, beyond any deadline
    own = made.client("s3", endpoint_url=aws.url, region_name="us-east-1", config=Config(connect_timeout=7))
    assert (own.meta.config.connect_timeout, own.meta.config.retries["total_max_attempts"]) == (7, 1)


def test_protect_rejects_what_is_neither_a_session_nor_a_client():
    with pytest.raises(ConfigurationError, match="takes a boto3 or botocore Session or a client"):
        protect(object())


def test_protect_without_boto3_names_the_aws_extra():
    from tests.integrations.test_extras import run_without

    result = run_without("boto3", "from resilience.integrations.aws import protect")
    assert result.returncode != 0
    assert "resilience.exceptions.MissingDependency" in result.stderr
    assert "pip install 'django-resilience[aws]'" in result.stderr


def test_importing_the_aws_package_imports_neither_boto3_nor_botocore():
    from tests.integrations.test_extras import run_without

    code = "import sys, resilience.integrations.aws, resilience.integrations.aws.settings\nprint('botocore' in sys.modules)"
    result = run_without("boto3", code)
    assert (result.returncode, result.stdout.strip()) == (0, "False"), result.stderr[-2000:]


def test_protect_refuses_a_botocore_without_per_request_timeouts(monkeypatch):
    from botocore.httpsession import URLLib3Session

    monkeypatch.delattr(URLLib3Session, "_get_request_timeout")  # what botocore before 1.43.11 looks like
    with pytest.raises(ConfigurationError, match=r"botocore>=1\.43\.11"):
        session(**CREDENTIALS)
