"""``ENGINE: "resilience.backends.postgresql"``: Django's Postgres backend plus the guards of ``integrations.postgres``."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import IsolationLevel
from django.db.backends.utils import CursorWrapper as DjangoCursorWrapper

from resilience.backends.postgresql import pool as pooled
from resilience.exceptions import DatabaseUnavailable
from resilience.integrations.postgres.classifiers import postgres_connect_refused, postgres_connection_lost
from resilience.integrations.postgres.guards import (
    bound_unwrapped,
    connection_dead,
    discard,
    guarded_connect,
    statement_guard,
    unavailable,
)
from resilience.integrations.postgres.timeouts import reset_session_timeout, transaction_ended


class _UnwrappedCallsBounded:
    """``callproc`` and ``COPY`` bypass Django's execute wrappers (``statement_guard``): they get the
    deadline's ``statement_timeout`` here, and never a session one an earlier request left on a
    persistent connection (it cancelled them at that request's deadline)."""

    db: Any
    cursor: Any

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        with bound_unwrapped(self.db, self.cursor):
            return super().callproc(*args, **kwargs)  # type: ignore[misc]

    @contextmanager
    def copy(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """psycopg's ``cursor.copy()``: the rows are read or written inside the ``with`` block, so it is bounded there."""
        with bound_unwrapped(self.db, self.cursor):
            parent = getattr(super(), "copy", None)  # the debug wrapper logs it; the plain one has none
            with parent(*args, **kwargs) if parent is not None else self.cursor.copy(*args, **kwargs) as copy:
                yield copy


class CursorWrapper(_UnwrappedCallsBounded, DjangoCursorWrapper):
    pass


class CursorDebugWrapper(_UnwrappedCallsBounded, base.CursorDebugWrapper):  # type: ignore[misc]
    pass


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(statement_guard)

    def make_cursor(self, cursor: Any) -> Any:
        return CursorWrapper(cursor, self)

    def make_debug_cursor(self, cursor: Any) -> Any:
        return CursorDebugWrapper(cursor, self)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if getattr(self, "pool", None) is None:  # no pool, or Django before 5.1
            return guarded_connect(super().get_new_connection, conn_params, self.alias)
        return guarded_connect(self._get_pooled_connection, conn_params, self.alias)

    def _get_pooled_connection(self, conn_params: dict[str, Any]) -> Any:
        """Django's ``get_new_connection`` for a pool (5.1, 5.2), with ``getconn`` bounded by the
        deadline and a pool starved by an outage replaced (``pool.getconn``): Django's own calls
        ``getconn()`` with no timeout, so its pool branch is repeated here."""
        options = self.settings_dict["OPTIONS"]
        if "isolation_level" in options:
            try:
                self.isolation_level = IsolationLevel(options["isolation_level"])
            except ValueError:
                raise ImproperlyConfigured(
                    f"Invalid transaction isolation level {options['isolation_level']} specified. "
                    "Use one of the psycopg.IsolationLevel values."
                ) from None
        else:
            self.isolation_level = IsolationLevel.READ_COMMITTED
        connection = pooled.getconn(self, conn_params)
        if "isolation_level" in options:
            connection.isolation_level = self.isolation_level
        return connection

    def ensure_connection(self) -> None:
        """A database that cannot be reached is ``DatabaseUnavailable`` (503 under the middleware)."""
        if self.connection is not None:
            return
        try:
            super().ensure_connection()
        except DatabaseUnavailable:
            raise
        except DatabaseError as exc:
            if self.connection is None and postgres_connect_refused(exc):
                raise unavailable(self, exc, sent=False) from exc
            raise

    def _outside_transaction(self) -> bool:
        return self.connection is not None and not self.in_atomic_block and bool(self.autocommit)

    def _revive(self) -> None:
        """Outside a transaction nothing is lost by replacing a dead connection before it is used:
        a persistent or pooled connection cut while idle is found here, not by the next statement
        (a pool may hand out several dead ones in a row, hence the loop)."""
        if self.connection is None:
            if self.in_atomic_block:
                return  # Django refuses to open a connection inside atomic, its own way
            self.ensure_connection()  # a pooled connection may have died in the pool
        pool = getattr(self, "pool", None)  # Django 5.1+ only
        for _ in range((pool.max_size if pool is not None else 0) + 2):
            if not (self._outside_transaction() and connection_dead(self.connection)):
                return
            discard(self)
            self.ensure_connection()

    def _cursor(self, name: Any = None) -> Any:
        self._revive()
        try:
            return super()._cursor(name)  # type: ignore[misc]
        except DatabaseUnavailable:
            raise
        except DatabaseError as exc:
            if not postgres_connection_lost(exc):
                raise
            if self.connection is None or not self._outside_transaction():
                raise unavailable(self, exc, sent=False) from exc
            discard(self)  # lost as the cursor was made: nothing was sent, so one more try
            try:
                return super()._cursor(name)  # type: ignore[misc]
            except DatabaseError as again:
                if isinstance(again, DatabaseUnavailable) or not postgres_connection_lost(again):
                    raise
                if self._outside_transaction():
                    discard(self)
                raise unavailable(self, again, sent=False) from again

    def set_autocommit(self, autocommit: bool, force_begin_transaction_with_broken_autocommit: bool = False) -> None:
        if not autocommit:
            self._revive()  # a transaction about to start: nothing is lost by a new connection yet
        super().set_autocommit(autocommit, force_begin_transaction_with_broken_autocommit)

    def _set_autocommit(self, autocommit: bool) -> None:
        if not autocommit:
            try:
                reset_session_timeout(self)
            except DatabaseError as exc:
                if not postgres_connection_lost(exc):
                    raise
                raise unavailable(self, exc, sent=False) from exc
        transaction_ended(self)
        super()._set_autocommit(autocommit)  # type: ignore[misc]

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        except DatabaseError as exc:
            if isinstance(exc, DatabaseUnavailable) or not postgres_connection_lost(exc):
                raise
            raise unavailable(self, exc, sent=True) from exc  # the COMMIT may have been applied
        finally:
            transaction_ended(self)

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            transaction_ended(self)

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)  # type: ignore[misc]
        transaction_ended(self, savepoint_rollback=True)
