"""``ENGINE: "resilience.backends.postgresql"``: Django's Postgres backend plus ``resilience.db`` guards."""

from typing import Any

from django.db.backends.postgresql import base

from ...db import guarded_connect, statement_guard


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(statement_guard)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        return guarded_connect(super().get_new_connection, conn_params, self.alias)
