"""DRF's throttling scenarios (rest_framework tests/test_throttling.py), restated for the resilience
throttles. Where both agree, the test says so; where the app differs on purpose, it asserts the
app's behaviour and runs DRF's own throttle beside it, so the difference is shown, not described.

Timing scenarios run the in-process engine on a clock the test moves (DRF's throttles get the same
clock through their ``timer``); scenarios about shared counters run on the real Redis.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from rest_framework import throttling as drf
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from resilience.ratelimit.identity import client_address
from resilience.throttling import IPRateThrottle, ScopedRateThrottle

pytestmark = pytest.mark.django_db

factory = APIRequestFactory()
CLOCK: list[Any] = [None]  # the test's WallClock, read by DRF's throttles through ``timer``


def get(view: type[APIView], address: str = "198.51.100.1", user: Any = None, **headers: str) -> Any:
    request = factory.get("/", REMOTE_ADDR=address, **headers)
    if user is not None:
        force_authenticate(request, user)
    return view.as_view()(request)


def codes(view: type[APIView], times: int, **kwargs: Any) -> list[int]:
    return [get(view, **kwargs).status_code for _ in range(times)]


@pytest.fixture
def peer_clock(local_limits):
    """DRF's throttles and ours on the same moving clock; DRF's counters in a private cache."""
    CLOCK[0] = local_limits
    PeerThrottle.cache = LocMemCache(f"peers-{id(local_limits)}", {})
    yield local_limits
    CLOCK[0] = None


class PeerThrottle(drf.AnonRateThrottle):
    """DRF's own throttle, on the test's clock (DRF's tests override ``timer`` the same way)."""

    def timer(self) -> float:
        return CLOCK[0]() if CLOCK[0] is not None else super().timer()


def view_with(*throttles: type) -> type[APIView]:
    class View(APIView):
        throttle_classes = throttles
        authentication_classes: list[type] = []
        permission_classes: list[type] = []

        def get(self, request: Any) -> Response:
            return Response("ok")

    return View


def drf_rate(rate: str, scope: str) -> type:
    return type(f"Drf{scope}", (PeerThrottle,), {"rate": rate, "scope": scope})


class Ours3PerSecond(IPRateThrottle):
    rate = "3/sec"


class Ours3PerMinute(IPRateThrottle):
    rate = "3/min"


class Ours6PerMinute(IPRateThrottle):
    rate = "6/min"


class Ours1PerDay(IPRateThrottle):
    rate = "1/day"


# -- rates, refusals and Retry-After --------------------------------------------------------------------
def test_a_request_over_the_rate_is_refused_with_429(shared_limits):
    """DRF: the 4th request at 3/min is refused. Same here, counted in Redis."""
    assert codes(view_with(Ours3PerMinute), 4) == [200, 200, 200, 429]


def test_a_refused_client_gets_its_next_request_as_soon_as_one_interval_has_refilled(peer_clock):
    """DRF keeps a log of the last ``rate`` requests: at 3/sec, after three at once, the next is
    admitted when the oldest leaves the window, a whole second later. GCRA refills one request per
    interval (1/3 s), so one more request fits after a third of a second — and only one."""
    ours, theirs = view_with(Ours3PerSecond), view_with(drf_rate("3/sec", "three_sec"))
    assert codes(ours, 4) == codes(theirs, 4) == [200, 200, 200, 429]
    peer_clock.advance(0.34)
    assert codes(ours, 2) == [200, 429]  # one interval refilled: one request
    assert codes(theirs, 1) == [429]  # DRF: nothing until the oldest request is a second old
    peer_clock.advance(0.66)
    assert codes(theirs, 1) == [200]


def test_retry_after_is_the_exact_time_until_the_request_fits(peer_clock):
    """DRF's ``wait()`` is the time left in the window divided by the requests left (plus one), so at
    3/min a client refused after three requests at once is told 60 s. GCRA's is the time until the
    next request fits: one interval, 20 s. At 3/sec both round up to 1 s."""
    ours, theirs = get_refusal(view_with(Ours3PerMinute), 3), get_refusal(view_with(drf_rate("3/min", "three_min")), 3)
    assert (ours["Retry-After"], theirs["Retry-After"]) == ("20", "60")
    peer_clock.advance(0.5)
    assert get(view_with(Ours3PerMinute))["Retry-After"] == "20"  # 19.5 s, rounded up as DRF rounds
    seconds = get_refusal(view_with(Ours3PerSecond), 3), get_refusal(view_with(drf_rate("3/sec", "s3")), 3)
    assert [r["Retry-After"] for r in seconds] == ["1", "1"]


def get_refusal(view: type[APIView], admitted: int) -> Any:
    assert codes(view, admitted) == [200] * admitted
    refused = get(view)
    assert refused.status_code == 429
    return refused


def test_the_429_on_redis_says_when_to_come_back_rounded_up(shared_limits):
    """DRF sets ``Retry-After`` to ``wait()`` rounded up; so does the app, here on Redis's clock."""
    refused = get_refusal(view_with(Ours3PerMinute), 3)
    assert refused["Retry-After"] == "20"  # a few ms under 20 s since the first request, rounded up
    assert "Expected available in 20 seconds" in str(refused.data["detail"])  # DRF's own message, our wait


def test_a_client_that_follows_the_rate_is_never_refused(peer_clock):
    """DRF: requests at 3/min spaced 20 s apart are all admitted. GCRA agrees."""
    ours, theirs = view_with(Ours3PerMinute), view_with(drf_rate("3/min", "paced"))
    for _ in range(6):
        assert (get(ours).status_code, get(theirs).status_code) == (200, 200)
        peer_clock.advance(20)


def test_several_throttles_of_a_view_decide_all_or_nothing(peer_clock):
    """DRF asks every throttle in turn, and each one that admits a request records it, even when
    another throttle refuses that request: after 3/sec refuses the 4th request, DRF's 6/min throttle
    has still counted it, and a second later admits only two. Here all throttles of a view are one
    decision: a refused request consumes nothing, so three fit a second later (3/sec refilled, 6/min
    has 3 left), and the next refusal waits for 6/min's next interval (9 s), not its window (59 s)."""
    ours = view_with(Ours3PerSecond, Ours6PerMinute)
    theirs = view_with(drf_rate("3/sec", "burst"), drf_rate("6/min", "sustained"))
    first = [(r.status_code, r.get("Retry-After")) for r in (get(ours) for _ in range(4))]
    assert first == [(200, None)] * 3 + [(429, "1")]
    assert [(r.status_code, r.get("Retry-After")) for r in (get(theirs) for _ in range(4))] == first
    peer_clock.advance(1)
    assert [(r.status_code, r.get("Retry-After")) for r in (get(ours) for _ in range(4))] == [(200, None)] * 3 + [(429, "9")]
    assert [(r.status_code, r.get("Retry-After")) for r in (get(theirs) for _ in range(3))] == [(200, None)] * 2 + [(429, "59")]


def test_a_request_refused_by_one_throttle_leaves_the_others_counters_untouched_on_redis(shared_limits):
    """The same all-or-nothing rule on Redis: three refusals by 3/min cost 6/min nothing, so a view
    throttled by 6/min alone still admits three. (DRF's 6/min would have counted all six.)"""
    assert codes(view_with(Ours3PerMinute, Ours6PerMinute), 6) == [200] * 3 + [429] * 3
    assert codes(view_with(Ours6PerMinute), 4) == [200] * 3 + [429]


def test_a_rate_of_zero_refuses_every_request_for_one_period(peer_clock):
    """DRF and the app agree: "0/min" refuses everything and says to come back in 60 s."""
    ours = type("OursZero", (IPRateThrottle,), {"rate": "0/min"})
    assert [get(v)["Retry-After"] for v in (view_with(ours), view_with(drf_rate("0/min", "zero")))] == ["60", "60"]


def test_a_changed_rate_applies_at_the_next_request(peer_clock, settings):
    """DRF reads ``THROTTLE_RATES`` once per throttle instance; its class attribute, bound when
    ``rest_framework.throttling`` is imported, is the known trap. Ours are read from ``api_settings``
    at every decision, so ``override_settings`` takes effect at once."""
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"ip": "1/min"}}
    view = view_with(IPRateThrottle)
    assert codes(view, 2) == [200, 429]
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"ip": "5/min"}}
    assert drf.SimpleRateThrottle.THROTTLE_RATES.get("ip") != "5/min"  # DRF's class attribute: the old dict
    peer_clock.advance(12.5)
    assert codes(view, 2) == [200, 429]  # 5/min refills one request in 12 s (1/min would need 60 s)


# -- who is counted ---------------------------------------------------------------------------------------
@pytest.fixture
def scoped(shared_limits, settings):
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"x": "3/min", "y": "1/min", "ip": "2/min"}}


def scoped_view(scope: str | None) -> type[APIView]:
    view = view_with(ScopedRateThrottle)
    if scope is not None:
        view.throttle_scope = scope
    return view


def test_each_scope_counts_separately(scoped):
    """DRF: views with ``throttle_scope`` "x" (3/min) and "y" (1/min) have their own budgets."""
    x, y = scoped_view("x"), scoped_view("y")
    assert codes(x, 4) == [200, 200, 200, 429]
    assert codes(y, 2) == [200, 429]


def test_a_view_without_throttle_scope_is_not_throttled(scoped):
    """DRF: ScopedRateThrottle on a view with no ``throttle_scope`` lets every request through."""
    assert set(codes(scoped_view(None), 10)) == {200}


def test_the_scoped_throttle_counts_users_by_pk_and_anonymous_clients_by_address(scoped):
    """DRF keys an authenticated user as ``throttle_<scope>_<pk>`` and anyone else by address; so does
    the app: two users behind one address have a budget each, two anonymous addresses too, and a
    user's budget is not the anonymous budget of the address they share."""
    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    y = scoped_view("y")
    assert codes(y, 2, user=alice) == [200, 429]
    assert codes(y, 2, user=bob) == [200, 429]  # same address, another user
    assert codes(y, 2, address="198.51.100.2") == [200, 429]
    assert codes(y, 1, address="198.51.100.3") == [200]
    assert codes(y, 1, address="198.51.100.1") == [200]  # alice's and bob's address, anonymous: its own


def test_the_ip_throttle_counts_authenticated_users_too(scoped):
    """DRF's AnonRateThrottle leaves authenticated users alone (its key is None for them), and
    UserRateThrottle counts them by pk. IPRateThrottle counts every request by client address,
    signed in or not: a per-address limit that a login cannot lift. Per user: ScopedRateThrottle."""
    carol = User.objects.create_user("carol")
    request = Request(factory.get("/", REMOTE_ADDR="198.51.100.4"))
    force_authenticate(request, carol)
    request.user = carol
    assert drf.AnonRateThrottle().get_cache_key(request, None) is None  # DRF: not throttled at all
    ip = view_with(IPRateThrottle)
    assert codes(ip, 1, user=carol, address="198.51.100.4") == [200]
    assert codes(ip, 2, address="198.51.100.4") == [200, 429]  # carol's request counted against the address


# -- client addresses: TRUSTED_PROXIES instead of NUM_PROXIES ------------------------------------------
XFF = "0.0.0.0, 1.1.1.1, 2.2.2.2"  # DRF's XFF tests: the proxy at 3.3.3.3 saw 2.2.2.2, 1.1.1.1 is a second proxy


def drf_ident(remote: str, xff: str | None) -> str:
    headers = {} if xff is None else {"HTTP_X_FORWARDED_FOR": xff}
    return drf.BaseThrottle().get_ident(Request(factory.get("/", REMOTE_ADDR=remote, **headers)))


def our_ident(remote: str, xff: str | None) -> str:
    headers = {} if xff is None else {"HTTP_X_FORWARDED_FOR": xff}
    return client_address(factory.get("/", REMOTE_ADDR=remote, **headers))


@pytest.fixture
def proxies(shared_limits, settings):
    def trust(*cidrs: str) -> None:
        settings.RESILIENCE = {**settings.RESILIENCE, "TRUSTED_PROXIES": list(cidrs)}

    return trust


def test_by_default_a_client_cannot_choose_its_identity_with_x_forwarded_for(proxies, settings):
    """DRF's default (``NUM_PROXIES = None``) takes the whole X-Forwarded-For header, whoever sent it,
    as the client's identity: a client sending a new header each time is a new client each time.
    With no ``TRUSTED_PROXIES`` (the default) the app believes no header: ``REMOTE_ADDR`` is the key."""
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {}, "NUM_PROXIES": None}
    assert drf_ident("3.3.3.3", XFF) == "0.0.0.0,1.1.1.1,2.2.2.2"
    assert drf_ident("3.3.3.3", "9.9.9.9") == "9.9.9.9"
    assert our_ident("3.3.3.3", XFF) == our_ident("3.3.3.3", "9.9.9.9") == "3.3.3.3"
    view = view_with(Ours1PerDay)
    assert [get(view, address="3.3.3.3", HTTP_X_FORWARDED_FOR=f"9.9.9.{n}").status_code for n in range(3)] == [200, 429, 429]


@pytest.mark.parametrize(
    ("trusted", "num_proxies", "client"), [(["3.3.3.3"], 1, "2.2.2.2"), (["3.3.3.3", "2.2.2.2"], 2, "1.1.1.1")]
)
def test_trusted_proxies_give_the_address_drfs_num_proxies_gives(proxies, settings, trusted, num_proxies, client):
    """DRF counts hops from the right (``NUM_PROXIES``); the app skips hops whose address it trusts.
    Behind one proxy (3.3.3.3) the client is 2.2.2.2; behind two (3.3.3.3, 2.2.2.2), 1.1.1.1."""
    proxies(*trusted)
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {}, "NUM_PROXIES": num_proxies}
    assert drf_ident("3.3.3.3", XFF) == our_ident("3.3.3.3", XFF) == client


@pytest.mark.parametrize(("trusted", "spoofed", "other"), [
    (["3.3.3.3"], "4.4.4.4, 5.5.5.5, 2.2.2.2", "0.0.0.0, 1.1.1.1, 7.7.7.7"),
    (["3.3.3.3", "2.2.2.2"], "4.4.4.4, 1.1.1.1, 2.2.2.2", "0.0.0.0, 7.7.7.7, 2.2.2.2"),
])  # fmt: skip
def test_spoofed_hops_left_of_the_client_do_not_change_its_identity(proxies, trusted, spoofed, other):
    """DRF's XFF spoofing and unique-machines tests at 1/day: rewriting what lies left of the client's
    real address changes nothing (429), another client behind the same proxies has its own budget."""
    proxies(*trusted)
    view = view_with(Ours1PerDay)
    assert get(view, address="3.3.3.3", HTTP_X_FORWARDED_FOR=XFF).status_code == 200
    assert get(view, address="3.3.3.3", HTTP_X_FORWARDED_FOR=spoofed).status_code == 429
    assert get(view, address="3.3.3.3", HTTP_X_FORWARDED_FOR=other).status_code == 200


def test_x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(proxies, settings):
    """DRF's ``NUM_PROXIES = 1`` believes the header from any peer, so a client that reaches the app
    directly (not through the proxy) picks its identity. The app believes it only from an address in
    ``TRUSTED_PROXIES``."""
    proxies("3.3.3.3")
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {}, "NUM_PROXIES": 1}
    assert drf_ident("203.0.113.9", "6.6.6.6") == "6.6.6.6"
    assert our_ident("203.0.113.9", "6.6.6.6") == "203.0.113.9"


def test_ipv6_clients_are_counted_per_64_network(shared_limits):
    """DRF keys each IPv6 address on its own, and one host owns a whole /64: it could take a new
    address per request. The app counts an IPv6 client by its /64 (``RATE_LIMITS["ipv6_prefix"]``)."""
    assert drf_ident("2001:db8:1:2::1", None) != drf_ident("2001:db8:1:2::2", None)
    view = view_with(Ours1PerDay)
    assert [get(view, address=f"2001:db8:1:2::{n}").status_code for n in (1, 2, 3)] == [200, 429, 429]
    assert get(view, address="2001:db8:1:3::1").status_code == 200  # the next /64: another client


# -- configuration ------------------------------------------------------------------------------------
def test_a_scope_without_a_rate_is_improperly_configured_at_the_first_request(local_limits):
    """DRF raises ``ImproperlyConfigured`` when the throttle is built (once per request, in
    ``get_throttles``); the app when the throttle first decides, which is the same request. The
    message is DRF's."""
    with pytest.raises(ImproperlyConfigured, match="No default throttle rate set for 'anon' scope"):
        type("Missing", (drf.AnonRateThrottle,), {"THROTTLE_RATES": {}})()
    throttle = IPRateThrottle()  # building it is fine
    with pytest.raises(ImproperlyConfigured, match="No default throttle rate set for 'ip' scope"):
        throttle.allow_request(Request(factory.get("/")), None)


def test_a_scope_whose_rate_is_none_admits_everything(local_limits, settings):
    """DRF: ``allow_request`` is True when the rate is None. Same here, and ``wait()`` stays None."""
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"ip": None}}
    throttle = IPRateThrottle()
    request = Request(factory.get("/"))
    assert all(throttle.allow_request(request, None) for _ in range(50)) and throttle.wait() is None


def test_wait_is_none_until_a_request_is_refused_then_the_time_until_it_fits(local_limits):
    """DRF's ``wait()`` is a pacing hint even for an admitted request (1/min with an empty history:
    30 s, the window spread over the requests left plus one). The app's ``wait()`` is only the answer
    to a refusal: None while requests are admitted, then the seconds until the next one fits."""
    theirs = drf_rate("1/min", "pace")()
    theirs.num_requests, theirs.duration, theirs.history = 1, 60, []
    assert theirs.wait() == 30.0
    ours = type("OursOne", (IPRateThrottle,), {"rate": "1/min"})()
    request = Request(factory.get("/"))
    assert ours.wait() is None
    assert ours.allow_request(request, None) is True and ours.wait() is None
    local_limits.advance(15)
    assert ours.allow_request(request, None) is False and ours.wait() == pytest.approx(45.0)


def test_allow_request_without_a_view_is_one_decision_per_call(local_limits):
    """DRF allows ``allow_request(request, None)``, each call a hit. Without a view the app cannot
    gather the view's other throttles, so each call decides for that throttle alone, and counts."""
    throttle = type("OursTwo", (IPRateThrottle,), {"rate": "2/min"})()
    request = Request(factory.get("/"))
    assert [throttle.allow_request(request, None) for _ in range(3)] == [True, True, False]
    assert throttle.wait() == pytest.approx(30.0)


def test_within_a_view_every_resilience_throttle_reads_the_one_decision(local_limits):
    """DRF calls ``allow_request`` on each throttle, each counting separately. With a view, the
    first resilience throttle decides for all of them and the decision is kept on the request: a
    throttle whose own limit admitted says True, the refusing one says False and gives the wait."""
    two, five = type("Two", (IPRateThrottle,), {"rate": "2/min"}), type("Five", (IPRateThrottle,), {"rate": "5/min"})
    view = view_with(two, five)()
    for _ in range(2):
        request = Request(factory.get("/"))
        assert [t.allow_request(request, view) for t in (two(), five())] == [True, True]
    request = Request(factory.get("/"))
    first, second = two(), five()
    assert [first.allow_request(request, view), second.allow_request(request, view)] == [False, True]
    assert first.wait() == pytest.approx(30.0) and second.wait() is None
    assert [first.allow_request(request, view), second.allow_request(request, view)] == [False, True]  # asked again: no new hit
    local_limits.advance(30)
    assert [t.allow_request(Request(factory.get("/")), view) for t in (two(), five())] == [True, True]


class ManualCheck(APIView):
    """A view that throttles one action by hand, the way DRF's throttles can be used: build the
    throttle, ask ``allow_request(request, self)``, and call ``self.throttled`` on a refusal."""

    throttle_classes: list[type] = []
    authentication_classes: list[type] = []
    permission_classes: list[type] = []
    manual: type = Ours1PerDay

    def get(self, request: Any) -> Response:
        throttle = self.manual()
        if not throttle.allow_request(request, self):
            self.throttled(request, throttle.wait())
        return Response("ok")


@pytest.mark.parametrize("listed", [[], [Ours6PerMinute]], ids=["no-view-throttles", "other-view-throttle"])
def test_a_throttle_checked_by_hand_inside_a_view_still_limits(shared_limits, listed):
    """DRF: a throttle built and asked by the view itself (not in ``throttle_classes``) counts and
    refuses like any other. Here ``_decide`` gathers only ``view.get_throttles()``, so the hand-made
    throttle's limit is never part of the decision, and ``allow_request`` says True every time."""
    theirs = type("ManualDrf", (ManualCheck,), {"manual": drf_rate("1/day", "manual")})
    PeerThrottle.cache = LocMemCache(f"peers-manual-{uuid.uuid4().hex}", {})
    assert codes(theirs, 2) == [200, 429]  # DRF
    ours = type("ManualOurs", (ManualCheck,), {"throttle_classes": listed})
    assert codes(ours, 2) == [200, 429]
