"""Which limit the ``RateLimit`` header reports when several apply: the one closest to refusing
(``RateDecision.tightest``). Lives beside the GCRA tests because the choice is made in core/gcra.py."""

from resilience.core.gcra import decide
from resilience.ratelimit.admission import headers
from resilience.ratelimit.policies import RatePolicy

IP = RatePolicy("ip", 100, 60.0, 100)
TENANT = RatePolicy("tenant", 10, 60.0, 10)


def limits(*policies):
    return [p.limit("who", "test") for p in policies]


def test_the_header_reports_the_limit_with_the_fewest_requests_left():
    decision, _ = decide(limits(IP, TENANT), [None, None], 0.0)
    assert headers(decision, [IP, TENANT]) == {
        "RateLimit-Policy": '"ip";q=100;w=60, "tenant";q=10;w=60',
        "RateLimit": '"tenant";r=9;t=6',
    }


def test_the_header_reports_a_refusing_limit_even_when_another_has_fewer_left():
    roomy_ip = RatePolicy("ip", 100, 60.0, 100)
    small = RatePolicy("user", 2, 60.0, 2)
    # ip is full (its TAT is a whole burst ahead); user has 1 left
    decision, _ = decide(limits(small, roomy_ip), [30.0, 60.0], 0.0)
    assert decision.allowed is False
    out = headers(decision, [small, roomy_ip])
    assert out["RateLimit"] == '"ip";r=0;t=60'
    assert out["Retry-After"] == "1"  # one interval of 0.6 s, rounded up to a whole second


def test_retry_after_is_the_longest_wait_rounded_up():
    slow = RatePolicy("slow", 1, 60.0, 1)
    decision, _ = decide(limits(IP, slow), [60.0, 30.5], 0.0)
    assert headers(decision, [IP, slow])["Retry-After"] == "31"  # slow waits 30.5 s, ip 0.6 s


def test_an_admitted_request_has_no_retry_after():
    decision, _ = decide(limits(IP), [None], 0.0)
    assert "Retry-After" not in headers(decision, [IP])
