"""The shared copy of a role's credentials in Redis: encrypted, one key per role, a TTL of their lifetime.

The value is Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) over JSON of the access
key, secret, session token and expiry, under ``RESILIENCE["AWS"]["CREDENTIALS"]["encryption_key"]``
(never the Redis password: whoever can read Redis must not be able to use the role). The copy is
hostile input like everything read back from Redis: one that does not decrypt with our key (a
rotated key, a planted value), was written for another role, or is malformed is absent, and a
``credentials_unreadable`` event says so once per value seen.

Refreshes are single-flight across every process and host with the library's one Redis lock: ``SET
NX PX`` with a random owner token, released by its owner only through ``lock_release.lua`` (the
Entra provider's lock), which can leave a ``failed`` mark behind so that after an STS failure the
other workers back off too instead of calling STS again at once.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

try:
    from cryptography.fernet import Fernet, InvalidToken
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without cryptography
    from resilience.integrations.extras import missing

    raise missing("cryptography", "resilience.integrations.aws.shared_credentials") from exc

from resilience.core.event import Event
from resilience.core.validation import is_number
from resilience.integrations.aws.settings import CredentialsConfig, encryption_key
from resilience.observability.events import emit
from resilience.storage.keys import digest
from resilience.storage.redis.scripts import LockReleaseArgs, LockReleaseKeys, lock_release

SCHEMA = "v1"
FAILED = b"failed"  # the lock's value after a failed refresh, until the retry interval has passed


@dataclass(frozen=True)
class RoleCredentials:
    """One set of temporary credentials; ``expiry`` in seconds since the epoch. ``repr`` shows no secret."""

    access_key: str
    secret_key: str
    token: str
    expiry: float

    def expires_in(self, now: float) -> float:
        """Seconds left at ``now`` (negative once expired)."""
        return self.expiry - now

    def metadata(self) -> dict[str, str]:
        """What botocore's ``RefreshableCredentials`` takes from a refresh function."""
        expiry = datetime.fromtimestamp(self.expiry, tz=UTC).isoformat()
        return {"access_key": self.access_key, "secret_key": self.secret_key, "token": self.token, "expiry_time": expiry}

    @classmethod
    def from_sts(cls, answer: dict[str, Any]) -> RoleCredentials:
        """From AssumeRole's ``Credentials`` member (``Expiration`` a datetime, as botocore parses it)."""
        return cls(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"], answer["Expiration"].timestamp())

    def __repr__(self) -> str:
        return f"RoleCredentials(expiry={self.expiry!r})"


def role_id(config: CredentialsConfig) -> str:
    """The role's digest in keys: one copy per role (and per STS endpoint, whose answers differ)."""
    return digest(json.dumps([config.role_arn, config.endpoint_url, config.session_name]), 16)


class SharedCopy:
    """The encrypted copy and the refresh lock of one role, in one Redis."""

    def __init__(self, client: Any, prefix: str, config: CredentialsConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.redis, self.config, self.clock = client, config, clock
        self.role = role_id(config)
        self.key = f"{prefix}:aws:credentials:{{{self.role}}}"  # the hash tag keeps key and lock in one slot
        self.lock_key = f"{self.key}:lock"
        self._unlock = lock_release(client)
        self._fernet = Fernet(encryption_key(config))
        self._unreadable: bytes | None = None  # the last value that did not decrypt: one event per value

    def read(self) -> RoleCredentials | None:
        """The shared credentials if they decrypt with our key, are for this role and are unexpired."""
        try:
            raw = self.redis.get(self.key)
        except Exception:  # noqa: BLE001 - Redis down: the process keeps what it has
            return None
        if not isinstance(raw, bytes):
            return None
        try:
            document = json.loads(self._fernet.decrypt(raw))
            found = RoleCredentials(
                str(document["AccessKeyId"]), str(document["SecretAccessKey"]), str(document["SessionToken"]),
                float(document["Expiration"]),
            )  # fmt: skip
            if document["role"] != self.role or not is_number(document["Expiration"]) or not math.isfinite(found.expiry):
                raise ValueError("not this role's credentials")
        except (InvalidToken, ValueError, KeyError, TypeError, OverflowError):
            if raw != self._unreadable:
                self._unreadable = raw
                emit(Event("aws", "credentials_unreadable", self.config.role_arn, {"reason": "does not decrypt or decode"}))
            return None
        return found if found.expires_in(self.clock()) > 0 else None

    def write(self, credentials: RoleCredentials) -> bool:
        """Store ``credentials`` encrypted, living exactly as long as they do; False if Redis refused."""
        ttl_ms = math.floor(credentials.expires_in(self.clock()) * 1000)
        if ttl_ms <= 0:
            return False
        document = {
            "role": self.role, "AccessKeyId": credentials.access_key, "SecretAccessKey": credentials.secret_key,
            "SessionToken": credentials.token, "Expiration": credentials.expiry,
        }  # fmt: skip
        try:
            self.redis.set(self.key, self._fernet.encrypt(json.dumps(document).encode()), px=ttl_ms)
        except Exception as exc:  # noqa: BLE001 - sharing is an optimisation: this process keeps its copy
            emit(Event("aws", "share_failed", self.config.role_arn, {"error": type(exc).__name__}))
            return False
        return True

    def claim(self, seconds: float) -> str | None:
        """The lock's owner token if it was free (``SET NX PX``); None if another holds it (or its
        ``failed`` mark is there); ``""`` when Redis cannot be asked: this process decides for itself."""
        token = secrets.token_hex(16)
        try:
            return token if self.redis.set(self.lock_key, token, nx=True, px=max(math.ceil(seconds * 1000), 1)) else None
        except Exception:  # noqa: BLE001
            return ""

    def holder(self) -> bytes | None:
        """The lock's value: an owner's token, ``FAILED``, or None when free (or Redis is down)."""
        try:
            value = self.redis.get(self.lock_key)
        except Exception:  # noqa: BLE001
            return None
        return value if isinstance(value, bytes) else None

    def release(self, token: str | None, *, mark_failed_for: float = 0.0) -> None:
        """Release the lock if ``token`` still owns it: delete it, or leave the ``failed`` mark for
        ``mark_failed_for`` seconds. An owner whose lock expired and was claimed since changes nothing."""
        if not token:
            return
        try:
            self._unlock(
                LockReleaseKeys(lock=self.lock_key),
                LockReleaseArgs(owner=token, keep_ms=math.ceil(mark_failed_for * 1000), mark=FAILED),
            )
        except Exception:  # noqa: BLE001 - the lock expires by itself
            pass
