"""Reads of the outside world for the API and the wizard: test a connection, browse its
schemas, tables, columns and files. Nothing is written, neither here nor in the source.

Database sources are reached through SQLAlchemy (`postgresql+psycopg`, `mysql+pymysql`), file
sources through the engine's own listing (`etl.list_files`). A data source's preview is
`services.preview`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from django.conf import settings

import etl
from ml_platform.exceptions import ApplicationError
from ml_platform.models import Connection
from ml_platform.services.connections import connection_params_build
from ml_platform.services.secrets import redact

logger = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 10
"""Seconds a probe waits for a database to accept the connection."""
MAX_FILES_LISTED = 1000
"""Objects returned by one file listing at most (`truncated` says when more matched)."""

CONNECTION_BROWSE_UNSUPPORTED = "Browsing {what} is not supported for {type} connections."
CONNECTION_UNREACHABLE = "Could not reach the {type} connection: {reason}"
SQL_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}


def connection_test(*, connection: Connection) -> dict[str, Any]:
    """Connect for real and report whether it worked.

    Databases: open a SQLAlchemy connection and run `SELECT 1`; file sources: list the base
    path, bucket or container (objects counted up to `MAX_FILES_LISTED`); BigQuery: list one
    dataset.

    Returns:
        `{"ok": bool, "message": str, "duration_ms": int, "details": {...}}`; a failure is a
        result (`ok` false, the reason without secrets), not an exception.
    """
    started = time.perf_counter()
    try:
        details = _connection_test(connection)
        ok, message = True, "Connection succeeded."
    except Exception as exc:  # noqa: BLE001  a failed probe is the answer, not an error
        ok, message, details = False, _redact(_first_line(exc), connection), {}
    duration_ms = round((time.perf_counter() - started) * 1000)
    logger.info("connection.tested", connection_id=connection.id, ok=ok, duration_ms=duration_ms)
    return {"ok": ok, "message": message, "duration_ms": duration_ms, "details": details}


def _connection_test(connection: Connection) -> dict[str, Any]:
    if connection.type in SQL_DRIVERS:
        from sqlalchemy import text

        with _sql_engine(connection) as engine, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            version = ".".join(str(part) for part in engine.dialect.server_version_info or ())
        return {"server_version": version}
    if connection.type in etl.FILE_SOURCES:
        listing = connection_browse_files(connection=connection)
        return {"objects": len(listing["files"]), "truncated": listing["truncated"]}
    if connection.type == "bigquery":
        client = _bigquery_client(connection)
        datasets = [d.dataset_id for d in client.list_datasets(max_results=1, timeout=30)]
        return {"datasets_seen": len(datasets)}
    raise ApplicationError(f"Unknown connection type {connection.type}.")


def connection_browse_schemas(*, connection: Connection) -> list[str]:
    """Return the schema (PostgreSQL) or database (MySQL) names, sorted.

    Raises:
        ApplicationError: not a database connection, or it cannot be reached.
    """
    with _sql_inspector(connection, "schemas") as inspector:
        return sorted(inspector.get_schema_names())


def connection_browse_tables(*, connection: Connection, schema: str | None) -> list[dict[str, str]]:
    """Return `[{"schema", "name", "kind": "table"|"view"}]` of `schema` (default: the
    connection's default schema), sorted by name.

    Raises:
        ApplicationError: not a database connection, or it cannot be reached.
    """
    with _sql_inspector(connection, "tables") as inspector:
        schema = schema or inspector.default_schema_name
        tables = [
            {"schema": schema, "name": name, "kind": "table"}
            for name in inspector.get_table_names(schema=schema)
        ]
        views = [
            {"schema": schema, "name": name, "kind": "view"}
            for name in inspector.get_view_names(schema=schema)
        ]
    return sorted(tables + views, key=lambda item: item["name"])


def connection_browse_columns(*, connection: Connection, table: str) -> list[dict[str, Any]]:
    """Return the columns of `table` (`name` or `schema.name`) in table order:
    `[{"name", "type", "nullable", "primary_key"}]`; `type` is the database's type name.

    Raises:
        ApplicationError: not a database connection, it cannot be reached, or no such table.
    """
    from sqlalchemy.exc import NoSuchTableError

    schema, _, name = table.rpartition(".")
    with _sql_inspector(connection, "columns") as inspector:
        try:
            columns = inspector.get_columns(name, schema=schema or None)
            primary_key = set(
                inspector.get_pk_constraint(name, schema=schema or None).get("constrained_columns")
                or []
            )
        except NoSuchTableError:
            raise ApplicationError(
                f"Table {table} does not exist or is not visible.", {"fields": {"table": [table]}}
            ) from None
    return [
        {
            "name": column["name"],
            "type": str(column["type"]),
            "nullable": bool(column.get("nullable", True)),
            "primary_key": column["name"] in primary_key,
        }
        for column in columns
    ]


def connection_browse_files(
    *, connection: Connection, prefix: str = "", pattern: str = "**"
) -> dict[str, Any]:
    """List the objects under `prefix` whose path relative to it matches the glob `pattern`
    (`*` stays in one folder, `**` crosses folders), as a file data source would.

    Returns:
        `{"files": [{"key", "size", "last_modified", "version"}], "truncated": bool}`, sorted
        by key; at most `MAX_FILES_LISTED` files; sizes in bytes, times ISO 8601 UTC. The walk
        stops after `settings.ETL_BROWSE_MAX_ENTRIES` files and folders or
        `settings.ETL_BROWSE_MAX_SECONDS`; `truncated` is then true (more may match).

    Raises:
        ApplicationError: not a file connection, a prefix outside the base path, or the store
            cannot be listed.
    """
    if connection.type not in etl.FILE_SOURCES:
        raise ApplicationError(
            CONNECTION_BROWSE_UNSUPPORTED.format(what="files", type=connection.type)
        )
    budget = etl.ListingBudget(
        max_entries=settings.ETL_BROWSE_MAX_ENTRIES, max_seconds=settings.ETL_BROWSE_MAX_SECONDS
    )
    with engine_errors(connection):
        objects = etl.list_files(
            connection.type,
            connection_params_build(connection=connection),
            prefix=prefix,
            pattern=pattern or "**",
            budget=budget,
        )
    return {
        "files": [
            {
                "key": obj.key,
                "size": obj.size,
                "last_modified": obj.last_modified,
                "version": obj.version,
            }
            for obj in objects[:MAX_FILES_LISTED]
        ],
        "truncated": len(objects) > MAX_FILES_LISTED or budget.truncated,
    }


@contextmanager
def _sql_engine(connection: Connection) -> Iterator[Any]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import URL
    from sqlalchemy.pool import NullPool

    params = connection_params_build(connection=connection)
    url = URL.create(
        SQL_DRIVERS[connection.type],
        username=params.get("user") or None,
        password=params.get("password") or None,
        host=params.get("host") or None,
        port=int(params["port"]) if params.get("port") else None,
        database=params.get("database") or None,
    )
    engine = create_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _sql_inspector(connection: Connection, what: str) -> Iterator[Any]:
    if connection.type not in SQL_DRIVERS:
        raise ApplicationError(
            CONNECTION_BROWSE_UNSUPPORTED.format(what=what, type=connection.type)
        )
    from sqlalchemy import inspect
    from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

    try:
        with _sql_engine(connection) as engine, engine.connect() as conn:
            yield inspect(conn)
    except NoSuchTableError:
        raise
    except SQLAlchemyError as exc:
        raise ApplicationError(
            CONNECTION_UNREACHABLE.format(
                type=connection.type, reason=_redact(_first_line(exc), connection)
            )
        ) from None


@contextmanager
def engine_errors(connection: Connection) -> Iterator[None]:
    """Turn an engine error raised inside the block into an `ApplicationError` (400) whose
    message has `connection`'s secrets replaced by `***`: a `ConfigError` with `extra`
    `{"fields": {field: [message]}}`, any other `EtlError` with `{"error_class": name}`."""
    try:
        yield
    except etl.ConfigError as exc:
        extra = {"fields": {exc.field: [str(exc)]}} if exc.field else {}
        raise ApplicationError(_redact(str(exc), connection), extra) from None
    except etl.EtlError as exc:
        raise ApplicationError(
            _redact(str(exc), connection), {"error_class": type(exc).__name__}
        ) from None


def _bigquery_client(connection: Connection) -> Any:
    params = connection_params_build(connection=connection)
    return etl.make_bigquery_client(
        project=params["project"],
        credentials=params.get("credentials"),
        api_endpoint=params.get("api_endpoint"),
        field="connection_params.credentials",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _redact(message: str, connection: Connection) -> str:
    try:
        params = connection_params_build(connection=connection)
    except etl.EtlError:
        return message
    return redact(
        message, [str(value) for key, value in params.items() if key in etl.SECRET_KEYS and value]
    )
