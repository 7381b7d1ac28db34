"""django-auth-adfs's provider configuration, made to survive identity-provider outages.

django-auth-adfs keeps metadata and signing keys per process, re-fetches them on every request
while the provider is unreachable (its timestamp only moves on success), retries each fetch with
urllib3 backoff inside the request, and lets connection errors escape into ``authenticate()``.
``ResilientProviderConfig`` replaces its ``provider_config`` (installed by ``resilience.integrations.entra.backend``):

- fetches go through the breaker ``entra`` and the ``http`` retry policy (urllib3's retries are
  off), are bounded by the deadline and ``AUTH_ADFS["TIMEOUT"]``, and are single-flight: one per
  process (threads that wait for it take its outcome, success or failure), and across workers a
  Redis lock (``SET NX PX`` with an owner token, released only by its owner through
  ``lock_release.lua``) with the shared copy. Waiting, for either, ends with the request's
  deadline (and never happens while usable keys are at hand); a fetch starts only with time left
  and gets no more than is left;
- a failed fetch (cut by the deadline included: the breaker does not count that one) makes this
  process wait ``retry_interval`` and leaves the Redis lock behind as a ``failed`` mark for as
  long, so the other workers answer at once instead of fetching again;
- the last good metadata and public keys are shared through Redis (public material only) and
  used for up to ``max_staleness`` seconds while the provider is down; after a failure the next
  attempt waits ``retry_interval`` seconds instead of happening on every request;
- the shared copy is hostile input (the Redis may be a cache other applications write to): it is
  sealed with ``resilience.storage.signing`` (HMAC under ``RESILIENCE["SIGNING_KEY"]``), one copy per
  server, tenant and client id (hashed into the key), and a copy that does not verify, does not
  decode or is dated more than ``CLOCK_SKEW`` seconds in the future is absent: whoever can write
  to Redis can withhold keys but never plant one;
- a token naming an unknown key id triggers at most one refresh per ``kid_refresh_interval``.
When nothing usable is left, ``EntraUnavailable`` is raised: callers answer 503, never 500.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
import time
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.x509 import load_der_x509_certificate
from django_auth_adfs.config import ProviderConfig
from django_auth_adfs.config import settings as adfs_settings

from resilience.breakers.decorator import circuit_breaker
from resilience.core.deadline import bounded, check, deadline, remaining
from resilience.core.event import Event
from resilience.core.validation import is_number
from resilience.exceptions import CircuitOpenError, DeadlineExceeded, EntraUnavailable
from resilience.observability.events import emit
from resilience.retries.policies import retry
from resilience.storage.keys import digest
from resilience.storage.redis.scripts import LockReleaseArgs, LockReleaseKeys, lock_release
from resilience.storage.signing import seal, unseal

BREAKER = "entra"
SHARED_SCHEMA = "v2"  # v2: sealed, one copy per application; an older version's unsigned copy is never read
CLOCK_SKEW = 60.0  # seconds a shared copy may be dated ahead of our clock (workers' clocks differ); further: refused
LOCK_MARGIN = 1.0  # seconds the fetch lock outlives the longest fetch it covers (the share and release after it)
POLL = 0.05  # seconds between looks at the shared copy while another worker fetches
FAILED = b"failed"  # the fetch lock's value after a failed fetch, until retry_interval has passed


class ResilientProviderConfig(ProviderConfig):  # type: ignore[misc]
    def __init__(self, *, redis_client: Any = None, prefix: str = "resilience", max_staleness: float = 7 * 86_400,
                 retry_interval: float = 30.0, kid_refresh_interval: float = 60.0) -> None:  # fmt: skip
        super().__init__()
        self.session = requests.Session()  # no urllib3 retries: one layer, ours (and bounded by the deadline)
        self.session.verify = adfs_settings.CA_BUNDLE
        if hasattr(adfs_settings, "PROXIES"):
            self.session.proxies = adfs_settings.PROXIES
        self.redis, self.prefix = redis_client, prefix
        self.max_staleness, self.retry_interval, self.kid_refresh_interval = max_staleness, retry_interval, kid_refresh_interval
        self.kids: dict[str, RSAPublicKey] = {}
        self.fetched_at = 0.0  # wall-clock time the current material was fetched from the provider
        self._next_attempt = 0.0  # monotonic: no provider fetch before this, after a failure
        self._last_kid_refresh = 0.0
        self._lock = threading.Lock()  # one refresh at a time in this process
        self._refreshes = 0  # refreshes ended in this process: a thread that waited for one takes its outcome
        self._unlock = lock_release(redis_client) if redis_client is not None else None
        self._mode = "openid_connect"

    # -- keys -------------------------------------------------------------------------------
    @staticmethod
    def _identity() -> str:
        """Whose keys these are: the fetch sends ``appid=CLIENT_ID`` and an application may have signing
        keys of its own, so two applications in one tenant never share (or overwrite) one copy."""
        who = json.dumps([adfs_settings.SERVER, adfs_settings.TENANT_ID, adfs_settings.CLIENT_ID])
        return digest(who, 16)

    @property
    def shared_key(self) -> str:
        """The Redis key of the shared copy (``:lock`` and ``:kid-refresh`` hang off it)."""
        return f"{self.prefix}:entra:{SHARED_SCHEMA}:{{{self._identity()}}}"

    @property
    def shared_purpose(self) -> str:
        """The seal's purpose: a copy sealed for another server, tenant or application does not verify here."""
        return f"entra-keys:{self._identity()}"

    def _age(self) -> float:
        return time.time() - self.fetched_at if self.fetched_at else float("inf")

    def _fresh(self) -> bool:
        return self.signing_keys is not None and self._age() < adfs_settings.CONFIG_RELOAD_INTERVAL * 3600

    def _usable(self) -> bool:
        return self.signing_keys is not None and self._age() < self.max_staleness

    # -- the contract django-auth-adfs calls ---------------------------------------------------
    def load_config(self) -> None:
        if self._fresh() or self._backing_off():
            return
        seen = self._refreshes
        wait = 0.0 if self._usable() else self._lock_wait()  # with stale keys at hand, nobody waits for a refresh
        if not self._lock.acquire(timeout=wait):  # single flight in this process
            self._without_refresh()  # a refresh is in flight: our stale keys, else 503 once our time is up
            return
        try:
            if self._fresh() or self._backing_off():
                return
            if self._refreshes != seen:  # the refresh we waited for ended without fresh keys: its outcome is ours
                self._without_refresh()
                return
            self._refresh(force=False)
        finally:
            self._lock.release()

    def _backing_off(self) -> bool:
        """After a failed fetch, until ``retry_interval`` has passed: answer from what we have, at once
        (our copy, else the shared one), or fail fast; never a fetch per request during an outage."""
        wait = self._next_attempt - time.monotonic()
        if wait <= 0:
            return False
        if self._usable() or self._adopt_shared(newer_only=False):
            return True
        raise EntraUnavailable(retry_after=wait)

    def _without_refresh(self) -> None:
        """This request gets no refresh of its own (its deadline, or a refresh that just failed
        elsewhere): what we have, or the shared copy, else ``EntraUnavailable``."""
        if self._usable() or self._adopt_shared(newer_only=False):
            return
        raise EntraUnavailable(retry_after=1.0)

    @staticmethod
    def _refresh_budget() -> float:
        """The most one refresh takes, waiting for another worker's fetch included (each of its two
        requests has ``TIMEOUT``); never more than the request's deadline leaves."""
        return 2.0 * adfs_settings.TIMEOUT

    def _lock_wait(self) -> float:
        """How long a thread waits for its process's refresh in flight: that refresh's budget (it
        cannot take longer), less when the request's deadline is sooner."""
        return bounded(self._refresh_budget() + LOCK_MARGIN) or 0.0

    def refresh_for_kid(self, kid: str) -> None:
        """A token names a key we do not have (rotation): refresh, at most once per interval."""
        if kid in self.kids:
            return
        if not self._lock.acquire(timeout=self._lock_wait()):
            return  # a refresh in flight outlasts our deadline: the token meets the keys we have
        try:
            now = time.monotonic()
            if kid in self.kids or now - self._last_kid_refresh < self.kid_refresh_interval:
                return
            self._last_kid_refresh = now
            if self.redis is not None and self._claim(f"{self.shared_key}:kid-refresh", self.kid_refresh_interval) is None:
                self._adopt_shared(newer_only=True)  # another worker refreshes; take what is shared
                return
            # the kid comes from an unverified token's header: client input, so only its digest is logged
            emit(Event("auth", "unknown_kid_refresh", BREAKER, {"kid_sha256": digest(kid, 16)}))
            try:
                self._refresh(force=True)
            except EntraUnavailable:
                pass  # the token simply does not validate with the keys we have
        finally:
            self._lock.release()

    # -- refreshing ---------------------------------------------------------------------------
    def _refresh(self, *, force: bool) -> None:
        """One refresh (the caller holds ``self._lock``), within its budget and the request's deadline."""
        try:
            with deadline(self._refresh_budget()):
                self._refresh_within_budget(force=force)
        finally:
            self._refreshes += 1  # threads that waited for this one take its outcome (load_config)

    def _refresh_within_budget(self, *, force: bool) -> None:
        if not force and self._adopt_shared(newer_only=True) and self._fresh():
            return
        token: str | None = ""  # "": no Redis, this process decides for itself
        if self.redis is not None and not force:
            token = self._claim_fetch_lock()
            if token is None:  # another worker fetched (its copy is ours now) or still does, or just failed
                if not self._fresh():
                    self._without_refresh()
                return
        try:
            document = retry("http").call(circuit_breaker(BREAKER).call, self._fetch)  # the one retry layer
            self._apply(document)  # a certificate that does not parse is the provider's failure, not a 500
        except (CircuitOpenError, DeadlineExceeded, requests.RequestException, ValueError, KeyError, TypeError) as exc:
            self._release(token, mark_failed_for=self._failed(exc))  # the others back off with us
            self._fallback_after_failure()
            return
        self._share(document)  # shared before the lock goes: a waiter that sees no lock finds the copy
        self._release(token)
        emit(Event("auth", "keys_loaded", BREAKER, {"keys": len(self.kids)}))

    def _failed(self, exc: BaseException) -> float:
        """A fetch failed: no other before the seconds returned (``retry_interval``, or less when the
        breaker reopens sooner). One cut by the request's deadline too: the breaker holds it as no
        evidence against the provider, but a provider slower than our deadlines is not asked again
        on every request."""
        wait = exc.retry_after if isinstance(exc, CircuitOpenError) and exc.retry_after else self.retry_interval
        wait = min(wait, self.retry_interval)
        self._next_attempt = time.monotonic() + wait
        emit(
            Event(
                "auth", "provider_unavailable", BREAKER, {"error": type(exc).__name__, "cached_age": round(min(self._age(), 1e9))}
            )
        )
        return wait

    def _fallback_after_failure(self) -> None:
        if self._usable() or self._adopt_shared(newer_only=False):
            return
        raise EntraUnavailable(retry_after=max(self._next_attempt - time.monotonic(), 1.0))

    def _fetch(self) -> dict[str, Any]:
        """Metadata, then keys; each request starts only with time left and gets no more than is left
        (inside ``_refresh`` there is always a deadline: the refresh budget or the request's)."""
        check()
        timeout = bounded(adfs_settings.TIMEOUT)
        url = f"https://{adfs_settings.SERVER}/{adfs_settings.TENANT_ID}/{adfs_settings.VERSION}/.well-known/openid-configuration"
        # verify per request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override session.verify,
        # which would silently ignore AUTH_ADFS["CA_BUNDLE"] in containers that set those variables
        verify = adfs_settings.CA_BUNDLE
        response = self.session.get(url, params={"appid": adfs_settings.CLIENT_ID}, timeout=timeout, verify=verify)
        response.raise_for_status()
        openid = response.json()
        check()
        keys = self.session.get(openid["jwks_uri"], timeout=bounded(adfs_settings.TIMEOUT), verify=verify)
        keys.raise_for_status()
        certificates = {
            k.get("kid", str(i)): k["x5c"][0] for i, k in enumerate(keys.json()["keys"]) if k.get("use", "sig") == "sig"
        }
        wanted = ("issuer", "authorization_endpoint", "token_endpoint", "end_session_endpoint", "msgraph_host")
        return {"openid": {k: openid[k] for k in wanted if k in openid}, "certificates": certificates, "fetched_at": time.time()}

    def _apply(self, document: dict[str, Any]) -> None:
        """Use ``document``; everything is parsed before anything is set, so a bad one changes nothing."""
        kids = {
            str(kid): load_der_x509_certificate(base64.b64decode(cert, validate=True)).public_key()
            for kid, cert in document["certificates"].items()
        }
        openid = document["openid"]
        if not kids or not isinstance(openid["issuer"], str):
            raise ValueError("no signing keys or no issuer")
        fetched_at = float(document["fetched_at"])
        self.kids = kids  # type: ignore[assignment]
        self.signing_keys = list(kids.values())
        self.issuer = openid["issuer"]
        self.authorization_endpoint = openid.get("authorization_endpoint")
        self.token_endpoint = openid.get("token_endpoint")
        self.end_session_endpoint = openid.get("end_session_endpoint")
        self.msgraph_endpoint = openid.get("msgraph_host", "graph.microsoft.com")
        self.fetched_at = fetched_at
        self._config_timestamp = None  # nothing in django-auth-adfs decides on its own any more

    # -- sharing through Redis ----------------------------------------------------------------
    def _share(self, document: dict[str, Any]) -> None:
        if self.redis is None:
            return
        try:
            self.redis.set(self.shared_key, seal(document, self.shared_purpose), ex=int(self.max_staleness))
        except Exception as exc:  # noqa: BLE001 - sharing is an optimisation
            emit(Event("auth", "share_failed", BREAKER, {"error": type(exc).__name__}))

    def _adopt_shared(self, *, newer_only: bool) -> bool:
        document = self._read_shared()
        if document is None:
            return False
        fetched_at = document["fetched_at"]
        if (newer_only and fetched_at <= self.fetched_at) or time.time() - fetched_at >= self.max_staleness:
            return False
        try:
            self._apply(document)
        except (ValueError, KeyError, TypeError, AttributeError):  # verified, yet not what we write: absent
            return False
        return True

    def _read_shared(self) -> dict[str, Any] | None:
        """The shared copy if it verifies as ours and is plausibly dated; anything else is absent.

        Unsigned (planted, or an older version's), forged, truncated, sealed for another application,
        or dated more than ``CLOCK_SKEW`` ahead: a future ``fetched_at`` would make a copy newer than
        every real one and fresh for as long as it lies, so it is refused even when it verifies."""
        if self.redis is None:
            return None
        try:
            raw = self.redis.get(self.shared_key)
        except Exception:  # noqa: BLE001 - Redis down: our own copy is all we have
            return None
        document = unseal(raw, self.shared_purpose)
        if not isinstance(document, dict):
            return None
        fetched_at = document.get("fetched_at")
        if not is_number(fetched_at) or not math.isfinite(fetched_at):
            return None
        if fetched_at > time.time() + CLOCK_SKEW:
            return None
        return document

    def _claim_fetch_lock(self) -> str | None:
        """The fetch lock's owner token when this worker is to fetch; None when it is not: another
        worker fetches and we have stale keys meanwhile, or we waited and its fetch ended (its copy,
        if any, adopted), or our time ran out, or the lock is the mark of a fetch that failed (we back
        off with it). We never fetch beside another worker's fetch."""
        key = f"{self.shared_key}:lock"
        token = self._claim(key, (remaining() or 0.0) + LOCK_MARGIN)  # outlives the fetch it covers, not more
        if token is not None:
            if self._adopt_shared(newer_only=True) and self._fresh():  # shared between our first look and our claim
                self._release(token)
                return None
            return token
        if not self._usable():
            self._wait_for_other_fetch(key)
        return None

    def _wait_for_other_fetch(self, key: str) -> None:
        """Until another worker's fetch is shared, or its lock is gone (that fetch failed, or its worker
        died: single flight, its outcome is ours too), or the deadline: polling, never past it."""
        while not self._adopt_shared(newer_only=True):
            holder = self._holder(key)
            if holder is None:
                self._adopt_shared(newer_only=True)  # the copy is shared before the lock is released
                return
            if holder == FAILED:
                return
            left = remaining() or 0.0
            if left <= 0.0:
                return
            time.sleep(min(POLL, left))

    def _claim(self, key: str, seconds: float) -> str | None:
        """A random owner token if ``key`` was free (SET NX PX), None if another worker holds it."""
        token = secrets.token_hex(16)
        try:
            return token if self.redis.set(key, token, nx=True, px=max(math.ceil(seconds * 1000), 1)) else None
        except Exception:  # noqa: BLE001 - no Redis: every process decides for itself
            return ""

    def _holder(self, key: str) -> bytes | None:
        """The lock's value: an owner's token, ``FAILED``, or None when free (or Redis is down)."""
        try:
            value = self.redis.get(key)
        except Exception:  # noqa: BLE001 - no Redis: nobody can be waited for
            return None
        return value if isinstance(value, bytes) else None

    def _release(self, token: str | None, *, mark_failed_for: float = 0.0) -> None:
        """Release the fetch lock if ``token`` still owns it (``lock_release.lua``): delete it, or keep it
        ``mark_failed_for`` seconds as the ``FAILED`` mark. A worker whose lock expired and was claimed
        by another changes nothing."""
        if self._unlock is not None and token:
            hold = math.ceil(mark_failed_for * 1000)
            try:
                self._unlock(
                    LockReleaseKeys(lock=f"{self.shared_key}:lock"), LockReleaseArgs(owner=token, keep_ms=hold, mark=FAILED)
                )
            except Exception:  # noqa: BLE001 - the lock expires by itself
                pass
