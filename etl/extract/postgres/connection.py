"""The PostgreSQL extractor's connection: ADBC's low-level API over a libpq URI built from
`connection_params`, and the typed literals cursor bounds are inlined as."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import pyarrow as pa

from etl.exceptions import MissingDependencyError


def connect(params: dict[str, Any]) -> Connection:
    """Open a connection (autocommit) to the database `params` name (host, port, database,
    user, password, optional `sslmode`, `connect_timeout` seconds, `application_name`).

    Raises:
        MissingDependencyError: adbc-driver-postgresql is not installed.
    """
    try:
        import adbc_driver_postgresql
    except ModuleNotFoundError as exc:  # pragma: no cover - a requirement
        raise MissingDependencyError("adbc-driver-postgresql", "The postgresql source") from exc
    p = params
    user = quote(str(p["user"]), safe="")
    password = f":{quote(str(p['password']), safe='')}" if p.get("password") else ""
    query = urlencode(
        {
            "sslmode": p.get("sslmode", "prefer"),
            "connect_timeout": int(p.get("connect_timeout", 10)),
            "application_name": str(p.get("application_name") or "etl-runner")[:63],
        }
    )
    uri = (
        f"postgresql://{user}{password}@{p['host']}:{int(p.get('port') or 5432)}/"
        f"{quote(str(p['database']), safe='')}?{query}"
    )
    return Connection(adbc_driver_postgresql.connect(uri))


class Connection:
    """An ADBC connection (autocommit until `begin_snapshot` turns it off: one transaction),
    used through ADBC's low-level API: its DB-API module imports `pyarrow.dataset` and with it
    pandas (~50 MB, ~0.3 s)."""

    def __init__(self, database: Any) -> None:
        import adbc_driver_manager

        self.database = database
        try:
            self.connection = adbc_driver_manager.AdbcConnection(database)
        except BaseException:
            database.close()
            raise
        self.statements: list[Any] = []

    def query(
        self, sql: str, options: dict[str, str] | None = None
    ) -> tuple[Any, pa.RecordBatchReader]:
        """Run `sql`; return its statement (close it when done) and its result stream."""
        import adbc_driver_manager

        statement = adbc_driver_manager.AdbcStatement(self.connection)
        self.statements.append(statement)
        if options:
            statement.set_options(**options)
        statement.set_sql_query(sql)
        handle, _ = statement.execute_query()
        return statement, pa.RecordBatchReader.from_stream(handle)

    def release(self, statement: Any) -> None:
        """Close `statement` unless the connection has already closed it (ADBC counts the
        closes of a connection's statements and fails on a second one)."""
        if statement in self.statements:
            self.statements.remove(statement)
            statement.close()

    def execute_update(self, sql: str) -> None:
        import adbc_driver_manager

        statement = adbc_driver_manager.AdbcStatement(self.connection)
        try:
            statement.set_sql_query(sql)
            statement.execute_update()
        finally:
            statement.close()

    def close(self) -> None:
        for closable in [*self.statements, self.connection, self.database]:
            try:
                closable.close()
            except Exception:  # noqa: BLE001  a broken connection must still be released
                pass
        self.statements.clear()


def literal(value: Any) -> str:
    """Return a PostgreSQL literal of a cursor bound, typed so it compares with the column."""
    if isinstance(value, dt.datetime):
        kind = "timestamptz" if value.tzinfo is not None else "timestamp"
        return f"'{value.isoformat()}'::{kind}"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}::bigint"
    if isinstance(value, (Decimal, float)):
        return f"'{value}'::numeric"
    return "'" + str(value).replace("'", "''") + "'"
