"""Fixtures of the AWS tests: moto in server mode (real HTTP), a scripted endpoint, fast policies."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.faults.proxy import FaultProxy
from tests.integrations.aws.fake_aws import ScriptedAWS

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture
def outage(moto_url: str) -> Iterator[FaultProxy]:
    """A TCP proxy in front of moto: ``.blackhole()`` or ``.refuse()`` is a region outage."""
    host, port = moto_url.removeprefix("http://").split(":")
    proxy = FaultProxy(host, int(port))
    yield proxy
    proxy.close()


@pytest.fixture
def unanswered_connects() -> Iterator[str]:
    """An endpoint whose TCP connects hang: a listener with a backlog of 0, its one slot taken and
    never accepted, so the kernel drops every further SYN (as a black-holed address does)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port), timeout=1)
    yield f"http://127.0.0.1:{port}"
    queued.close()
    listener.close()


@pytest.fixture
def aws() -> Iterator[ScriptedAWS]:
    server = ScriptedAWS()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def fast(settings: Any) -> None:
    """Exact waits (exponential backoff, no jitter) so tests can compare them; no budget unless a test sets one."""
    settings.RESILIENCE = {
        "HISTORY": False,
        "RETRY": {"aws": {"backoff": "exponential", "base": 0.001, "cap": 1.0, "attempts": 3, "budget": None}},
        "AWS": {"throttling_base": 0.05},
        "BREAKERS": {"default": {"minimum_calls": 3, "failure_rate": 50, "window_type": "count", "window": 10}},
    }


def client(endpoint: str, *, session: Any = None, service: str = "s3", region: str = "us-east-1", **kwargs: Any) -> Any:
    """A client of ``session`` (a protected ``resilience`` session unless given) pointed at ``endpoint``."""
    from resilience.integrations.aws import session as protected_session

    made = session if session is not None else protected_session(**CREDENTIALS)
    return made.client(service, endpoint_url=endpoint, region_name=region, **kwargs)


def plain_session() -> Any:
    return boto3.session.Session(**CREDENTIALS)
