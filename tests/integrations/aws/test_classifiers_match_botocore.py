"""The AWS integration's one list of codes is botocore's standard retry mode, code for code."""

import botocore.session
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.retries import standard

from resilience.integrations.aws.classifiers import (
    THROTTLING,
    THROTTLING_CODES,
    TRANSIENT,
    TRANSIENT_CODES,
    TRANSIENT_STATUS,
    aws_transient,
    retry_kind,
    service_fault,
)


def test_the_codes_are_botocores_standard_mode_codes():
    assert set(standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES) == THROTTLING_CODES  # the 14
    assert len(THROTTLING_CODES) == 14
    assert set(standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES) == TRANSIENT_CODES
    assert set(standard.TransientRetryableChecker._TRANSIENT_STATUS_CODES) == TRANSIENT_STATUS


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("ThrottlingException", 400, THROTTLING), ("SlowDown", 503, THROTTLING), ("RequestTimeout", 400, TRANSIENT),
    ("InternalError", 500, TRANSIENT), (None, 502, TRANSIENT), ("AccessDenied", 403, None), ("NoSuchKey", 404, None),
    ("ConditionalCheckFailedException", 400, None),
])  # fmt: skip
def test_retry_kind_of_a_response(code, status, kind):
    assert retry_kind(code, status) == kind


def _operation(service, name):
    return botocore.session.get_session().get_service_model(service).operation_model(name)


def test_errors_before_the_request_was_sent_are_transient_and_the_services_fault():
    exc = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert retry_kind(None, None, exc) == TRANSIENT
    assert retry_kind(None, None, exc, _operation("sqs", "SendMessage")) == TRANSIENT
    assert aws_transient(exc)
    assert service_fault(None, None, exc)


@pytest.mark.parametrize("exc", [
    ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
])  # fmt: skip
def test_an_error_after_which_the_request_may_have_been_applied_is_retried_only_for_idempotent_operations(exc):
    assert service_fault(None, None, exc)
    for service, name in [("s3", "GetObject"), ("s3", "PutObject"), ("dynamodb", "GetItem"), ("ec2", "RunInstances")]:
        assert retry_kind(None, None, exc, _operation(service, name)) == TRANSIENT, name  # GET/PUT, a read, a ClientToken
    for service, name in [("sqs", "SendMessage"), ("sns", "Publish"), ("dynamodb", "UpdateItem")]:
        assert retry_kind(None, None, exc, _operation(service, name)) is None, name
    assert retry_kind(None, None, exc) is None and not aws_transient(exc)  # no operation known: not retried


def test_an_error_the_model_marks_retryable_is_retried():
    model = botocore.session.get_session().get_service_model("acm").operation_model("CreateAcmeEndpoint")
    assert retry_kind("InternalServerException", 400, operation_model=model) == TRANSIENT
    assert retry_kind("InternalServerException", 400) is None  # without the model: a plain 4xx


def test_sts_idp_communication_error_is_transient():
    model = botocore.session.get_session().get_service_model("sts").operation_model("AssumeRoleWithWebIdentity")
    assert retry_kind("IDPCommunicationError", 400, operation_model=model) == TRANSIENT


@pytest.mark.parametrize(("code", "status", "fault"), [
    ("ServiceUnavailable", 503, True), ("ThrottlingException", 400, True), ("AccessDenied", 403, False),
    ("NoSuchKey", 404, False), ("ConditionalCheckFailedException", 400, False),
])  # fmt: skip
def test_only_5xx_throttling_and_connection_errors_are_the_services_fault(code, status, fault):
    assert service_fault(code, status) is fault
    error = ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetItem")
    assert aws_transient(error) is (code in THROTTLING_CODES or status >= 500)
