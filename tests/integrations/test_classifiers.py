"""Each classifier against real failures of the real component."""

import psycopg
import pytest
import redis
import requests
from botocore.exceptions import ClientError, EndpointConnectionError
from django.db import connection

from resilience.integrations.aws.classifiers import aws_transient
from resilience.integrations.http.classifiers import http_transient
from resilience.integrations.postgres.classifiers import (
    postgres_connect_refused,
    postgres_connection_lost,
    postgres_transaction_conflict,
)
from resilience.integrations.redis.classifiers import redis_transient
from tests.conftest import free_port
from tests.httpserver import LocalHTTPServer


@pytest.fixture
def http():
    server = LocalHTTPServer()
    yield server
    server.close()


def pg_dsn(**extra):
    settings = connection.settings_dict
    return {"host": settings["HOST"], "port": settings["PORT"], "user": settings["USER"], "dbname": "postgres", **extra}


def test_postgres_refused_connection_is_transient():
    with pytest.raises(psycopg.OperationalError) as err:
        psycopg.connect(host="127.0.0.1", port=free_port(), user="postgres", connect_timeout=1)
    assert postgres_connection_lost(err.value) and postgres_connect_refused(err.value)


def test_postgres_backend_terminated_by_the_server_is_transient():
    victim = psycopg.connect(**pg_dsn(), autocommit=True)
    pid = victim.info.backend_pid
    with psycopg.connect(**pg_dsn(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError) as err:
        victim.execute("SELECT 1")
    assert postgres_connection_lost(err.value)
    victim.close()


@pytest.mark.django_db
def test_postgres_errors_of_the_statement_itself_are_not_transient():
    from django.db import DatabaseError

    with pytest.raises(DatabaseError) as err, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    assert not postgres_connection_lost(err.value)
    assert not postgres_transaction_conflict(err.value)


def test_postgres_statement_timeout_is_not_a_lost_connection():
    with psycopg.connect(**pg_dsn(), autocommit=True) as conn:
        conn.execute("SET statement_timeout = 50")
        with pytest.raises(psycopg.errors.QueryCanceled) as err:
            conn.execute("SELECT pg_sleep(1)")
    assert not postgres_connection_lost(err.value)


def test_redis_connection_errors_are_transient_and_command_errors_are_not(test_redis):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=None)
    with pytest.raises(redis.ConnectionError) as err:
        dead.ping()
    assert redis_transient(err.value)
    with pytest.raises(redis.ResponseError) as bad:
        test_redis.execute_command("NO_SUCH_COMMAND")
    assert not redis_transient(bad.value)


def test_http_connect_errors_are_transient_for_any_method():
    with pytest.raises(requests.ConnectionError) as err:
        requests.post(f"http://127.0.0.1:{free_port()}/", timeout=1)
    assert http_transient(err.value)


@pytest.mark.parametrize(("method", "status", "expected"), [
    ("GET", 503, True), ("GET", 429, True), ("PUT", 502, True), ("DELETE", 504, True),
    ("POST", 503, False), ("PATCH", 503, False), ("GET", 500, False), ("GET", 404, False),
])  # fmt: skip
def test_http_status_is_transient_only_for_idempotent_methods(http, method, status, expected):
    response = requests.request(method, http.url(f"/{status}"), timeout=2)
    with pytest.raises(requests.HTTPError) as err:
        response.raise_for_status()
    assert http_transient(err.value) is expected


def test_http_read_timeout_after_sending_is_not_retried(http):
    with pytest.raises(requests.ReadTimeout) as err:
        requests.post(http.url("/200/sleep1"), timeout=0.1)
    assert not http_transient(err.value)


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("ThrottlingException", 400, True), ("SlowDown", 503, True), ("InternalError", 500, True),
    ("AccessDenied", 403, False), ("ValidationException", 400, False), ("ConditionalCheckFailedException", 400, False),
])  # fmt: skip
def test_aws_throttling_and_server_errors_are_transient(code, status, expected):
    error = ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetItem")
    assert aws_transient(error) is expected


def test_aws_endpoint_unreachable_is_transient():
    assert aws_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
