"""Region failover: moto in server mode stands for two regions (it keeps each region's data apart by
the request's signature), a FaultProxy in front of it is a region outage, ScriptedAWS a region that
answers 5xx and counts every request it gets."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from resilience import CircuitOpenError, DeadlineExceeded, breakers, deadline
from resilience.exceptions import ConfigurationError
from resilience.integrations.aws.failover import failover_client
from tests.integrations.aws.conftest import CREDENTIALS, plain_session
from tests.integrations.aws.fake_aws import Answer, ScriptedAWS
from tests.waiting import wait_for

EAST, WEST = "us-east-1", "eu-west-1"
UNREACHABLE = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)


def replicated_secret(moto_url, east="east-value", west="west-value"):
    """The same secret name in both regions, as a Secrets Manager replica would be."""
    name = f"db-password-{uuid.uuid4().hex[:8]}"
    for region, value in ((EAST, east), (WEST, west)):
        direct = boto3.client("secretsmanager", region_name=region, endpoint_url=moto_url, **CREDENTIALS)
        direct.create_secret(Name=name, SecretString=value)
    return name


def secrets(east_url, west_url, **kwargs):
    kwargs.setdefault("operations", {"get_secret_value"})
    return failover_client(
        "secretsmanager", regions=[EAST, WEST], session=plain_session(), endpoint_urls={EAST: east_url, WEST: west_url}, **kwargs
    )


def of(events, kind):
    return [e for e in events if e.area == "aws" and e.kind == kind]


@pytest.fixture
def quick_breakers(settings):
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "BREAKERS": {
            "default": {"minimum_calls": 3, "failure_rate": 50, "window_type": "count", "window": 10},
            f"aws:secretsmanager:{EAST}": {"open_for": 0.2, "half_open_calls": 1, "minimum_calls": 3, "window_type": "count"},
        },
    }


@pytest.mark.parametrize("fault", ["refuse", "blackhole"])
def test_a_read_fails_over_to_the_next_region_when_the_primary_is_unreachable(moto_url, outage, events, fault):
    name = replicated_secret(moto_url)
    client = secrets(outage.url("http", ""), moto_url, config=Config(connect_timeout=0.5, read_timeout=0.2))
    getattr(outage, fault)()
    assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    [moved] = of(events, "failover")
    assert moved.name == "secretsmanager"
    reason = moved.fields["reason"]
    assert moved.fields == {"operation": "get_secret_value", "from_region": EAST, "to_region": WEST, "reason": reason}
    assert reason in {cls.__name__ for cls in UNREACHABLE}
    outage.heal()
    assert client.get_secret_value(SecretId=name)["SecretString"] == "east-value"  # its breaker is still closed


def test_a_503_fails_over_once_the_regions_retries_are_spent(moto_url, aws, events):
    name = replicated_secret(moto_url)
    aws.play(Answer(503, "ServiceUnavailable"))
    client = secrets(aws.url, moto_url)
    assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert aws.requests == 3  # the aws policy's attempts in the primary, then one call in the secondary
    [moved] = of(events, "failover")
    assert (moved.fields["from_region"], moved.fields["to_region"], moved.fields["reason"]) == (EAST, WEST, "503")


def test_an_open_primary_breaker_is_skipped_without_sending(moto_url, aws, events):
    name = replicated_secret(moto_url)
    aws.play(Answer(503, "ServiceUnavailable"))
    client = secrets(aws.url, moto_url)
    for _ in range(3):  # minimum_calls failed calls of 3 attempts each: the primary's breaker opens
        assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert breakers.get(f"aws:secretsmanager:{EAST}").state == "open"
    assert client.order() == [WEST, EAST]
    sent = aws.requests
    for _ in range(5):
        assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert aws.requests == sent == 9  # nothing more reached the primary
    assert len(of(events, "failover")) == 3  # one per call that failed there; none once it was open


def test_a_forced_open_primary_rejects_before_sending_and_the_call_moves_on(moto_url, aws, events):
    name = replicated_secret(moto_url)
    breakers.get_or_create(f"aws:secretsmanager:{EAST}").force_open()
    client = secrets(aws.url, moto_url)
    assert client.order() == [WEST, EAST]
    assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert aws.requests == 0
    [moved] = of(events, "failover")  # the call starts away from the primary: one event, not one per call
    assert moved.fields == {
        "operation": "get_secret_value", "from_region": EAST, "to_region": WEST, "reason": "breaker_forced_open",
    }  # fmt: skip
    client.get_secret_value(SecretId=name)
    assert len(of(events, "failover")) == 1


def west_value(moto_url, name):
    direct = boto3.client("secretsmanager", region_name=WEST, endpoint_url=moto_url, **CREDENTIALS)
    return direct.get_secret_value(SecretId=name)["SecretString"]


def test_a_write_that_may_have_been_applied_never_moves_to_another_region(moto_url, aws, outage, events):
    """Found by a README audit: a tokened write (TransactWriteItems, PutSecretValue) that got a 5xx or a
    read timeout was sent to the next region with a new token, so it could be applied twice. Regions
    keep their own idempotency records: the token protects retries within one region only."""
    name = replicated_secret(moto_url)
    aws.play(Answer(500, "InternalFailure"))
    writes = secrets(aws.url, moto_url, operations={"put_secret_value"})
    with pytest.raises((ClientError, ConnectionClosedError)):  # the last of the primary's attempts
        writes.put_secret_value(SecretId=name, SecretString="new")
    assert aws.requests >= 1 and west_value(moto_url, name) == "west-value"  # the primary's attempts only
    timing_out = secrets(outage.url("http", ""), moto_url, operations={"put_secret_value"}, config=Config(read_timeout=0.2))
    outage.mute()  # the request reaches the service; no answer comes back (a proxy that closes is no proof either)
    with pytest.raises((ReadTimeoutError, ConnectionClosedError)):  # sent, and no answer: maybe applied
        timing_out.put_secret_value(SecretId=name, SecretString="new")
    assert west_value(moto_url, name) == "west-value"
    assert of(events, "failover") == []


@pytest.mark.parametrize("unsent", ["refused", "open"])
def test_a_write_that_was_never_sent_moves_to_the_next_region(moto_url, events, unsent):
    import socket

    name = replicated_secret(moto_url)
    with socket.socket() as probe:  # a port nobody listens on: the connection is refused, nothing is sent
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    writes = secrets(closed if unsent == "refused" else moto_url, moto_url, operations={"put_secret_value"})
    if unsent == "open":
        breakers.get_or_create(f"aws:secretsmanager:{EAST}").force_open()
    writes.put_secret_value(SecretId=name, SecretString="new")
    assert west_value(moto_url, name) == "new"
    [moved] = of(events, "failover")
    assert moved.fields["reason"] in {"EndpointConnectionError", "breaker_forced_open"}  # nothing reached the primary


def test_a_4xx_never_fails_over(moto_url, aws, events):
    client = secrets(moto_url, aws.url)
    with pytest.raises(ClientError) as err:
        client.get_secret_value(SecretId="no-such-secret")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert aws.requests == 0  # the secondary was never asked
    assert of(events, "failover") == []
    assert breakers.get(f"aws:secretsmanager:{EAST}").state == "closed"


def test_a_write_without_an_idempotency_token_cannot_be_declared_for_failover(moto_url):
    with pytest.raises(ConfigurationError, match="'put_item' is a write, and failover requires an idempotency token"):
        failover_client("dynamodb", regions=[EAST, WEST], operations={"get_item", "put_item"}, session=plain_session())
    declared = failover_client(
        "dynamodb", regions=[EAST, WEST], operations={"get_item", "query", "transact_write_items"}, session=plain_session()
    )  # TransactWriteItems carries ClientRequestToken
    assert declared.operations == {"get_item", "query", "transact_write_items"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"operations": {"get_secret"}}, "'get_secret' is not an operation of secretsmanager clients"),
        ({"operations": "get_secret_value"}, "operations must be a set of operation names"),
        ({"operations": set()}, "operations must name at least one operation"),
        ({"regions": []}, "regions must name at least one region"),
        ({"regions": EAST}, "regions must be a list of region names"),
        ({"regions": [EAST, EAST]}, "regions must be unique"),
        ({"regions": [EAST, "moon"]}, "'moon' is not an AWS region name"),
        ({"endpoint_urls": {"ap-south-1": "http://x"}}, "endpoint_urls: 'ap-south-1' must be one of the regions"),
        ({"last_known_good": {"describe_secret": lambda **p: {}}}, "'describe_secret' is not one of the operations"),
        ({"last_known_good": {"get_secret_value": "s3cr3t"}}, "must be callable"),
    ],
)
def test_a_malformed_declaration_is_a_configuration_error_that_names_it(kwargs, message):
    arguments = {"regions": [EAST, WEST], "operations": {"get_secret_value"}, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        failover_client("secretsmanager", session=plain_session(), **arguments)


def test_undeclared_operations_go_to_the_primary_only(moto_url, outage, aws):
    name = replicated_secret(moto_url)
    client = secrets(outage.url("http", ""), aws.url)
    assert client.describe_secret(SecretId=name)["Name"] == name  # the primary's client, through the proxy
    assert client.meta.region_name == EAST
    assert client.exceptions.ResourceNotFoundException is client.clients[EAST].exceptions.ResourceNotFoundException
    outage.refuse()
    with pytest.raises(UNREACHABLE):
        client.describe_secret(SecretId=name)
    assert aws.requests == 0


def test_it_returns_to_the_primary_when_its_breaker_closes(moto_url, outage, events, quick_breakers):
    name = replicated_secret(moto_url)
    client = secrets(outage.url("http", ""), moto_url)
    outage.refuse()
    for _ in range(3):
        assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert client.state(EAST) == "open"
    assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"  # not tried: open
    outage.heal()
    assert wait_for(lambda: client.state(EAST) == "half_open")  # open_for (0.2 s) is over: a probe is due
    assert client.order()[0] == EAST
    assert client.get_secret_value(SecretId=name)["SecretString"] == "east-value"  # the probe succeeded
    assert client.state(EAST) == "closed"
    [back] = of(events, "failback")
    assert back.fields == {"operation": "get_secret_value", "from_region": WEST, "to_region": EAST, "reason": "breaker_closed"}
    assert client.get_secret_value(SecretId=name)["SecretString"] == "east-value"
    assert len(of(events, "failback")) == 1 and len(of(events, "failover")) == 3


def test_a_failed_probe_of_the_primary_moves_the_call_on(moto_url, outage, events, quick_breakers):
    name = replicated_secret(moto_url)
    client = secrets(outage.url("http", ""), moto_url)
    outage.refuse()
    for _ in range(3):
        client.get_secret_value(SecretId=name)
    assert wait_for(lambda: client.state(EAST) == "half_open")
    assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"  # probe failed, served west
    assert client.state(EAST) == "open"
    assert of(events, "failback") == []


def test_the_last_known_good_value_is_served_when_every_region_fails(outage, aws, events):
    aws.play(Answer(503, "ServiceUnavailable"))
    cached = {"SecretString": "cached-s3cr3t"}
    client = secrets(outage.url("http", ""), aws.url, last_known_good={"get_secret_value": lambda **params: cached})
    outage.refuse()
    assert client.get_secret_value(SecretId="db-password") is cached
    [served] = of(events, "last_known_good")
    assert served.fields == {"operation": "get_secret_value", "regions": f"{EAST},{WEST}", "reason": "503"}
    for event in of(events, "failover") + [served]:
        assert "s3cr3t" not in repr(event) and "db-password" not in repr(event)  # no value, no parameter


def test_the_last_known_good_source_gets_the_parameters_and_none_raises_the_last_error(outage, aws, events):
    aws.play(Answer(503, "ServiceUnavailable"))
    asked = []
    client = secrets(outage.url("http", ""), aws.url, last_known_good={"get_secret_value": lambda **p: asked.append(p)})
    outage.refuse()
    with pytest.raises(ClientError) as err:
        client.get_secret_value(SecretId="db-password")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503  # the last region's error
    assert asked == [{"SecretId": "db-password"}]
    [missing] = of(events, "last_known_good_missing")
    assert missing.fields["error"] == "None"


def test_the_last_known_good_value_is_never_served_for_a_4xx(moto_url, aws, events):
    client = secrets(moto_url, aws.url, last_known_good={"get_secret_value": lambda **p: {"SecretString": "old"}})
    with pytest.raises(ClientError):
        client.get_secret_value(SecretId="no-such-secret")
    assert of(events, "last_known_good") == [] and aws.requests == 0


def test_every_region_open_raises_circuit_open_without_sending(aws):
    for region in (EAST, WEST):
        breakers.get_or_create(f"aws:secretsmanager:{region}").force_open()
    client = secrets(aws.url, aws.url)
    with pytest.raises(CircuitOpenError):
        client.get_secret_value(SecretId="db-password")
    assert aws.requests == 0


def test_no_failover_starts_after_the_deadline(aws, events):
    aws.play(Answer(503, "ServiceUnavailable"))
    secondary = ScriptedAWS()
    try:
        client = secrets(aws.url, secondary.url)

        def outlast_the_deadline(**kwargs):  # the primary's final 503 arrives as the deadline ends
            time.sleep(0.2)

        client.clients[EAST].meta.events.register("after-call", outlast_the_deadline)
        with deadline(0.1), pytest.raises(DeadlineExceeded) as err:
            client.get_secret_value(SecretId="db-password")
        assert isinstance(err.value.__cause__, ClientError)
        assert (aws.requests, secondary.requests) == (3, 0)
        assert of(events, "failover") == []  # not even announced
    finally:
        secondary.close()


def test_a_primary_that_hangs_leaves_the_next_region_its_share_of_the_deadline(moto_url, outage, events):
    """Before: the hung primary's attempt took the whole deadline and the call ended in DeadlineExceeded
    (a trial under gunicorn: only 504s for ten minutes, the secondary never asked)."""
    name = replicated_secret(moto_url)
    client = secrets(outage.url("http", ""), moto_url)  # botocore's own 60 s read timeout: only the deadline cuts it
    outage.blackhole()
    started = time.monotonic()
    with deadline(2.4):
        assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert time.monotonic() - started > 1.1  # the primary had half the deadline; the secondary answered in the rest
    [moved] = of(events, "failover")
    assert moved.fields == {"operation": "get_secret_value", "from_region": EAST, "to_region": WEST, "reason": "region_timeout"}


def test_a_hung_region_opens_its_breaker_but_a_short_deadline_counts_nothing(moto_url, outage):
    name = replicated_secret(moto_url)
    client = secrets(outage.url("http", ""), moto_url)
    outage.blackhole()
    for _ in range(3):  # shares under failover_min_share (0.5 s): a caller's short deadline must not open a shared breaker
        with deadline(0.6):
            assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert client.state(EAST) == "closed"
    for _ in range(3):  # shares of failover_min_share or more that run out: the region failed (3 of 3)
        with deadline(2.2):
            assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert client.state(EAST) == "open"
    assert client.order() == [WEST, EAST]
    # each call sent to the region counted once: 3 cut short (ignored), 3 failed; before, a second,
    # made-up call was counted after each real one, and could be "rejected" once the breaker opened
    assert breakers.get(f"aws:secretsmanager:{EAST}").call_totals() == (0, 3, 3)


def test_a_dynamodb_global_table_read_fails_over(moto_url, outage, events):
    for region, city in ((EAST, "Boston"), (WEST, "Dublin")):  # a global table: the table and item in each region
        direct = boto3.client("dynamodb", region_name=region, endpoint_url=moto_url, **CREDENTIALS)
        direct.create_table(
            TableName="offices",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        direct.put_item(TableName="offices", Item={"id": {"S": "hq"}, "city": {"S": city}})
    table = failover_client(
        "dynamodb",
        regions=[EAST, WEST],
        operations={"get_item", "query"},
        session=plain_session(),
        endpoint_urls={EAST: outage.url("http", ""), WEST: moto_url},
    )
    assert table.get_item(TableName="offices", Key={"id": {"S": "hq"}})["Item"]["city"] == {"S": "Boston"}
    outage.refuse()
    assert table.get_item(TableName="offices", Key={"id": {"S": "hq"}})["Item"]["city"] == {"S": "Dublin"}
    [moved] = of(events, "failover")
    assert moved.name == "dynamodb" and (moved.fields["from_region"], moved.fields["to_region"]) == (EAST, WEST)


def test_throttling_fails_over_once_the_regions_retries_are_spent_and_access_denied_does_not(moto_url, aws, events):
    west = boto3.client("s3", region_name=WEST, endpoint_url=moto_url, **CREDENTIALS)
    west.create_bucket(Bucket="reports-replica", CreateBucketConfiguration={"LocationConstraint": WEST})
    west.put_object(Bucket="reports-replica", Key="daily.csv", Body=b"from the replica")
    s3 = failover_client(
        "s3",
        regions=[EAST, WEST],
        operations={"get_object"},
        session=plain_session(),
        endpoint_urls={EAST: aws.url, WEST: moto_url},
    )
    aws.play(Answer(400, "ThrottlingException"))
    assert s3.get_object(Bucket="reports-replica", Key="daily.csv")["Body"].read() == b"from the replica"
    assert aws.requests == 3
    assert of(events, "failover")[0].fields["reason"] == "ThrottlingException"
    aws.play(Answer(403, "AccessDenied"))
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.get_object(Bucket="reports-replica", Key="daily.csv")
    assert aws.requests == 1 and len(of(events, "failover")) == 1


def test_threads_share_one_failover_client(moto_url, outage, events):
    name = replicated_secret(moto_url)
    client = secrets(outage.url("http", ""), moto_url)
    outage.refuse()
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: client.get_secret_value(SecretId=name)["SecretString"], range(16)))
    assert values == ["west-value"] * 16
    assert client.state(EAST) == "open"
    outage.heal()
    breakers.get(f"aws:secretsmanager:{EAST}").reset()
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: client.get_secret_value(SecretId=name)["SecretString"], range(16)))
    assert values == ["east-value"] * 16
    assert len(of(events, "failback")) == 1  # one return, however many threads came back at once


def test_regions_are_ordered_by_breaker_state_closed_then_half_open_then_open(settings, aws, events):
    central = "eu-central-1"
    settings.RESILIENCE = {
        **settings.RESILIENCE,
        "BREAKERS": {**settings.RESILIENCE["BREAKERS"], f"aws:secretsmanager:{WEST}": {"open_for": 0.1}},
    }
    client = failover_client(
        "secretsmanager", regions=[EAST, WEST, central], operations={"get_secret_value"}, session=plain_session(),
        endpoint_urls=dict.fromkeys((EAST, WEST, central), aws.url),
    )  # fmt: skip
    assert client.order() == [EAST, WEST, central]
    breakers.get_or_create(f"aws:secretsmanager:{EAST}").force_open()
    aws.play(Answer(503, "ServiceUnavailable"))
    for _ in range(3):  # the west breaker trips
        with pytest.raises(ClientError):
            client.clients[WEST].get_secret_value(SecretId="db-password")
    assert client.order() == [central, EAST, WEST]  # closed first, then the open ones in their order
    assert wait_for(lambda: client.state(WEST) == "half_open")
    assert client.order() == [central, WEST, EAST]  # half-open before open
    breakers.get(f"aws:secretsmanager:{WEST}").reset()
    assert client.order() == [WEST, central, EAST]  # stable within a class: the declared order
    breakers.get(f"aws:secretsmanager:{EAST}").reset()
    assert client.order() == [EAST, WEST, central]


def test_a_primary_whose_connects_hang_leaves_the_next_region_its_share_of_the_deadline(moto_url, unanswered_connects, events):
    name = replicated_secret(moto_url)
    client = secrets(unanswered_connects, moto_url, config=Config(connect_timeout=30))  # only the deadline ends the connect
    started = time.monotonic()
    with deadline(2.4):
        assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert 1.1 < time.monotonic() - started < 2.4  # the primary's connect was cut at its share, half the deadline
    [moved] = of(events, "failover")
    assert moved.fields == {"operation": "get_secret_value", "from_region": EAST, "to_region": WEST, "reason": "region_timeout"}


@pytest.mark.parametrize(("min_share", "state"), [(None, "open"), (1.5, "closed")])
def test_a_two_second_route_deadline_opens_a_hung_regions_breaker_unless_the_minimum_share_is_raised(
    moto_url, outage, settings, min_share, state
):
    """The trial's case: a 2 s route deadline gives the primary just under 1 s, which the old fixed
    1 s floor never counted, so a black-holed primary stayed closed and cost every request ~1 s."""
    if min_share is not None:
        settings.RESILIENCE = {**settings.RESILIENCE, "AWS": {**settings.RESILIENCE["AWS"], "failover_min_share": min_share}}
    name = replicated_secret(moto_url)
    client = secrets(outage.url("http", ""), moto_url)
    outage.blackhole()
    for _ in range(3):
        with deadline(2.0):
            assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert client.state(EAST) == state


@pytest.mark.parametrize("bad", [0, -1, 0.01, 61, "1", True])
def test_a_malformed_failover_min_share_is_e001_naming_the_key(settings, bad):
    from django.core.checks import run_checks

    settings.RESILIENCE = {"HISTORY": False, "AWS": {"failover_min_share": bad}}
    errors = [m.msg for m in run_checks() if m.id == "resilience.E001"]
    assert len(errors) == 1 and 'RESILIENCE["AWS"]["failover_min_share"]' in errors[0]


def test_regions_and_operations_come_from_settings_when_not_given(moto_url, outage, settings, events):
    settings.RESILIENCE = {**settings.RESILIENCE, "AWS": {**settings.RESILIENCE["AWS"], "FAILOVER": {
        "secretsmanager": {"regions": [EAST, WEST], "operations": ["get_secret_value"],
                           "endpoint_urls": {EAST: outage.url("http", ""), WEST: moto_url}}}}}  # fmt: skip
    name = replicated_secret(moto_url)
    client = failover_client("secretsmanager", session=plain_session())
    assert (client.regions, client.operations) == ((EAST, WEST), frozenset({"get_secret_value"}))
    outage.refuse()
    assert client.get_secret_value(SecretId=name)["SecretString"] == "west-value"
    assert [e.fields["to_region"] for e in of(events, "failover")] == [WEST]
    narrowed = failover_client("secretsmanager", regions=[WEST], session=plain_session())  # an argument wins
    assert narrowed.regions == (WEST,)


def test_without_regions_in_arguments_or_settings_the_error_says_where_to_put_them():
    with pytest.raises(ConfigurationError) as err:
        failover_client("sqs")
    where = """RESILIENCE["AWS"]["FAILOVER"]['sqs']"""
    assert str(err.value) == f"failover_client('sqs') needs regions and operations: as arguments, or in {where}"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"regions": "eu-west-1", "operations": ["get_secret_value"]}, '["regions"] must be a list of region names'),
        ({"regions": ["Europe"], "operations": ["get_secret_value"]}, '["regions"] must be a list of AWS region names'),
        ({"regions": [EAST, EAST], "operations": ["get_secret_value"]}, "must not name a region twice"),
        ({"regions": [EAST], "operations": []}, '["operations"] must be a list of client method names'),
        ({"regions": [EAST], "operations": ["GetSecretValue"]}, '["operations"] must be client method names'),
        ({"regions": [EAST], "operations": ["get_secret_value"], "endpoint_urls": {WEST: "http://x"}}, '["endpoint_urls"]'),
        ({"regions": [EAST], "operations": ["get_secret_value"], "regoins": []}, "regoins"),
    ],
)
def test_a_malformed_failover_entry_is_e001_naming_the_key(settings, entry, message):
    from django.core.checks import run_checks

    settings.RESILIENCE = {"HISTORY": False, "AWS": {"FAILOVER": {"secretsmanager": entry}}}
    errors = [m.msg for m in run_checks() if m.id == "resilience.E001"]
    assert len(errors) == 1 and "RESILIENCE[\"AWS\"][\"FAILOVER\"]['secretsmanager']" in errors[0] and message in errors[0]


def test_operations_that_may_not_fail_over_are_e018_at_start_up(settings):
    from django.core.checks import run_checks

    settings.RESILIENCE = {"HISTORY": False, "AWS": {"FAILOVER": {
        "secretsmanager": {"regions": [EAST, WEST], "operations": ["get_secret_value", "put_secret_value", "get_secrte_value"]},
        "dynamodb": {"regions": [EAST, WEST], "operations": ["get_item", "put_item"]},
        "no-such-service": {"regions": [EAST], "operations": ["get_thing"]},
    }}}  # fmt: skip
    errors = sorted(m.msg for m in run_checks() if m.id == "resilience.E018")
    assert errors == [
        "RESILIENCE[\"AWS\"][\"FAILOVER\"]['dynamodb'][\"operations\"]: 'put_item' is a write, and failover requires an "
        "idempotency token (another region must not apply it a second time); declare reads and idempotent writes only",
        "RESILIENCE[\"AWS\"][\"FAILOVER\"]['no-such-service']: 'no-such-service' is not a boto3 service name",
        "RESILIENCE[\"AWS\"][\"FAILOVER\"]['secretsmanager'][\"operations\"]: 'get_secrte_value' is not an operation of "
        "secretsmanager clients",
    ]  # put_secret_value carries ClientRequestToken: it may fail over
