"""Role credentials that never stall a request: refreshed ahead of expiry by Celery, shared through Redis.

``refresh()`` is what the beat entry runs (``resilience.tasks.refresh_aws_credentials``): when the
shared copy would fall under ``refresh_margin`` before the next run, one process (a Redis lock with
an owner token) calls AssumeRole on the regional STS endpoint through a protected client (breaker
``aws:sts:<region>``, the ``aws`` retry policy, a deadline) and stores the answer encrypted in Redis.

Web workers use ``credentials()`` (``role_session()`` makes boto3 sessions on them): one botocore
``RefreshableCredentials`` per process, whose refresh function is ``Refresher.botocore_refresh``.
botocore calls it only inside its advisory window (``refresh_margin``) and, blocking, inside its
mandatory one (10 minutes, or the margin if shorter): while the copy is fresh no request waits on
anything. In the advisory window the function reads the shared copy (at most once a second) and
keeps the current credentials if Celery has not refreshed yet. In the mandatory window, or with
none at all, Celery is late or down: the worker refreshes by itself, single-flight with the same
lock. If STS fails, the current credentials are served until they expire (a
``credentials_refresh_failed`` event, and every worker backs off for ``RETRY_INTERVAL``); only then
does a caller get ``CredentialsUnavailable``.

Why a refresh function and not the ``AssumeRoleCredentialFetcher`` ``cache=`` hook: the fetcher
calls STS itself whenever its cached entry is in the window, in every process at once; a refresh
function decides who calls STS.

Nothing secret is logged, raised or put in an event: events carry the role ARN (not a secret),
error class names and seconds. botocore logs AssumeRole's response body at DEBUG
(``botocore.parsers``); ``QuietAssumeRole`` drops those records while this module calls STS.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

try:
    from botocore.credentials import RefreshableCredentials
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without boto3
    from resilience.integrations.extras import missing

    raise missing("boto3", "resilience.integrations.aws.credentials") from exc

from resilience.conf import on_reload, resilience_settings
from resilience.core.deadline import deadline, remaining
from resilience.core.event import Event
from resilience.exceptions import ConfigurationError, CredentialsUnavailable
from resilience.integrations.aws.config import botocore_config
from resilience.integrations.aws.protection import session
from resilience.integrations.aws.settings import CredentialsConfig
from resilience.integrations.aws.shared_credentials import FAILED, RoleCredentials, SharedCopy
from resilience.observability.events import emit
from resilience.storage.redis.client import shared_client

REFRESH_BUDGET = 10.0  # seconds one AssumeRole may take, its retries included
LOCK_MARGIN = 1.0  # seconds the lock outlives the refresh it covers (the store and release after it)
RETRY_INTERVAL = 30.0  # seconds after a failed refresh before any worker asks STS again
LOOK_EVERY = 1.0  # seconds between two reads of the shared copy while ours is in the advisory window
EXPIRING_EVERY = 60.0  # seconds between two credentials_expiring events of one process
MANDATORY = 600.0  # botocore's mandatory window: below this a worker refreshes by itself
POLL = 0.05  # seconds between looks at the shared copy while another worker refreshes


_assuming = contextvars.ContextVar("resilience_aws_assuming", default=False)


class QuietAssumeRole(logging.Filter):
    """Drops botocore's records while this module calls STS: its DEBUG lines show the response body."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _assuming.get()


for _name in ("botocore.parsers", "botocore.endpoint", "botocore.hooks"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, QuietAssumeRole) for f in _logger.filters):
        _logger.addFilter(QuietAssumeRole())


def config() -> CredentialsConfig:
    """``RESILIENCE["AWS"]["CREDENTIALS"]``, or ConfigurationError when it is not set."""
    found = resilience_settings.AWS["CREDENTIALS"]
    if found is None:
        raise ConfigurationError('RESILIENCE["AWS"]["CREDENTIALS"] is not set: no role to refresh credentials for')
    return found  # type: ignore[no-any-return]


class Refresher:
    """The refresh logic of one role in one process; ``clock`` (epoch seconds) and ``monotonic`` injectable."""

    def __init__(
        self,
        settings: CredentialsConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.clock, self.monotonic = settings, clock, monotonic
        self.mandatory = min(MANDATORY, settings.refresh_margin)
        self.current: RoleCredentials | None = None
        self._lock = threading.Lock()  # one refresh decision at a time in this process
        self._sts: Any = None
        self._copy: tuple[Any, SharedCopy] | None = None
        self._next_attempt = 0.0  # monotonic: no STS call before this, after a failure
        self._next_look = 0.0
        self._next_expiring = 0.0
        self._refreshed = 0  # refreshes this process made: a thread that waited for one takes its outcome

    # -- pieces -------------------------------------------------------------------------------
    def shared(self) -> SharedCopy | None:
        """The shared copy in ``RESILIENCE["REDIS"]``; None without Redis (each process for itself)."""
        client = shared_client()
        if client is None:
            return None
        if self._copy is None or self._copy[0] is not client:
            self._copy = (client, SharedCopy(client, resilience_settings.KEY_PREFIX, self.config, clock=self.clock))
        return self._copy[1]

    def sts(self) -> Any:
        """The protected STS client of the regional endpoint (base credentials: the default chain)."""
        if self._sts is None:
            self._sts = session().client(
                "sts", region_name=self.config.region, endpoint_url=self.config.endpoint_url, config=botocore_config()
            )
        return self._sts

    def _left(self, credentials: RoleCredentials | None) -> float:
        return credentials.expires_in(self.clock()) if credentials is not None else 0.0

    def _keep(self, credentials: RoleCredentials | None) -> RoleCredentials | None:
        """Adopt ``credentials`` if they outlive the current ones; the better of the two."""
        if credentials is not None and (self.current is None or credentials.expiry > self.current.expiry):
            self.current = credentials
        return self.current

    def _assume(self, copy: SharedCopy | None, token: str | None, by: str) -> RoleCredentials | None:
        """AssumeRole, store, release the lock; None (and the lock left as a ``failed`` mark) on failure."""
        token_of_ours = _assuming.set(True)
        try:
            with deadline(REFRESH_BUDGET):
                answer = self.sts().assume_role(
                    RoleArn=self.config.role_arn, RoleSessionName=self.config.session_name, DurationSeconds=self.config.duration
                )
            fresh = RoleCredentials.from_sts(answer["Credentials"])
        except Exception as exc:  # noqa: BLE001 - any failure: what we have stays in use
            self._next_attempt = self.monotonic() + RETRY_INTERVAL
            if copy is not None:
                copy.release(token, mark_failed_for=RETRY_INTERVAL)
            fields = {"error": type(exc).__name__, "expires_in": round(max(self._left(self.current), 0.0)), "by": by}
            emit(Event("aws", "credentials_refresh_failed", self.config.role_arn, fields))
            return None
        finally:
            _assuming.reset(token_of_ours)
        if copy is not None:
            copy.write(fresh)  # shared before the lock goes: a waiter that sees no lock finds the copy
            copy.release(token)
        self._keep(fresh)
        self._refreshed += 1
        emit(Event("aws", "credentials_refreshed", self.config.role_arn, {"expires_in": round(self._left(fresh)), "by": by}))
        return fresh

    # -- the beat's run ------------------------------------------------------------------------
    def refresh(self, *, force: bool = False, by: str = "celery") -> str:
        """Refresh when the shared copy would fall under ``refresh_margin`` before the next run (always
        with ``force``). Returns what happened: ``fresh``, ``busy`` (another process refreshes or just
        failed), ``refreshed`` or ``failed``. Never raises for STS or Redis trouble."""
        copy = self.shared()
        seen = self._refreshed
        with self._lock:
            if self._refreshed != seen:
                return "busy"  # another thread of this process refreshed while this one waited
            ahead = self.config.refresh_margin + self.config.schedule
            found = self._keep(copy.read()) if copy is not None else self.current
            if not force and found is not None and self._left(found) >= ahead:
                emit(Event("aws", "credentials_fresh", self.config.role_arn, {"expires_in": round(self._left(found))}))
                return "fresh"
            token = copy.claim(REFRESH_BUDGET + LOCK_MARGIN) if copy is not None else ""
            if token is None:
                return "busy"
            if not force and copy is not None and self._left(self._keep(copy.read())) >= ahead:
                copy.release(token)  # stored between our first look and our claim
                return "fresh"
            return "refreshed" if self._assume(copy, token, by) is not None else "failed"

    # -- the web side --------------------------------------------------------------------------
    def botocore_refresh(self) -> dict[str, str]:
        """botocore's refresh function (advisory and mandatory windows): the best unexpired credentials."""
        with self._lock:
            best, looked = self.current, False
            now = self.monotonic()
            if best is None or now >= self._next_look:  # Redis at most once a second, however many calls
                self._next_look, looked = now + LOOK_EVERY, True
                copy = self.shared()
                best = self._keep(copy.read()) if copy is not None else best
            if best is None or self._left(best) <= 0 or (looked and self._left(best) < self.mandatory):
                best = self._refresh_by_worker(best)
            elif self._left(best) < self.config.refresh_margin and now >= self._next_expiring:
                self._next_expiring = now + EXPIRING_EVERY  # Celery is late: say so, boundedly
                emit(Event("aws", "credentials_expiring", self.config.role_arn, {"expires_in": round(self._left(best))}))
            return best.metadata()

    def _refresh_by_worker(self, best: RoleCredentials | None) -> RoleCredentials:
        """Celery is late or down: refresh here, single-flight; else the current credentials while unexpired."""
        if self.monotonic() >= self._next_attempt:
            copy = self.shared()
            token = copy.claim(REFRESH_BUDGET + LOCK_MARGIN) if copy is not None else ""
            if token is not None:
                shared = self._keep(copy.read()) if copy is not None else None
                if self._left(shared) >= self.mandatory:
                    if copy is not None:
                        copy.release(token)
                    return shared  # type: ignore[return-value]
                best = self._assume(copy, token, "worker") or self.current
            elif copy is not None and self._left(best) <= 0:
                best = self._wait_for_other(copy) or best
        if best is None or self._left(best) <= 0:
            raise CredentialsUnavailable(f"no unexpired credentials for {self.config.role_arn}")
        return best

    def _wait_for_other(self, copy: SharedCopy) -> RoleCredentials | None:
        """With nothing usable: until another process's refresh is stored, its lock goes, or our time is up."""
        until = time.monotonic() + min(remaining() or REFRESH_BUDGET + LOCK_MARGIN, REFRESH_BUDGET + LOCK_MARGIN)
        while time.monotonic() < until:  # a real wait: the injected clocks judge lifetimes, not this
            found = copy.read()
            if found is not None:
                return self._keep(found)
            holder = copy.holder()
            if holder is None or holder == FAILED:
                return self._keep(copy.read())
            time.sleep(POLL)
        return None

    def credentials(self) -> RefreshableCredentials:
        """botocore credentials of this role that refresh through ``botocore_refresh``, judging expiry
        by this refresher's clock (botocore's ``time_fetcher``). The first call may refresh."""
        metadata = self.botocore_refresh()
        return RefreshableCredentials(
            access_key=metadata["access_key"],
            secret_key=metadata["secret_key"],
            token=metadata["token"],
            expiry_time=datetime.fromisoformat(metadata["expiry_time"]),
            refresh_using=self.botocore_refresh,
            method="resilience-shared-role",
            time_fetcher=lambda: datetime.fromtimestamp(self.clock(), tz=UTC),
            advisory_timeout=self.config.refresh_margin,
            mandatory_timeout=self.mandatory,
        )


# -- one per process ------------------------------------------------------------------------
_refreshers: dict[CredentialsConfig, Refresher] = {}
_credentials: dict[CredentialsConfig, RefreshableCredentials] = {}
_registry_lock = threading.Lock()


def refresher() -> Refresher:
    """This process's ``Refresher`` of the configured role (rebuilt when the settings change)."""
    settings = config()
    found = _refreshers.get(settings)
    if found is None:
        with _registry_lock:
            found = _refreshers.setdefault(settings, Refresher(settings))
    return found


def refresh(force: bool = False) -> str:
    """Refresh the shared copy if it is due (what the beat entry runs); see ``Refresher.refresh``."""
    return refresher().refresh(force=force)


def credentials() -> RefreshableCredentials:
    """The process's botocore credentials of the configured role, on the shared copy. The first
    call of a process reads Redis (and refreshes by itself only when no copy is there)."""
    settings = config()
    found = _credentials.get(settings)
    if found is None:
        made = refresher().credentials()
        with _registry_lock:
            found = _credentials.setdefault(settings, made)
    return found


def _reset() -> None:
    _refreshers.clear()
    _credentials.clear()


on_reload(_reset)
