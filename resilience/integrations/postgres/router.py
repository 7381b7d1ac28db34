"""``ReplicaRouter``: reads to the first replica whose breaker is not open, writes to the primary."""

from __future__ import annotations

from typing import Any

from resilience.conf import resilience_settings
from resilience.integrations.postgres.guards import OPEN, breaker_for


class ReplicaRouter:
    """``DATABASE_ROUTERS = ["resilience.integrations.postgres.ReplicaRouter"]`` with
    ``RESILIENCE["DATABASE_REPLICAS"] = {"default": ["replica1", "replica2"], "billing": ["billing_ro"]}``:
    reads go to the first replica of the model's primary whose breaker is not open, else to that
    primary; writes and migrations to the primary.

    A model's primary is, in order: the ``using`` hint; the alias of the ``instance`` hint
    (``instance._state.db``: an object loaded from a replica maps back to that replica's primary);
    else the first primary listed. An alias that is neither a primary nor a replica here is left
    to Django (or the next router)."""

    def _replicas(self) -> dict[str, list[str]]:
        return resilience_settings.DATABASE_REPLICAS  # type: ignore[no-any-return]

    def _primary(self, hints: dict[str, Any]) -> str | None:
        replicas = self._replicas()
        instance = hints.get("instance")
        alias = hints.get("using") or getattr(getattr(instance, "_state", None), "db", None)
        if alias:
            if alias in replicas:
                return str(alias)
            for primary, its_replicas in replicas.items():
                if alias in its_replicas:
                    return str(primary)
            return None
        return next(iter(replicas), None)

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        primary = self._primary(hints)
        if primary is None:
            return None
        for alias in self._replicas()[primary]:
            if breaker_for(alias).state not in OPEN:
                return alias
        return primary

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return self._primary(hints)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return False if any(db in replicas for replicas in self._replicas().values()) else None
